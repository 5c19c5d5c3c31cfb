"""Batch scoring of files too large for memory: ``tablescore score BUNDLE --data IN --out OUT``.

Input (Parquet or CSV, one file, a directory or a glob of them) is read in Arrow record
batches (``ParquetFile.iter_batches``, ``pyarrow.csv.open_csv``), converted to the model's
inputs, scored, and streamed to the output (``ParquetWriter`` / ``CSVWriter``) under a
temporary name renamed into place at the end. Memory therefore depends on the batch size, not
on the file's. Reading, scoring and writing overlap: a reader thread decodes the next batch and
a writer thread encodes the previous one while the model scores (Arrow's decoders and the
kernels release the GIL); the model spreads a batch over the cores itself.

Row-level refusals: a batch the model refuses (an :class:`~scorer.errors.InputError`) is split
in halves until the refused rows stand alone, so the good path costs one ``try`` per batch
and a bad row costs O(log batch) re-scores. Text that is not a number where the model expects
one is found by Arrow's cast first and only then row by row with the model's own number
syntax. A ragged CSV line is caught by Arrow's parser (``invalid_row_handler``). With
``on_error="fail"`` the first bad row stops the run (``row N of 'file': reason``, nothing
written); with ``"skip"`` the bad rows go to a sidecar CSV (``file,row,reason``) and the rest
are scored.

Rows are numbered from 1 per input file, the header not counted (row N of a CSV without quoted
line breaks or blank lines is line N + 1).
"""

from __future__ import annotations

import csv
import glob as globmod
import logging
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FieldTypeError, InputError, MissingFieldError
from .files import DataFileError, atomic_output, not_utf8, output_format, unreadable_data_file

#: CSV cells read as missing unless --na-values adds more (what ``read_table`` reads as missing)
log = logging.getLogger("tablescore.batch")

DEFAULT_NA_VALUES = ("", "NA", "N/A")
#: rows per record batch read, scored and written (the CLI's --chunk-rows)
DEFAULT_BATCH_ROWS = 100_000
#: bytes of CSV Arrow's reader parses at a time
_CSV_BLOCK = 1 << 22
ON_ERROR = ("fail", "skip")
_DATA_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Rejected:
    """A row refused by the reader or the model: ``row`` counts from 1 in ``file``."""

    file: str
    row: int
    reason: str


@dataclass
class BatchResult:
    """What :func:`score_files` did."""

    rows: int = 0
    rejected: int = 0
    files: list[str] = field(default_factory=list)


# --- inputs ---------------------------------------------------------------------------------
def expand_inputs(spec: str | os.PathLike[str]) -> list[Path]:
    """The data files ``spec`` names: one file, every CSV / Parquet file under a directory
    (recursively; hidden files and Spark's ``_SUCCESS`` markers skipped), or a glob, sorted.

    Raises
    ------
    DataFileError
        Nothing matches, or a glob matches no data file.
    """
    text = os.fspath(spec)
    p = Path(text)
    if p.is_dir():
        found = sorted(f for f in p.rglob("*") if _data_file(f, f.relative_to(p).parts))
        if not found:
            raise DataFileError(f"data directory '{p}' holds no .csv or .parquet file")
        return found
    if any(c in text for c in "*?[") and not p.exists():
        # data files only, as in a directory (Spark's _SUCCESS, hidden files: not data)
        found = sorted(f for f in map(Path, globmod.glob(text, recursive=True))
                       if _data_file(f, (f.name,)))
        if not found:
            raise DataFileError(f"data pattern '{text}' matches no .csv or .parquet file")
        return found
    return [p]


def _input_paths(data: str | os.PathLike[str], out: str | os.PathLike[str]) -> list[Path]:
    """:func:`expand_inputs` of ``data`` without ``out`` and its sidecar: a directory or
    glob holding a previous run's output does not read it as data.

    Raises
    ------
    InputError
        ``data`` names one file and it is the output or its sidecar (scoring would replace
        the input).
    DataFileError
        Nothing but the output matches.
    """
    targets = {Path(out).resolve(), rejected_path(out).resolve()}
    paths = expand_inputs(data)
    if len(paths) == 1 and paths[0] == Path(os.fspath(data)):  # one file, named
        if paths[0].resolve() in targets:
            raise InputError(f"--out '{out}': that is the data file itself (or its refused "
                             "rows' file); scoring would replace the input: write elsewhere")
        return paths
    kept = [p for p in paths if p.resolve() not in targets]
    if not kept:
        raise DataFileError(f"data '{os.fspath(data)}' holds no data file besides the output "
                            f"'{out}'")
    return kept


