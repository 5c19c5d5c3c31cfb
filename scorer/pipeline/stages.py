"""The stage interfaces of the request pipeline, in the order a request meets them.

=========  ==========================================================  =====================
stage      interface                                                   when unconfigured
=========  ==========================================================  =====================
resolve    ``Resolver.resolve(name, version) -> Target``               always configured
route      ``Router.route(target, request) -> Target``                 skipped
features   ``Features.fill(target, request) -> Request``               skipped
cache      ``Cache.get(target, request)`` / ``Cache.put(...)``         skipped
score      ``Score(target, request) -> dict[str, ndarray]``            ``score_model``
record     ``Recorder.record(target, request, arrays)``                skipped
=========  ==========================================================  =====================

A stage never sees protobuf or a DataFrame: transports convert to :class:`~.request.Request`
and back. A stage that needs request columns the model does not take (entity ids, unit ids)
declares them with ``extra_inputs(target) -> frozenset[str]``; transports then hand those
columns over in ``Request.extras`` instead of refusing them as unknown inputs. Backends are
chosen by URL scheme where a stage has several (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .request import Request, Target

Arrays = dict[str, np.ndarray]


class Resolver(Protocol):
    """Finds the version that serves a request: a directory repository, a registry."""

    def resolve(self, name: str, version: str = "") -> Target:
        """The target for ``name`` / ``version`` ("" = the model's default).

        Raises ``ModelNotFoundError`` (unknown) or ``NotReadyError`` (loading, failed).
        """
        ...


class Router(Protocol):
    """Re-targets a decoded request (an experiment's arm: another version of the model, with
    the same inputs), and may add response parameters (``arm``, ``experiment``)."""

    def route(self, target: Target, request: Request) -> Target:
        """The target that answers ``request`` (``target`` itself when nothing applies)."""
        ...


class Features(Protocol):
    """Completes a request's inputs (e.g. stored features looked up by entity id)."""

    def fill(self, target: Target, request: Request) -> Request:
        """The request with every model input present; may refuse (unknown entity) or raise
        ``UnavailableError`` when its store is unreachable."""
        ...


class Cache(Protocol):
    """Remembers outputs. A key must cover the target's fingerprint and the whole request, and
    a hit must compare the whole key (no collision ever answers)."""

    def get(self, target: Target, request: Request) -> Arrays | None:
        """The cached outputs, or None."""
        ...

    def put(self, target: Target, request: Request, arrays: Arrays) -> None:
        """Remember ``arrays`` for this target and request."""
        ...


class Score(Protocol):
    """Computes the outputs: every output column as a 1-D array of ``request.rows``."""

    def __call__(self, target: Target, request: Request) -> Arrays: ...


class Recorder(Protocol):
    """Observes a scored request (monitoring counters, experiment exposure)."""

    def record(self, target: Target, request: Request, arrays: Arrays) -> None:
        """Must not raise for the request's sake: a failure is logged and counted by the
        pipeline, never answered to the caller."""
        ...


def score_model(target: Target, request: Request) -> Arrays:
    """The default score stage: the target's model on the request's inputs."""
    return target.model.score_arrays(request.inputs)
