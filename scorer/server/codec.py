"""Tensors of the Open Inference Protocol <-> the arrays :class:`scorer.Model` takes and returns.

This is the only place that reads tensor messages: the servicer hands a parsed
``ModelInferRequest`` here and gets back either one 2-D numeric array in schema order or a dict
of 1-D columns by field name, exactly the input forms of :mod:`scorer.inputs`; protobuf objects
never go further. Errors are :mod:`scorer.errors` input errors phrased in tensor terms (input
name, datatype, shape).

Input forms (see docs/protocol.md):

- **one 2-D tensor** ``[rows, n_inputs]``, columns in the model's input order. Numeric
  datatypes for all-numeric models; BYTES (numbers as text, categories as strings) for any.
- **one tensor per input field**, named after it, shape ``[rows]`` or ``[rows, 1]``: BYTES for
  string fields, any numeric datatype or BOOL for the others.

Data comes from ``raw_input_contents`` (little-endian bytes, read in place with
``np.frombuffer``) or from the typed ``contents`` fields. Outputs are one tensor per output
column, shape ``[rows]``, in ``raw_output_contents`` when the request used raw inputs.
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import (
    FieldTypeError,
    InputError,
    MissingFieldError,
    ResourceLimitError,
    ShapeError,
)
from ..ir import Output
from ..model import Model
from ..pipeline.request import Request
from .wire import PlainRequest

#: KServe datatype -> numpy dtype of its raw (little-endian) encoding
RAW_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
#: KServe datatype -> (InferTensorContents field, numpy dtype of that field)
CONTENTS: dict[str, tuple[str, Any]] = {
    "BOOL": ("bool_contents", np.bool_),
    "UINT8": ("uint_contents", np.uint32), "UINT16": ("uint_contents", np.uint32),
    "UINT32": ("uint_contents", np.uint32), "UINT64": ("uint64_contents", np.uint64),
    "INT8": ("int_contents", np.int32), "INT16": ("int_contents", np.int32),
    "INT32": ("int_contents", np.int32), "INT64": ("int64_contents", np.int64),
    "FP32": ("fp32_contents", np.float32), "FP64": ("fp64_contents", np.float64),
    "BYTES": ("bytes_contents", object),
}
DATATYPES = (*RAW_DTYPES, "BYTES")
#: the bounds of the datatypes whose contents travel in wider fields
_NARROW = {"INT8": (-128, 127), "INT16": (-32768, 32767), "UINT8": (0, 255),
           "UINT16": (0, 65535)}
#: bundle field / output type -> the KServe datatype tablescore advertises
DATATYPE_OF_TYPE = {"double": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
#: KServe datatype -> Triton's DataType enum name (ModelConfig)
TRITON_DATATYPE = {"BOOL": "TYPE_BOOL", "INT64": "TYPE_INT64", "FP64": "TYPE_FP64",
                   "BYTES": "TYPE_STRING"}

# 2-D arrays of these dtypes go to the scorer as they are (its input-copy kernel is warmed for
# each); any other numeric dtype is converted to float64 first.
_PASS_THROUGH = frozenset(np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32))
_LITTLE = sys.byteorder == "little"
_MAX_DIM = 1 << 40
# datatype -> dtype of a raw 2-D tensor that goes to the scorer as it is (the fast path of
# decode_request); on a big-endian host every tensor takes the general path, which swaps bytes
_RAW_PASS_THROUGH: dict[str, np.dtype] = (
    {dt: RAW_DTYPES[dt] for dt in ("FP64", "FP32", "INT64", "INT32")} if _LITTLE else {})
# datatype -> dtype of an output column whose bytes are the raw tensor's (the builtin dtypes
# are singletons: one `is` tells; little-endian hosts only)
_RAW_AS_IS: dict[str, np.dtype] = (
    {dt: d for dt, d in RAW_DTYPES.items() if dt != "BOOL"} if _LITTLE else {})


@dataclass(slots=True)
class DecodedRequest(Request):
    """A ModelInferRequest as the pipeline's :class:`~scorer.pipeline.Request`, plus what the
    gRPC transport itself needs back (stages never read these)."""

    #: the request used raw_input_contents (the response then uses raw_output_contents)
    raw: bool = False
    #: announced to the version's batcher and not yet submitted (withdrawn if never scored)
    announced: bool = False
    #: kernel executions this request counts for (0 when it shared a batched call)
    executions: int = 1


# --- metadata --------------------------------------------------------------------------------
def output_datatype(o: Output) -> str:
    """Labels carry their class type; every other output is a float64 workspace column."""
    if o.kind == "label":
        return DATATYPE_OF_TYPE.get(o.type, "BYTES")
    return "FP64"


class ModelSchema:
    """A model's tensor interface, worked out once per loaded version.

    Parameters
    ----------
    model : Model
        The loaded model.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = model.display_name  # the served name, in every error message
        self.fields = list(model.bundle.inputs)
        self.names = [f.name for f in self.fields]
        self.index = {f.name: i for i, f in enumerate(self.fields)}
        self.string_fields = [f.name for f in self.fields if f.type == "string"]
        #: string field -> does its vocabulary hold "" (else an empty BYTES element is missing)
        self.empty_is_category = {f.name: "" in (f.categories or ()) for f in self.fields
                                  if f.type == "string"}
        self.n_inputs = len(self.fields)
        self.output_names = list(model.output_names)
        self.output_set = frozenset(self.output_names)
        self.output_dtypes = {o.name: output_datatype(o) for o in model.bundle.outputs}

    def input_tensors(self) -> list[tuple[str, str, list[int]]]:
        """``(name, datatype, shape)`` of each per-column input tensor, in schema order."""
        return [(f.name, DATATYPE_OF_TYPE[f.type], [-1]) for f in self.fields]

    def output_tensors(self) -> list[tuple[str, str, list[int]]]:
        """``(name, datatype, shape)`` of each output tensor, in schema order."""
        return [(n, self.output_dtypes[n], [-1]) for n in self.output_names]


