"""The request pipeline: resolve -> route -> features -> cache -> score -> record.

The pipeline is composed once, when it is built: :attr:`Pipeline.infer` is the score stage
itself when nothing else is configured (no wrapper, no per-request branch), and a closure
over exactly the configured stages otherwise. An unconfigured stage therefore costs nothing
on the request path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from .request import Request, Target
from .stages import Arrays, Cache, Features, Recorder, Resolver, Router, Score, score_model

log = logging.getLogger("tablescore.pipeline")


class StageErrors:
    """Failures a stage absorbed instead of failing the request (cache get/put, recorders),
    by ``(stage, kind)``; exported on /metrics by the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, stage: str, kind: str) -> None:
        with self._lock:
            self.counts[(stage, kind)] = self.counts.get((stage, kind), 0) + 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.counts)


class Pipeline:
    """One transport-neutral request path.

    Parameters
    ----------
    resolver : Resolver
        Finds the target of a request (a directory repository, a registry, one model).
    router : Router, optional
        Re-targets a decoded request (experiment arms); transports call :meth:`route` only
        when one is configured (:attr:`routing`).
    score : Score, optional
        The score stage (default :func:`~.stages.score_model`; the server passes its batching
        scorer).
    features : Features, optional
        Completes a request's inputs before the cache and the model see them.
    cache : Cache, optional
        Answers a repeated request without scoring; a failing cache is skipped and counted.
    recorders : sequence of Recorder, optional
        Observe each scored (or cache-answered) request; a failing recorder is logged and
        counted, never answered to the caller.

    Attributes
    ----------
    resolve : callable
        ``resolve(name, version="") -> Target``: the resolver's own bound method.
    infer : callable
        ``infer(target, request) -> dict[str, ndarray]``: the composed stages after resolve.
    errors : StageErrors
        What the cache and recorders absorbed.
    """

    def __init__(self, resolver: Resolver, score: Score | None = None, *,
                 router: Router | None = None, features: Features | None = None,
                 cache: Cache | None = None, recorders: Sequence[Recorder] = ()) -> None:
        self.resolver = resolver
        self.resolve: Callable[..., Target] = resolver.resolve
        self.router = router
        #: True when a router is configured: transports call :meth:`route` after decoding
        self.routing = router is not None
        self.score: Score = score if score is not None else score_model
        self.features = features
        self.cache = cache
        self.recorders = tuple(recorders)
        self.errors = StageErrors()
        self.infer: Callable[[Target, Request], Arrays] = self._compose()
        # stages that read request columns the model does not take (see extra_inputs)
        self._extra_sources = tuple(
            s for s in (resolver, router, features, cache, *self.recorders)
            if s is not None and callable(getattr(s, "extra_inputs", None)))
        #: True when some stage reads request columns the model does not take
        self.extras = bool(self._extra_sources)

    @property
    def stages(self) -> list[str]:
        """Names of the configured stages, in request order."""
        names = ["resolve"]
        if self.router is not None:
            names.append("route")
        if self.features is not None:
            names.append("features")
        if self.cache is not None:
            names.append("cache")
        names.append("score")
        if self.recorders:
            names.append("record")
        return names

    def route(self, target: Target, request: Request) -> Target:
        """The target that answers ``request`` (the router's choice; ``target`` without a
        router)."""
        return target if self.router is None else self.router.route(target, request)

    def extra_inputs(self, target: Target) -> frozenset[str]:
        """Names of request columns the stages read for ``target`` besides the model's
        inputs (empty when no stage reads any)."""
        names: frozenset[str] = frozenset()
        for s in self._extra_sources:
            names |= s.extra_inputs(target)
        return names

    def unknown_inputs(self, target: Target, names: list[str]) -> BaseException | None:
        """Why request columns ``names``, which neither the model nor a stage takes, cannot
        be judged yet: the first stage's answer (a stage's ``unknown_inputs``, e.g. the
        features stage's UnavailableError while its store is down), or None: they are
        unknown inputs."""
        for s in self._extra_sources:
            fn = getattr(s, "unknown_inputs", None)
            reason = fn(target, names) if fn is not None else None
            if reason is not None:
                return reason
        return None

    def __call__(self, name: str, inputs: Request | object, *, version: str = "",
                 outputs: list[str] | None = None) -> tuple[Target, Arrays]:
        """Resolve ``name`` / ``version`` and run the stages on ``inputs`` (a :class:`Request`,
        or what :meth:`scorer.Model.score_arrays` takes); return the target that answered and
        its outputs. For in-process callers and batch jobs."""
        target = self.resolve(name, version)
        if isinstance(inputs, Request):
            request = inputs
        else:
            rows = _rows(inputs)
            request = Request(inputs, rows, outputs or target.model.output_names)
        if self.routing:
            target = self.route(target, request)
        return target, self.infer(target, request)

    def _compose(self) -> Callable[[Target, Request], Arrays]:
        score = self.score
        features, cache, recorders = self.features, self.cache, self.recorders
        if features is None and cache is None and not recorders:
            return score  # the whole pipeline after resolve is the score stage
        errors = self.errors
        if features is None and cache is None and len(recorders) == 1:
            # score and one recorder (drift monitoring alone): the shortest path, since its
            # fixed cost is what a one-row request pays
            record, recorder_name = recorders[0].record, type(recorders[0]).__name__

            def score_and_record(target: Target, request: Request) -> Arrays:
                arrays = score(target, request)
                try:
                    record(target, request, arrays)
                except Exception:
                    errors.add("record", recorder_name)
                    log.warning("recorder %s failed", recorder_name, exc_info=True)
                return arrays

            return score_and_record

        def infer(target: Target, request: Request) -> Arrays:
            if features is not None:
                request = features.fill(target, request)
            arrays = None
            cached = cache is not None
            if cached:
                try:
                    arrays = cache.get(target, request)
                except Exception:
                    errors.add("cache", "get")
                    log.warning("output cache lookup failed; scoring instead", exc_info=True)
                    cached = False  # (no store either: a hung cache costs one timeout)
            if arrays is None:
                arrays = score(target, request)
                if cached:
                    try:
                        cache.put(target, request, arrays)
                    except Exception:
                        errors.add("cache", "put")
                        log.warning("output cache store failed", exc_info=True)
            for r in recorders:
                try:
                    r.record(target, request, arrays)
                except Exception:
                    errors.add("record", type(r).__name__)
                    log.warning("recorder %s failed", type(r).__name__, exc_info=True)
            return arrays

        return infer


