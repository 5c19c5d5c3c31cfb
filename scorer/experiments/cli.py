"""``tablescore experiment report``: the analysis of an experiment's exposure log and outcomes
(see docs/experiments.md (Analysis)). Imports nothing heavy until the command runs: the whole
``tablescore`` parser is built on every invocation."""

from __future__ import annotations

import argparse
import json

from ..errors import TablescoreError

_EXTRA = "install the 'experiments' extra (pip install -e '.[experiments]' in a clone)"


def _alpha(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, not '{text}'")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, not '{text}'")
    return v


def cmd_report(args: argparse.Namespace) -> int:
    try:
        from . import report as R
        from . import stats  # noqa: F401  (scipy: fail here, with the remedy, not mid-way)
    except ImportError as exc:
        raise TablescoreError(f"'experiment report' needs {exc.name or 'scipy'}: {_EXTRA}"
                              ) from None
    from ..files import check_output

    check_output(args.json)  # before the work: a path that cannot be written fails at once
    check_output(args.out)
    weights = R.parse_weights(args.weights) if args.weights else None
    outcomes = R.load_outcomes(args.outcomes, unit_column=args.unit_column)
    rep = R.report(R.load_exposures(args.exposures, args.name), outcomes,
                   metric=args.metric, experiment=args.name, weights=weights,
                   control=args.control, alpha=args.alpha, covariate=args.covariate,
                   unit_column=args.unit_column, missing_outcome=args.missing_outcome,
                   multi_arm=args.multi_arm, mixing_sd=args.mixing_sd)
    try:
        html = R.render_html(rep)
    except ImportError as exc:
        raise TablescoreError(f"the HTML report needs {exc.name}: {_EXTRA}") from None
    R.write_text_atomic(json.dumps(rep.data, indent=2, allow_nan=False) + "\n", args.json)
    R.write_text_atomic(html, args.out)
    for w in rep.data["warnings"]:
        print(f"warning: {w}")
    for c in rep.data["comparisons"].values():
        if "error" in c:
            print(f"{c['arm']}: {c['error']}")
            continue
        lo, hi = c["difference_ci"] or (None, None)
        print(f"{c['arm']} vs {c['control']}: difference {_num(c['difference'], '.4g')} "
              f"[{_num(lo, '.4g')}, {_num(hi, '.4g')}], p = {_num(c['p_value'], '.3g')}, "
              f"always-valid p = {_num(c.get('sequential', {}).get('p_value'), '.3g')}")
    print(f"report      {args.out}\njson        {args.json}")
    return 0


def _num(x: float | None, spec: str) -> str:
    """``x`` formatted, or ``n/a`` where the statistic is undefined (JSON null: no variance
    in either arm, say)."""
    return "n/a" if x is None else format(x, spec)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment report`` to the ``tablescore`` parser."""
    e = sub.add_parser("experiment", help="analyse A/B experiments")
    esub = e.add_subparsers(dest="experiment_command", required=True)
    r = esub.add_parser(
        "report", help="per-arm lift, p-values, sample-ratio check, always-valid sequential "
        "test and CUPED from the exposure log and an outcomes table",
        description="Analyse an experiment: DIR/NAME/*.parquet or the table "
        "tablescore_exposures of a PostgreSQL database (the exposure log) joined with "
        "the outcomes table on the unit id. See docs/experiments.md (Analysis).")
    r.add_argument("name", metavar="NAME", help="the experiment's name")
    r.add_argument("--exposures", required=True, metavar="DIR|URL",
                   help="the exposure log: its directory (files under DIR/NAME/) or the "
                   "database a server logged to (postgresql://USER@HOST:PORT/DB)")
    r.add_argument("--outcomes", required=True, metavar="FILE",
                   help="CSV or Parquet: a unit id column and metric columns, one row per unit")
    r.add_argument("--metric", metavar="COLUMN",
                   help="the metric column (default: the only numeric column)")
    r.add_argument("--covariate", metavar="COLUMN",
                   help="a pre-period column for CUPED variance reduction")
    r.add_argument("--unit-column", default="unit", metavar="COLUMN",
                   help="the outcomes' unit id column (default: unit)")
    r.add_argument("--control", default="control", metavar="ARM",
                   help="the arm the others are compared against (default: control)")
    r.add_argument("--weights", metavar="ARM=W,...",
                   help="the arms' configured weights, e.g. control=0.5,candidate=0.5, for "
                   "the sample-ratio test (default: equal)")
    r.add_argument("--alpha", type=_alpha, default=0.05,
                   help="1 - the intervals' coverage (default: 0.05)")
    r.add_argument("--missing-outcome", choices=("exclude", "zero"), default="exclude",
                   help="exposed units without an outcome row: left out (default) or 0")
    r.add_argument("--multi-arm", choices=("first", "exclude"), default="first",
                   help="units exposed to several arms: kept in their first arm (default) or "
                   "left out")
    r.add_argument("--mixing-sd", type=_positive, default=None, metavar="PHI",
                   help="the sequential test's mixing SD, in per-unit SDs (default 0.05: "
                   "tightest near 6,400 units per arm)")
    r.add_argument("--json", required=True, metavar="OUT.json", help="the machine-readable "
                   "report")
    r.add_argument("--out", required=True, metavar="OUT.html",
                   help="the self-contained HTML report")
    r.set_defaults(fn=cmd_report)
