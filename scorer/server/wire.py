"""A compiled scan of the ModelInferRequest most clients send for a few rows: one input tensor
with its data in ``raw_input_contents``, no requested outputs.

Parsing the request into protobuf objects and reading it back field by field from Python is
cheap while the caches are warm (about 4 µs) and costly when they are not (50-80 µs on the
benchmark machine: a server core usually runs something else between two requests). This scan
reads the serialized bytes in one compiled call and returns where each field is; the servicer
then builds the scorer's input from those slices.

It only recognises; it never judges. Anything else (requested outputs, data in ``contents``,
``parameters``, several inputs, a field given twice, a wire type that does not match the
field, a truncated or malformed message) is "not plain", and the request takes the general
path, which parses it with protobuf and words any error. Unknown fields are skipped unread,
as protobuf keeps them. Field numbers are the KServe v2 proto's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from ..ops import entry_point

# slots of the scan's output: (offset, length) pairs, then the shape
_NAME, _VERSION, _ID, _TENSOR, _DATATYPE, _RAW, _ROWS, _COLS = 0, 2, 4, 6, 8, 10, 12, 13
_SLOTS = 14
_MAX_VALUE = 1 << 62
_MAX_FIELD = (1 << 29) - 1


@njit(cache=True, nogil=True)
def _varint(buf, i, end):
    """The varint at ``buf[i:]`` as (value, next index); next index -1 when it runs past
    ``end`` or is longer than ten bytes."""
    v = np.uint64(0)
    shift = np.uint64(0)
    while i < end and shift < 70:
        b = buf[i]
        i += 1
        if shift == 63 and b > 1:  # beyond 64 bits: protobuf refuses it too
            return v, -1
        v |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return v, i
        shift += np.uint64(7)
    return v, -1


@njit(cache=True, nogil=True)
def _skip(buf, i, end, wt):
    """Index after a field of wire type ``wt`` whose value starts at ``i``; -1 if malformed."""
    if wt == 0:
        _, i = _varint(buf, i, end)
        return i
    if wt == 1:
        return i + 8 if i + 8 <= end else -1
    if wt == 5:
        return i + 4 if i + 4 <= end else -1
    if wt == 2:
        ln, i = _varint(buf, i, end)
        if i < 0 or ln > np.uint64(end - i):
            return -1
        return i + np.int64(ln)
    return -1  # groups (3, 4) and invalid wire types


@njit(cache=True, nogil=True)
def _dims(buf, i, end, wt, out, n_dims):
    """Read shape values (one unpacked, or a packed run) into ``out``; returns (next index,
    dims so far), next index -1 when malformed or not a plain [rows, cols] shape."""
    if wt == 0:
        v, i = _varint(buf, i, end)
        if i < 0 or v >= np.uint64(_MAX_VALUE) or n_dims >= 2:
            return -1, n_dims
        out[_ROWS + n_dims] = np.int64(v)
        return i, n_dims + 1
    ln, i = _varint(buf, i, end)
    if i < 0 or ln > np.uint64(end - i):
        return -1, n_dims
    stop = i + np.int64(ln)
    while i < stop:
        v, i = _varint(buf, i, stop)
        if i < 0 or v >= np.uint64(_MAX_VALUE) or n_dims >= 2:
            return -1, n_dims
        out[_ROWS + n_dims] = np.int64(v)
        n_dims += 1
    return i, n_dims


@njit(cache=True, nogil=True)
def _tensor(buf, i, end, out):
    """Scan one InferInputTensor in ``buf[i:end]``; 1 when plain (name, datatype, a 2-D shape,
    no contents), else 0."""
    seen = 0
    n_dims = 0
    while i < end:
        key, i = _varint(buf, i, end)
        if i < 0:
            return 0
        field = key >> np.uint64(3)
        wt = np.int64(key & np.uint64(7))
        if field == 3 and (wt == 2 or wt == 0):
            i, n_dims = _dims(buf, i, end, wt, out, n_dims)
            if i < 0:
                return 0
            continue
        if field == 1 or field == 2:
            bit = 1 << np.int64(field)
            if wt != 2 or seen & bit:
                return 0
            seen |= bit
            ln, i = _varint(buf, i, end)
            if i < 0 or ln > np.uint64(end - i):
                return 0
            slot = _TENSOR if field == 1 else _DATATYPE
            out[slot] = i
            out[slot + 1] = np.int64(ln)
            i += np.int64(ln)
            continue
        if not 6 <= field <= _MAX_FIELD:  # contents, parameters; a wrong type; no field
            return 0
        i = _skip(buf, i, end, wt)  # unknown fields (protobuf keeps their bytes unread)
        if i < 0:
            return 0
    return 1 if n_dims == 2 else 0


@njit(cache=True, nogil=True)
def scan_request(buf, out):
    """Scan a serialized ModelInferRequest; 1 when it is plain (see the module docstring)
    and ``out`` (int64[14]) holds (offset, length) of the model name, version, id, tensor
    name, datatype and raw contents, then rows and columns; 0 otherwise."""
    for k in range(_SLOTS):
        out[k] = 0
    end = len(buf)
    i = 0
    seen = 0
    n_inputs = 0
    n_raw = 0
    while i < end:
        key, i = _varint(buf, i, end)
        if i < 0:
            return 0
        field = key >> np.uint64(3)
        wt = np.int64(key & np.uint64(7))
        if field == 0 or field > _MAX_FIELD:
            return 0
        if field <= 7:
            if wt != 2 or field == 4 or field == 6:  # a wrong type; parameters, outputs
                return 0
            ln, i = _varint(buf, i, end)
            if i < 0 or ln > np.uint64(end - i):
                return 0
            n = np.int64(ln)
            if field <= 3:
                bit = 1 << np.int64(field)
                if seen & bit:
                    return 0
                seen |= bit
                slot = (np.int64(field) - 1) * 2
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
            continue
        i = _skip(buf, i, end, wt)
        if i < 0:
            return 0
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
    if _ENTRY:
        plain = _ENTRY[0](data, out)
    else:
        plain = scan_request(data, out)
        _ENTRY.append(entry_point(scan_request, (data, out)) or scan_request)
    if not plain:
        return None
    o = out.tolist()
    try:
        return PlainRequest(
            data[o[0]:o[0] + o[1]].decode(), data[o[2]:o[2] + o[3]].decode(),
            data[o[4]:o[4] + o[5]].decode(), data[o[6]:o[6] + o[7]].decode(),
            data[o[8]:o[8] + o[9]].decode(), o[12], o[13], data[o[10]:o[10] + o[11]], data)
    except UnicodeDecodeError:
        return None


def warm() -> None:
    """Compile the scan (or load it from Numba's cache) and resolve its entry point, so that
    the first request does not wait for it."""
    from protos import inference_pb2 as pb

    req = pb.ModelInferRequest(model_name="warm-up", id="1")
    req.inputs.add(name="input", datatype="FP64", shape=[1, 1])
    req.raw_input_contents.append(bytes(8))
    got = parse_plain(req.SerializeToString())
    if got is None or (got.model_name, got.rows, got.cols) != ("warm-up", 1, 1):
        raise RuntimeError(f"the ModelInfer request scan misread a plain request: {got}")
