"""``tablescore drift BUNDLE --data FILE [--json OUT.json] [--out OUT.html]``.

Exit status: 0 when every feature and output stays below the alert threshold, 1 when one
reaches it (2: bad usage or data, 3: bad bundle, 4: an output cannot be written).
"""

from __future__ import annotations

import argparse
import sys

from ..argtypes import positive_int


def cmd_drift(args: argparse.Namespace) -> int:
    from ..files import atomic_output, check_output
    from ..model import load
    from .drift import Thresholds
    from .report import drift_report, dumps

    try:
        thresholds = Thresholds.parse(args.thresholds, option="--thresholds")
    except ValueError as exc:
        from ..errors import InputError

        raise InputError(str(exc)) from None
    outs = [check_output(p) for p in (args.json, args.out) if p]
    model = load(args.bundle)
    report = drift_report(model, args.data, reference=args.reference, thresholds=thresholds,
                          batch_rows=args.batch_rows, threads=args.threads)
    # written under a temporary name, then renamed into place (permissions as umask says)
    if args.json:
        with atomic_output(outs[0]) as tmp:
            tmp.write_text(dumps(report), encoding="utf-8")
    if args.out:
        with atomic_output(outs[-1]) as tmp:
            tmp.write_text(report.to_html(plots=args.plots), encoding="utf-8")
    width = max([len(d.name) for d in report.drift] + [7])
    print(f"{'feature':<{width}}  role    PSI       JS        level")
    for _, d in report.ranked():
        psi = "n/a" if d.psi != d.psi else f"{d.psi:.4f}"
        js = "n/a" if d.js != d.js else f"{d.js:.4f}"
        print(f"{d.name:<{width}}  {d.role:<6}  {psi:<8}  {js:<8}  "
              f"{thresholds.level(d.psi)}")
    if report.unscored_rows:
        print(f"tablescore drift: warning: {report.unscored_note()}", file=sys.stderr)
    print(f"{report.current_rows} rows against {report.reference_rows} reference rows in "
          f"{report.seconds:.2f} s: {'DRIFT' if report.drifted else 'no drift'} "
          f"(max PSI {report.max_psi:.4f}, alert at {thresholds.alert})", file=sys.stderr)
    return 1 if report.drifted else 0


def _plots(text: str) -> int | None:
    """argparse type of ``--plots``: an integer >= 0, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'all': {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``drift`` to the ``tablescore`` parser."""
    from .report import DEFAULT_PLOTS

    d = sub.add_parser("drift", help="compare a data file with a bundle's reference profile "
                       "(PSI, JS distance per feature and output)",
                       description="Compare the distribution of a data file with the "
                       "bundle's reference profile: PSI and Jensen-Shannon distance per input "
                       "and output, sorted by drift. Exit 0 below the alert threshold, 1 past "
                       "it.")
    d.add_argument("bundle", help="bundle directory")
    d.add_argument("--data", required=True, help="CSV or Parquet of current inputs (output "
                   "columns named like the model's outputs are used, else the model scores)")
    d.add_argument("--json", default=None, metavar="OUT.json", help="write the report as JSON")
    d.add_argument("--out", default=None, metavar="OUT.html",
                   help="write the report as HTML with the histograms")
    d.add_argument("--reference", default=None, metavar="FILE",
                   help="compare with this data file instead of the bundle's profile")
    d.add_argument("--thresholds", default="0.1,0.2", metavar="WARN,ALERT",
                   help="PSI levels (default 0.1,0.2); exit 1 from ALERT on")
    d.add_argument("--plots", type=_plots, default=DEFAULT_PLOTS, metavar="N|all",
                   help="detailed histograms in --out: every feature at the warn or alert "
                   f"level and the N highest by PSI (default {DEFAULT_PLOTS}; all: every "
                   "feature); the others have a small chart in the table")
    d.add_argument("--threads", type=positive_int, default=None,
                   help="threads counting columns (default: the CPUs, at most 8)")
    d.add_argument("--batch-rows", type=positive_int, default=1 << 16, help=argparse.SUPPRESS)
    d.set_defaults(fn=cmd_drift)