# --- raw BYTES -------------------------------------------------------------------------------
def serialize_bytes(items: list[bytes]) -> bytes:
    """KServe's raw BYTES layout: each element as a uint32 little-endian length + its bytes."""
    parts = []
    for b in items:
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _split_bytes(buf: bytes, count: int, name: str) -> list[bytes]:
    out: list[bytes] = []
    pos, n = 0, len(buf)
    view = memoryview(buf)
    for _ in range(count):
        if pos + 4 > n:
            raise ShapeError(f"input '{name}': raw BYTES data ends after {len(out)} of "
                             f"{count} elements")
        (size,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if pos + size > n:
            raise ShapeError(f"input '{name}': raw BYTES element {len(out)} claims {size} "
                             f"bytes, only {n - pos} remain")
        out.append(bytes(view[pos:pos + size]))
        pos += size
    if pos != n:
        raise ShapeError(f"input '{name}': raw BYTES data has {n - pos} bytes after its "
                         f"{count} elements")
    return out


def _strings(items: list[bytes], name: str) -> list[str]:
    try:
        return [b.decode("utf-8") for b in items]
    except UnicodeDecodeError as exc:
        bad = next(i for i, b in enumerate(items) if not _is_utf8(b))
        raise FieldTypeError(f"input '{name}': element {bad} is not valid UTF-8") from exc


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- one tensor ------------------------------------------------------------------------------
def _shape(t: Any) -> tuple[int, ...]:
    shape = tuple(t.shape)
    if not shape:
        raise ShapeError(f"input '{t.name}': shape is empty; expected [rows] or "
                         "[rows, features]")
    for d in shape:
        if d < 0 or d > _MAX_DIM:
            raise ShapeError(f"input '{t.name}': invalid shape {list(shape)}")
    return shape


def _column_shape(t: Any) -> tuple[int, ...]:
    """The shape of a tensor that holds one column: [rows] or [rows, 1]."""
    shape = _shape(t)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ShapeError(f"input '{t.name}': expected shape [rows] or [rows, 1], got "
                         f"{list(shape)}")
    return shape


def tensor_array(t: Any, raw: bytes | None) -> np.ndarray:
    """The tensor's data as an array of its shape: numbers, or ``bytes`` objects for BYTES.

    Raw numeric data is a read-only view of the request's buffer (no copy).
    """
    if t.parameters:
        shared = [k for k in t.parameters if k.startswith("shared_memory")]
        if shared:  # (else the data would be read as absent: a misleading shape error)
            raise InputError(f"input '{t.name}': parameter '{shared[0]}' is "
                             "not supported (no shared memory here: send the tensor's data in "
                             "the request)")
    shape = _shape(t)
    count = math.prod(shape)
    dt = t.datatype
    if dt not in DATATYPES:
        raise FieldTypeError(f"input '{t.name}': datatype '{dt}' is not supported "
                             f"(supported: {', '.join(DATATYPES)})")
    if raw is not None:
        if dt == "BYTES":
            items = _split_bytes(raw, count, t.name)  # first: fails fast on a bogus shape
            arr = np.empty(count, dtype=object)
            arr[:] = items
        else:
            dtype = RAW_DTYPES[dt]
            need = count * dtype.itemsize
            if len(raw) != need:
                raise ShapeError(f"input '{t.name}': shape {list(shape)} of {dt} needs {need} "
                                 f"bytes, raw_input_contents holds {len(raw)}")
            arr = np.frombuffer(raw, dtype=dtype)
            if not _LITTLE:
                arr = arr.astype(dtype.newbyteorder("="))
    else:
        if dt not in CONTENTS:
            raise FieldTypeError(f"input '{t.name}': {dt} data can only be sent in "
                                 "raw_input_contents")
        fname, ftype = CONTENTS[dt]
        values = getattr(t.contents, fname)
        if len(values) != count:
            raise ShapeError(f"input '{t.name}': shape {list(shape)} needs {count} values in "
                             f"contents.{fname}, got {len(values)}")
        if dt == "BYTES":
            arr = np.empty(count, dtype=object)
            arr[:] = list(values)
        else:
            arr = np.fromiter(values, dtype=ftype, count=count)
            narrow = _NARROW.get(dt)
            if narrow is not None and count:
                # (8- and 16-bit values travel in 32-bit fields: the datatype bounds them)
                lo, hi = narrow
                bad = np.flatnonzero((arr < lo) | (arr > hi))
                if bad.size:
                    raise FieldTypeError(f"input '{t.name}': value {int(arr[bad[0]])} is out "
                                         f"of range for {dt} ({lo} .. {hi})")
    return arr.reshape(shape)


# --- the request -----------------------------------------------------------------------------
def request_parameters(req: Any) -> dict[str, Any]:
    """The request's ``parameters`` as Python values (bool, int, float or str)."""
    out: dict[str, Any] = {}
    for key, p in req.parameters.items():
        kind = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, kind) if kind is not None else None
    return out


