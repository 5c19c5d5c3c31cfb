"""Loading a Parquet or CSV file into a view: checked first, then streamed in batches.

The file is read twice: once for the entity (and timestamp) columns only, which finds a
missing entity column, ill-typed or null keys and duplicate keys before anything is written,
and once in record batches (pyarrow) that are written with the backend's batched writes.
A row replaces a stored one only when its event timestamp is strictly newer, so loading the
same file again changes nothing. Without ``--timestamp`` every row's event time is the
file's modification time (a re-load of an unchanged file is then a no-op too).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FieldTypeError, InputError, MissingFieldError
from .store import Batch, FeatureStore, ViewMeta, check_view_name

#: rows per write (Redis: one Lua call; it blocks the server for a few milliseconds)
BATCH_ROWS = 1000
#: rows read from the file and encoded at once (vectorised per column, then written in calls
#: of ``batch_rows``)
READ_ROWS = 32_768
#: bytes of CSV Arrow's reader parses at a time (its first block sets the columns' types)
_CSV_BLOCK = 1 << 22
#: features a view may hold (both backends: SQLite's columns and Redis's Lua stack allow it)
MAX_FEATURES = 1000
#: event times (seconds since the epoch) a view takes: years 1 to 9999, what a microsecond
#: timestamp can hold (larger numbers are nanoseconds or milliseconds by mistake)
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800.0, 253_402_300_799.0
_INT64_MAX = 2 ** 63 - 1


@dataclass
class LoadReport:
    """What a load did."""

    view: str
    rows: int
    written: int
    seconds: float


def check_compatible(old: ViewMeta, new: ViewMeta) -> None:
    """InputError unless ``new`` has the entity, features and types of the stored ``old``."""
    if old.entity != new.entity:
        raise InputError(f"view '{old.name}' is keyed by '{old.entity}', not '{new.entity}'")
    if tuple(old.features) != tuple(new.features) or old.types != new.types:
        raise InputError(f"view '{old.name}' holds features {list(old.features)} "
                         f"({old.types}); the data has {list(new.features)} ({new.types}): "
                         "load it into a new view")


def _feature_type(t: Any, name: str) -> str:
    import pyarrow as pa

    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "string"
    raise FieldTypeError(f"feature column '{name}' has type {t}: a view holds numbers, "
                         "booleans and strings")


class _Source:
    """A Parquet or CSV file as pyarrow record batches."""

    def __init__(self, path: Path, *, text: tuple[str, ...] = ()) -> None:
        self.path = path
        #: CSV columns read as text whatever they look like (the entity: 007 stays 007)
        self.text = text
        self._schema: Any = None  # (a CSV's, read once)
        name = path.name.lower()
        self.parquet = name.endswith((".parquet", ".pq"))
        if not self.parquet and not name.endswith((".csv", ".csv.gz", ".txt")):
            raise InputError(f"data file '{path}': expected .parquet or .csv")
        if not path.is_file():
            raise FileNotFoundError(f"data file '{path}' not found")

    def schema(self) -> Any:
        """The file's columns and types (a CSV's: as its first block reads, then kept for
        every block, so a later value of another type is an error, not a new type)."""
        if self.parquet:
            import pyarrow.parquet as pq

            return pq.read_schema(self.path)
        if self._schema is None:
            import pyarrow as pa
            import pyarrow.csv as pcsv

            try:
                with pcsv.open_csv(self.path, read_options=pcsv.ReadOptions(
                        block_size=_CSV_BLOCK), convert_options=pcsv.ConvertOptions(
                            column_types={c: pa.string() for c in self.text})) as r:
                    self._schema = r.schema
            except pa.ArrowInvalid as exc:
                raise InputError(f"data file '{self.path}' is not a CSV file with a header: "
                                 f"{str(exc).strip().splitlines()[0]}") from None
        return self._schema

    def rows(self) -> int | None:
        if self.parquet:
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        return None

    def batches(self, columns: list[str] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[Any]:
        if self.parquet:
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(self.path).iter_batches(batch_size=batch_rows,
                                                               columns=columns)
            return
        import pyarrow as pa
        import pyarrow.csv as pcsv

        schema = self.schema()
        conv = pcsv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            include_columns=columns or schema.names)
        try:
            with pcsv.open_csv(self.path, convert_options=conv,
                               read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK),
                               parse_options=pcsv.ParseOptions(newlines_in_values=True)) as r:
                for b in r:
                    for s in range(0, b.num_rows, batch_rows):
                        yield b.slice(s, batch_rows)
        except pa.ArrowInvalid as exc:
            # (a value of another type than the column's first block: found by the checking
            # pass, before anything is written)
            raise FieldTypeError(f"data file '{self.path}': {str(exc).strip().splitlines()[0]} "
                                 "(a column's type is set by the file's first rows)") from None


def _keys(col: Any, entity: str) -> Any:
    """The entity column as canonical keys (an Arrow string array): an integer's decimal
    digits, a string as it is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if col.null_count:
        raise FieldTypeError(f"entity column '{entity}' has {col.null_count} null keys")
    if pa.types.is_integer(t):
        return pc.cast(col, pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.cast(pa.string())
    raise FieldTypeError(f"entity column '{entity}' has type {t}: keys must be integers or "
                         "strings")


def _timestamps_us(col: Any, name: str) -> np.ndarray:
    """Event times in integer microseconds: a timestamp column (finer units truncated to
    the microsecond), or numbers of seconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if col.null_count:
        raise FieldTypeError(f"timestamp column '{name}' has {col.null_count} nulls")
    if pa.types.is_timestamp(t):
        return pc.cast(col, pa.timestamp("us", tz=t.tz), safe=False).cast(
            pa.int64()).to_numpy()
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        secs = col.to_numpy().astype(np.float64)
        bad = ~((secs >= _MIN_SECONDS) & (secs <= _MAX_SECONDS))
        if bad.any():
            raise FieldTypeError(f"timestamp column '{name}' holds {secs[bad][0]!r}: not "
                                 "seconds since the epoch (milli- or nanoseconds?): give "
                                 "seconds, or a timestamp column")
        return np.round(secs * 1e6).astype(np.int64)
    raise FieldTypeError(f"timestamp column '{name}' has type {t}: expected a timestamp or "
                         "seconds since the epoch")


def _column(col: Any, type_: str) -> Any:
    """An arrow column as :class:`~.store.Batch` holds it: null where the value is null
    (a NaN is a null), strings decoded from a dictionary."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if type_ == "string":
        return col.cast(pa.string())
    if type_ == "double":
        col = col.cast(pa.float64())
        if col.null_count < len(col) and pc.any(pc.is_nan(col)).as_py():
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col)
    return col


