"""A small Python client for the tablescore server on the core dependencies (grpcio and the
stubs in ``protos/``; no tritonclient): ``score(X) -> {output: array}`` like
:meth:`scorer.Model.score_arrays`, but over gRPC. Used by ``tablescore conformance --endpoint``
to check the served answers against the original model.

Every failed call raises a :class:`~scorer.errors.TablescoreError` with a one-line message
that names the endpoint, the model and the status: NOT_FOUND is a
:class:`~scorer.errors.ModelNotFoundError`, INVALID_ARGUMENT an
:class:`~scorer.errors.InputError`, anything else (UNAVAILABLE: nothing listening,
DEADLINE_EXCEEDED, UNAUTHENTICATED, ...) a :class:`ServerCallError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np

from protos import inference_pb2 as pb
from protos import inference_pb2_grpc as pb_grpc

from ..errors import InputError, ModelNotFoundError, UnavailableError
from .codec import RAW_DTYPES, serialize_bytes


class ServerCallError(UnavailableError):
    """The server could not be reached, or answered a call with an error other than
    NOT_FOUND / INVALID_ARGUMENT."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        #: the gRPC status code name ("UNAVAILABLE", ...)
        self.code = code

_NUMERIC = ("FP64", "FP32", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16",
            "UINT8", "BOOL", "FP16")


def _split_bytes(buf: bytes, count: int) -> list[str]:
    out, pos = [], 0
    for _ in range(count):
        size = int.from_bytes(buf[pos:pos + 4], "little")
        pos += 4
        out.append(buf[pos:pos + size].decode("utf-8"))
        pos += size
    return out


def _strings(values: Any) -> list[bytes]:
    out = []
    for v in values:
        missing = v is None or (isinstance(v, float) and v != v)
        if not missing:
            try:
                missing = bool(v != v)  # pandas NA
            except (TypeError, ValueError):
                missing = False
        out.append(b"" if missing else str(v).encode("utf-8"))
    return out


def _numbers(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


class RemoteModel:
    """One model on a tablescore (or any Open Inference Protocol v2) server.

    Parameters
    ----------
    endpoint : str
        ``host:port``.
    model : str
        Model name.
    version : str
        Version to pin; "" for the server's default.
    timeout : float, optional
        Seconds per call.
    """

    def __init__(self, endpoint: str, model: str, *, version: str = "",
                 timeout: float | None = 60.0) -> None:
        self.endpoint = endpoint
        self.model = model
        self.version = version
        self.timeout = timeout
        #: the version that answered the last ModelInfer ("" before the first)
        self.answered_version = ""
        self._channel = grpc.insecure_channel(endpoint, options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        md = self._call("ModelMetadata", pb.ModelMetadataRequest(name=model, version=version))
        #: (name, datatype) of each input, in schema order
        self.inputs = [(t.name, t.datatype) for t in md.inputs]
        self.outputs = [t.name for t in md.outputs]

    def _call(self, method: str, request: Any) -> Any:
        """``method`` on the stub; a failed call as a one-line TablescoreError."""
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error(method, exc) from None

    def _error(self, method: str, exc: grpc.RpcError) -> Exception:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "UNKNOWN"
        details = " ".join(((exc.details() if hasattr(exc, "details") else "") or
                            str(exc)).split())
        what = f"model '{self.model}'" + (f" version {self.version}" if self.version else "")
        where = f"server {self.endpoint}"
        if code is grpc.StatusCode.NOT_FOUND:
            return ModelNotFoundError(f"{where} does not serve {what} ({details}); give the "
                                      "name and version it is served under (--name, "
                                      "--version)")
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            return InputError(f"{where} refused the {method} request for {what}: {details}")
        if code is grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
            return ServerCallError(f"cannot reach {where} ({details}): is a tablescore "
                                   "server listening there?", name)
        return ServerCallError(f"{where} answered {method} for {what} with {name}: {details}",
                               name)

    def config(self) -> dict[str, str]:
        """The ModelConfig parameters of the pinned version (fingerprint, bundle name, ...)."""
        resp = self._call("ModelConfig", pb.ModelConfigRequest(name=self.model,
                                                                version=self.version))
        return {k: v.string_value for k, v in resp.config.parameters.items()}

    def close(self) -> None:
        self._channel.close()

    def request(self, X: Any) -> Any:
        """The ModelInferRequest for ``X`` (DataFrame, dict of columns or 2-D array), raw
        encoded: one FP64 matrix for a numeric array and an all-numeric model, else one tensor
        per input (BYTES for string inputs, "" for missing)."""
        req = pb.ModelInferRequest(model_name=self.model, model_version=self.version)
        numeric = all(dt != "BYTES" for _, dt in self.inputs)
        if isinstance(X, np.ndarray) and X.dtype.kind in "fiub" and numeric:
            arr = np.ascontiguousarray(np.atleast_2d(X), dtype="<f8")
            req.inputs.add(name="input", datatype="FP64", shape=list(arr.shape))
            req.raw_input_contents.append(arr.tobytes())
            return req
        if hasattr(X, "columns") or isinstance(X, Mapping):
            columns = {name: X[name] for name, _ in self.inputs}
        else:
            arr = np.asarray(X, dtype=object)
            arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
            columns = {name: arr[:, j] for j, (name, _) in enumerate(self.inputs)}
        for name, dt in self.inputs:
            values = columns[name]
            if dt == "BYTES":
                items = _strings(values)
                req.inputs.add(name=name, datatype="BYTES", shape=[len(items)])
                req.raw_input_contents.append(serialize_bytes(items))
            else:
                col = np.ascontiguousarray(_numbers(values), dtype="<f8")
                req.inputs.add(name=name, datatype="FP64", shape=[len(col)])
                req.raw_input_contents.append(col.tobytes())
        return req

    def score(self, X: Any) -> dict[str, np.ndarray]:
        """Every output column as a 1-D array (BYTES outputs as arrays of str)."""
        resp = self._call("ModelInfer", self.request(X))
        self.answered_version = resp.model_version
        out: dict[str, np.ndarray] = {}
        for i, t in enumerate(resp.outputs):
            n = int(np.prod(t.shape)) if len(t.shape) else 0
            raw = resp.raw_output_contents[i]
            if t.datatype == "BYTES":
                out[t.name] = np.array(_split_bytes(raw, n), dtype=object)
            elif t.datatype in _NUMERIC:
                out[t.name] = np.frombuffer(raw, dtype=RAW_DTYPES[t.datatype]).copy()
            else:
                raise ValueError(f"output '{t.name}': datatype {t.datatype} not supported")
        return out


def remote_scorer(endpoint: str, model: str, *, version: str = "",
                  timeout: float | None = 60.0) -> Callable[[Any], dict[str, np.ndarray]]:
    """``score(X) -> {output name: array}`` for ``model`` served at ``endpoint``."""
    return RemoteModel(endpoint, model, version=version, timeout=timeout).score