def requested_outputs(req: Any, schema: ModelSchema) -> list[str]:
    """Names of the outputs to return: the requested ones in order, or all."""
    if not req.outputs:
        return schema.output_names
    out: list[str] = []
    for o in req.outputs:
        if o.name not in schema.output_set:
            raise InputError(f"unknown output '{o.name}' (model '{schema.name}' outputs: "
                             f"{', '.join(schema.output_names)})")
        for key in o.parameters:
            raise InputError(f"output '{o.name}': parameter '{key}' is not supported")
        if o.name not in out:
            out.append(o.name)
    return out


def decode_request(req: Any, schema: ModelSchema, *, max_rows: int,
                   extras: frozenset[str] = frozenset()) -> DecodedRequest:
    """Turn a parsed ModelInferRequest into scorer input (see the module docstring).

    ``extras`` names input tensors that pipeline stages read instead of the model (entity ids,
    unit ids): those come back as 1-D columns in ``extras`` (strings for BYTES), the others
    are the model's inputs; a request may then leave model inputs out (a features stage
    completes them), or send no model input at all (``inputs`` is None).

    Raises
    ------
    InputError
        (or a subclass) when the tensors do not fit the model's input schema.
    ResourceLimitError
        More than ``max_rows`` rows.
    """
    tensors = req.inputs
    raw_parts = req.raw_input_contents
    if extras:
        for t in tensors:  # (a loop, not any(genexpr): this runs on every routed request)
            if t.name in extras:
                return _decode_with_extras(req, schema, max_rows, extras)
    if len(tensors) == 1 and len(raw_parts) == 1:
        fast = _raw_matrix(req, tensors[0], raw_parts[0], schema, max_rows)
        if fast is not None:
            return fast
    names = schema.names
    if not tensors:
        raise MissingFieldError(f"the request has no inputs (model '{schema.name}' expects "
                                f"{len(names)}: {', '.join(names)})")
    raw = len(raw_parts) > 0
    if raw and len(raw_parts) != len(tensors):
        raise ShapeError(f"raw_input_contents has {len(raw_parts)} entries for "
                         f"{len(tensors)} inputs")
    for t in tensors:  # cheap checks before touching any data
        if raw and t.HasField("contents"):
            raise InputError(f"input '{t.name}' has contents, but the request uses "
                             "raw_input_contents for its inputs")
        rows = _shape(t)[0]
        if rows > max_rows:
            raise ResourceLimitError(f"the request has {rows} rows; this server scores at most "
                                     f"{max_rows} per request")
    outputs = requested_outputs(req, schema)
    first = tensors[0]
    if len(tensors) == 1 and len(first.shape) == 2 and (first.name not in schema.index
                                                         or len(names) == 1):
        _check_width(first, schema)  # before any value is read (a BYTES split is costly)
        arr = tensor_array(first, raw_parts[0] if raw else None)
        return DecodedRequest(_matrix(first, arr, schema), arr.shape[0], outputs, raw=raw)
    return DecodedRequest(*_columns(tensors, raw_parts if raw else None, schema), outputs,
                          raw=raw)


