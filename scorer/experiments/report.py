"""An experiment's analysis: exposures (who saw which arm, when) joined with outcomes (each
unit's metric) into per-arm comparisons against the control arm, a sample-ratio check, a
long-run comparison of the permanent control group, and a daily series of looks.

:func:`report` takes DataFrames and returns a :class:`Report` (its ``data`` is the JSON
document, keys in docs/experiments.md (Analysis)); :func:`load_exposures` and
:func:`load_outcomes` read the files; :func:`render_html` draws the self-contained page.

Choices (each documented in docs/experiments.md (Analysis)):

- a unit's arm, holdout flag and exposure day are those of its first exposure (by ``time``);
  units seen in more than one arm are counted and, by default, kept in their first arm
  (intent to treat: the first assignment is the randomised one; dropping switchers can bias
  the comparison when switching depends on the arm). ``multi_arm="exclude"`` drops them;
- rows of the arm ``shadow`` (a shadow version scored off the request path: the unit saw
  its own arm's answer) are not exposures and are ignored;
- holdout units (the permanent control group) are left out of the arm comparisons and the
  sample-ratio test (they are assigned outside the arms' weights) and compared, as their own
  control, against all other units: the long-run lift of everything the experiment shipped;
- exposed units without an outcome row are excluded (``missing_outcome="exclude"``) or
  counted as 0 (``"zero"``: for counts and conversions, where no row means no event);
  outcome rows of units never exposed are ignored; both are counted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: the JSON document's schema name and version (bumped on an incompatible key change)
SCHEMA = "tablescore.experiment-report/1"
#: the arm name of shadow-scored rows in the exposure log (not an exposure)
SHADOW_ARM = "shadow"
_EXPOSURE_COLUMNS = ("time", "unit", "arm", "holdout")


class ExperimentDataError(InputError):
    """Exposures or outcomes cannot be analysed (missing files or columns, no control arm,
    a weight for no arm, ...): a usage error, exit status 2."""


@dataclass
class Report:
    """A computed report.

    Attributes
    ----------
    data : dict
        The JSON document (only JSON types; ``None`` where a value is undefined).
    units : pandas.DataFrame, shape (units, 5 or 6)
        The analysed units: ``unit``, ``arm``, ``holdout``, ``day`` (UTC date of the first
        exposure), ``y`` (the metric), ``x`` (the covariate, when one is given).
    """

    data: dict[str, Any]
    units: pd.DataFrame = field(repr=False)


# --- reading -----------------------------------------------------------------------------------
def _postgres_exposures(url: str, experiment: str) -> pd.DataFrame:
    from .postgres import read_exposures

    return read_exposures(url, experiment)


#: URL scheme -> reader of an exposure log in a database; a source without ``scheme://`` is
#: a Parquet directory
EXPOSURE_READERS: dict[str, Any] = {
    "postgresql": _postgres_exposures,
    "postgres": _postgres_exposures,
}


def load_exposures(directory: str | os.PathLike[str], experiment: str) -> pd.DataFrame:
    """Read the exposure log of ``experiment``: every ``*.parquet`` in ``DIR/<experiment>/``
    (or in ``DIR`` itself when it holds the files directly), or, for a
    ``postgresql://...`` URL, its rows of the table ``tablescore_exposures``.

    Files being written (``.name.tmp``) are not matched; columns other than the four used are
    not read (``out.*`` may differ in type between files).

    Parameters
    ----------
    directory : path-like or str
        The exposure log's root directory, or a database URL whose scheme
        :data:`EXPOSURE_READERS` knows.
    experiment : str
        The experiment's name; rows of other experiments are dropped.

    Returns
    -------
    pandas.DataFrame, shape (exposures, 4)
        ``time``, ``unit``, ``arm``, ``holdout``.

    Raises
    ------
    ExperimentDataError
        No such directory, no Parquet file in it, an unreadable file or a missing column;
        an unreachable database, or no row of the experiment in it.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    text = os.fspath(directory)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        reader = EXPOSURE_READERS.get(scheme)
        if reader is None:
            raise ExperimentDataError(f"unknown exposure log '{scheme}://...': give a "
                                      "directory or postgresql://USER@HOST:PORT/DB")
        return reader(text, experiment)
    root = Path(directory)
    d = root / experiment
    if not d.is_dir():
        if not root.is_dir():
            raise ExperimentDataError(f"exposure directory '{root}' does not exist")
        if not list(root.glob("*.parquet")):
            raise ExperimentDataError(f"no exposures of experiment '{experiment}': "
                                      f"'{d}' does not exist")
        d = root
    files = sorted(str(p) for p in d.glob("*.parquet") if p.is_file())
    if not files:
        raise ExperimentDataError(f"no exposure files (*.parquet) in '{d}': has the "
                                  f"experiment '{experiment}' served any request yet?")
    schema = pa.schema([("time", pa.timestamp("us", tz="UTC")), ("experiment", pa.string()),
                        ("unit", pa.string()), ("arm", pa.string()),
                        ("holdout", pa.bool_())])
    try:
        dataset = ds.dataset(files, format="parquet", schema=schema)
        table = dataset.to_table(filter=ds.field("experiment") == experiment)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ExperimentDataError(f"exposure files in '{d}' cannot be read: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
    df = table.to_pandas()
    for col in _EXPOSURE_COLUMNS:
        if df[col].isna().all() and len(df):
            raise ExperimentDataError(f"exposure files in '{d}' have no column '{col}'")
    return df.drop(columns="experiment")


def load_outcomes(path: str | os.PathLike[str], *, unit_column: str = "unit") -> pd.DataFrame:
    """Read an outcomes table (CSV or Parquet): a unit id column and metric columns; the
    unit ids of a CSV as text (``00042`` stays ``00042``, as the exposure log holds it).

    Raises
    ------
    DataFileError
        The file is missing, empty or not CSV / Parquet.
    """
    from ..files import read_table

    return read_table(path, text_columns=[unit_column])


def parse_weights(text: str) -> dict[str, float]:
    """``control=0.5,candidate=0.5`` -> ``{"control": 0.5, "candidate": 0.5}``.

    Raises
    ------
    ExperimentDataError
        Not ``arm=number`` pairs, a negative weight, or all zero.
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = math.nan
        if not sep or not name.strip() or not (w >= 0 and math.isfinite(w)):
            raise ExperimentDataError(f"--weights: '{part}' is not arm=weight (a number >= 0)")
        out[name.strip()] = w
    if not out or sum(out.values()) <= 0:
        raise ExperimentDataError("--weights: give arm=weight pairs with a positive sum")
    return out


# --- the analysis --------------------------------------------------------------------------
def report(exposures: pd.DataFrame, outcomes: pd.DataFrame, *, metric: str | None = None,
           experiment: str | None = None, weights: Mapping[str, float] | None = None,
           control: str = "control", alpha: float = 0.05, covariate: str | None = None,
           unit_column: str = "unit", missing_outcome: str = "exclude",
           multi_arm: str = "first", test: str = "auto", mixing_sd: float | None = None
           ) -> Report:
    """Analyse an experiment.

    Parameters
    ----------
    exposures : pandas.DataFrame, shape (exposures, >= 4)
        ``time``, ``unit``, ``arm``, ``holdout`` (as :func:`load_exposures` returns; an
        ``experiment`` column, if present, is filtered on ``experiment``).
    outcomes : pandas.DataFrame, shape (units, >= 2)
        ``unit_column`` and the metric (and covariate) columns, one row per unit.
    metric : str, optional
        The metric column; by default the only numeric column other than the unit id and
        the covariate.
    experiment : str, optional
        The experiment's name (recorded; filters an ``experiment`` column).
    weights : mapping of str to float, optional
        The arms' configured shares, for the sample-ratio test; default equal shares over
        the arms seen.
    control : str
        The arm the others are compared against.
    alpha : float
        1 - the intervals' coverage, and the tests' level.
    covariate : str, optional
        A pre-period outcome column for CUPED.
    unit_column : str
        The unit id column of ``outcomes``.
    missing_outcome : {"exclude", "zero"}
        Exposed units without an outcome row (or with an empty metric): left out, or 0.
    multi_arm : {"first", "exclude"}
        Units exposed to more than one arm: kept in their first arm, or left out.
    test : {"auto", "welch", "proportion"}
        ``auto``: the two-proportion z-test when the metric is 0/1 (and no covariate),
        Welch's t-test otherwise.
    mixing_sd : float, optional
        The mSPRT's mixing standard deviation in per-unit standard deviations (default
        :data:`~scorer.experiments.stats.DEFAULT_MIXING_SD`).

    Returns
    -------
    Report

    Raises
    ------
    ExperimentDataError
        Missing columns, no exposures, no control arm, a metric that is not numeric, ...
    """
    import pandas as pd

    from . import stats as S

    if missing_outcome not in ("exclude", "zero"):
        raise ExperimentDataError(f"missing_outcome must be 'exclude' or 'zero', not "
                                  f"'{missing_outcome}'")
    if multi_arm not in ("first", "exclude"):
        raise ExperimentDataError(f"multi_arm must be 'first' or 'exclude', not '{multi_arm}'")
    if test not in ("auto", "welch", "proportion"):
        raise ExperimentDataError(f"test must be 'auto', 'welch' or 'proportion', not '{test}'")
    if not 0 < alpha < 1:
        raise ExperimentDataError(f"alpha must be between 0 and 1, not {alpha}")
    mixing_sd = S.DEFAULT_MIXING_SD if mixing_sd is None else float(mixing_sd)
    if not mixing_sd > 0:
        raise ExperimentDataError(f"the mixing standard deviation must be > 0, not {mixing_sd}")

    # --- exposures -> one row per unit ---------------------------------------------------
    missing = [c for c in _EXPOSURE_COLUMNS if c not in exposures.columns]
    if missing:
        raise ExperimentDataError(f"exposures lack the column(s) {', '.join(missing)}")
    ex = exposures
    if experiment is not None and "experiment" in ex.columns:
        ex = ex[ex["experiment"] == experiment]
    rows = len(ex)
    shadow = ex["arm"] == SHADOW_ARM
    ex = ex.loc[~shadow, list(_EXPOSURE_COLUMNS)].dropna(subset=["time", "unit", "arm"])
    if ex.empty:
        raise ExperimentDataError("no exposures to analyse" + (
            f" for experiment '{experiment}'" if experiment else ""))
    ex = ex.assign(unit=ex["unit"].astype(str), time=pd.to_datetime(ex["time"], utc=True),
                   holdout=ex["holdout"].fillna(False).astype(bool))
    ex = ex.sort_values("time", kind="stable")
    arms_per_unit = ex.groupby("unit", sort=False)["arm"].nunique()
    units = ex.drop_duplicates("unit").set_index("unit")
    units["multi"] = arms_per_unit.reindex(units.index).to_numpy() > 1
    units["day"] = units["time"].dt.tz_convert("UTC").dt.date
    n_multi = int(units["multi"].sum())
    n_units = len(units)

    # sample ratio: every non-holdout unit in its first arm, before any exclusion (the check
    # is on assignment and logging, which exclusions would mask)
    assigned = units.loc[~units["holdout"], "arm"].value_counts()
    srm = _srm(assigned, weights, control, S)

    exposed = units.index  # (every exposed unit: an outcome of an excluded one has one)
    if multi_arm == "exclude":
        units = units[~units["multi"]]

    # --- outcomes ----------------------------------------------------------------------------
    if unit_column not in outcomes.columns:
        raise ExperimentDataError(f"outcomes have no unit column '{unit_column}' (columns: "
                                  f"{', '.join(map(str, outcomes.columns))}); name it with "
                                  "--unit-column")
    metric = _pick_metric(outcomes, metric, unit_column, covariate)
    cols = [metric] + ([covariate] if covariate else [])
    for c in cols:
        if c not in outcomes.columns:
            raise ExperimentDataError(f"outcomes have no column '{c}'")
        if not (pd.api.types.is_numeric_dtype(outcomes[c])
                or pd.api.types.is_bool_dtype(outcomes[c])):
            raise ExperimentDataError(f"outcome column '{c}' is not numeric "
                                      f"({outcomes[c].dtype})")
    out = outcomes[[unit_column, *cols]].copy()
    out[unit_column] = _unit_text(out[unit_column])
    no_id = out[unit_column].isna()
    out = out[~no_id]  # (an outcome without a unit id belongs to no exposed unit)
    dup = out[unit_column].duplicated()
    if dup.any():
        raise ExperimentDataError(f"outcomes have {int(dup.sum())} duplicate unit id(s), e.g. "
                                  f"'{out.loc[dup, unit_column].iloc[0]}': one row per unit")
    out = out.set_index(unit_column)
    orphans = int((exposed.get_indexer(out.index) < 0).sum()) + int(no_id.sum())
    joined = units.join(out, how="left")
    y = joined[metric].astype(np.float64)
    no_outcome = y.isna()
    n_no_outcome = int(no_outcome.sum())
    if missing_outcome == "zero":
        y = y.fillna(0.0)
    joined = joined.assign(y=y)
    if missing_outcome == "exclude":
        joined = joined[~no_outcome]
    if covariate:
        x = joined[covariate].astype(np.float64)
        n_no_covariate = int(x.isna().sum())
        # the mean imputation gives those units no adjustment, and keeps the estimate unbiased
        # (the fill value does not depend on the arm)
        joined = joined.assign(x=x.fillna(x.mean() if x.notna().any() else 0.0))
    table = joined.reset_index()[["unit", "arm", "holdout", "day", "y"]
                                 + (["x"] if covariate else [])]
    if table.empty:
        raise ExperimentDataError("no exposed unit has an outcome: do the unit ids of the "
                                  "outcomes match the exposures'? (or pass "
                                  "--missing-outcome zero)")

    binary = bool(table["y"].isin([0.0, 1.0]).all())
    if test == "proportion" and not binary:
        raise ExperimentDataError(f"the two-proportion test needs a 0/1 metric; '{metric}' "
                                  "has other values")
    kind = "welch" if covariate or test == "welch" or not binary else "proportion"

    # --- comparisons -------------------------------------------------------------------------
    main = table[~table["holdout"]]
    if control not in set(main["arm"]):
        raise ExperimentDataError(f"no unit of the control arm '{control}' has an outcome "
                                  f"(arms: {', '.join(sorted(set(main['arm'])))}); name "
                                  "it with --control")
    days = sorted(table["day"].unique())
    arms: dict[str, Any] = {}
    for arm, g in main.groupby("arm", sort=True):
        arms[str(arm)] = _describe(g, covariate)
    ctrl = main[main["arm"] == control]
    comparisons: dict[str, Any] = {}
    for arm in arms:
        if arm == control:
            continue
        comparisons[arm] = _compare(main[main["arm"] == arm], ctrl, days, kind, alpha,
                                    covariate, mixing_sd, arm, control, S)
    hold = table[table["holdout"]]
    holdout = None
    if len(hold):
        holdout = _compare(main, hold, days, kind, alpha, covariate, mixing_sd,
                           "exposed", "holdout", S)
        holdout["holdout"] = _describe(hold, covariate)

    warnings = []
    if srm["flag"]:
        warnings.append(f"sample-ratio mismatch (p = {srm['p_value']:.2g} < "
                        f"{S.SRM_THRESHOLD}): the arms' sizes do not match their weights; "
                        "the comparisons are not trustworthy until the cause is found")
    if n_multi:
        warnings.append(f"{n_multi} unit(s) were exposed to more than one arm ("
                        + ("kept in their first arm)" if multi_arm == "first" else "excluded)"))
    if n_no_outcome:
        warnings.append(f"{n_no_outcome} exposed unit(s) have no outcome ("
                        + ("excluded)" if missing_outcome == "exclude" else "counted as 0)"))

    times = ex["time"]
    data = {
        "schema": SCHEMA,
        "experiment": experiment,
        "metric": metric,
        "covariate": covariate,
        "control": control,
        "alpha": alpha,
        "test": kind,
        "missing_outcome": missing_outcome,
        "multi_arm": multi_arm,
        "sequential": {"method": "msprt-normal-mixture", "mixing_sd": mixing_sd},
        "exposures": {
            "rows": rows,
            "shadow_rows": int(shadow.sum()),
            "units": n_units,
            "first": times.iloc[0].isoformat(),
            "last": times.iloc[-1].isoformat(),
            "days": [d.isoformat() for d in days],
        },
        "units": {
            "analysed": len(table),
            "holdout": len(hold),
            "multi_arm": n_multi,
            "without_outcome": n_no_outcome,
            "outcomes_without_exposure": orphans,
            "without_covariate": n_no_covariate if covariate else None,
        },
        "srm": srm,
        "arms": arms,
        "comparisons": comparisons,
        "holdout": holdout,
        "warnings": warnings,
    }
    return Report(_jsonable(data), table)


def _unit_text(ids: pd.Series) -> pd.Series:
    """Unit ids as the exposure log's text: integers as integers even where a missing id made
    the column float (``1000.0`` is unit ``1000``); a missing id matches no unit."""
    import pandas as pd

    if pd.api.types.is_float_dtype(ids):
        vals = ids.to_numpy()
        whole = np.isfinite(vals) & (vals == np.round(vals)) & (np.abs(vals) < 2.0 ** 53)
        if whole[~np.isnan(vals)].all():
            return pd.Series([str(int(v)) if ok else "" for v, ok in zip(vals, whole,
                                                                          strict=True)],
                             index=ids.index, dtype=object).where(~np.isnan(vals), None)
    return ids.astype(str).where(ids.notna(), None)


def _pick_metric(outcomes: pd.DataFrame, metric: str | None, unit_column: str,
                 covariate: str | None) -> str:
    import pandas as pd

    if metric is not None:
        return metric
    numeric = [str(c) for c in outcomes.columns if c not in (unit_column, covariate)
               and pd.api.types.is_numeric_dtype(outcomes[c])]
    if len(numeric) != 1:
        raise ExperimentDataError("name the metric with --metric: the outcomes have "
                                  + (f"{len(numeric)} numeric columns ({', '.join(numeric)})"
                                     if numeric else "no numeric column"))
    return numeric[0]


def _srm(assigned: pd.Series, weights: Mapping[str, float] | None, control: str,
         S: Any) -> dict[str, Any]:
    """The sample-ratio test's section of the document."""
    seen = [str(a) for a in assigned.index]
    if weights is None:
        w = {a: 1.0 for a in sorted(set(seen) | {control})}
    else:
        w = {str(k): float(v) for k, v in weights.items()}
        unknown = sorted(set(seen) - set(w))
        if unknown:
            raise ExperimentDataError(f"arm(s) {', '.join(unknown)} in the exposures have no "
                                      f"weight (weights given for {', '.join(sorted(w))})")
        w = {a: v for a, v in w.items() if v > 0 or a in seen}
    names = sorted(w)
    obs = np.array([int(assigned.get(a, 0)) for a in names], dtype=np.float64)
    ws = np.array([w[a] for a in names])
    total = ws.sum()
    if len(names) < 2 or obs.sum() == 0:
        chi2, df, p = math.nan, max(len(names) - 1, 0), math.nan
    else:
        chi2, df, p = S.srm_test(obs, ws)
    return {
        "observed": {a: int(o) for a, o in zip(names, obs, strict=True)},
        "expected": {a: float(obs.sum() * v / total) for a, v in zip(names, ws, strict=True)},
        "weights": {a: float(v / total) for a, v in zip(names, ws, strict=True)},
        "weights_source": "given" if weights is not None else "equal",
        "chi2": chi2,
        "df": df,
        "p_value": p,
        "threshold": S.SRM_THRESHOLD,
        "flag": bool(p < S.SRM_THRESHOLD) if not math.isnan(p) else False,
    }