def _data_file(f: Path, names: tuple[str, ...]) -> bool:
    """``f`` is a CSV or Parquet file none of whose ``names`` (its path below the directory
    searched, or its own name) is hidden (``.``) or a marker like Spark's ``_SUCCESS``."""
    return (f.suffix.lower() in _DATA_SUFFIXES and not any(n.startswith((".", "_"))
                                                           for n in names) and f.is_file())


def _kind(path: Path) -> str:
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


@dataclass
class _Chunk:
    """One record batch of one file; ``start`` is the batch's first row in the file (0-based,
    counting only rows the reader emitted)."""

    file: Path
    batch: Any  # pyarrow.RecordBatch
    start: int
    source: _Source


class _Source:
    """One input file, opened lazily: its column names, row count if known, and batches."""

    def __init__(self, path: Path, columns: list[str], batch_rows: int,
                 na_values: list[str], inputs: Iterable[str] = ()) -> None:
        self.path = path
        #: the model's input columns (the missing markers apply to these only)
        self.inputs = frozenset(inputs)
        self.kind = _kind(path)
        self.batch_rows = batch_rows
        self.na_values = na_values
        #: ragged CSV lines the parser skipped, in file order (their text)
        self.ragged: list[str] = []
        self._ragged_rows: list[int] | None = None
        self.rows: int | None = None
        self.size = 0
        self._stream: Any = None
        if self.kind == "parquet":
            self._open_parquet()
        else:
            self._open_csv_header()
        self.wanted = columns

    # Parquet: the footer gives the schema and the row count before any data is read
    def _open_parquet(self) -> None:
        import pyarrow.parquet as pq

        try:
            # pre_buffer (pyarrow's default) keeps every range read until the file is closed:
            # 174 MiB live after iterating 6M rows x 3 columns, 2 MiB without it
            self._pf = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise unreadable_data_file(self.path, exc) from None
        except Exception as exc:  # ArrowInvalid: not Parquet
            raise DataFileError(f"data file '{self.path}' is not a valid Parquet file: "
                                f"{str(exc).strip().splitlines()[0]}") from None
        self.columns = list(self._pf.schema_arrow.names)
        self.rows = self._pf.metadata.num_rows

    def _open_csv_header(self) -> None:
        try:
            # (utf-8-sig: a byte order mark before the header, as Excel writes "CSV UTF-8",
            # is not part of the first column's name; Arrow's reader skips it too)
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                header = fh.readline()
            self.size = self.path.stat().st_size
        except UnicodeDecodeError as exc:
            raise not_utf8(self.path, exc.start, exc.object[exc.start]) from None
        except OSError as exc:
            raise unreadable_data_file(self.path, exc) from None
        if not header.strip():
            raise DataFileError(f"data file '{self.path}' is empty: a CSV needs a header row "
                                "naming the columns")
        self.delimiter = "\t" if header.count("\t") > header.count(",") else ","
        self.columns = next(csv.reader([header], delimiter=self.delimiter))

    def batches(self) -> Iterator[Any]:
        """The file's record batches (only the wanted columns), each at most batch_rows."""
        if self.kind == "parquet":
            yield from self._pf.iter_batches(batch_size=self.batch_rows, columns=self.wanted)
            return
        import pyarrow as pa
        import pyarrow.csv as pcsv

        def ragged(row: Any) -> str:  # Arrow's parser thread: record, and go on
            self.ragged.append(row.text)
            return "skip"

        # every wanted column as text: a column whose type Arrow would infer from the first
        # block cannot then fail on a later one ("abc" in row 2,000,000); numbers are cast
        # per batch, with the model's own syntax for what Arrow's cast refuses
        self._stream = pa.OSFile(str(self.path))
        try:
            reader = pcsv.open_csv(
                self._stream,
                read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK),
                # newlines_in_values: a quoted line break is part of its cell (without it, one
                # that falls where Arrow cuts its blocks splits the record in two)
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter,
                                                newlines_in_values=True,
                                                invalid_row_handler=ragged),
                # (no missing markers here: a --keep column is carried as the text it is,
                # "NA" included; the model's inputs get them below)
                convert_options=pcsv.ConvertOptions(
                    column_types={c: pa.string() for c in self.wanted},
                    include_columns=self.wanted, strings_can_be_null=False))
            markers = pa.array(self.na_values, type=pa.string())
            pending = None
            for b in reader:
                b = _with_missing(b, self.inputs, markers)
                # re-slice Arrow's block-sized batches to batch_rows (memory and progress)
                if pending is not None:
                    b = pa.Table.from_batches([pending, b]).combine_chunks().to_batches()[0]
                    pending = None
                for i0 in range(0, b.num_rows, self.batch_rows):
                    part = b.slice(i0, self.batch_rows)
                    if part.num_rows < self.batch_rows and i0 + part.num_rows == b.num_rows:
                        pending = part
                    else:
                        yield part
            if pending is not None:
                yield pending
        except pa.ArrowInvalid as exc:
            text = str(exc)
            if "UTF8" in text:
                offset, byte = _first_bad_utf8(self.path)
                raise not_utf8(self.path, offset, byte) from None
            raise DataFileError(f"data file '{self.path}' is not a valid CSV file: "
                                f"{text.strip().splitlines()[0]}") from None
        finally:
            self._stream.close()

    def bytes_read(self) -> int:
        """Bytes of the file the CSV reader consumed so far (progress estimate)."""
        s = self._stream
        try:
            return s.tell() if s is not None and not s.closed else self.size
        except (OSError, ValueError):
            return self.size

    def ragged_rows(self) -> list[int]:
        """The 0-based data rows (records after the header, blank lines not counted; a
        quoted line break is inside its record) of the ragged lines, found by one scan of
        the file (only when the parser reported some)."""
        if self._ragged_rows is not None and len(self._ragged_rows) == len(self.ragged):
            return self._ragged_rows
        want = list(self.ragged)
        rows: list[int] = []
        k = 0
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            records = _records(fh)
            next(records, None)  # the header
            r = 0
            for text in records:
                if not text:
                    continue
                if k < len(want) and text == want[k]:
                    rows.append(r)
                    k += 1
                    if k == len(want):
                        break
                r += 1
        rows += [-1] * (len(want) - len(rows))  # (not found: should not happen)
        self._ragged_rows = rows
        return rows

    def file_row(self, emitted: np.ndarray) -> np.ndarray:
        """1-based data rows of the file for 0-based indices of emitted rows (skipped ragged
        lines counted in). Shape of ``emitted``."""
        emitted = np.asarray(emitted, dtype=np.int64)
        if not self.ragged:
            return emitted + 1
        skipped = np.array(sorted(r for r in self.ragged_rows() if r >= 0), dtype=np.int64)
        good_before = skipped - np.arange(len(skipped))
        return emitted + np.searchsorted(good_before, emitted, side="right") + 1