def _raw_matrix(req: Any, t: Any, raw: bytes, schema: ModelSchema,
                max_rows: int) -> DecodedRequest | None:
    """The common request in few steps: one raw 2-D tensor of a pass-through datatype for an
    all-numeric model (what tritonclient sends for a row). None when the request is anything
    else or breaks a rule: the general path then decodes it or names the problem, so errors
    and their precedence stay those of the general path."""
    shape = t.shape
    if len(shape) != 2 or type(raw) is not bytes or t.HasField("contents"):
        return None
    rows, cols = shape
    dtype = _plain_dtype(t.datatype, rows, cols, t.name, len(raw), schema, max_rows)
    if dtype is None:
        return None
    outputs = requested_outputs(req, schema)
    # a view of the immutable bytes, hence read-only, as _matrix makes every matrix (the
    # warmed input-copy specialisation); one constructor call instead of frombuffer + reshape
    arr = np.ndarray((rows, cols), dtype, raw)
    return DecodedRequest(arr, rows, outputs, raw=True)


def _plain_dtype(datatype: str, rows: int, cols: int, name: str, n_bytes: int,
                 schema: ModelSchema, max_rows: int) -> np.dtype | None:
    """The dtype in which a raw [rows, cols] tensor of ``n_bytes`` goes to the scorer as it
    is, or None when it breaks a rule of that fast path (the general path then decodes it or
    names the problem). The one rule set of :func:`_raw_matrix` and :func:`decode_plain`."""
    dtype = _RAW_PASS_THROUGH.get(datatype)
    if (dtype is None or cols != schema.n_inputs or schema.string_fields
            or not 0 <= rows <= min(max_rows, _MAX_DIM)
            or n_bytes != rows * cols * dtype.itemsize
            or (cols != 1 and name in schema.index)):
        return None
    return dtype


def decode_plain(req: PlainRequest, schema: ModelSchema, *,
                 max_rows: int) -> DecodedRequest | None:
    """:func:`decode_request` of a request :mod:`.wire` found plain (one raw 2-D tensor, no
    contents, no requested outputs): the rules of its fast path; None when one is broken."""
    rows, cols = req.rows, req.cols
    dtype = _plain_dtype(req.datatype, rows, cols, req.tensor, len(req.raw), schema, max_rows)
    if dtype is None:
        return None
    return DecodedRequest(np.ndarray((rows, cols), dtype, req.raw), rows, schema.output_names,
                          raw=True)