class ModelResolver:
    """A resolver over models already loaded in this process (batch jobs, in-process callers,
    tests): ``name -> Model``; every model answers as version ``"1"`` unless its bundle says
    otherwise.

    Parameters
    ----------
    models : dict of str to Model
        The models by the name requests use.
    """

    def __init__(self, models: dict) -> None:
        from ..errors import ModelNotFoundError

        self._missing = ModelNotFoundError
        self._targets = {name: _Loaded(name, str(m.version or "1"), m)
                         for name, m in models.items()}

    def resolve(self, name: str, version: str = "") -> Target:
        t = self._targets.get(name)
        if t is None:
            raise self._missing(f"unknown model '{name}'")
        if version and version != t.version:
            raise self._missing(f"unknown version '{version}' of model '{name}' "
                                f"(loaded: {t.version})")
        return t


class _Loaded:
    __slots__ = ("model", "name", "version")

    def __init__(self, name: str, version: str, model: object) -> None:
        self.name, self.version, self.model = name, version, model

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint or ""  # type: ignore[attr-defined]


def _rows(inputs: object) -> int:
    shape = getattr(inputs, "shape", None)
    if shape is not None:
        return 1 if len(shape) == 1 else int(shape[0])  # a 1-D array is one row
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values()), ()))
    return len(inputs)  # type: ignore[arg-type]
