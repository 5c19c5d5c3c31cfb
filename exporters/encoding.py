"""Family ``encoding`` exporters: scikit-learn OneHotEncoder, OrdinalEncoder, KBinsDiscretizer.

Each encoder becomes one step (``one_hot``, ``ordinal`` or ``kbins``; see
:mod:`scorer.kernels.encoding`). The category -> output mapping is computed here from the fitted
attributes, including scikit-learn's infrequent grouping and dropped categories, so the scorer
only looks values up. Output columns are in the order of the encoder's ``transform``.

Categories of string (code) columns are written as strings and added to the input field's
vocabulary; the scorer maps them to codes when it loads the bundle. The scorer cannot tell
``None`` from NaN (both are "missing"), so an encoder that knows both as separate categories is
refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import register

FAMILY = "encoding"


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v))


def _field_name(g: Graph, col: str) -> str:
    """The input field an error message should name for workspace column ``col``."""
    if col in g.fields:
        return col
    if g.is_codes(col):
        return g.code_origin[col]
    src = g.nan_src.get(col, frozenset()) | g.inf_src.get(col, frozenset())
    return next(iter(src)) if len(src) == 1 else col


def _check_width(est: Any, cols: list[str]) -> None:
    n = len(est.categories_) if hasattr(est, "categories_") else len(est.bin_edges_)
    if n != len(cols):
        raise ExportError(f"{type(est).__name__} was fitted on {n} features but receives "
                          f"{len(cols)} columns")


def _category_rows(g: Graph, col: str, j: int, cats: Any, what: str) -> dict[str, list[Any]]:
    """Table rows (``input, category, number, missing``) for input ``j``'s categories."""
    rows: dict[str, list[Any]] = {"input": [], "category": [], "number": [], "missing": []}
    codes = g.is_codes(col)
    n_missing = 0
    for c in cats:
        missing = _is_missing(c)
        n_missing += missing
        rows["input"].append(j)
        rows["missing"].append(missing)
        if missing:
            rows["category"].append(None)
            rows["number"].append(math.nan)
        elif codes:
            if not isinstance(c, str | bool | np.bool_):
                # the scorer matches the caller's value as str(value): "1.0" would not match
                # the True a caller passes for a category the encoder converted to a number
                raise ExportError(f"{what} knows category {c!r} (a number) for column '{col}', "
                                  "whose values are strings: convert the column to strings "
                                  "or numbers before fitting")
            rows["category"].append(str(c))
            rows["number"].append(math.nan)
        else:
            try:
                number = float(c)
            except (TypeError, ValueError):
                raise ExportError(f"{what} knows category {c!r} for column '{col}', which "
                                  "holds numbers") from None
            rows["category"].append(None)
            rows["number"].append(number)
    if n_missing > 1:
        raise ExportError(f"{what} knows both None and NaN as categories of column '{col}'; "
                          "the scorer treats both as one missing value")
    if codes:
        g.add_categories(col, cats)
    return rows


def _requirements(g: Graph, col: str, cats: Any, refuse: bool) -> None:
    """Mirror what the encoder refuses: inf in numbers (check_array), and with
    handle_unknown='error' unseen categories and a missing value not seen in training."""
    g.require([col], nan=True, inf=False)
    if refuse:
        if g.is_codes(col):
            g.refuse_unknown(col)
        if not any(_is_missing(c) for c in cats):
            g.require([col], nan=False, inf=False)


