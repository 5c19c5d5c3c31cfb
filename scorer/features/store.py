"""The feature store interface shared by every backend, and what they exchange.

A *view* is a named set of feature columns keyed by one entity column. Each stored row has
an event timestamp; a row is replaced only by a row with a strictly newer timestamp (latest
wins, and loading the same data twice changes nothing). Entity ids are canonical strings: an
integer id as its decimal digits, a string id as it is.

Backends (:func:`scorer.features.open_store` picks one by URL scheme):

- ``redis://host:port/db``: :class:`~scorer.features.redis_store.RedisStore`, for a fleet;
- ``sqlite:///path`` or a plain path: :class:`~scorer.features.sqlite_store.SQLiteStore`,
  embedded, needs no server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import FieldTypeError, InputError

#: feature types a view holds (the bundle field types they feed)
TYPES = ("double", "integer", "boolean", "string")

_VIEW_RE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


def check_view_name(name: str) -> str:
    """``name`` if it is a valid view name (letters, digits, ``_ . -``; 1-100 characters);
    InputError otherwise."""
    if not isinstance(name, str) or not _VIEW_RE.fullmatch(name):
        raise InputError(f"invalid view name {name!r}: use 1-100 letters, digits, '_', '.', "
                         "'-'")
    return name


@dataclass(frozen=True)
class ViewMeta:
    """What a store knows about a view.

    Attributes
    ----------
    name : str
        The view's name.
    entity : str
        The entity column (a request's id tensor has this name).
    features : tuple of str
        Feature columns, in load order.
    types : dict of str to str
        Each feature's type (:data:`TYPES`).
    max_age : float or None
        Seconds after its event timestamp at which a row counts as missing
        (``OUTSIDE_MAX_AGE``); None: never.
    """

    name: str
    entity: str
    features: tuple[str, ...]
    types: dict[str, str] = field(default_factory=dict)
    max_age: float | None = None


@dataclass
class Batch:
    """Rows to write, as Arrow arrays (what the loader hands a backend's ``write``).

    Attributes
    ----------
    keys : pyarrow.StringArray, shape (n,)
        Canonical entity ids (no nulls).
    ts_us : ndarray of int64, shape (n,)
        Event timestamp of each row in microseconds since the epoch.
    columns : dict of str to pyarrow.Array, shape (n,)
        One per feature of the view, null where the value is null: float64 for ``double``
        (no NaN: a NaN is a null), an integer type for ``integer``, bool for ``boolean``,
        string for ``string``.
    """

    keys: Any
    ts_us: np.ndarray
    columns: dict[str, Any]

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` (Arrow slices: no copy)."""
        return Batch(self.keys.slice(start, stop - start), self.ts_us[start:stop],
                     {f: c.slice(start, stop - start) for f, c in self.columns.items()})


@dataclass
class Rows:
    """The stored rows of some entities, in request order.

    Attributes
    ----------
    found : ndarray of bool, shape (n,)
        The entity has a stored row.
    ts_us : ndarray of int64, shape (n,)
        Event timestamp of each row in microseconds since the epoch (0 where not found).
    columns : dict of str to ndarray, shape (n,)
        The requested features: float64 (NaN where null or not found) for numeric types,
        objects (None where null or not found) for strings.
    null : dict of str to ndarray of bool, shape (n,)
        The entity has a row but this feature is null in it.
    matrix : ndarray of float64, shape (n, len(features)), optional
        When every requested feature is numeric, a backend may also give them as one
        matrix in the order they were asked for (``columns`` are then its columns): a model
        of numeric inputs scores it without assembling its columns.
    """

    found: np.ndarray
    ts_us: np.ndarray
    columns: dict[str, np.ndarray]
    null: dict[str, np.ndarray]
    matrix: np.ndarray | None = None


class NamedRows(Mapping[str, np.ndarray]):
    """``name -> block[i]`` where ``names[i] == name``: the rows of a 2-D array by name,
    made on access (the index of names too): :attr:`Rows.columns` and :attr:`Rows.null` of
    a backend that reads numbers as one ``(features, entities)`` block (a view per feature
    costs ~0.2 µs, the index of names ~2 µs: a scorer of the matrix asks for neither)."""

    __slots__ = ("_block", "_index", "_names")

    def __init__(self, names: list[str], block: np.ndarray) -> None:
        self._names, self._block = names, block
        self._index: dict[str, int] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if self._index is None:
            self._index = {f: j for j, f in enumerate(self._names)}
        return self._block[self._index[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def numeric_rows(features: list[str], block: np.ndarray, found: np.ndarray, ts: np.ndarray,
                 null: np.ndarray | None = None) -> Rows:
    """The :class:`Rows` of a read of numbers only, from its block.

    Parameters
    ----------
    features : list of str
        The features read, in order.
    block : float64 ndarray of shape (len(features), n)
        Feature ``f`` of entity ``r`` at ``[f, r]``, NaN where null or not found;
        ``Rows.matrix`` is its transpose, ``Rows.columns`` its rows by name.
    found : bool ndarray of shape (n,); ts : int64 ndarray of shape (n,)
    null : bool ndarray of shape (len(features), n), optional
        Where a found entity's feature is null; computed (NaN in a found row) when not given.
    """
    if null is None:
        null = np.isnan(block)
        null &= found
    return Rows(found, ts, NamedRows(features, block), NamedRows(features, null),  # type: ignore[arg-type]
                block.T)


class FeatureStore(Protocol):
    """One interface, several backends. Backend failures to reach their server raise
    :class:`scorer.errors.UnavailableError`."""

    url: str

    def view(self, name: str) -> ViewMeta | None:
        """The view's metadata, or None if no such view was loaded."""
        ...

    def define_view(self, meta: ViewMeta) -> None:
        """Create the view, or check that ``meta`` matches it (entity, features, types) and
        update its ``max_age``; ValueError when it does not match."""
        ...

    def write(self, meta: ViewMeta, batch: Batch, *, batch_rows: int = 1000) -> int:
        """Store rows; a row replaces the stored one only when its timestamp is strictly
        newer (also between rows of one batch: the latest wins, whatever the order).
        ``batch_rows`` bounds the rows of one server call. Returns the number of rows
        written."""
        ...

    def read(self, meta: ViewMeta, keys: list[str], features: list[str]) -> Rows:
        """The stored rows of ``keys`` (one round trip to a server, whatever their number)."""
        ...

    def close(self) -> None: ...


def empty_rows(n: int, meta: ViewMeta, features: list[str]) -> Rows:
    """Rows of ``n`` entities none of which is found (all columns missing)."""
    cols: dict[str, np.ndarray] = {}
    null: dict[str, np.ndarray] = {}
    for f in features:
        if meta.types.get(f) == "string":
            cols[f] = np.full(n, None, dtype=object)
        else:
            cols[f] = np.full(n, np.nan)
        null[f] = np.zeros(n, dtype=bool)
    return Rows(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), cols, null)


def canonical_keys(ids: np.ndarray) -> list[str]:
    """Entity ids (an INT64 or string column) as the store's canonical string keys.

    Raises
    ------
    InputError
        A float, boolean or missing id (an id must be an integer or a string).
    """
    if type(ids) is np.ndarray and ids.dtype.kind in "iu":  # (the common request: ~1 µs)
        return list(map(str, ids.reshape(-1).tolist()))
    ids = np.asarray(ids).reshape(-1)
    kind = ids.dtype.kind
    if kind in "iu":
        return [str(int(v)) for v in ids.tolist()]
    if kind in "OUS":
        out = []
        for v in ids.tolist():
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                out.append(str(v))
            else:
                raise FieldTypeError(f"entity id {v!r} is neither an integer nor a string")
        return out
    raise FieldTypeError(f"entity ids must be INT64 or BYTES, got {ids.dtype}")
