"""``inference.GRPCInferenceService``: protocol messages in, repository and scorer calls, protocol
messages out.

Handlers receive the request as bytes and parse it themselves, so a malformed message is an
INVALID_ARGUMENT answer like any other bad input (gRPC's own deserialisation failure would
surface as an opaque INTERNAL). Every exception leaves through :func:`status.to_status`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from protos import inference_pb2 as pb

from .. import __version__
from ..errors import InputError, ModelNotFoundError, TablescoreError
from ..pipeline import Pipeline, score_model
from . import codec, wire
from .batching import Batcher
from .config import ServerConfig
from .logs import AccessLog
from .metrics import Metrics
from .repository import LoadedVersion, ModelView, Repository, VersionPolicy
from .status import code_for, to_status

log = logging.getLogger("tablescore.server")

SERVICE = "inference.GRPCInferenceService"
PLATFORM = "tablescore"
EXTENSIONS = ("model_repository", "model_configuration", "statistics")
#: RepositoryModelLoad waits at most this long for the model's versions to load
LOAD_TIMEOUT_S = 600.0
#: serialized response parts kept per loaded version (distinct output selections x rows)
_MAX_SKELETONS = 256

# Testing hook: ModelInfer sleeps this long before scoring, so tests can hold requests in
# flight (graceful shutdown). Read once at import; never set in production.
_DEBUG_DELAY_S = float(os.environ.get("TABLESCORE_SERVE_DEBUG_DELAY_S", "0") or 0)


class ServerState:
    """Readiness of the process as the health RPCs report it."""

    def __init__(self) -> None:
        self.ready = False
        self.shutting_down = False


class _ParallelGuard:
    """Serialises parallel-kernel batches when Numba runs on its workqueue threading layer.

    The workqueue layer aborts the process when two threads launch parallel kernels at once;
    the omp and tbb layers are thread-safe. Until a parallel kernel has run, the layer is not
    known and batches are serialised to be safe.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._safe: bool | None = None

    def needed(self) -> bool:
        if self._safe is None:
            try:
                import numba

                layer = numba.threading_layer()
            except (ValueError, ImportError):
                return True
            self._safe = layer != "workqueue"
        return not self._safe


