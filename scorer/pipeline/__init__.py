"""The transport-neutral request pipeline (see docs/architecture.md).

A transport (the gRPC servicer, the batch CLI, an in-process caller) converts its message to a
:class:`Request`, asks the pipeline to resolve the target and run the stages, and converts the
arrays back. Stages: resolve -> route -> features -> cache -> score -> record; each has one
interface (:mod:`.stages`) and unconfigured stages cost nothing.
"""

from .core import ModelResolver, Pipeline, StageErrors
from .request import Request, Target
from .stages import Cache, Features, Recorder, Resolver, Router, Score, score_model

__all__ = ["Cache", "Features", "ModelResolver", "Pipeline", "Recorder", "Request", "Resolver",
           "Router", "Score", "StageErrors", "Target", "score_model"]
