"""Drift profiles: per feature and per output, bin edges or categories with their counts.

A :class:`Profile` is what a bundle stores as its reference distribution
(``manifest.json`` key ``drift_reference``, docs/bundle-format.md §7) and also what a
serving window or a batch of new data is counted into: the same bins, so two profiles of
one layout compare bin by bin and merge by adding counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BundleFormatError
from . import kernels

#: version of the ``drift_reference`` object (docs/bundle-format.md §7)
PROFILE_VERSION = 1
#: default number of quantile bins per numeric feature (10..20 allowed)
DEFAULT_BINS = 10
MIN_BINS, MAX_BINS = 10, 20
#: categories kept for a categorical feature the model has no vocabulary for (most frequent)
MAX_SAMPLE_CATEGORIES = 100
KINDS = ("numeric", "categorical")
# below this many rows categories are looked up one by one (cheaper than pandas' hashing)
_SMALL = 32


@dataclass
class FeatureProfile:
    """One feature's bins and counts.

    Attributes
    ----------
    name : str
        Input field or output name.
    kind : {"numeric", "categorical"}
    counts : int64 ndarray of shape (bins,)
        Numeric: ``E + 2`` bins (missing, below, ``E - 1`` inner, above); categorical:
        ``m + 2`` (missing, one per category, unseen). See :mod:`.kernels`.
    edges : float64 ndarray of shape (E,), optional
        Numeric only: increasing bin edges, ``E >= 2`` (a constant feature has ``[v, v]``).
    categories : list of str, optional
        Categorical only: the categories, bin ``1 + i`` is ``categories[i]``.
    """

    name: str
    kind: str
    counts: np.ndarray
    edges: np.ndarray | None = None
    categories: list[str] | None = None

    @property
    def bins(self) -> int:
        return len(self.counts)

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def bin_labels(self) -> list[str]:
        """A short name per bin (plots, reports)."""
        if self.kind == "categorical":
            return ["missing", *(self.categories or []), "unseen"]
        e = self.edges if self.edges is not None else np.empty(0)
        inner = [f"[{e[i]:.4g}, {e[i + 1]:.4g}{']' if i == len(e) - 2 else ')'}"
                 for i in range(len(e) - 1)]
        return ["missing", f"< {e[0]:.4g}", *inner, f"> {e[-1]:.4g}"]

    def zeros(self) -> FeatureProfile:
        """The same bins with zero counts."""
        return FeatureProfile(self.name, self.kind, np.zeros_like(self.counts), self.edges,
                              self.categories)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            d["edges"] = [float(v) for v in self.edges]  # type: ignore[union-attr]
        else:
            d["categories"] = list(self.categories or [])
        d["counts"] = [int(c) for c in self.counts]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "") -> FeatureProfile:
        """Read and check one entry; BundleFormatError names what is wrong."""
        name, kind = d.get("name"), d.get("kind")
        where = f"{where}{name!r}"
        if not isinstance(name, str) or kind not in KINDS:
            raise BundleFormatError(f"drift_reference {where}: needs a name and a kind in "
                                    f"{KINDS}")
        try:
            counts = np.asarray(d["counts"], dtype=np.int64)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise BundleFormatError(f"drift_reference {where}: bad counts ({exc})") from exc
        if counts.ndim != 1 or (counts < 0).any():
            raise BundleFormatError(f"drift_reference {where}: counts must be non-negative "
                                    "integers")
        if kind == "numeric":
            try:
                edges = np.asarray([float(v) for v in d["edges"]], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleFormatError(f"drift_reference {where}: bad edges ({exc})") from exc
            if (len(edges) < 2 or not np.isfinite(edges).all()
                    or (np.diff(edges) < 0).any() or (len(edges) > 2 and
                                                      (np.diff(edges) <= 0).any())):
                raise BundleFormatError(f"drift_reference {where}: edges must be at least 2 "
                                        "finite numbers, strictly increasing (or [v, v])")
            if len(counts) != len(edges) + 2:
                raise BundleFormatError(f"drift_reference {where}: {len(edges)} edges need "
                                        f"{len(edges) + 2} counts, got {len(counts)}")
            return cls(name, kind, counts, edges=edges)
        cats = d.get("categories")
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise BundleFormatError(f"drift_reference {where}: categories must be strings")
        if len(counts) != len(cats) + 2:
            raise BundleFormatError(f"drift_reference {where}: {len(cats)} categories need "
                                    f"{len(cats) + 2} counts, got {len(counts)}")
        return cls(name, kind, counts, categories=list(cats))


@dataclass
class Profile:
    """Reference (or observed) distributions of a model's inputs and outputs.

    Attributes
    ----------
    inputs, outputs : list of FeatureProfile
        In the model's input / output order (features without a profile are left out).
    rows : int
        Rows counted.
    """

    inputs: list[FeatureProfile] = field(default_factory=list)
    outputs: list[FeatureProfile] = field(default_factory=list)
    rows: int = 0

    @property
    def features(self) -> list[FeatureProfile]:
        return [*self.inputs, *self.outputs]

    def offsets(self) -> np.ndarray:
        """int64 (n_features + 1,): where each feature's bins start in :meth:`flat_counts`."""
        return np.concatenate([[0], np.cumsum([f.bins for f in self.features])]).astype(
            np.int64)

    def flat_counts(self) -> np.ndarray:
        """Every feature's counts one after the other: int64 (total bins,)."""
        feats = self.features
        if not feats:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([f.counts for f in feats]).astype(np.int64)

    def with_counts(self, flat: np.ndarray, rows: int) -> Profile:
        """This layout holding ``flat`` (total bins,) counts of ``rows`` rows."""
        off = self.offsets()
        feats = [FeatureProfile(f.name, f.kind, np.array(flat[off[i]:off[i + 1]],
                                                         dtype=np.int64),
                                f.edges, f.categories)
                 for i, f in enumerate(self.features)]
        n = len(self.inputs)
        return Profile(feats[:n], feats[n:], int(rows))

    def zeros(self) -> Profile:
        return Profile([f.zeros() for f in self.inputs], [f.zeros() for f in self.outputs], 0)

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``drift_reference`` object."""
        return {"profile_version": PROFILE_VERSION, "rows": int(self.rows),
                "inputs": [f.to_json() for f in self.inputs],
                "outputs": [f.to_json() for f in self.outputs]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Profile:
        """Read a ``drift_reference`` object; BundleFormatError when malformed or of a
        later ``profile_version``."""
        if not isinstance(d, Mapping):
            raise BundleFormatError("drift_reference must be an object")
        version = d.get("profile_version")
        if version != PROFILE_VERSION:
            raise BundleFormatError(f"drift_reference profile_version {version!r} is not "
                                    f"{PROFILE_VERSION} (this scorer reads version 1)")
        try:
            inputs = [FeatureProfile.from_json(f, "input ") for f in d.get("inputs") or []]
            outputs = [FeatureProfile.from_json(f, "output ") for f in d.get("outputs") or []]
        except AttributeError as exc:  # an entry that is not an object
            raise BundleFormatError(f"drift_reference: malformed entry ({exc})") from exc
        rows = d.get("rows", 0)
        if not isinstance(rows, int) or rows < 0:
            raise BundleFormatError("drift_reference rows must be a non-negative integer")
        return cls(inputs, outputs, rows)

    def same_layout(self, other: Profile) -> bool:
        """Whether ``other`` has these bins (so counts compare and add)."""
        a, b = self.features, other.features
        return len(a) == len(b) and all(
            x.name == y.name and x.kind == y.kind and x.bins == y.bins
            and (x.edges is None or np.array_equal(x.edges, y.edges))
            and x.categories == y.categories for x, y in zip(a, b, strict=True))

    def merge(self, other: Profile) -> Profile:
        """Counts of both (exact: integer addition); ValueError if the layouts differ."""
        if not self.same_layout(other):
            raise ValueError("profiles with different bins do not merge")
        return self.with_counts(self.flat_counts() + other.flat_counts(), self.rows + other.rows)


# --- building ---------------------------------------------------------------------------------
def numeric_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin edges of the finite values (rows,). float64 (E,).

    - A feature of at most ``bins + 1`` distinct values (flags, counts, codes): the values
      themselves and, after the largest, the next double up, so each value has a bin of its
      own (the last bin is closed: edges ``[0, 1]`` alone would put 0 and 1 in one bin, and
      a flag's drift could never show).
    - Otherwise ``quantile(x, linspace(0, 1, bins + 1))`` (NumPy's linear interpolation; where
      that overflows, values of the sample) with repeated edges dropped.
    - ``[0, 0]`` for a feature without finite values.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.zeros(2)
    distinct = np.unique(x)
    if distinct.size <= bins + 1:
        return np.append(distinct, np.nextafter(distinct[-1], np.inf))
    qs = np.linspace(0.0, 1.0, bins + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.quantile(x, qs)
    if not np.isfinite(e).all():  # (max - min beyond the doubles: interpolation overflowed)
        e = np.quantile(x, qs, method="inverted_cdf")
    return np.unique(e)


def as_numbers(values: Any) -> np.ndarray:
    """A column as float64 (rows,): numbers as they are, missing / None as NaN; text that is
    not a number is NaN (missing) too."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64, copy=False)
    import pandas as pd

    return pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)