class InferenceServicer:
    """Implements the service over a :class:`Repository`.

    Parameters
    ----------
    repository : Repository
        Where models come from.
    config : ServerConfig
        Limits (rows per request).
    metrics : Metrics
        Where requests are counted.
    state : ServerState
        Readiness flags shared with the server.
    pipeline : Pipeline, optional
        The request stages after protobuf decoding (default: resolve from ``repository``,
        then score). Its default score stage is replaced by the server's (batching).
    """

    def __init__(self, repository: Repository, config: ServerConfig, metrics: Metrics,
                 state: ServerState, *, pipeline: Pipeline | None = None) -> None:
        self.repository = repository
        self.config = config
        self.metrics = metrics
        self.state = state
        self._parallel = _ParallelGuard()
        # adaptive batching: one batcher per loaded version, gone when the version is
        self._batchers: weakref.WeakKeyDictionary[LoadedVersion, Batcher] = \
            weakref.WeakKeyDictionary()
        self._batchers_lock = threading.Lock()
        #: the transport-neutral stages (scorer.pipeline): this servicer only converts
        #: protobuf to a Request and the outputs back
        self.pipeline = pipeline if pipeline is not None else Pipeline(repository)
        if self.pipeline.score is score_model:  # the server's scorer: batching, parallel guard
            score = self._score_batched if config.batching else self._score_direct
            self.pipeline = Pipeline(self.pipeline.resolver, score,
                                     router=self.pipeline.router,
                                     features=self.pipeline.features,
                                     cache=self.pipeline.cache,
                                     recorders=self.pipeline.recorders)
        self.resolve = self.pipeline.resolve
        self._routing = self.pipeline.routing
        #: the access log (--access-log); None when off: the handlers then skip it entirely
        self.access = AccessLog.create(config.access_log)
        metrics.watch_stage_errors(self.pipeline.errors)
        # the request scan from Numba's cache; with an empty cache it compiles once the
        # models are loaded (scorer.server.app), not before them
        wire.load_if_cached()

    # --- plumbing -----------------------------------------------------------------------------
    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The service as a gRPC handler taking and returning serialized messages."""
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(fn)
            for name, fn in self.handlers().items()
        })

    def handlers(self) -> dict[str, Callable[[bytes, grpc.ServicerContext], bytes]]:
        """Method name -> the handler the server calls: request bytes in, response bytes
        out (also for measuring the request path without a network). Each call builds new
        handlers: keep the result."""
        methods: dict[str, tuple[type, Callable[[Any, Any], Any]]] = {
            "ServerLive": (pb.ServerLiveRequest, self.server_live),
            "ServerReady": (pb.ServerReadyRequest, self.server_ready),
            "ModelReady": (pb.ModelReadyRequest, self.model_ready),
            "ServerMetadata": (pb.ServerMetadataRequest, self.server_metadata),
            "ModelMetadata": (pb.ModelMetadataRequest, self.model_metadata),
            "ModelInfer": (pb.ModelInferRequest, self.model_infer),
            "ModelConfig": (pb.ModelConfigRequest, self.model_config),
            "ModelStatistics": (pb.ModelStatisticsRequest, self.model_statistics),
            "RepositoryIndex": (pb.RepositoryIndexRequest, self.repository_index),
            "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, self.repository_model_load),
            "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest,
                                      self.repository_model_unload),
        }
        return {name: self._wrap(name, req_type, fn,
                                 fast=wire.parse_plain if name == "ModelInfer" else None)
                for name, (req_type, fn) in methods.items()}

    def _wrap(self, method: str, req_type: Any, fn: Callable[[Any, Any], Any], *,
              fast: Callable[[bytes], Any] | None = None,
              ) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        """The handler of ``method``: parses the request (``fast`` first where given: its
        result, or None for the protobuf message), calls ``fn``, serializes the answer, and
        turns an exception into the call's status."""
        calls = self.metrics.calls
        access = self.access

        def handler(data: bytes, context: grpc.ServicerContext) -> bytes:
            t0 = time.perf_counter()
            calls.started()
            code = "OK"
            try:
                request = fast(data) if fast is not None else None
                if request is None:
                    request = _parse(req_type, data)
                out = fn(request, context)
                # (a raw ModelInfer response comes spliced as bytes already)
                return out if type(out) is bytes else out.SerializeToString()
            except Exception as exc:
                status, details = to_status(exc, method=method)
                code = status.name
                if status is not grpc.StatusCode.INTERNAL and log.isEnabledFor(logging.DEBUG):
                    log.debug("request refused", extra={
                        "event": "request_error", "method": method, "code": status.name,
                        "error": details})
                context.abort(status, details)  # raises: ends the RPC with this status
                raise AssertionError("unreachable") from None
            finally:
                calls.finished(method, code, time.perf_counter() - t0)
                if access is not None:
                    access.log(method, code, t0, context)

        return handler

    # --- health -------------------------------------------------------------------------------
    def server_live(self, req: Any, context: Any) -> Any:
        # live while draining too: a liveness probe must not restart a process that is
        # finishing its requests (readiness is what turns false)
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, req: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.state.ready and not self.state.shutting_down)

    def model_ready(self, req: Any, context: Any) -> Any:
        # a yes/no question: an unknown model is simply not ready (no NOT_FOUND), as in Triton
        return pb.ModelReadyResponse(ready=self.repository.is_ready(req.name, req.version))

    # --- metadata -----------------------------------------------------------------------------
    def server_metadata(self, req: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name=PLATFORM, version=__version__,
                                         extensions=list(EXTENSIONS))

    def model_metadata(self, req: Any, context: Any) -> Any:
        lv = self.resolve(req.name, req.version)
        view = self.repository.view(req.name)
        resp = pb.ModelMetadataResponse(name=lv.name, versions=view.ready_versions(),
                                        platform=PLATFORM)
        for name, dt, shape in lv.schema.input_tensors():
            resp.inputs.add(name=name, datatype=dt, shape=shape)
        for name, dt, shape in lv.schema.output_tensors():
            resp.outputs.add(name=name, datatype=dt, shape=shape)
        return resp

    def model_config(self, req: Any, context: Any) -> Any:
        lv = self.resolve(req.name, req.version)
        view = self.repository.view(req.name)
        b = lv.model.bundle
        cfg = pb.ModelConfig(name=lv.name, platform=PLATFORM, backend=PLATFORM,
                             max_batch_size=0)
        _set_policy(cfg.version_policy, view.policy)
        for name, dt, shape in lv.schema.input_tensors():
            cfg.input.add(name=name, data_type=pb.DataType.Value(codec.TRITON_DATATYPE[dt]),
                          dims=shape)
        for name, dt, shape in lv.schema.output_tensors():
            cfg.output.add(name=name, data_type=pb.DataType.Value(codec.TRITON_DATATYPE[dt]),
                           dims=shape)
        producer = b.producer or {}
        params = {
            "version": lv.version,
            "fingerprint": lv.fingerprint,
            "schema_version": b.schema_version,
            "task": b.task,
            "bundle_model_name": b.name,
            "bundle_model_version": b.version,
            "created": b.created or "",
            "producer": f"{producer.get('library', '')} {producer.get('version', '')}".strip(),
            "estimator": str(producer.get("estimator", "")),
            "verification_rows": str(_verification_rows(lv)),
        }
        for key, value in params.items():
            cfg.parameters[key].string_value = value
        return pb.ModelConfigResponse(config=cfg)

    # --- inference ----------------------------------------------------------------------------
    def model_infer(self, req: Any, context: Any) -> Any:
        t0 = time.perf_counter_ns()
        calls = self.metrics.calls
        access = self.access
        try:
            lv = self.resolve(req.model_name, req.model_version)
        except Exception as exc:
            # a model of the repository keeps its name (a version it cannot serve: ""); an
            # unknown name is "", so clients cannot grow the series without bound
            known = req.model_name if req.model_name in self.repository.views() else ""
            calls.infer_failed(known, "", to_status_name(exc))
            if access is not None:  # the model and version asked for: none answered
                access.note(req.model_name, req.model_version, 0)
            raise
        try:
            resp, rows, t1, t2, executions, lv = self._infer(lv, req)
        except Exception as exc:
            lv.stats.failure(time.perf_counter_ns() - t0)
            calls.infer_failed(lv.name, lv.version, to_status_name(exc))
            if access is not None:
                access.note(lv.name, lv.version, 0)
            raise
        t3 = time.perf_counter_ns()
        lv.stats.success(rows, t3 - t0, t1 - t0, t2 - t1, t3 - t2, executions=executions)
        calls.inferred(lv.name, lv.version, rows, (t3 - t0) / 1e9)
        if access is not None:
            access.note(lv.name, lv.version, rows)
        return resp

    def _infer(self, lv: LoadedVersion, req: Any,
               ) -> tuple[Any, int, int, int, int, LoadedVersion]:
        """protobuf -> Request, the pipeline's stages, arrays -> protobuf; also returns the
        version that answered (a router may choose another than ``lv``)."""
        batcher = self._batcher(lv) if self.config.batching else None
        if batcher is not None:
            batcher.announce()  # a batch leader may wait for this request while it decodes
        try:
            dec = self._decode(lv, req)
            if self._routing and not req.model_version:  # a pinned version is not routed
                routed = self.pipeline.route(lv, dec)
                if routed is not lv:
                    # the outputs the arm's version has (asked for all: all of its own)
                    try:
                        dec.outputs = codec.requested_outputs(req, routed.schema)
                    except InputError as exc:
                        raise TablescoreError(  # FAILED_PRECONDITION: the configuration
                            f"the experiment routed this request to version "
                            f"{routed.version} of model '{routed.name}': {exc}; arms must "
                            "share the outputs requests ask for") from None
                    lv = routed
                    if batcher is not None:  # announced to the other version's batcher
                        batcher.withdraw()
                        batcher = None
        except BaseException:
            if batcher is not None:
                batcher.withdraw()
            raise
        t1 = time.perf_counter_ns()
        if _DEBUG_DELAY_S:
            time.sleep(_DEBUG_DELAY_S)
        if batcher is None:
            arrays = self.pipeline.infer(lv, dec)
        else:
            dec.announced = True
            try:
                arrays = self.pipeline.infer(lv, dec)
            finally:
                if dec.announced:  # answered without scoring (a cache hit) or failed before
                    batcher.withdraw()
        t2 = time.perf_counter_ns()
        return self._response(lv, req, dec, arrays), dec.rows, t1, t2, dec.executions, lv

    def _score_direct(self, lv: LoadedVersion, dec: codec.DecodedRequest,
                      ) -> dict[str, np.ndarray]:
        """The server's score stage without batching: parallel kernels are serialised where
        Numba's threading layer needs it."""
        if (lv.parallel_rows is not None and dec.rows >= lv.parallel_rows
                and self._parallel.needed()):
            with self._parallel.lock:
                return lv.model.score_arrays(dec.inputs)
        return lv.model.score_arrays(dec.inputs)

    def _score_batched(self, lv: LoadedVersion, dec: codec.DecodedRequest,
                       ) -> dict[str, np.ndarray]:
        """The server's score stage with adaptive batching (``--batch-delay-us``)."""
        announced, dec.announced = dec.announced, False
        res = self._batcher(lv).submit(dec.inputs, dec.rows, announced=announced)
        dec.executions = int(res.executed)
        if res.batch_requests > 1:
            self.metrics.batched.labels(lv.name, lv.version).inc()
        return res.arrays

    def _decode(self, lv: LoadedVersion, req: Any) -> codec.DecodedRequest:
        """The request's scorer input (:meth:`_decode_once`). A request a stage may read
        columns of, that names inputs neither the model nor a stage takes, is shown to the
        stages first: one that cannot tell yet (the features stage while its store is down
        and the view's entity column was never learned) answers UNAVAILABLE, not "unknown
        input"; one that has just learned the column has the request decoded again."""
        try:
            return self._decode_once(lv, req)
        except InputError as exc:
            if not self.pipeline.extras:
                raise
            names = ([req.tensor] if type(req) is wire.PlainRequest
                     else [t.name for t in req.inputs])
            known = self.pipeline.extra_inputs(lv)
            unknown = [n for n in names if n not in lv.schema.index and n not in known]
            if not unknown:
                raise
            reason = self.pipeline.unknown_inputs(lv, unknown)
            if reason is not None:
                raise reason from exc
            if any(n in self.pipeline.extra_inputs(lv) for n in unknown):
                return self._decode_once(lv, req)  # a stage knows them now
            raise

    def _decode_once(self, lv: LoadedVersion, req: Any) -> codec.DecodedRequest:
        """The request's scorer input; a request that :mod:`.wire` found plain but that breaks
        a rule of this model's is parsed again by protobuf, and the general path words the
        error (or decodes it, as it would have)."""
        extras = self.pipeline.extra_inputs(lv) if self.pipeline.extras else frozenset()
        if type(req) is wire.PlainRequest:
            # (a plain request has no parameters and one tensor: unless a stage reads that
            # tensor, e.g. an entity id, it is the model's)
            if req.tensor not in extras:
                dec = codec.decode_plain(req, lv.schema, max_rows=self.config.max_rows)
            else:
                dec = codec.decode_plain_ids(req, lv.schema, max_rows=self.config.max_rows)
            if dec is not None:
                return dec
            req = _parse(pb.ModelInferRequest, req.data)
        dec = codec.decode_request(req, lv.schema, max_rows=self.config.max_rows,
                                   extras=extras)
        if req.parameters:
            dec.parameters = codec.request_parameters(req)
        return dec

    def _response(self, lv: LoadedVersion, req: Any, dec: codec.DecodedRequest,
                  arrays: dict[str, np.ndarray]) -> Any:
        """The ModelInferResponse: a message, or for a raw request its serialized bytes.

        A raw response is spliced from serialized parts, byte for byte what serializing the
        message would give: the name and version, the id, the output tensor descriptions
        (kept per output selection and row count: they never change) and one
        ``raw_output_contents`` field per output. Building, copying and serializing a message
        instead touched several times the code and memory; on a server whose caches go cold
        between requests that was ~50 µs of a request (~3 µs with warm caches).
        """
        if not dec.raw:
            resp = pb.ModelInferResponse(model_name=lv.name, model_version=lv.version,
                                         id=req.id)
            codec.encode_outputs(resp, lv.schema, arrays, dec.outputs, dec.rows, raw=False)
            for key, value in (dec.response or {}).items():  # a stage's (an experiment arm)
                resp.parameters[key].string_param = value
            return resp
        data = codec.raw_outputs(lv.schema, arrays, dec.outputs)
        key = (tuple(dec.outputs), dec.rows)
        parts = lv.responses.get(key)
        if parts is None:
            head = pb.ModelInferResponse(model_name=lv.name, model_version=lv.version)
            tensors = pb.ModelInferResponse()
            codec.add_output_tensors(tensors, lv.schema, dec.outputs, dec.rows)
            parts = (head.SerializeToString(), tensors.SerializeToString())
            if len(lv.responses) < _MAX_SKELETONS:  # row counts are the client's: bounded
                lv.responses[key] = parts
        rid = req.id
        field = codec.length_delimited
        # fields in number order, as protobuf serializes them: 1-2, 3 (id), 4 (parameters),
        # 5, 6
        params = codec.response_parameters(dec.response) if dec.response is not None else b""
        return b"".join([parts[0], field(codec.RESPONSE_ID, rid.encode()) if rid else b"",
                         params, parts[1],
                         *[field(codec.RESPONSE_RAW_OUTPUT, d) for d in data]])

    def _score(self, lv: LoadedVersion, X: Any) -> dict[str, np.ndarray]:
        rows = X.shape[0] if isinstance(X, np.ndarray) else len(next(iter(X.values()), ()))
        if (lv.parallel_rows is not None and rows >= lv.parallel_rows
                and self._parallel.needed()):
            with self._parallel.lock:
                return lv.model.score_arrays(X)
        return lv.model.score_arrays(X)

    def _batcher(self, lv: LoadedVersion) -> Batcher:
        b = self._batchers.get(lv)
        if b is None:
            with self._batchers_lock:
                b = self._batchers.get(lv)
                if b is None:
                    ref = weakref.ref(lv)  # the batcher must not keep its version alive
                    b = Batcher(lambda X: self._score(ref(), X),
                                max_rows=self.config.batch_max_rows,
                                max_delay_s=self.config.batch_delay_us / 1e6)
                    self._batchers[lv] = b
        return b

    # --- statistics ---------------------------------------------------------------------------
    def model_statistics(self, req: Any, context: Any) -> Any:
        views = self.repository.views()
        if req.name:
            view = self.repository.view(req.name)
            if req.version:
                lv = view.ready.get(req.version)
                if lv is None:
                    raise ModelNotFoundError(f"model '{req.name}' has no loaded version "
                                             f"'{req.version}'")
                selected = [lv]
            else:
                selected = [view.ready[v] for v in view.ready_versions()]
        else:
            selected = [v.ready[ver] for _, v in sorted(views.items())
                        for ver in v.ready_versions()]
        resp = pb.ModelStatisticsResponse()
        for lv in selected:
            s = lv.stats.as_dict()
            ms = resp.model_stats.add(name=lv.name, version=lv.version,
                                      last_inference=s["last_inference_ms"],
                                      inference_count=s["inference_count"],
                                      execution_count=s["execution_count"])
            st = ms.inference_stats
            st.success.count, st.success.ns = s["success_count"], s["success_ns"]
            st.fail.count, st.fail.ns = s["fail_count"], s["fail_ns"]
            n = s["success_count"]
            st.compute_input.count, st.compute_input.ns = n, s["input_ns"]
            st.compute_infer.count, st.compute_infer.ns = n, s["infer_ns"]
            st.compute_output.count, st.compute_output.ns = n, s["output_ns"]
        return resp

    # --- repository ---------------------------------------------------------------------------
    def repository_index(self, req: Any, context: Any) -> Any:
        resp = pb.RepositoryIndexResponse()
        for name, view in sorted(self.repository.views().items()):
            if not view.statuses and not req.ready:
                resp.models.add(name=name, state="UNAVAILABLE",
                                reason=view.why_not_ready())
            for s in view.statuses:
                if req.ready and s.state != "READY":
                    continue
                resp.models.add(name=name, version=s.version, state=s.state, reason=s.reason)
        return resp

    def repository_model_load(self, req: Any, context: Any) -> Any:
        _refuse_parameters(req, "RepositoryModelLoad")
        view = self.repository.load_model(req.model_name, timeout=LOAD_TIMEOUT_S)
        log.info("model loaded by request", extra={
            "event": "model_load_request", "model": req.model_name,
            "versions": view.ready_versions()})
        return pb.RepositoryModelLoadResponse()

    def repository_model_unload(self, req: Any, context: Any) -> Any:
        # tablescore models have no dependents: unloading them is a no-op
        _refuse_parameters(req, "RepositoryModelUnload", frozenset({"unload_dependents"}))
        self.repository.unload_model(req.model_name)
        log.info("model unloaded by request", extra={
            "event": "model_unload_request", "model": req.model_name})
        return pb.RepositoryModelUnloadResponse()