def _describe(g: pd.DataFrame, covariate: str | None) -> dict[str, Any]:
    y = g["y"].to_numpy(np.float64)
    d = {"units": len(y), "mean": float(y.mean()) if len(y) else None,
         "std": float(y.std(ddof=1)) if len(y) > 1 else None}
    if covariate:
        d["covariate_mean"] = float(g["x"].mean()) if len(y) else None
    return d


def _compare(t: pd.DataFrame, c: pd.DataFrame, days: list, kind: str, alpha: float,
             covariate: str | None, mixing_sd: float, name: str, control: str,
             S: Any) -> dict[str, Any]:
    """One comparison (``t`` against ``c``): the fixed-horizon test on all units, and the
    daily series of cumulative looks with the always-valid test."""
    yt, yc = t["y"].to_numpy(np.float64), c["y"].to_numpy(np.float64)
    out: dict[str, Any] = {"arm": name, "control": control, "units": len(yt),
                           "control_units": len(yc), "test": kind}
    if len(yt) < 2 or len(yc) < 2:
        out["error"] = "fewer than 2 units with an outcome in an arm"
        return out
    cuped = None
    if covariate:
        xt, xc = t["x"].to_numpy(np.float64), c["x"].to_numpy(np.float64)
        y, x = np.concatenate([yt, yc]), np.concatenate([xt, xc])
        theta = float(S.cuped_theta(y, x))
        adj = S.cuped_adjust(y, x, theta)
        raw = S.welch_test(*_m(yt), *_m(yc), alpha=alpha)
        at, ac = adj[: len(yt)], adj[len(yt):]
        res = S.welch_test(*_m(at), *_m(ac), alpha=alpha)
        lift = S.relative_lift(*_m(at), *_m(ac), alpha=alpha)
        cuped = {"theta": theta, "variance_reduction": float(1.0 - res.se**2 / raw.se**2),
                 "unadjusted_difference": float(raw.difference),
                 "unadjusted_ci": [float(raw.ci_low), float(raw.ci_high)],
                 "unadjusted_p_value": float(raw.p_value)}
        mt, mc = float(at.mean()), float(ac.mean())
    elif kind == "proportion":
        res = S.two_proportion_test(yt.sum(), len(yt), yc.sum(), len(yc), alpha=alpha)
        lift = S.relative_lift(*_m(yt), *_m(yc), alpha=alpha)
        mt, mc = float(yt.mean()), float(yc.mean())
    else:
        res = S.welch_test(*_m(yt), *_m(yc), alpha=alpha)
        lift = S.relative_lift(*_m(yt), *_m(yc), alpha=alpha)
        mt, mc = float(yt.mean()), float(yc.mean())

    daily = _daily(t, c, days, kind, alpha, covariate, mixing_sd, S)
    out.update({
        "mean": mt,
        "control_mean": mc,
        "difference": float(res.difference),
        "difference_ci": [float(res.ci_low), float(res.ci_high)],
        "relative_lift": float(lift[0]),
        "relative_lift_ci": [float(lift[1]), float(lift[2])],
        "statistic": float(res.statistic),
        "df": float(res.df) if kind == "welch" else None,
        "p_value": float(res.p_value),
        "significant": bool(res.p_value < alpha),
        "sequential": {
            "p_value": daily[-1]["sequential_p_value"],
            "ci": daily[-1]["sequential_ci"],
            "significant": bool(daily[-1]["sequential_p_value"] < alpha),
            "looks": len(daily),
        },
        "cuped": cuped,
        "daily": daily,
    })
    return out