def _records(lines: Iterable[str]) -> Iterator[str]:
    """The CSV records of ``lines`` (a text file's lines, line ends kept) as their text
    without the final line end: a line break inside double quotes continues the record
    (quotes are escaped by doubling them, so a record ends where its count of quotes is
    even)."""
    parts: list[str] = []
    quotes = 0
    for line in lines:
        parts.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield "".join(parts).rstrip("\r\n")
            parts, quotes = [], 0
    if parts:
        yield "".join(parts).rstrip("\r\n")


def _with_missing(batch: Any, inputs: frozenset[str], markers: Any) -> Any:
    """``batch`` with the cells of the columns ``inputs`` (text) that are missing markers,
    unquoted, as nulls (as Arrow's ``null_values`` would, for these columns only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = [pc.if_else(pc.is_in(c, value_set=markers), pa.scalar(None, pa.string()), c)
            if name in inputs else c for name, c in zip(batch.schema.names, batch.columns,
                                                        strict=True)]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _first_bad_utf8(path: Path) -> tuple[int, int]:
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as exc:
                pos = exc.start - len(dec.getstate()[0]) if exc.start else exc.start
                pos = max(pos, 0)
                return done + pos, chunk[pos] if pos < len(chunk) else 0
            done += len(chunk)
    return done, 0


# --- arrow batch -> model inputs --------------------------------------------------------------
def arrow_inputs(batch: Any, fields: list[Any]) -> tuple[Any, dict[int, str]]:
    """The model inputs of an Arrow record batch, and the rows whose cells cannot be inputs.

    Parameters
    ----------
    batch : pyarrow.RecordBatch
        ``n`` rows holding (at least) a column per input field.
    fields : list of scorer.ir.Field
        The model's input schema.

    Returns
    -------
    inputs : ndarray of shape (n, n_fields), float64, or dict of str to ndarray of shape (n,)
        One C-order matrix when every field is numeric (the model's chunked, multi-threaded
        path), else one column per field (numbers float64, strings objects).
    bad : dict of int to str
        Row (0-based in the batch) -> why its cell is refused (text that is not a number);
        those rows hold NaN in ``inputs``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    names = batch.schema.names
    missing = [f.name for f in fields if f.name not in names]
    if missing:
        raise MissingFieldError(f"missing input field{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)} (model expects "
                                f"{len(fields)}: {', '.join(f.name for f in fields)})")
    numeric = all(f.type in ("double", "integer", "boolean") for f in fields)
    matrix = np.empty((n, len(fields)), dtype=np.float64) if numeric else None
    cols: dict[str, np.ndarray] = {}
    bad: dict[int, str] = {}
    for j, f in enumerate(fields):
        col = batch.column(names.index(f.name))
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if f.type == "string":
            cols[f.name] = col.to_numpy(zero_copy_only=False)
            continue
        t = col.type
        if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_decimal(t) or pa.types.is_null(t)):
            # (not a safe cast: an int64 beyond 2**53 is rounded to the nearest double, as
            # NumPy and the in-process path do, instead of refused)
            values = pc.fill_null(pc.cast(col, pa.float64(), safe=False), np.nan).to_numpy(
                zero_copy_only=False)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            values = _text_to_numbers(col, f, bad)
        else:
            raise FieldTypeError(f"field '{f.name}' expects numbers ({f.type}), but the "
                                 f"column is of type {t}")
        if matrix is not None:
            matrix[:, j] = values
        else:
            cols[f.name] = values
    return (matrix if matrix is not None else cols), bad