class CategoryMap:
    """Category -> code lookups for one categorical feature (codes as :mod:`.kernels` takes
    them: float64, -1 unseen, NaN missing). Values are compared by their text (``str``)."""

    def __init__(self, categories: Sequence[str]) -> None:
        import pandas as pd

        self.categories = list(categories)
        self._dict = {c: float(i) for i, c in enumerate(self.categories)}
        self._index = pd.Index(self.categories, dtype=object)

    def _text(self, v: Any) -> str:
        """The category a value names, as the model's input encoder reads it (a float that
        is an integer names the integer's category: 1.0 is "1")."""
        from ..inputs import _category_text

        return v if isinstance(v, str) else _category_text(v, self._dict)

    def codes(self, values: Any) -> np.ndarray:
        """float64 (rows,) codes of ``values`` (rows,)."""
        arr = np.asarray(values)
        if arr.size <= _SMALL:
            get, text = self._dict.get, self._text
            return np.array([np.nan if v is None or v != v else get(text(v), -1.0)
                             for v in arr.tolist()], dtype=np.float64)
        if arr.dtype.kind in "iubfU":
            # typed values (labels, numbers sent for a category): look up each distinct
            # value's text once
            nan = np.isnan(arr) if arr.dtype.kind == "f" else None
            uniq, inverse = np.unique(arr, return_inverse=True)
            get, text = self._dict.get, self._text
            out = np.array([get(text(v), -1.0) for v in uniq.tolist()],
                           dtype=np.float64)[inverse.reshape(-1)]
            if nan is not None:
                out[nan] = np.nan
            return out
        import pandas as pd

        missing = pd.isna(arr)
        if not all(isinstance(v, str) for v in arr[~missing]):  # (every value: 1 and "1")
            arr = np.array([None if m else self._text(v)
                            for v, m in zip(arr, missing, strict=True)], dtype=object)
        out = self._index.get_indexer(arr).astype(np.float64)
        out[missing] = np.nan
        return out