def decode_plain_ids(req: PlainRequest, schema: ModelSchema, *,
                     max_rows: int) -> DecodedRequest | None:
    """:func:`decode_request` of a plain request whose one tensor is a stage's INT64 id
    column (an entity request: ``extras``, no model input), shape [rows] or [rows, 1]; None
    when it is anything else or breaks a rule (the general path then decodes it or names
    the problem)."""
    rows = req.rows
    if (req.datatype != "INT64" or not _LITTLE or req.cols not in (-1, 1)
            or req.tensor in schema.index or not 0 < rows <= min(max_rows, _MAX_DIM)
            or len(req.raw) != 8 * rows):
        return None
    ids = np.ndarray((rows,), RAW_DTYPES["INT64"], req.raw)  # read-only, as tensor_array's
    return DecodedRequest(None, rows, schema.output_names, extras={req.tensor: ids},
                          raw=True)


def _decode_with_extras(req: Any, schema: ModelSchema, max_rows: int,
                        extras: frozenset[str]) -> DecodedRequest:
    raw_parts = req.raw_input_contents
    raw = len(raw_parts) > 0
    if raw and len(raw_parts) != len(req.inputs):
        raise ShapeError(f"raw_input_contents has {len(raw_parts)} entries for "
                         f"{len(req.inputs)} inputs")
    model_t, model_raw, found = [], [], {}
    for i, t in enumerate(req.inputs):
        if raw and t.HasField("contents"):  # (as the path without stages refuses it)
            raise InputError(f"input '{t.name}' has contents, but the request uses "
                             "raw_input_contents for its inputs")
        part = raw_parts[i] if raw else None
        if t.name not in extras or t.name in schema.index:
            # (a column both a stage and the model read, e.g. an experiment's unit that is
            # a feature too, goes to both)
            model_t.append(t)
            model_raw.append(part)
        if t.name not in extras:
            continue
        if t.name in found:
            raise InputError(f"input '{t.name}' is given twice")
        shape = _column_shape(t)
        if shape[0] > max_rows:
            raise ResourceLimitError(f"the request has {shape[0]} rows; this server scores at "
                                     f"most {max_rows} per request")
        arr = tensor_array(t, part).reshape(-1)
        if t.datatype == "BYTES":
            col = np.empty(len(arr), dtype=object)
            col[:] = _strings(list(arr), t.name)
            arr = col
        found[t.name] = arr
    rows = len(next(iter(found.values())))
    if any(len(a) != rows for a in found.values()):
        raise ShapeError("the request's id columns have different numbers of rows")
    outputs = requested_outputs(req, schema)
    inputs: np.ndarray | dict[str, np.ndarray] | None = None
    first = model_t[0] if model_t else None
    if (first is not None and len(model_t) == 1 and len(first.shape) == 2
            and (first.name not in schema.index or len(schema.names) == 1)):
        _check_width(first, schema)
        inputs = _matrix(first, tensor_array(first, model_raw[0]), schema)  # one 2-D tensor
        n = inputs.shape[0]
        if n != rows:
            raise ShapeError(f"the request's inputs have {n} rows, its id columns {rows}")
    elif model_t:
        inputs, n = _columns(model_t, model_raw if raw else None, schema, partial=True)
        if n != rows:
            raise ShapeError(f"the request's inputs have {n} rows, its id columns {rows}")
    return DecodedRequest(inputs, rows, outputs, extras=found, raw=raw)