def _concat(parts: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for p in parts:
        for k, v in p.items():
            out.setdefault(k, []).extend(v)
    return out


def _typed(rows: dict[str, list[Any]], value: str, value_dtype: Any) -> dict[str, np.ndarray]:
    return {
        "input": np.asarray(rows["input"], dtype=np.int32),
        "category": np.asarray(rows["category"], dtype=object),
        "number": np.asarray(rows["number"], dtype=np.float64),
        "missing": np.asarray(rows["missing"], dtype=np.bool_),
        value: np.asarray(rows[value], dtype=value_dtype),
    }


def _output_names(est: Any, n: int) -> list[str] | None:
    try:
        names = [str(s) for s in est.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        return None
    return names if len(names) == n else None


def _infrequent_mapping(est: Any, j: int) -> np.ndarray | None:
    """scikit-learn's category index -> index after grouping infrequent categories."""
    if not getattr(est, "_infrequent_enabled", False):
        return None
    return est._default_to_infrequent_mappings[j]


@register("sklearn.OneHotEncoder")
def export_one_hot_encoder(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _check_width(est, cols)
    # sklearn's transform: category -> grouped index (infrequent) -> minus the dropped one
    # (drop indices refer to grouped indices) -> plus the feature's offset.
    drop = getattr(est, "_drop_idx_after_grouping", None)
    n_outs = [int(n) for n in est._n_features_outs]
    mode = "infrequent_if_exist" if est.handle_unknown == "warn" else est.handle_unknown
    parts, handle, infrequent_out = [], [], []
    start = 0
    for j, (col, cats) in enumerate(zip(cols, est.categories_, strict=True)):
        rows = _category_rows(g, col, j, cats, "OneHotEncoder")
        grouped = _infrequent_mapping(est, j)
        grouped = np.arange(len(cats)) if grouped is None else np.asarray(grouped)
        d = None if drop is None else drop[j]

        def place(k: int, d: Any = d, start: int = start) -> int:
            if d is None:
                return start + k
            if k == d:
                return -1
            return start + (k - 1 if k > d else k)

        rows["output"] = [place(int(k)) for k in grouped]
        if set(rows["output"]) - {-1} != set(range(start, start + n_outs[j])):
            # guards the reading of scikit-learn's private grouping / drop attributes
            raise ExportError(f"internal: OneHotEncoder feature {j}: categories map to "
                              f"{sorted(set(rows['output']))}, expected outputs "
                              f"{start}..{start + n_outs[j] - 1}")
        parts.append(rows)
        infreq = est._infrequent_indices[j] if getattr(est, "_infrequent_enabled",
                                                       False) else None
        if mode == "error":
            handle.append("error")
            infrequent_out.append(-1)
        elif mode == "infrequent_if_exist" and infreq is not None:
            # sklearn maps an unknown value onto the first infrequent category
            handle.append("infrequent")
            infrequent_out.append(place(int(grouped[infreq[0]])))
        else:
            handle.append("ignore")
            infrequent_out.append(-1)
        _requirements(g, col, cats, refuse=mode == "error")
        start += n_outs[j]
    names = _output_names(est, start)
    outs = g.new_columns("one_hot", start) if names is None else g.new_columns(
        "one_hot", names=names)
    tables = {
        "categories": _typed(_concat(parts), "output", np.int32),
        "inputs": {
            "handle_unknown": np.asarray(handle, dtype=object),
            "infrequent_output": np.asarray(infrequent_out, dtype=np.int32),
            "field": np.asarray([_field_name(g, c) for c in cols], dtype=object),
        },
    }
    g.add_step("one_hot", name="one_hot_encoder", inputs=cols, outputs=outs, family=FAMILY,
               tables=tables, nan_out="none")
    for o in outs:
        g.inf_src[o] = frozenset()
    return outs


@register("sklearn.OrdinalEncoder")
def export_ordinal_encoder(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _check_width(est, cols)
    dtype = np.dtype(est.dtype)
    missing_idx = getattr(est, "_missing_indices", {}) or {}
    value_mode = est.handle_unknown == "use_encoded_value"
    unknown_value = float(est.unknown_value) if value_mode else math.nan
    encoded_missing = float(est.encoded_missing_value)
    parts = []
    nan_reaches: list[bool] = []
    for j, (col, cats) in enumerate(zip(cols, est.categories_, strict=True)):
        rows = _category_rows(g, col, j, cats, "OrdinalEncoder")
        grouped = _infrequent_mapping(est, j)
        codes = []
        for k in range(len(cats)):
            if missing_idx.get(j) == k:  # only a NaN category: None is an ordinary one
                codes.append(encoded_missing)
            else:
                codes.append(float(grouped[k]) if grouped is not None else float(k))
        # the values sklearn outputs are of est.dtype
        rows["code"] = [float(np.asarray(c).astype(dtype)) if not math.isnan(c) else c
                        for c in codes]
        parts.append(rows)
        _requirements(g, col, cats, refuse=not value_mode)
        # NaN out of a missing input: the missing category's code is NaN (encoded_missing_value)
        # or, missing being unseen, it is unknown and unknown_value is NaN.
        miss = [c for c, m in zip(rows["code"], rows["missing"], strict=True) if m]
        nan_reaches.append(math.isnan(miss[0]) if miss else (
            value_mode and math.isnan(unknown_value)))
    if value_mode and not math.isnan(unknown_value):
        unknown_value = float(np.asarray(unknown_value).astype(dtype))
    outs = g.new_columns("ordinal", len(cols))
    tables = {
        "categories": _typed(_concat(parts), "code", np.float64),
        "inputs": {
            "handle_unknown": np.asarray(["value" if value_mode else "error"] * len(cols),
                                         dtype=object),
            "unknown_value": np.full(len(cols), unknown_value),
            "field": np.asarray([_field_name(g, c) for c in cols], dtype=object),
        },
    }
    g.add_step("ordinal", name="ordinal_encoder", inputs=cols, outputs=outs, family=FAMILY,
               tables=tables, elementwise=True, nan_out="none")
    for c, o, nan in zip(cols, outs, nan_reaches, strict=True):
        g.nan_src[o] = g.nan_src[c] if nan else frozenset()
        g.inf_src[o] = frozenset()
        if value_mode and math.isnan(unknown_value) and g.is_codes(c):
            # an unseen category becomes NaN: refused wherever NaN is refused downstream
            g.unknown_src[o] = frozenset([g.code_origin[c]])
    return outs


@register("sklearn.KBinsDiscretizer")
def export_kbins_discretizer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _check_width(est, cols)
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"KBinsDiscretizer received string column '{c}': it bins "
                              "numbers only")
    # validate_data refuses NaN and inf
    g.require(cols, nan=False, inf=False)
    inp: list[int] = []
    edge: list[float] = []
    n_out = 0
    onehot = est.encode in ("onehot", "onehot-dense")
    for j, (edges, n_bins) in enumerate(zip(est.bin_edges_, est.n_bins_, strict=True)):
        e = np.asarray(edges, dtype=np.float64)
        if len(e) - 1 != int(n_bins):
            raise ExportError(f"KBinsDiscretizer feature {j}: {len(e)} edges for "
                              f"{n_bins} bins")
        inp += [j] * len(e)
        edge += e.tolist()
        n_out += len(e) - 1 if onehot else 1
    names = _output_names(est, n_out)
    outs = g.new_columns("kbins", n_out) if names is None else g.new_columns(
        "kbins", names=names)
    float32_input = est.dtype is not None and np.dtype(est.dtype) == np.float32
    g.add_step("kbins", name="kbins_discretizer", inputs=cols, outputs=outs, family=FAMILY,
               params={"encode": "onehot" if onehot else "ordinal",
                       "float32_input": bool(float32_input)},
               tables={"edges": {"input": np.asarray(inp, dtype=np.int32),
                                 "edge": np.asarray(edge, dtype=np.float64)}},
               elementwise=not onehot, nan_out="none")
    return outs