def _m(y: np.ndarray) -> tuple[int, float, float]:
    return len(y), float(y.mean()), float(y.var(ddof=1))


def _daily(t: pd.DataFrame, c: pd.DataFrame, days: list, kind: str, alpha: float,
           covariate: str | None, mixing_sd: float, S: Any) -> list[dict[str, Any]]:
    """The looks of a comparison: day ``d`` analyses the units first exposed by the end of
    ``d`` (UTC), with the outcomes as they are now. Cumulative sums per day give every look
    in one pass; values are centred first so the sums of squares do not cancel."""
    index = {d: i for i, d in enumerate(days)}
    cy = float(np.concatenate([t["y"], c["y"]]).mean())
    cx = float(np.concatenate([t["x"], c["x"]]).mean()) if covariate else 0.0

    def sums(g: pd.DataFrame) -> dict[str, np.ndarray]:
        k = g["day"].map(index).to_numpy(np.int64)
        y = g["y"].to_numpy(np.float64) - cy
        x = g["x"].to_numpy(np.float64) - cx if covariate else np.zeros_like(y)
        w = {"n": None, "y": y, "yy": y * y, "x": x, "xx": x * x, "xy": x * y}
        return {key: np.cumsum(np.bincount(k, weights=v, minlength=len(days)))
                for key, v in w.items()}

    st, sc = sums(t), sums(c)
    if covariate:  # theta pooled over both groups, per look
        tot = {k: st[k] + sc[k] for k in st}
        with np.errstate(divide="ignore", invalid="ignore"):
            sxx = tot["xx"] - tot["x"] ** 2 / tot["n"]
            theta = np.where(sxx > 0, (tot["xy"] - tot["x"] * tot["y"] / tot["n"]) / sxx, 0.0)
            xbar = tot["x"] / tot["n"]
    else:
        theta, xbar = np.zeros(len(days)), np.zeros(len(days))

    def moments(s: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = s["n"]
        with np.errstate(divide="ignore", invalid="ignore"):
            my, mx = s["y"] / n, s["x"] / n
            vy = (s["yy"] - s["y"] * my) / (n - 1)
            vx = (s["xx"] - s["x"] * mx) / (n - 1)
            cov = (s["xy"] - s["x"] * my) / (n - 1)
        mean = my - theta * (mx - xbar) + cy
        var = np.maximum(vy - 2 * theta * cov + theta**2 * vx, 0.0)
        return n, mean, var

    (n1, m1, v1), (n2, m2, v2) = moments(st), moments(sc)
    if kind == "proportion":
        res = S.two_proportion_test(m1 * n1, n1, m2 * n2, n2, alpha=alpha)
    else:
        res = S.welch_test(n1, m1, v1, n2, m2, v2, alpha=alpha)
    lift = S.relative_lift(n1, m1, v1, n2, m2, v2, alpha=alpha)
    with np.errstate(invalid="ignore"):
        se2 = v1 / n1 + v2 / n2  # the sequential test's variance: Welch's for both kinds
    seq = S.msprt(m1 - m2, se2, S.mixing_tau2(v1, v2, mixing_sd), alpha=alpha)
    p_seq, lo_seq, hi_seq = S.always_valid(seq)
    return [{
        "date": d.isoformat(),
        "units": int(n1[i]),
        "control_units": int(n2[i]),
        "mean": float(m1[i]),
        "control_mean": float(m2[i]),
        "difference": float(res.difference[i]),
        "ci": [float(res.ci_low[i]), float(res.ci_high[i])],
        "p_value": float(res.p_value[i]),
        "relative_lift": float(lift[0][i]),
        "relative_lift_ci": [float(lift[1][i]), float(lift[2][i])],
        "sequential_ci": [float(lo_seq[i]), float(hi_seq[i])],
        "sequential_p_value": float(p_seq[i]),
    } for i, d in enumerate(days)]


def _jsonable(v: Any) -> Any:
    """Plain JSON types; NaN and infinities (undefined statistics) as ``None``."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# --- the page ----------------------------------------------------------------------------------
def render_html(rep: Report) -> str:
    """The report as one self-contained HTML page: the summary tables, the lift over time of
    each comparison (the fixed-horizon interval and the confidence sequence, by exposure
    day) and the metric's distribution per arm, as PNG images embedded in base64.

    Parameters
    ----------
    rep : Report

    Returns
    -------
    str
    """
    from html import escape

    d = rep.data
    alpha = d["alpha"]
    level = f"{100 * (1 - alpha):g}%"
    title = f"Experiment {d['experiment'] or ''}: {d['metric']}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"]
    parts.append(f"<p>{d['exposures']['rows']} exposures of {d['exposures']['units']} units, "
                 f"{escape(d['exposures']['first'])} to {escape(d['exposures']['last'])}; "
                 f"{d['units']['analysed']} units analysed ({d['units']['holdout']} in the "
                 f"permanent control group). Test: {escape(d['test'])}"
                 + (f", CUPED on <code>{escape(d['covariate'])}</code>" if d["covariate"]
                    else "") + f"; intervals {level}.</p>")
    for w in d["warnings"]:
        parts.append(f"<p class='warn'>{escape(w)}</p>")

    srm = d["srm"]
    rows = "".join(f"<tr><td>{escape(a)}</td><td>{srm['observed'][a]}</td>"
                   f"<td>{_f(srm['expected'][a], '.1f')}</td><td>{_f(srm['weights'][a])}</td>"
                   "</tr>" for a in srm["observed"])
    parts.append(f"<h2>Sample ratio</h2><table><tr><th>arm</th><th>units</th><th>expected"
                 f"</th><th>weight ({escape(srm['weights_source'])})</th></tr>{rows}</table>"
                 f"<p class='{'warn' if srm['flag'] else 'ok'}'>chi-square {_f(srm['chi2'])}, "
                 f"df {srm['df']}, p = {_f(srm['p_value'])} "
                 + ("(mismatch)" if srm["flag"] else f"(no mismatch at {srm['threshold']})")
                 + "</p>")

    comps = list(d["comparisons"].values()) + ([d["holdout"]] if d["holdout"] else [])
    head = ("<tr><th>arm</th><th>vs</th><th>units</th><th>mean</th><th>control mean</th>"
            f"<th>difference [{level} CI]</th><th>relative lift [{level} CI]</th>"
            "<th>p-value</th><th>always-valid p</th><th>confidence sequence</th>"
            "<th>CUPED variance reduction</th></tr>")
    body = []
    for c in comps:
        if "error" in c:
            body.append(f"<tr><td>{escape(c['arm'])}</td><td>{escape(c['control'])}</td>"
                        f"<td colspan='9'>{escape(c['error'])}</td></tr>")
            continue
        seq = c["sequential"]
        vr = _f(c["cuped"]["variance_reduction"], ".1%") if c["cuped"] else "-"
        body.append(
            f"<tr><td>{escape(c['arm'])}</td><td>{escape(c['control'])}</td>"
            f"<td>{c['units']} / {c['control_units']}</td><td>{_f(c['mean'])}</td>"
            f"<td>{_f(c['control_mean'])}</td><td>{_f(c['difference'])} "
            f"[{_f(c['difference_ci'][0])}, {_f(c['difference_ci'][1])}]</td>"
            f"<td>{_f(c['relative_lift'], '.2%')} [{_f(c['relative_lift_ci'][0], '.2%')}, "
            f"{_f(c['relative_lift_ci'][1], '.2%')}]</td>"
            f"<td class='{'sig' if c['significant'] else ''}'>{_f(c['p_value'])}</td>"
            f"<td class='{'sig' if seq['significant'] else ''}'>{_f(seq['p_value'])}</td>"
            f"<td>[{_f(seq['ci'][0])}, {_f(seq['ci'][1])}]</td><td>{vr}</td></tr>")
    parts.append(f"<h2>Comparisons</h2><table>{head}{''.join(body)}</table>"
                 "<p>The p-value and interval are fixed-horizon: valid at one look planned in "
                 "advance. The always-valid p-value and the confidence sequence stay valid "
                 "however often the report is read (mSPRT, normal mixture, mixing SD "
                 f"{d['sequential']['mixing_sd']:g} per-unit SDs).</p>")

    parts.append("<h2>Lift over time</h2><p>Each day analyses the units first exposed by "
                 "its end.</p>")
    for c in comps:
        if "error" not in c:
            parts.append(f"<h3>{escape(c['arm'])} vs {escape(c['control'])}</h3>"
                         + _img(_lift_chart(c, level), f"lift of {c['arm']} over time"))
    parts.append("<h2>Distributions</h2>"
                 + _img(_distribution_chart(rep), "the metric's distribution per arm"))
    parts.append("</body></html>")
    return "\n".join(parts)


_CSS = ("body{font-family:sans-serif;max-width:72em;margin:1em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:right}th{background:#eee}.warn{color:#a00;font-weight:bold}.ok{color:#060}"
        ".sig{font-weight:bold}img{max-width:100%}")


def _f(v: float | None, fmt: str = ".4g") -> str:
    return "-" if v is None else format(v, fmt)


def _img(png: bytes, alt: str) -> str:
    import base64
    from html import escape

    return (f"<p><img alt='{escape(alt)}' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode('ascii')}'></p>")


def _png(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return buf.getvalue()


def _lift_chart(c: dict[str, Any], level: str) -> bytes:
    """The cumulative difference by exposure day, with both intervals."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    days = [np.datetime64(x["date"]) for x in c["daily"]]

    def col(key: str, i: int | None = None) -> np.ndarray:
        vals = [x[key] if i is None else x[key][i] for x in c["daily"]]
        return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)

    diff, lo, hi = col("difference"), col("ci", 0), col("ci", 1)
    slo, shi = col("sequential_ci", 0), col("sequential_ci", 1)
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    # an infinite (not yet informative) sequence is drawn to the plot's edge
    span = np.nanmax(np.abs(np.concatenate([lo, hi, diff]))) if np.isfinite(lo).any() else 1.0
    ax.fill_between(days, np.nan_to_num(slo, nan=-3 * span), np.nan_to_num(shi, nan=3 * span),
                    color="tab:orange", alpha=0.25, label="confidence sequence (always valid)")
    ax.fill_between(days, lo, hi, color="tab:blue", alpha=0.45, lw=0,
                    label=f"{level} CI (one look)")
    ax.plot(days, diff, color="tab:blue", marker="o", ms=3, label="difference")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylim(-2 * span, 2 * span)
    ax.set_ylabel(f"{c['arm']} - {c['control']}")
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def _distribution_chart(rep: Report) -> bytes:
    """Histograms of the metric per arm (the holdout group as its own), on shared bins; a
    0/1 metric as each arm's rate."""
    from matplotlib.figure import Figure

    u = rep.units
    groups = {f"{a}": g["y"].to_numpy() for a, g in u[~u["holdout"]].groupby("arm")}
    if u["holdout"].any():
        groups["holdout"] = u.loc[u["holdout"], "y"].to_numpy()
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    if rep.data["test"] == "proportion":
        names = list(groups)
        ax.bar(names, [g.mean() for g in groups.values()], color="tab:blue")
        ax.set_ylabel(f"rate of {rep.data['metric']}")
    else:
        allv = np.concatenate(list(groups.values()))
        lo, hi = np.quantile(allv, [0.005, 0.995])  # the extreme tails would flatten the rest
        bins = np.linspace(lo, hi, 41) if hi > lo else 10
        for name, g in groups.items():
            ax.hist(np.clip(g, lo, hi), bins=bins, density=True, histtype="step", lw=1.5,
                    label=f"{name} (n={len(g)})")
        ax.set_xlabel(f"{rep.data['metric']} (clipped to the 0.5% / 99.5% quantiles)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return _png(fig)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (a reader never sees half
    a report).

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    import tempfile

    from ..files import check_output, writing
    from ..fsutil import apply_umask

    p = check_output(path)
    with writing(p):
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            apply_umask(tmp, directory=False)  # mkstemp made it 0600
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