def _parse(req_type: Any, data: bytes) -> Any:
    """The protobuf message of ``req_type`` in ``data``; malformed: INVALID_ARGUMENT."""
    try:
        return req_type.FromString(data)
    except DecodeError as exc:
        raise InputError(f"malformed {req_type.DESCRIPTOR.name} message ({exc})") from None


def to_status_name(exc: BaseException) -> str:
    """The status code name an exception will be answered with (for metrics labels)."""
    return code_for(exc).name


def _refuse_parameters(req: Any, method: str, allowed: frozenset[str] = frozenset()) -> None:
    for key in req.parameters:
        if key in allowed:
            continue
        raise InputError(f"{method}: parameter '{key}' is not supported by tablescore "
                         "(models are loaded from the repository directory only)")


def _set_policy(msg: Any, policy: VersionPolicy) -> None:
    if policy.kind == "latest":
        msg.latest.num_versions = policy.num_versions
    elif policy.kind == "all":
        msg.all.SetInParent()
    else:
        msg.specific.versions.extend(policy.versions)


def _verification_rows(lv: LoadedVersion) -> int:
    v = lv.model.bundle.verification
    if v is None or not v.inputs:
        return 0
    return len(np.asarray(next(iter(v.inputs.values()))))


__all__ = ["SERVICE", "InferenceServicer", "ModelView", "ServerState"]