def _sample_batch(model: Any) -> Any:
    """The bundle's verification rows as an Arrow record batch (one row of zeros, or of each
    field's first category, where it has none)."""
    import pyarrow as pa

    fields = model.bundle.inputs
    v = model.bundle.verification
    if v is not None and v.inputs and len(next(iter(v.inputs.values()))):
        cols = {f.name: np.asarray(v.inputs[f.name]) for f in fields}
    else:
        cols = {f.name: (np.array([(f.categories or [""])[0]], dtype=object)
                         if f.type == "string" else np.zeros(1)) for f in fields}
    return pa.RecordBatch.from_pydict({k: pa.array(c) for k, c in cols.items()})


def warm_arrow(model: Any) -> None:
    """Score sample rows through every path Arrow batches take (:func:`arrow_inputs`, then
    ``score_arrays``): one row, two, a parallel-kernel batch and a chunked multi-threaded
    one, so every kernel specialisation they use is compiled, or loaded from Numba's cache,
    now: once per process (a Spark worker's first task; ``tablescore warmup``)."""
    sample = _sample_batch(model)
    fields = model.bundle.inputs
    sizes = {1, 2, model.parallel_min_rows or 2}
    if all(f.type in ("double", "integer", "boolean") for f in fields):
        sizes.add(model._chunk_rows + 1)  # (only all-numeric batches are chunked)
    for n in sorted(sizes):
        inputs, _ = arrow_inputs(sample.take(np.arange(n) % sample.num_rows), fields)
        try:
            model.score_arrays(inputs)
        except InputError:
            pass  # a refused sample row: the kernels were dispatched all the same