def count_feature(fp: FeatureProfile, values: Any, counts: np.ndarray, offset: int,
                  cmap: CategoryMap | None = None) -> None:
    """Add the values (rows,) of one feature into ``counts[offset:offset + fp.bins]``."""
    if fp.kind == "numeric":
        kernels.count_numeric(as_numbers(values), fp.edges, offset, counts)
    else:
        cmap = cmap or CategoryMap(fp.categories or [])
        kernels.count_codes(cmap.codes(values), len(fp.categories or []), offset, counts)


def categories_of(values: Any, limit: int = MAX_SAMPLE_CATEGORIES) -> list[str]:
    """The ``limit`` most frequent category texts of ``values`` (ties by text)."""
    import pandas as pd

    s = pd.Series(np.asarray(values, dtype=object)).dropna().astype(str)
    vc = s.value_counts()
    ordered = sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))
    return [k for k, _ in ordered[:limit]]


def feature_layout(name: str, values: Any, *, categorical: bool, bins: int = DEFAULT_BINS,
                   categories: Sequence[Any] | None = None) -> FeatureProfile:
    """The (zero-count) bins of one feature from sample ``values`` (rows,)."""
    if categorical:
        cats = ([str(c) for c in categories] if categories is not None
                else categories_of(values))
        return FeatureProfile(name, "categorical", np.zeros(len(cats) + 2, np.int64),
                              categories=cats)
    edges = numeric_edges(as_numbers(values), bins)
    return FeatureProfile(name, "numeric", np.zeros(len(edges) + 2, np.int64), edges=edges)


def build_profile(inputs: Mapping[str, Any], outputs: Mapping[str, Any], *,
                  categorical: Mapping[str, Sequence[Any] | None],
                  bins: int = DEFAULT_BINS) -> Profile:
    """The profile of sample columns: layout from the sample, counts of the sample.

    Parameters
    ----------
    inputs, outputs : mapping of str to array of shape (rows,)
        The sample's input columns and the model's outputs on it, in order.
    categorical : mapping of str to list or None
        The categorical features: their categories (None: the sample's most frequent).
    bins : int
        Quantile bins per numeric feature, 10..20.
    """
    if not MIN_BINS <= bins <= MAX_BINS:
        raise ValueError(f"bins must be in {MIN_BINS}..{MAX_BINS}, got {bins}")
    groups = []
    rows = 0
    for cols in (inputs, outputs):
        feats = []
        for name, values in cols.items():
            fp = feature_layout(name, values, categorical=name in categorical, bins=bins,
                                categories=categorical.get(name))
            count_feature(fp, values, fp.counts, 0)
            rows = max(rows, fp.rows)
            feats.append(fp)
        groups.append(feats)
    return Profile(groups[0], groups[1], rows)