def check_file(src: _Source, entity: str, timestamp: str | None) -> None:
    """Refuse the file before writing: a missing entity (or timestamp) column, ill-typed or
    null keys, duplicate keys (duplicate key and timestamp pairs with ``timestamp``)."""
    import pyarrow as pa

    names = src.schema().names
    for col, what in ((entity, "entity"), (timestamp, "timestamp")):
        if col is not None and col not in names:
            raise MissingFieldError(f"data file '{src.path}' has no {what} column '{col}' "
                                    f"(columns: {', '.join(names[:20])}"
                                    f"{', ...' if len(names) > 20 else ''})")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"data file '{src.path}': column{'s' if len(twice) > 1 else ''} "
                         f"{', '.join(map(repr, twice))} appear more than once in its header")
    cols = [entity] + ([timestamp] if timestamp else [])
    if src.parquet:
        parts = [b for b in src.batches(cols, batch_rows=1 << 20)]
    else:
        # every column of a CSV converted now, with the types of its first block: a value
        # that does not convert fails here, before the load writes anything
        parts = [b.select(cols) for b in src.batches(None, batch_rows=1 << 20)]
    _check_integers(src)
    if not parts:
        return
    table = pa.Table.from_batches(parts)
    _keys(table.column(entity).combine_chunks().slice(0, 0), entity)  # the type
    key = table.column(entity)
    if key.null_count:
        raise FieldTypeError(f"entity column '{entity}' has {key.null_count} null keys")
    if timestamp:
        _timestamps_us(table.column(timestamp).combine_chunks().slice(0, 1), timestamp)
    counts = table.group_by(cols).aggregate([([], "count_all")])
    dup = counts.filter(counts.column("count_all").combine_chunks().to_numpy() > 1)
    if dup.num_rows:
        example = dup.slice(0, 1).to_pylist()[0]
        del example["count_all"]
        what, fix = (("(key, timestamp) pairs", "give each row of an entity its own "
                      "timestamp") if timestamp else
                     ("keys", "one row per entity, or give --timestamp"))
        raise InputError(f"data file '{src.path}' has {dup.num_rows} duplicate {what}, "
                         f"e.g. {example} ({fix})")