def _columns(tensors: Any, raw_parts: Any, schema: ModelSchema, *, partial: bool = False,
             ) -> tuple[dict[str, np.ndarray], int]:
    cols: dict[str, np.ndarray] = {}
    names = schema.names
    n_rows = -1
    for i, t in enumerate(tensors):
        if t.name not in schema.index:
            raise InputError(f"unknown input '{t.name}' (model '{schema.name}' inputs: "
                             f"{', '.join(names)}; or send one 2-D tensor [rows, "
                             f"{len(names)}])")
        if t.name in cols:
            raise InputError(f"input '{t.name}' is given twice")
        shape = _column_shape(t)
        if n_rows >= 0 and shape[0] != n_rows:
            raise ShapeError(f"input '{t.name}' has {shape[0]} rows, input "
                             f"'{tensors[0].name}' has {n_rows}")
        n_rows = shape[0]
        f = schema.fields[schema.index[t.name]]
        if f.type == "string" and t.datatype != "BYTES":
            raise FieldTypeError(f"input '{t.name}' is a string field: expected datatype "
                                 f"BYTES, got {t.datatype}")
        if f.type != "string" and t.datatype == "BYTES":
            raise FieldTypeError(f"input '{t.name}' is a {f.type} field: expected a numeric "
                                 "datatype (FP64, FP32, INT64, INT32, BOOL, ...), got BYTES")
        arr = tensor_array(t, raw_parts[i] if raw_parts is not None else None).reshape(-1)
        if f.type == "string":
            keep_empty = schema.empty_is_category[f.name]
            strings = _strings(list(arr), t.name)
            col = np.empty(len(strings), dtype=object)
            # BYTES has no null: an empty element is a missing value unless "" is a category
            col[:] = [None if (s == "" and not keep_empty) else s for s in strings]
            arr = col
        cols[t.name] = arr
    if len(cols) != len(names) and not partial:
        missing = [n for n in names if n not in cols]
        raise MissingFieldError(
            f"missing input{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} (model '{schema.name}' expects "
            f"{len(names)}: {', '.join(names)})")
    return cols, n_rows


def _check_width(t: Any, schema: ModelSchema) -> None:
    """ShapeError unless the 2-D tensor ``t`` declares one column per model input."""
    n = len(schema.names)
    shape = list(t.shape)
    if len(shape) != 2 or shape[1] != n:
        raise ShapeError(f"input '{t.name}': expected shape [rows, {n}] (inputs in order: "
                         f"{', '.join(schema.names)}), got {shape}")


def _matrix(t: Any, arr: np.ndarray, schema: ModelSchema) -> np.ndarray:
    n = len(schema.names)
    if arr.shape[1] != n:
        raise ShapeError(f"input '{t.name}': expected shape [rows, {n}] (inputs in order: "
                         f"{', '.join(schema.names)}), got {list(arr.shape)}")
    if t.datatype == "BYTES":
        text = np.empty(arr.shape, dtype=object)
        text.reshape(-1)[:] = _strings(list(arr.reshape(-1)), t.name)
        for j, f in enumerate(schema.fields):
            if f.type == "string" and not schema.empty_is_category[f.name]:
                col = text[:, j]
                col[col == ""] = None  # as for per-column BYTES: empty means missing
        return text
    if schema.string_fields:
        raise FieldTypeError(
            f"input '{t.name}': a {t.datatype} matrix cannot carry string field "
            f"'{schema.string_fields[0]}'; send one tensor per input (BYTES for strings) or "
            "a BYTES matrix")
    if arr.dtype not in _PASS_THROUGH:
        arr = arr.astype(np.float64)
    # always read-only (raw data is): Numba compiles one input-copy specialisation per dtype
    # and writeability, and the warm-up covers the read-only ones
    arr.flags.writeable = False
    return arr


# --- the response ----------------------------------------------------------------------------
def encode_outputs(resp: Any, schema: ModelSchema, arrays: dict[str, np.ndarray],
                   names: list[str], rows: int, *, raw: bool) -> None:
    """Append one output tensor of shape ``[rows]`` per name to ``resp``."""
    if raw:
        add_output_tensors(resp, schema, names, rows)
        resp.raw_output_contents.extend(raw_outputs(schema, arrays, names))
        return
    dtypes = schema.output_dtypes
    for name in names:
        dt = dtypes[name]
        out = _add_output(resp, name, dt, rows)
        values = _output_values(name, dt, arrays[name])
        if dt == "BYTES":
            out.contents.bytes_contents.extend(values)
        else:
            getattr(out.contents, CONTENTS[dt][0]).extend(values.tolist())


def add_output_tensors(resp: Any, schema: ModelSchema, names: list[str], rows: int) -> None:
    """Append the tensor descriptions (name, datatype, shape ``[rows]``) of ``names`` to
    ``resp``, without data: with :func:`raw_outputs`, a raw response; the servicer keeps
    them serialized per output selection and row count, since they never change."""
    dtypes = schema.output_dtypes
    for name in names:
        _add_output(resp, name, dtypes[name], rows)