def count_columns(layout: Profile, inputs: Mapping[str, Any], outputs: Mapping[str, Any],
                  counts: np.ndarray | None = None) -> np.ndarray:
    """Add columns into ``layout``'s bins: int64 (total bins,) (``counts`` or a new array).
    A feature whose column is absent is left at zero."""
    counts = layout.flat_counts() * 0 if counts is None else counts
    off = layout.offsets()
    for i, fp in enumerate(layout.features):
        cols = inputs if i < len(layout.inputs) else outputs
        if fp.name in cols:
            count_feature(fp, cols[fp.name], counts, int(off[i]))
    return counts


def reference_profile(bundle: Any, inputs: Mapping[str, Any], *,
                      bins: int = DEFAULT_BINS, skip_refused: bool = False) -> Profile:
    """The reference profile of ``bundle`` on sample columns, its outputs scored by the
    bundle itself (so the reference is what serving will compute).

    Parameters
    ----------
    bundle : Bundle
        The model (its steps are bound here; verification is not run).
    inputs : mapping of str to array of shape (rows,)
        One column per input field (strings as objects, numbers as numbers).
    bins : int
        Quantile bins per numeric feature (10..20).
    skip_refused : bool
        Rows the model refuses (a missing value it does not accept, ...) have their inputs
        counted and no outputs (a data file given as the reference, as the current data's
        rows are); else the model's error is raised (an export's sample).
    """
    from ..errors import InputError
    from ..model import Model

    model = Model(bundle, verify=False)
    try:
        outputs = model.score_arrays(dict(inputs))
    except InputError as exc:
        if not skip_refused:
            raise
        from ..batch import score_isolating

        n = len(next(iter(inputs.values())))
        arrays, _, _ = score_isolating(lambda inp, _n: model.score_arrays(inp), dict(inputs),
                                       n, failed=exc)
        outputs = arrays or {o.name: np.zeros(0) for o in bundle.outputs}
    categorical: dict[str, Sequence[Any] | None] = {
        f.name: f.categories for f in bundle.inputs if f.type == "string"}
    for o in bundle.outputs:
        if o.kind == "label" or o.type == "string":
            categorical[o.name] = o.classes
    return build_profile({f.name: inputs[f.name] for f in bundle.inputs},
                         {o.name: outputs[o.name] for o in bundle.outputs},
                         categorical=categorical, bins=bins)


def sample_profile(bundle: Any, sample: Any, *, bins: int = DEFAULT_BINS) -> Profile:
    """The reference profile of ``bundle`` on a sample table: what ``tablescore import
    --sample`` and ``tablescore registry publish --sample`` store for a bundle that did not
    come from ``exporters.export(..., sample=)`` (a PMML document, an existing bundle).

    Parameters
    ----------
    bundle : Bundle
        The model; its outputs on the sample are scored by the bundle itself.
    sample : DataFrame of shape (rows, columns)
        One column per input field, named like the field (other columns are ignored):
        numbers as numbers, a string field's values compared by their text.
    bins : int
        Quantile bins per numeric feature (10..20).

    Raises
    ------
    InputError
        The sample lacks an input field or has no rows.
    """
    import pandas as pd

    from ..errors import InputError

    names = [f.name for f in bundle.inputs]
    missing = [n for n in names if n not in sample.columns]
    if missing:
        raise InputError(f"the sample lacks the model's input field"
                         f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                         f"(its columns must be named like the inputs: {', '.join(names)})")
    if len(sample) == 0:
        raise InputError("the sample has no rows: a reference profile needs some")
    if not MIN_BINS <= bins <= MAX_BINS:
        raise InputError(f"drift bins must be in {MIN_BINS}..{MAX_BINS}, got {bins}")
    cols: dict[str, np.ndarray] = {}
    for f in bundle.inputs:
        values = sample[f.name].to_numpy()
        if f.type == "string":  # categories are texts (as exporters.export reads a sample)
            values = np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)
        cols[f.name] = values
    return reference_profile(bundle, cols, bins=bins)