def _text_to_numbers(col: Any, f: Any, bad: dict[int, str]) -> np.ndarray:
    """float64[n] of a text column: Arrow's cast (all of a clean column at C speed), else row
    by row with the model's own number syntax (XML Schema's xs:double, TRUE / FALSE, the
    missing markers), noting each refused row in ``bad``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .inputs import InputEncoder

    try:
        values = np.array(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(
            zero_copy_only=False))
        # Arrow also reads "inf", "infinity", "nan" in any case: a non-finite value is taken
        # from the model's syntax instead, so a cell is read the same whatever its batch
        odd = np.flatnonzero(~np.isfinite(values) & ~np.asarray(
            col.is_null().to_numpy(zero_copy_only=False), dtype=bool))
        texts = col.take(pa.array(odd, type=pa.int64())).to_pylist() if odd.size else []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # every cell by the model's syntax
        values = np.empty(len(col), dtype=np.float64)
        odd, texts = np.arange(len(col)), col.to_pylist()
    for i, v in zip(odd.tolist(), texts, strict=True):
        try:
            values[i] = InputEncoder._number(f, v)
        except FieldTypeError as exc:
            bad.setdefault(i, str(exc))
            values[i] = np.nan
    return values


def _take(inputs: Any, idx: Any) -> Any:
    if isinstance(inputs, dict):
        return {k: v[idx] for k, v in inputs.items()}
    return inputs[idx]


_ROW0 = re.compile(r" \(row 0\)| in row 0\b")


def score_isolating(score: Callable[[Any, int], dict[str, np.ndarray]], inputs: Any, n: int,
                    *, first_only: bool = False, failed: InputError | None = None,
                    ) -> tuple[dict[str, np.ndarray] | None, np.ndarray, dict[int, str]]:
    """Score ``n`` rows; where the model refuses the batch, find the refused rows by halving.

    Parameters
    ----------
    score : callable
        ``score(inputs, rows) -> dict of str to ndarray of shape (rows,)``; raises InputError
        for a batch holding a row it refuses.
    inputs : ndarray of shape (n, k) or dict of str to ndarray of shape (n,)
        The rows.
    n : int
        Row count.
    first_only : bool
        Stop at the first refused row (``on_error="fail"``): its outputs are then None.
    failed : InputError, optional
        The caller scored the whole batch already and got this: not scored whole again.

    Returns
    -------
    arrays : dict of str to ndarray of shape (n_good,), or None
        The outputs of the rows scored, in order.
    good : ndarray of shape (n,), bool
        Which rows were scored.
    bad : dict of int to str
        Refused row (0-based) -> the model's reason.
    """
    first = failed
    if first is None:
        try:  # the good path: one call, nothing else
            return score(inputs, n), np.ones(n, dtype=bool), {}
        except InputError as exc:
            first = exc
    good = np.ones(n, dtype=bool)
    bad: dict[int, str] = {}
    parts: list[dict[str, np.ndarray]] = []

    def run(idx: np.ndarray | slice, m: int, known: InputError | None) -> bool:
        """Score the ``m`` rows ``idx`` (a range, or ascending indices); False once
        first_only found its row."""
        while True:
            if known is None:
                try:
                    parts.append(score(_take(inputs, idx), m))
                    return True
                except InputError as exc:
                    known = exc
            at = np.arange(idx.start, idx.stop) if isinstance(idx, slice) else idx
            rows = known.rows
            if (not first_only and m > 1 and rows is not None and len(rows)
                    and int(rows.max()) < m and known.row_reason):
                # the error names every row refused for its reason (a column's missing
                # values): all set aside at once, the others scored again; halving would
                # take ~2 calls a refused row (an empty column: every row)
                for r in at[rows].tolist():
                    good[r] = False
                    bad[r] = known.row_reason
                idx = np.delete(at, rows)
                m, known = len(idx), None
                if not m:
                    return True
                continue
            if m == 1:
                good[int(at[0])] = False
                bad[int(at[0])] = _ROW0.sub("", str(known))
                return not first_only
            mid = m // 2
            return run(_span(at[:mid]), mid, None) and run(_span(at[mid:]), m - mid, None)

    run(slice(0, n), n, first)
    if first_only and bad:
        return None, good, bad
    arrays = ({k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts
              else score(_take(inputs, slice(0, 0)), 0))
    return arrays, good, bad


def _span(at: np.ndarray) -> np.ndarray | slice:
    """Ascending row indices as a slice where they are a range (a view, no copy)."""
    return slice(int(at[0]), int(at[-1]) + 1) if at[-1] - at[0] == len(at) - 1 else at


# --- the run --------------------------------------------------------------------------------
class _Background:
    """Run ``produce(put)`` in a daemon thread feeding a bounded queue; iterate the items.
    An exception in the thread is raised in the consumer; :meth:`stop` ends the thread at
    its next put."""

    _END = object()

    def __init__(self, produce: Callable[[Callable[[Any], None]], None], depth: int = 2,
                 name: str = "tablescore-batch") -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._produce = produce
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _main(self) -> None:
        try:
            self._produce(self._put)
        except _Stopped:
            return
        except BaseException as exc:
            self._error = exc
        try:
            self._put(self._END)
        except _Stopped:
            pass

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._q.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _Stopped(Exception):
    pass


class _Writer:
    """Encodes and writes record batches in a thread, so the next batch scores meanwhile."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._q: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self._w: Any = None
        self._thread = threading.Thread(target=self._main, name="tablescore-writer",
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        try:
            while (b := self._q.get()) is not None:
                if self.error is not None:
                    continue  # drain: the caller sees the error at its next put
                if self._w is None:
                    self._w = (pq.ParquetWriter(self.path, b.schema) if self.fmt == "parquet"
                               else pcsv.CSVWriter(self.path, b.schema))
                self._w.write_batch(b)
        except BaseException as exc:
            self.error = exc
            while self._q.get() is not None:  # let the caller finish its puts
                pass

    def put(self, batch: Any) -> None:
        if self.error is not None:
            raise self.error
        self._q.put(batch)

    def close(self) -> None:
        """Flush and close the file; raise the writer's error, if any."""
        self._q.put(None)
        self._thread.join()
        if self._w is not None:
            self._w.close()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self.error = self.error or _Stopped()
        # drop what is queued and wait for the writer to finish the batch it holds: it must
        # not open or write the output after the caller removes the temporary file (a
        # bounded wait gave up under load, and the writer then created the file again)
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(None)
        self._thread.join()
        if self._w is not None:
            try:
                self._w.close()
            except Exception:
                pass


def _output_batch(keep: Any, arrays: dict[str, np.ndarray], names: list[str],
                  schema: Any, *, path: Path | None = None) -> Any:
    """One output record batch: the kept columns, then the model's outputs; the outputs cast
    to ``schema`` (the first batch's) when given, so that every batch has one schema. A kept
    column of another kind than in the first batch (a later file that holds ids as text, the
    first as integers) is an InputError naming file ``path``, never cast (a cast would turn
    the text ``00123`` into ``123``); of the same kind (int32, int64) it is cast. NaN stays NaN (not
    null), as in-process scoring returns it."""
    import pyarrow as pa

    kept = list(keep.columns) if keep is not None else []
    cols = kept + [pa.array(arrays[name]) for name in names]
    if schema is None:
        return pa.RecordBatch.from_arrays(
            cols, names=[*(keep.schema.names if keep is not None else []), *names])
    for c, f in zip(kept, schema, strict=False):
        if c.type != f.type and _kind_of(c.type) != _kind_of(f.type):
            raise InputError(f"--keep column '{f.name}' is {c.type} in '{path}' but {f.type} "
                             "in the first data file: give it one type in every file")
    cols = [c if c.type == f.type else c.cast(f.type) for c, f in zip(cols, schema,
                                                                      strict=True)]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _kind_of(t: Any) -> str:
    """What a kept column's values are, whatever their width or encoding: a column of one
    kind in every file is cast to the first file's type (int32 and int64, string and
    dictionary-encoded string); of another kind it is refused (text and numbers)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    for kind, test in (("integer", pa.types.is_integer), ("float", pa.types.is_floating),
                       ("text", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
                       ("bytes", lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x))):
        if test(t):
            return kind
    return str(t)


def rejected_path(out: str | os.PathLike[str]) -> Path:
    """The sidecar of refused rows beside ``out``: ``OUT.rejected.csv``."""
    p = Path(out)
    return p.with_name(p.name + ".rejected.csv")


def score_files(model: Any, data: str | os.PathLike[str], out: str | os.PathLike[str], *,
                keep: Iterable[str] = (), on_error: str = "fail",
                na_values: Iterable[str] = (), batch_rows: int = DEFAULT_BATCH_ROWS,
                score: Callable[[Any, int], dict[str, np.ndarray]] | None = None,
                progress: bool | None = None) -> BatchResult:
    """Score the rows of ``data`` (a CSV / Parquet file, directory or glob) into ``out``.

    Parameters
    ----------
    model : scorer.Model
        The model (its input schema and output names; it scores unless ``score`` is given).
    data : path or glob
        What to read.
    out : path
        ``.csv``, ``.parquet`` or ``.pq``; written atomically.
    keep : iterable of str
        Input columns copied to the output before the model's columns (ids).
    on_error : {"fail", "skip"}
        A refused row stops the run (nothing written) or goes to ``OUT.rejected.csv``.
    na_values : iterable of str
        CSV cells read as missing besides :data:`DEFAULT_NA_VALUES`.
    batch_rows : int
        Rows per batch read, scored and written: what bounds memory.
    score : callable, optional
        ``score(inputs, rows) -> dict of str to ndarray of shape (rows,)`` (the CLI passes the
        request pipeline); default ``model.score_arrays``.
    progress : bool, optional
        Show a progress bar on stderr; default: when stderr is a terminal.

    Raises
    ------
    InputError
        A bad option, a missing column, or (``on_error="fail"``) a refused row: ``row N of
        'file': reason``.
    DataFileError
        An input file cannot be read.
    OutputError
        The output cannot be written.
    """
    fmt = output_format(out)  # an unknown extension fails before any work
    if on_error not in ON_ERROR:
        raise InputError(f"--on-error: expected one of {', '.join(ON_ERROR)}, got {on_error!r}")
    keep = list(dict.fromkeys(keep))
    fields = model.bundle.inputs
    outputs = list(model.output_names)
    clash = [c for c in keep if c in outputs]
    if clash:
        raise InputError(f"--keep: {', '.join(repr(c) for c in clash)} is also an output "
                         "column of the model")
    if score is None:
        def score(inputs: Any, rows: int) -> dict[str, np.ndarray]:
            return model.score_arrays(inputs)
    na = [*DEFAULT_NA_VALUES, *(v for v in na_values if v not in DEFAULT_NA_VALUES)]
    input_names = [f.name for f in fields]
    wanted = list(dict.fromkeys([*input_names, *keep]))
    paths = _input_paths(data, out)
    sources = [_Source(paths[0], wanted, batch_rows, na, input_names)]
    _check_columns(sources[0], fields, keep)  # before any scoring
    total = sum(s.rows or 0 for s in sources) if all(s.kind == "parquet" for s in sources) \
        else None
    if progress is None:
        progress = sys.stderr.isatty()
    result = BatchResult(files=[str(p) for p in paths])
    skip = on_error == "skip"

    def produce(put: Callable[[Any], None]) -> None:
        for i, path in enumerate(paths):
            src = (sources[i] if i < len(sources)
                   else _Source(path, wanted, batch_rows, na, input_names))
            if i >= len(sources):
                _check_columns(src, fields, keep)
                sources.append(src)
            start = 0
            for b in src.batches():
                put(_Chunk(path, b, start, src))
                start += b.num_rows
            put(_Chunk(path, None, start, src))  # end of file: its ragged lines are known

    bar = _progress(progress, total)
    with ExitStack() as stack:
        rejects = None
        if skip:
            # entered first, so renamed into place last: only once the output is (an error
            # finishing the output removes the sidecar's temporary file, not an old pair)
            rtmp = stack.enter_context(atomic_output(rejected_path(out)))
            rfile = stack.enter_context(open(rtmp, "w", newline="", encoding="utf-8"))
            rejects = csv.writer(rfile)
            rejects.writerow(["file", "row", "reason"])
        tmp = stack.enter_context(atomic_output(out))
        reader = _Background(produce)
        writer = _Writer(tmp, fmt)
        schema = None
        try:
            pending: list[tuple[int, str]] = []  # this file's refusals (emitted row, reason)
            for chunk in reader:
                src = chunk.source
                if chunk.batch is None:  # the file is done
                    if src.ragged and not skip:
                        _fail_ragged(src)
                    refused = [(int(r), why) for (_, why), r in zip(
                        pending, src.file_row(np.array([e for e, _ in pending], dtype=np.int64)),
                        strict=True)]
                    if src.ragged:
                        refused += [(r + 1, _ragged_reason(src, t)) for r, t in
                                    zip(src.ragged_rows(), src.ragged, strict=True)]
                    for row, why in sorted(refused):
                        rejects.writerow([str(src.path), row, why])  # type: ignore[union-attr]
                    result.rejected += len(refused)
                    pending = []
                    continue
                if src.ragged and not skip:
                    _fail_ragged(src)
                b = chunk.batch
                n = b.num_rows
                inputs, bad = arrow_inputs(b, fields)
                if bad and not skip:
                    i = min(bad)
                    _fail_row(src, chunk.start + i, bad[i])
                if bad:
                    ok = np.ones(n, dtype=bool)
                    ok[list(bad)] = False
                    idx = np.flatnonzero(ok)
                    inputs, n_ok = _take(inputs, idx), len(idx)
                else:
                    idx, n_ok = None, n
                arrays, _, refused = score_isolating(score, inputs, n_ok,
                                                        first_only=not skip)
                if refused and not skip:
                    i = min(refused)
                    _fail_row(src, chunk.start + (int(idx[i]) if idx is not None else i),
                              refused[i])
                rows_of = (idx if idx is not None else np.arange(n))
                all_bad = {**bad, **{int(rows_of[i]): why for i, why in refused.items()}}
                pending += [(chunk.start + i, why) for i, why in sorted(all_bad.items())]
                keep_rows = None
                if keep:
                    keep_b = b.select(keep)
                    if all_bad:
                        mask = np.ones(n, dtype=bool)
                        mask[list(all_bad)] = False
                        keep_b = keep_b.filter(mask)
                    keep_rows = keep_b
                out_b = _output_batch(keep_rows, arrays, outputs, schema, path=chunk.file)
                schema = out_b.schema
                writer.put(out_b)
                result.rows += out_b.num_rows
                if bar is not None:
                    bar.update(n)
                    if total is None and src.kind == "csv" and src.size:
                        done = max(src.bytes_read(), 1)
                        bar.total = int(bar.n * src.size / done) if len(paths) == 1 else None
            if schema is None:  # no rows at all: an empty table with the right columns
                empty = _empty_batch(sources[0], wanted)
                arrays = score(arrow_inputs(empty, fields)[0], 0)
                writer.put(_output_batch(empty.select(keep) if keep else None, arrays,
                                         outputs, None))
            writer.close()
            if skip:
                # flushed and closed before either file is renamed into place: a write error
                # here (disk full) leaves the old output and sidecar as they were
                rfile.close()
        except BaseException:
            writer.abort()
            reader.stop()
            raise
        finally:
            if bar is not None:
                bar.close()
    if not skip:
        # a sidecar of an earlier run beside the new output would describe another output
        try:
            rejected_path(out).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove the earlier refused rows' file %s (%s): it does "
                        "not belong to the new output", rejected_path(out), exc)
    return result


def _empty_batch(src: _Source, wanted: list[str]) -> Any:
    import pyarrow as pa

    if src.kind == "parquet":
        schema = src._pf.schema_arrow
        return pa.RecordBatch.from_pylist([], schema=pa.schema([schema.field(c)
                                                                 for c in wanted]))
    return pa.RecordBatch.from_pylist([], schema=pa.schema([(c, pa.string())
                                                             for c in wanted]))


def _check_columns(src: _Source, fields: list[Any], keep: list[str]) -> None:
    twice = sorted({c for c in src.wanted if src.columns.count(c) > 1})
    if twice:
        raise InputError(f"data file '{src.path}': column{'s' if len(twice) > 1 else ''} "
                         f"{', '.join(map(repr, twice))} appear{'' if len(twice) > 1 else 's'} "
                         "more than once in its header: which one to read is ambiguous")
    missing = [f.name for f in fields if f.name not in src.columns]
    if missing:
        raise MissingFieldError(f"data file '{src.path}': missing input field"
                                f"{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)} (model expects "
                                f"{len(fields)}: {', '.join(f.name for f in fields)})")
    unknown = [c for c in keep if c not in src.columns]
    if unknown:
        raise InputError(f"--keep: no column {', '.join(repr(c) for c in unknown)} in "
                         f"'{src.path}' (its columns: {', '.join(map(str, src.columns))})")


def _fail_row(src: _Source, emitted: int, reason: str) -> None:
    row = int(src.file_row(np.array([emitted]))[0])
    raise InputError(f"row {row} of '{src.path}': {reason}")


def _ragged_reason(src: _Source, text: str) -> str:
    got = len(next(csv.reader([text], delimiter=src.delimiter), []))
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"ragged line: {got} fields where the header has {len(src.columns)} ({shown!r})"


def _fail_ragged(src: _Source) -> None:
    row = src.ragged_rows()[0]
    where = f"row {row + 1}" if row >= 0 else "a row"
    raise InputError(f"{where} of '{src.path}': {_ragged_reason(src, src.ragged[0])}")


def _progress(enabled: bool, total: int | None) -> Any:
    """A tqdm bar on stderr (rows, rows/s, ETA), or None (not a terminal, or no tqdm)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr, smoothing=0.1,
                dynamic_ncols=True)