def _check_integers(src: _Source) -> None:
    """Refuse unsigned 64-bit integer features beyond the signed range (both backends hold
    signed 64-bit integers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    big = [f.name for f in src.schema() if pa.types.is_uint64(f.type)]
    if not big:
        return
    for b in src.batches(big, batch_rows=1 << 20):
        for name in big:
            top = pc.max(b.column(name)).as_py()
            if top is not None and top > _INT64_MAX:
                raise FieldTypeError(f"feature column '{name}' holds {top}: integers above "
                                     f"{_INT64_MAX} cannot be stored")


def load(store: FeatureStore, data: str | os.PathLike[str], *, view: str, entity: str,
         timestamp: str | None = None, max_age: float | None = None,
         batch_rows: int = BATCH_ROWS,
         progress: Callable[[int], None] | None = None) -> LoadReport:
    """Load ``data`` into ``view`` of ``store``.

    Parameters
    ----------
    store : FeatureStore
        Where to write.
    data : path-like
        A Parquet or CSV file: the entity column, optionally a timestamp column, and the
        features (every other column).
    view, entity : str
        The view's name and its entity column.
    timestamp : str, optional
        The event-time column (a timestamp, or seconds since the epoch); default: the file's
        modification time for every row.
    max_age : float, optional
        Seconds after which a row counts as missing (``OUTSIDE_MAX_AGE``); kept in the view.
    batch_rows : int
        Rows per write call to the store (the file is read and encoded
        :data:`READ_ROWS` at a time).
    progress : callable, optional
        Called with the number of rows of each batch written.

    Raises
    ------
    MissingFieldError, FieldTypeError, InputError
        The file does not fit (missing entity column, ill-typed or duplicate keys).
    ValueError
        The view exists with other features.
    """
    check_view_name(view)
    if max_age is not None and not 0 < max_age < float("inf"):
        raise InputError(f"--max-age: a positive number of seconds, not {max_age}")
    t0 = time.perf_counter()
    path = Path(data)
    src = _Source(path, text=(entity,))
    check_file(src, entity, timestamp)
    schema = src.schema()
    feats = [n for n in schema.names if n not in (entity, timestamp)]
    if not feats:
        raise InputError(f"data file '{path}' has no feature columns besides '{entity}'")
    if len(feats) > MAX_FEATURES:
        raise InputError(f"data file '{path}' has {len(feats)} feature columns: a view holds "
                         f"at most {MAX_FEATURES}; split it into several views")
    if "_ts" in feats:
        raise InputError("a feature column may not be called '_ts' (the layout's timestamp)")
    types = {n: _feature_type(schema.field(n).type, n) for n in feats}
    meta = ViewMeta(view, entity, tuple(feats), types, max_age)
    store.define_view(meta)
    default_ts = int(path.stat().st_mtime_ns // 1000)
    rows = written = 0
    for b in src.batches(None, max(batch_rows, READ_ROWS)):
        n = b.num_rows
        keys = _keys(b.column(entity), entity)
        ts = (_timestamps_us(b.column(timestamp), timestamp) if timestamp
              else np.full(n, default_ts, dtype=np.int64))
        cols = {f: _column(b.column(f), types[f]) for f in feats}
        written += store.write(meta, Batch(keys, ts, cols), batch_rows=batch_rows)
        rows += n
        if progress is not None:
            progress(n)
    return LoadReport(view, rows, written, time.perf_counter() - t0)


def progress_bar(total: int | None, desc: str) -> tuple[Callable[[int], None],
                                                        Callable[[], None]]:
    """``(update, close)`` of a tqdm bar on a terminal; no-ops elsewhere (or without tqdm)."""
    if not sys.stderr.isatty():
        return (lambda n: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ImportError:
        return (lambda n: None), (lambda: None)
    bar = tqdm(total=total, desc=desc, unit="rows", unit_scale=True, file=sys.stderr)
    return bar.update, bar.close
