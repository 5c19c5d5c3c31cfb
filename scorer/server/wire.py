"""A compiled scan of the ModelInferRequest most clients send for a few rows: one input tensor
with its data in ``raw_input_contents``, no requested outputs.

Parsing the request into protobuf objects and reading it back field by field from Python is
cheap while the caches are warm (about 4 µs) and costly when they are not (50-80 µs on the
benchmark machine: a server core usually runs something else between two requests). This scan
reads the serialized bytes in one compiled call and returns where each field is; the servicer
then builds the scorer's input from those slices.

It only recognises; it never judges. Anything else (requested outputs, data in ``contents``,
``parameters``, several inputs, a field given twice, a wire type that does not match the
field, a truncated or malformed message: a key or a length prefix of more than 5 bytes, field
number 0, a group) is "not plain", and the request takes the general path, which parses it
with protobuf and words any error. A request the scan calls plain is one protobuf parses to
the same fields. Unknown fields are skipped unread, as protobuf keeps them. Field numbers are
the KServe v2 proto's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from ..ops import compile_later, entry_point, load_cached

# slots of the scan's output: (offset, length) pairs, then the shape
_NAME, _VERSION, _ID, _TENSOR, _DATATYPE, _RAW, _ROWS, _COLS = 0, 2, 4, 6, 8, 10, 12, 13
_SLOTS = 14
_MAX_VALUE = 1 << 62
_MAX_FIELD = (1 << 29) - 1
#: protobuf refuses a field key or a length prefix of more bytes than this
_MAX_KEY_BYTES = 5


@njit(cache=True, nogil=True)
def _varint(buf, i, end, max_bytes):
    """The varint at ``buf[i:]`` as (value, next index); next index -1 when it runs past
    ``end`` or takes more than ``max_bytes`` bytes."""
    v = np.uint64(0)
    shift = np.uint64(0)
    stop = min(end, i + max_bytes)
    while i < stop:
        b = buf[i]
        i += 1
        if shift == 63 and b > 1:  # beyond 64 bits (protobuf truncates it; we pass)
            return v, -1
        v |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return v, i
        shift += np.uint64(7)
    return v, -1


@njit(cache=True, nogil=True)
def _key(buf, i, end):
    """A field's key at ``buf[i:]``: (field number, wire type, next index); next index -1
    when malformed. Protobuf refuses a key of more than 5 bytes or field number 0 or above
    2^29 - 1."""
    key, i = _varint(buf, i, end, _MAX_KEY_BYTES)
    field = np.int64(key >> np.uint64(3))
    if i >= 0 and (field == 0 or field > _MAX_FIELD):
        i = -1
    return field, np.int64(key & np.uint64(7)), i


@njit(cache=True, nogil=True)
def _length(buf, i, end):
    """A length prefix at ``buf[i:]``: (length, next index); next index -1 when malformed
    (more than 5 bytes, as protobuf refuses) or longer than what is left."""
    ln, i = _varint(buf, i, end, _MAX_KEY_BYTES)
    if i < 0 or ln > np.uint64(end - i):
        return 0, -1
    return np.int64(ln), i


@njit(cache=True, nogil=True)
def _skip(buf, i, end, wt):
    """Index after a field of wire type ``wt`` whose value starts at ``i``; -1 if malformed."""
    if wt == 0:
        _, i = _varint(buf, i, end, 10)
        return i
    if wt == 1:
        return i + 8 if i + 8 <= end else -1
    if wt == 5:
        return i + 4 if i + 4 <= end else -1
    if wt == 2:
        n, i = _length(buf, i, end)
        return i + n if i >= 0 else -1
    return -1  # groups (3, 4) and invalid wire types


@njit(cache=True, nogil=True)
def _dim(buf, i, end, out, n_dims):
    """One shape value at ``buf[i:]`` into ``out``: (next index, dims so far); next index -1
    when malformed or not a plain [rows] or [rows, cols] shape."""
    v, i = _varint(buf, i, end, 10)
    if i < 0 or v >= np.uint64(_MAX_VALUE) or n_dims >= 2:
        return -1, n_dims
    out[_ROWS + n_dims] = np.int64(v)
    return i, n_dims + 1


@njit(cache=True, nogil=True)
def _tensor(buf, i, end, out):
    """Scan one InferInputTensor in ``buf[i:end]``; 1 when plain (name, datatype, a 1-D or 2-D
    shape, no contents, no parameters), else 0."""
    seen = 0
    n_dims = 0
    while i < end:
        field, wt, i = _key(buf, i, end)
        if i < 0:
            return 0
        if field == 3 and wt == 0:  # one unpacked shape value
            i, n_dims = _dim(buf, i, end, out, n_dims)
        elif field == 3 and wt == 2:  # a packed run of shape values
            n, i = _length(buf, i, end)
            stop = i + n
            while 0 <= i < stop:
                i, n_dims = _dim(buf, i, stop, out, n_dims)
        elif field == 1 or field == 2:
            bit = 1 << field
            if wt != 2 or seen & bit:
                return 0
            seen |= bit
            n, i = _length(buf, i, end)
            slot = _TENSOR if field == 1 else _DATATYPE
            out[slot] = i
            out[slot + 1] = n
            i += n
        elif field <= 5:  # contents, parameters; a shape of a wrong type
            return 0
        else:
            i = _skip(buf, i, end, wt)  # unknown fields (protobuf keeps their bytes unread)
        if i < 0:
            return 0
    if n_dims == 1:
        out[_COLS] = -1  # a 1-D shape [rows]
    return 1 if n_dims >= 1 else 0


@njit(cache=True, nogil=True)
def scan_request(buf, out):
    """Scan a serialized ModelInferRequest; 1 when it is plain (see the module docstring)
    and ``out`` (int64[14]) holds (offset, length) of the model name, version, id, tensor
    name, datatype and raw contents, then rows and columns (-1 for a 1-D shape); 0
    otherwise."""
    for k in range(_SLOTS):
        out[k] = 0
    end = len(buf)
    i = 0
    seen = 0
    n_inputs = 0
    n_raw = 0
    while i < end:
        field, wt, i = _key(buf, i, end)
        if i < 0:
            return 0
        if field > 7:
            i = _skip(buf, i, end, wt)  # unknown fields
            if i < 0:
                return 0
            continue
        if wt != 2 or field == 4 or field == 6:  # a wrong type; parameters, outputs
            return 0
        n, i = _length(buf, i, end)
        if i < 0:
            return 0
        if field <= 3:  # model name, version, id
            bit = 1 << field
            if seen & bit:
                return 0
            seen |= bit
            slot = _NAME + (field - 1) * 2
            out[slot] = i
            out[slot + 1] = n
        elif field == 5:
            n_inputs += 1
            if n_inputs > 1 or not _tensor(buf, i, i + n, out):
                return 0
        else:
            n_raw += 1
            if n_raw > 1:
                return 0
            out[_RAW] = i
            out[_RAW + 1] = n
        i += n
    return 1 if n_inputs == 1 and n_raw == 1 else 0


@dataclass(slots=True)
class PlainRequest:
    """The fields of a plain ModelInferRequest (see :func:`parse_plain`)."""

    model_name: str
    model_version: str
    id: str
    #: the input tensor's name and datatype
    tensor: str
    datatype: str
    rows: int
    #: columns; -1 for a 1-D shape ``[rows]``
    cols: int
    #: its raw contents (a copy: aligned, as protobuf's own bytes are)
    raw: bytes
    #: the whole request, for the general path
    data: bytes


#: scan_request's compiled entry point for (bytes, int64[:]), once the first call compiled it
_ENTRY: list[Any] = []


def parse_plain(data: bytes) -> PlainRequest | None:
    """The request ``data`` as a :class:`PlainRequest`, or None when it is not plain or a
    string is not UTF-8 (the general path then parses it, and refuses it if it is
    malformed)."""
    if type(data) is not bytes:  # (the entry point takes exactly bytes)
        return None
    out = np.empty(_SLOTS, dtype=np.int64)
    if not _ENTRY:  # not compiled yet: the general path meanwhile
        warm_later()
        return None
    plain = _ENTRY[0](data, out)
    if not plain:
        return None
    o = out.tolist()
    try:  # (written out: a loop over the slots costs a generator per request)
        name = data[o[_NAME]:o[_NAME] + o[_NAME + 1]].decode()
        version = data[o[_VERSION]:o[_VERSION] + o[_VERSION + 1]].decode()
        rid = data[o[_ID]:o[_ID] + o[_ID + 1]].decode()
        tensor = data[o[_TENSOR]:o[_TENSOR] + o[_TENSOR + 1]].decode()
        datatype = data[o[_DATATYPE]:o[_DATATYPE] + o[_DATATYPE + 1]].decode()
    except UnicodeDecodeError:
        return None
    return PlainRequest(name, version, rid, tensor, datatype, o[_ROWS], o[_COLS],
                        data[o[_RAW]:o[_RAW] + o[_RAW + 1]], data)


def _sample() -> bytes:
    """A plain request, for compiling and checking the scan."""
    from protos import inference_pb2 as pb

    req = pb.ModelInferRequest(model_name="warm-up", id="1")
    req.inputs.add(name="input", datatype="FP64", shape=[1, 1])
    req.raw_input_contents.append(bytes(8))
    return req.SerializeToString()


def _ready() -> None:
    """The scan is compiled: resolve its entry point, check it, and let requests take it."""
    if _ENTRY:
        return
    data = _sample()
    out = np.empty(_SLOTS, dtype=np.int64)
    fn = entry_point(scan_request, (data, out)) or scan_request
    if not fn(data, out):
        raise RuntimeError("the ModelInfer request scan misread a plain request")
    _ENTRY.append(fn)


def warm() -> None:
    """Compile the scan now (or load it from Numba's cache), so that the first request does
    not wait for it (``tablescore warmup``)."""
    scan_request(_sample(), np.empty(_SLOTS, dtype=np.int64))
    _ready()
    got = parse_plain(_sample())
    if got is None or (got.model_name, got.rows, got.cols) != ("warm-up", 1, 1):
        raise RuntimeError(f"the ModelInfer request scan misread a plain request: {got}")


def load_if_cached() -> bool:
    """Take the scan from Numba's on-disk cache if it is there (a warm start: milliseconds);
    True if requests can take it now. A server calls it at start; with an empty cache it
    calls :func:`warm_later` once its models are loaded."""
    if not _ENTRY and load_cached(scan_request, (_sample(), np.empty(_SLOTS, dtype=np.int64))):
        _ready()
    return bool(_ENTRY)


_LATER: list[bool] = []


def warm_later() -> None:
    """Get the scan compiled on the background compile thread (:func:`scorer.ops.
    compile_later`), ahead of other queued compiles; requests take the general path, with
    the same results, until it is. Compiling it before the models load (about 2 s on a
    2-core machine) delayed an empty-cache server's readiness by as much."""
    if _ENTRY or _LATER:
        return
    _LATER.append(True)
    compile_later(scan_request, (_sample(), np.empty(_SLOTS, dtype=np.int64)), _ready,
                  first=True)
