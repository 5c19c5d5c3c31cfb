"""The features stage of the request pipeline: a request that sends an entity id gets the
model's inputs from the view bound to the model.

A model is bound by its ``config.json`` (``{"features": {"view": NAME, "mapping": {input:
column}, "missing": "refuse" | "policy"}}``). A request whose tensors include the view's
entity column (INT64 or BYTES, shape [N] or [N, 1]) has every model input it did not send
itself read from the view, for all N ids in one round trip; inputs it sent override the
stored ones. A request without the entity column (full rows) never touches the store.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import (
    EntityNotFoundError,
    FeatureDataError,
    FeatureViewNotFoundError,
    InputError,
    MissingFieldError,
    UnavailableError,
)
from ..pipeline import Request, Target
from ..urls import redact
from .metrics import FeatureMetrics
from .store import FeatureStore, ViewMeta, canonical_keys, check_view_name

log = logging.getLogger("tablescore.features")

#: the statuses a looked-up feature value is counted under (Feast's names)
PRESENT, NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE = ("PRESENT", "NOT_FOUND", "NULL_VALUE",
                                                   "OUTSIDE_MAX_AGE")
#: ids named in a refusal at most
_NAMED_IDS = 5
#: models whose columns to read are kept at most (FeatureStage._columns)
_PLANS = 256


@dataclass(frozen=True)
class Binding:
    """How a model reads a view (the ``features`` object of its ``config.json``).

    Attributes
    ----------
    view : str
        The view's name.
    mapping : dict of str to str
        Model input -> view column, where they differ.
    missing : {"refuse", "policy"}
        An unknown or stale entity: refused (NOT_FOUND), or scored with its features
        missing (NaN / None) under the bundle's missing-value policy.
    entity : str or None
        The entity column, if the config names it (otherwise the view's): lets the server
        recognise entity requests even before it has reached the store once.
    """

    view: str
    mapping: Mapping[str, str] = field(default_factory=dict)
    missing: str = "refuse"
    entity: str | None = None

    @classmethod
    def from_config(cls, d: Any) -> Binding:
        """Parse the ``features`` value of a model's ``config.json``; ValueError if invalid."""
        if not isinstance(d, dict) or not isinstance(d.get("view"), str):
            raise ValueError('"features" must be an object with a string "view"')
        unknown = set(d) - {"view", "mapping", "missing", "entity"}
        if unknown:
            raise ValueError(f'"features": unknown keys {sorted(unknown)}')
        mapping = d.get("mapping", {})
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise ValueError('"features.mapping" must map input names to column names')
        missing = d.get("missing", "refuse")
        if missing not in ("refuse", "policy"):
            raise ValueError('"features.missing" must be "refuse" or "policy"')
        entity = d.get("entity")
        if entity is not None and not isinstance(entity, str):
            raise ValueError('"features.entity" must be a string')
        try:
            check_view_name(d["view"])
        except InputError as exc:
            raise ValueError(f'"features.view": {exc}') from None
        return cls(d["view"], dict(mapping), missing, entity)


#: model name -> its ``features`` config section (or None): where bindings come from
BindingSource = Callable[[str], Any]


class FeatureStage:
    """The pipeline's ``features`` stage over one :class:`~.store.FeatureStore`.

    Parameters
    ----------
    store : FeatureStore
        Where the views live.
    bindings : mapping or callable
        Model name -> the ``features`` section of its config (a dict, a :class:`Binding`,
        or None when the model reads no view); the server passes a function reading the
        repository's ``config.json``.
    metrics : FeatureMetrics, optional
        Where lookups are counted (default: a new, unregistered one).
    meta_ttl : float
        Seconds a view's metadata is used before it is read again.
    retry_after : float
        After the store failed to answer, seconds before :meth:`extra_inputs` tries again to
        learn a view it has never seen (requests of full rows must not wait on a dead store).
    """

    def __init__(self, store: FeatureStore, bindings: Mapping[str, Any] | BindingSource, *,
                 metrics: FeatureMetrics | None = None, meta_ttl: float = 30.0,
                 retry_after: float = 1.0) -> None:
        self.store = store
        self._source: BindingSource = (bindings.get if isinstance(bindings, Mapping)
                                       else bindings)
        self.metrics = metrics if metrics is not None else FeatureMetrics()
        self.meta_ttl = meta_ttl
        self.retry_after = retry_after
        self._bindings: dict[str, tuple[Any, Binding | None]] = {}
        self._meta: dict[str, tuple[ViewMeta, float]] = {}
        #: views the store answered it does not hold, and when (asked again after
        #: ``retry_after`` seconds: requests to a misconfigured model do not each cost a
        #: store round trip)
        self._absent_at: dict[str, float] = {}
        #: views whose metadata the store holds but cannot be read: the error, and when
        self._bad_at: dict[str, tuple[FeatureDataError, float]] = {}
        self._failed_at = -1e9
        self._failure = ""
        self._lock = threading.Lock()
        #: id(model) -> (weak reference to the model, view metadata, binding, its columns):
        #: see _columns
        self._plans: dict[int, tuple[Any, ViewMeta, Binding, Any]] = {}

    # --- bindings and views -------------------------------------------------------------------
    def binding(self, name: str) -> Binding | None:
        """The binding of model ``name`` (None: unbound); parsed once per config object."""
        section = self._source(name)
        cached = self._bindings.get(name)
        if cached is not None and cached[0] is section:
            return cached[1]
        b: Binding | None
        if section is None or isinstance(section, Binding):
            b = section
        else:
            try:
                b = Binding.from_config(section)
            except ValueError as exc:
                log.warning("model %s: invalid features binding: %s", name, exc)
                b = None
        self._bindings[name] = (section, b)
        return b

    def view(self, name: str, *, block: bool = True) -> ViewMeta | None:
        """The view's metadata (cached for ``meta_ttl``; a view the store does not hold, or
        whose metadata it cannot read, for ``retry_after``). With ``block`` False, None
        instead of asking a store that failed within ``retry_after`` seconds.

        Raises
        ------
        UnavailableError
            The store did not answer (and the view was never read).
        FeatureDataError
            The store's metadata of the view does not follow the layout.
        """
        now = time.monotonic()
        got = self._meta.get(name)
        # (a store that failed within retry_after is not asked again for metadata it gave
        # before: a request pays one timeout, its read's, not one more per refresh)
        if got is not None and (now - got[1] < self.meta_ttl
                                or now - self._failed_at < self.retry_after):
            return got[0]
        if not block and now - self._failed_at < self.retry_after:
            return got[0] if got is not None else None
        absent = self._absent_at.get(name)
        if absent is not None and now - absent < self.retry_after:
            return None
        bad = self._bad_at.get(name)
        if bad is not None and now - bad[1] < self.retry_after:
            raise bad[0]
        try:
            meta = self.store.view(name)
        except UnavailableError as exc:
            self._failed_at, self._failure = now, str(exc)
            if got is not None:  # a store that is down does not forget the view's columns
                return got[0]
            raise
        except FeatureDataError as exc:
            self._bad_at[name] = (exc, now)
            raise
        self._bad_at.pop(name, None)
        if meta is not None:
            self._meta[name] = (meta, now)
            self._absent_at.pop(name, None)
        else:
            self._absent_at[name] = now
        return meta

    def extra_inputs(self, target: Target) -> frozenset[str]:
        """The entity column of the view bound to ``target``'s model (empty when unbound)."""
        b = self.binding(target.name)
        if b is None:
            return frozenset()
        if b.entity is not None:
            return frozenset((b.entity,))
        try:
            meta = self.view(b.view, block=False)
        except (UnavailableError, FeatureDataError):
            return frozenset()  # the request then refers to an unknown input
        return frozenset((meta.entity,)) if meta is not None else frozenset()

    def unknown_inputs(self, target: Target, names: list[str],
                       ) -> UnavailableError | FeatureDataError | FeatureViewNotFoundError | None:
        """Called for a request whose columns ``names`` neither the model nor a stage takes:
        an UnavailableError when one of them may be the entity column of the view bound to
        ``target``'s model, which cannot be known while the store is down (the binding
        does not name ``entity``, and the store has not answered since the server
        started); the store's answer when it answers that it has no such view, or one it
        cannot read; None otherwise (they are unknown inputs). Asks the store at most once
        per ``retry_after`` seconds, within its timeout."""
        b = self.binding(target.name)
        if b is None or b.entity is not None or b.view in self._meta:
            return None
        if time.monotonic() - self._failed_at >= self.retry_after:
            try:
                if self.view(b.view) is None:
                    # the store answered without the view: the ids cannot be read however
                    # the request is written
                    return self._absent(target.name, b.view, names)
                return None  # the store answered: the caller looks again
            except UnavailableError:
                pass
            except FeatureDataError as exc:  # the store answered with a view it cannot read
                return exc
        return UnavailableError(
            f"{self._failure}; model '{target.name}' reads feature view '{b.view}', whose "
            f"entity column is not known until the store answers, so input "
            f"{', '.join(repr(n) for n in names)} may be entity ids (name the column in the "
            'model\'s config.json, "features": {"entity": ...}, to have it recognised '
            "without the store)")

    def _absent(self, model: str, view: str,
                names: list[str] | None = None) -> FeatureViewNotFoundError:
        sent = (f" (so input{'s' if len(names) > 1 else ''} "
                f"{', '.join(repr(n) for n in names)} cannot be read as entity ids)"
                if names else "")
        return FeatureViewNotFoundError(
            f"model '{model}' reads feature view '{view}', which the feature store "
            f"{redact(self.store.url)} does not hold{sent}: load it (tablescore features "
            "load --store URL --view NAME ...) or fix the model's features binding")

    # --- the stage ----------------------------------------------------------------------------
    def fill(self, target: Target, request: Request) -> Request:
        """Complete an entity request's inputs from the store (in place; see the module
        docstring).

        Raises
        ------
        EntityNotFoundError
            An id has no row (or only a stale one) and the binding refuses such requests.
        UnavailableError
            The store did not answer within its timeout.
        MissingFieldError
            A model input that neither the request nor the view holds.
        """
        b = self.binding(target.name)
        if b is None or not request.extras:
            return request
        inputs = request.inputs
        if isinstance(inputs, np.ndarray):
            return request  # whole rows sent beside the id: nothing to look up
        entity = b.entity
        meta = None
        if entity is None or entity in request.extras:
            try:
                meta = self.view(b.view)
            except UnavailableError:
                # (a lookup the store did not answer: its metadata was never read)
                self.metrics.store_errors.labels(b.view).inc()
                raise
            if meta is None:
                raise self._absent(target.name, b.view)
            entity = b.entity or meta.entity
        ids = request.extras.get(entity)
        if ids is None or meta is None:
            return request
        given = inputs or {}
        names, columns, read = self._columns(target, b, meta, given)
        if not columns:
            return request
        keys = canonical_keys(ids)
        m = self.metrics
        t0 = time.perf_counter()
        try:
            rows = self.store.read(meta, keys, read)
        except UnavailableError as exc:
            m.store_errors.labels(meta.name).inc()
            self._failed_at, self._failure = time.monotonic(), str(exc)
            raise
        finally:
            m.observe_store(meta.name, time.perf_counter() - t0)
        n = len(keys)
        found = rows.found
        # (count_nonzero: a fraction of a ufunc reduction's cost on a few rows)
        n_missing = n - int(np.count_nonzero(found))
        if meta.max_age is None:  # (no mask to make: the common view)
            stale, n_stale, keep = None, 0, found
        else:
            stale = found & (time.time() * 1e6 - rows.ts_us > meta.max_age * 1e6)
            n_stale = int(np.count_nonzero(stale))
            keep = found & ~stale
        per = len(read)
        if rows.matrix is not None:  # null: NaN in a row that was found (and not stale)
            kept = rows.matrix if not (n_missing or n_stale) else rows.matrix[keep]
            nulls = int(np.count_nonzero(np.isnan(kept)))
        elif n_stale:
            nulls = sum(np.count_nonzero(rows.null[c] & keep) for c in read)
        else:
            nulls = sum(np.count_nonzero(rows.null[c]) for c in read)
        m.count(meta.name, {PRESENT: n * per - (n_missing + n_stale) * per - nulls,
                            NOT_FOUND: n_missing * per, OUTSIDE_MAX_AGE: n_stale * per,
                            NULL_VALUE: nulls})
        if n_missing + n_stale and b.missing == "refuse":
            raise _refusal(meta, keys, found,
                           stale if stale is not None else np.zeros(n, dtype=bool))
        gone = ~keep if n_stale else None  # (rows the policy scores with missing features)
        if (rows.matrix is not None and not given and len(read) == len(names)
                and getattr(target.model, "numeric_inputs", False)):
            # numbers for every input (column i of the matrix is input i: nothing sent,
            # no two inputs read from one column): the matrix the model takes
            # (the same values as the columns, without assembling them again)
            X = rows.matrix
            if gone is not None:
                X = X.copy()
                X[gone] = np.nan
            request.inputs = X
            return request
        filled: dict[str, np.ndarray] = {}
        for n_, c in columns.items():
            col = rows.columns[c]
            if gone is not None:
                col = col.copy()
                col[gone] = None if col.dtype == object else np.nan
            filled[n_] = col
        request.inputs = {nm: given[nm] if nm in given else filled[nm] for nm in names}
        return request

    def _columns(self, target: Target, b: Binding, meta: ViewMeta, given: Mapping[str, Any],
                 ) -> tuple[list[str], dict[str, str], list[str]]:
        """``(model inputs, input -> view column of each input to read, view columns to
        read)``: the inputs not in ``given``. Kept per model, view metadata and binding for
        requests that send nothing but ids (~10 µs of a one-id request with 50 inputs).

        Raises
        ------
        MissingFieldError
            An input to read that the view has no column for.
        """
        model = target.model
        if not given:
            kept = self._plans.get(id(model))
            if (kept is not None and kept[0]() is model and kept[1] is meta
                    and kept[2] is b):
                return kept[3]
        names = model.input_names
        columns = {n: b.mapping.get(n, n) for n in names if n not in given}
        absent = [n for n, c in columns.items() if c not in meta.types]
        if absent:
            raise MissingFieldError(
                f"model '{target.name}' needs input{'s' if len(absent) > 1 else ''} "
                f"{', '.join(repr(a) for a in absent)}: not sent, and view '{meta.name}' has "
                f"no such column{'s' if len(absent) > 1 else ''}")
        plan = (names, columns, list(dict.fromkeys(columns.values())))
        if not given:
            try:
                ref = weakref.ref(model)  # (an unloaded version's model is not kept alive)
            except TypeError:
                return plan
            if len(self._plans) >= _PLANS:
                self._plans.clear()
            self._plans[id(model)] = (ref, meta, b, plan)
        return plan


def _refusal(meta: ViewMeta, keys: list[str], found: np.ndarray,
             stale: np.ndarray) -> EntityNotFoundError:
    unknown = [keys[i] for i in np.flatnonzero(~found)[:_NAMED_IDS]]
    old = [keys[i] for i in np.flatnonzero(stale)[:_NAMED_IDS]]
    parts = []
    if unknown:
        more = int((~found).sum()) - len(unknown)
        parts.append(f"unknown {meta.entity} {', '.join(repr(k) for k in unknown)}"
                     + (f" (and {more} more)" if more > 0 else ""))
    if old:
        more = int(stale.sum()) - len(old)
        parts.append(f"{meta.entity} {', '.join(repr(k) for k in old)} only has features "
                     f"older than the view's max_age ({meta.max_age:g} s)"
                     + (f" (and {more} more)" if more > 0 else ""))
    return EntityNotFoundError(f"feature view '{meta.name}': " + "; ".join(parts))