#: ModelInferResponse field numbers (KServe v2 proto) of the parts a raw response is spliced
#: from (see InferenceServicer._response)
RESPONSE_ID = 3
RESPONSE_PARAMETERS = 4
RESPONSE_RAW_OUTPUT = 6


_PARAMS: dict[tuple[tuple[str, str], ...], bytes] = {}
_PARAMS_BY_ID: dict[int, tuple[dict[str, str], bytes]] = {}


def response_parameters(params: dict[str, str]) -> bytes:
    """The serialized ``parameters`` map of a ModelInferResponse holding ``params`` as string
    parameters (map entries: key = field 1, value = InferParameter, string_param = field 3).
    The few distinct maps a server answers with (experiment arms) are kept: by the map
    object itself first (a router answers with the same prebuilt dict per arm, so a hit costs
    one lookup), then by content."""
    hit = _PARAMS_BY_ID.get(id(params))
    if hit is not None and hit[0] is params:
        return hit[1]
    key = tuple(sorted(params.items()))
    out = _PARAMS.get(key)
    if out is None:
        out = b"".join(
            length_delimited(RESPONSE_PARAMETERS,
                             length_delimited(1, k.encode()) + length_delimited(
                                 2, length_delimited(3, v.encode())))
            for k, v in key)
        if len(_PARAMS) < 4096:  # bounded: arms are few, but values come from configs
            _PARAMS[key] = out
    elif len(_PARAMS_BY_ID) < 4096:
        # seen twice: likely a shared map. The entry holds the map, so its id is not reused
        # while it is here (and `hit[0] is params` guards the rest)
        _PARAMS_BY_ID[id(params)] = (params, out)
    return out


def length_delimited(number: int, payload: bytes) -> bytes:
    """One serialized protobuf field of wire type 2 (bytes, string, message): its tag, the
    payload's length as a varint, the payload. ``number`` < 16 (a one-byte tag)."""
    n = len(payload)
    tag = (number << 3) | 2
    if n < 0x80:  # (one row's output)
        return bytes((tag, n)) + payload
    head = bytearray((tag,))
    while n >= 0x80:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + payload


def raw_outputs(schema: ModelSchema, arrays: dict[str, np.ndarray],
                names: list[str]) -> list[bytes]:
    """``raw_output_contents`` of ``names``: one entry per name, in order."""
    dtypes = schema.output_dtypes
    out: list[bytes] = []
    for name in names:
        dt = dtypes[name]
        values = arrays[name]
        if values.dtype is _RAW_AS_IS.get(dt):  # a column as scored: its bytes as they are
            out.append(values.tobytes())
            continue
        values = _output_values(name, dt, values)
        if dt == "BYTES":
            out.append(serialize_bytes(values))
        elif _LITTLE:
            out.append(values.tobytes())
        else:
            out.append(values.astype(values.dtype.newbyteorder("<")).tobytes())
    return out


def _add_output(resp: Any, name: str, dt: str, rows: int) -> Any:
    out = resp.outputs.add()  # setting fields one by one is faster than add(**fields)
    out.name = name
    out.datatype = dt
    out.shape.append(rows)
    return out


def _output_values(name: str, dt: str, values: np.ndarray) -> Any:
    """One output column as the tensor carries it: ``bytes`` items for BYTES, else a
    contiguous array of the datatype's dtype."""
    if dt == "BYTES":
        # a missing label (no prediction for the row) is the empty string
        return [v if isinstance(v, bytes) else b"" if v is None else str(v).encode("utf-8")
                for v in values.tolist()]
    if values.dtype == object and any(v is None for v in values.tolist()):
        if dt not in ("FP32", "FP64"):
            row = next(i for i, v in enumerate(values.tolist()) if v is None)
            raise InputError(
                f"row {row}: the model gives no prediction (a missing '{name}'), which a "
                f"{dt} tensor cannot carry; request the probability outputs instead")
        values = np.array([np.nan if v is None else v for v in values.tolist()],
                          dtype=np.float64)
    return np.ascontiguousarray(values, dtype=RAW_DTYPES[dt])
