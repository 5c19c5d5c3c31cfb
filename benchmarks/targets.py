"""The speed and faithfulness targets, checked against one run's results.

Each target of the benchmark issue (#6) and of the gRPC service issue (#4) becomes one
:class:`Check` per family (or model x concurrency): the measured ratio, the goal, met or
missed and by how much. Ratios are the ones the tables show (medians of the repeats, within
one run). Because engines are interleaved within every repeat, repeat ``i`` of one engine and
repeat ``i`` of another ran side by side: the *paired* ratio of each repeat is computed too,
and ``repeats_met`` says in how many of them the target held. On a shared machine that is the
honest reading of a figure close to its goal: met in 5 of 5 repeats is a margin, met in 3 of
5 is noise.

    python -m benchmarks.targets benchmarks/results/2026-12-03.json   # print the checks
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report import fmt_diff, fmt_ratio
from .serving import _level

#: engines a batch of tablescore's is compared with ("the best other engine")
BATCH_RIVALS = ("native", "onnxruntime", "tl2cgen")
SINGLE_ROW_VS_NATIVE = 50.0
BATCH_VS_BEST = 1.5
FAITHFUL_ABS = 1e-12
GRPC_VS_ECHO = 1.5
GRPC_LATENCY_VS_MLSERVER = 10.0
GRPC_THROUGHPUT_VS_MLSERVER = 5.0
#: results written before the runner recorded output dtypes: families whose original
#: library returns float32 probabilities (XGBoost computes and returns float32)
_FLOAT32_NATIVE_BEFORE_DTYPES = frozenset({"xgboost"})


@dataclass(frozen=True)
class Check:
    """One target on one scope.

    Attributes
    ----------
    issue : int
        The issue that sets the target.
    target : str
        What is required, in words.
    scope : str
        Family, or model and concurrency.
    value : float or None
        The measured figure (a ratio, or a difference for faithfulness); None when it could
        not be measured (an engine missing or failed).
    goal : float
        The threshold.
    at_least : bool
        True: ``value >= goal`` meets the target; False: ``value <= goal`` does.
    repeats_met : tuple of (int, int) or None
        Paired repeats in which the target held, out of how many.
    note : str
        Context: the rival engine, why a check does not apply, a floor no server can pass.
    """

    issue: int
    target: str
    scope: str
    value: float | None
    goal: float
    at_least: bool = True
    repeats_met: tuple[int, int] | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True / False, or None when there is nothing to judge."""
        if self.value is None:
            return None
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    @property
    def margin(self) -> float | None:
        """How far the value is past the goal (> 1: met with room; < 1: missed), as a
        factor: ``value / goal`` for "at least", ``goal / value`` for "at most"."""
        if self.value is None or self.goal == 0:
            return None
        if self.at_least:
            return self.value / self.goal
        return self.goal / self.value if self.value else float("inf")


# --- helpers ---------------------------------------------------------------------------------
def _ok(eng: dict[str, Any] | None) -> bool:
    return bool(eng) and eng.get("status") == "ok"


def _throughput(eng: dict[str, Any], rows: int, threads: int) -> dict[str, Any] | None:
    for r in eng.get("throughput", []):
        if r["rows"] == rows and r["threads"] == threads and not r.get("rows_scored"):
            return r
    return None


def _paired(ours: Sequence[float], theirs: Sequence[float], goal: float, *,
            higher_is_better: bool, at_least: bool = True) -> tuple[int, int] | None:
    """Repeats in which ours-vs-theirs met the goal, pairing repeat i with repeat i.

    ``higher_is_better``: the figures are rates (ratio = ours / theirs), else times
    (ratio = theirs / ours)."""
    # Lists of different lengths lost a failed repeat somewhere: which ones ran side by side
    # is then unknown, so nothing is paired.
    if not ours or len(ours) != len(theirs):
        return None
    met = n = 0
    for a, b in zip(ours, theirs, strict=True):
        if not a or not b:  # a repeat without a figure is not a repeat
            continue
        n += 1
        ratio = a / b if higher_is_better else b / a
        met += ratio >= goal if at_least else ratio <= goal
    return (met, n) if n else None


# --- the checks ------------------------------------------------------------------------------
def _family_checks(fam: str, fr: dict[str, Any], big: int, most: int) -> list[Check]:
    engines = fr.get("engines", {})
    ours = engines.get("tablescore")
    if fr.get("status") != "ok" or not _ok(ours):
        why = fr.get("reason") if fr.get("status") != "ok" else (ours or {}).get("reason")
        return [Check(6, "tablescore measured", fam, None, 1.0,
                      note=f"not measured: {str(why)[:120]}")]
    out: list[Check] = []
    lat = ours.get("latency") or {}
    if not lat.get("p50_us"):
        lat = {}
    for rival, goal, target in (
            ("onnxruntime", 1.0, "single-row p50 faster than ONNX Runtime"),
            ("native", SINGLE_ROW_VS_NATIVE,
             f"single-row p50 ≥ {SINGLE_ROW_VS_NATIVE:g}× faster than the original library")):
        other = engines.get(rival)
        if not lat:
            out.append(Check(6, target, fam, None, goal, note="tablescore latency missing"))
            continue
        if not _ok(other) or not (other.get("latency") or {}).get("p50_us"):
            out.append(Check(6, target, fam, None, goal,
                             note=f"{rival} {(other or {}).get('status', 'absent')}"))
            continue
        olat = other["latency"]
        out.append(Check(
            6, target, fam, olat["p50_us"] / lat["p50_us"], goal,
            repeats_met=_paired(lat.get("p50_us_runs", []), olat.get("p50_us_runs", []), goal,
                                higher_is_better=False),
            note=f"{rival} {olat['p50_us']:.1f} µs vs {lat['p50_us']:.1f} µs"))
    # batch: the best other engine at the largest size, all cores
    mine = _throughput(ours, big, most)
    rivals = {n: _throughput(engines[n], big, most) for n in BATCH_RIVALS if _ok(engines.get(n))}
    rivals = {n: r for n, r in rivals.items() if r and r.get("rows_per_s")}
    if mine is not None and not mine.get("rows_per_s"):
        mine = None
    target = f"{big:,} rows, {most} threads: ≥ {BATCH_VS_BEST:g}× the best other engine"
    if mine is None or not rivals:
        out.append(Check(6, target, fam, None, BATCH_VS_BEST, note="not measured"))
    else:
        best = max(rivals, key=lambda n: rivals[n]["rows_per_s"])
        runs = [r.get("rows_per_s_runs", []) for r in rivals.values()]
        n = len(mine.get("rows_per_s_runs", []))
        best_each = ([max(r[i] for r in runs) for i in range(n)]
                     if all(len(r) == n for r in runs) else [])
        out.append(Check(
            6, target, fam, mine["rows_per_s"] / rivals[best]["rows_per_s"], BATCH_VS_BEST,
            repeats_met=_paired(mine.get("rows_per_s_runs", []), best_each, BATCH_VS_BEST,
                                higher_is_better=True),
            note=f"best other: {best}"))
    # faithfulness of both tablescore routes, where the original computes in float64
    native_dtype = (engines.get("native") or {}).get("faithfulness", {}).get("output_dtype")
    if native_dtype is None and fam in _FLOAT32_NATIVE_BEFORE_DTYPES:
        native_dtype = "float32"
    for name in ("tablescore", "tablescore-pmml"):
        eng = engines.get(name)
        if not _ok(eng):
            continue
        faith = eng.get("faithfulness", {})
        diff = faith.get("max_abs_diff")
        target = f"{name}: max abs difference from the original ≤ {FAITHFUL_ABS:g}"
        if native_dtype == "float32":
            onnx = (engines.get("onnxruntime") or {}).get("faithfulness", {}).get(
                "max_abs_diff")
            out.append(Check(6, target, fam, None, FAITHFUL_ABS, at_least=False,
                             note="does not apply: the original computes in float32 (ours "
                                  f"{fmt_diff(diff)}; ONNX Runtime {fmt_diff(onnx)})"))
            continue
        nan_rows = faith.get("nan_mismatch") or 0
        if diff is None:
            out.append(Check(6, target, fam, None, FAITHFUL_ABS, at_least=False,
                             note=str(faith.get("note", "not measured"))))
        elif nan_rows or diff != diff:  # a NaN where the original has a number, or back
            out.append(Check(6, target, fam, float("inf"), FAITHFUL_ABS, at_least=False,
                             note=f"{nan_rows} rows NaN in one output and not the other"))
        else:
            out.append(Check(6, target, fam, diff, FAITHFUL_ABS, at_least=False))
    return out


def _grpc_checks(g: dict[str, Any], server: str = "tablescore") -> list[Check]:
    if not g or g.get("status") != "ok":
        return []
    servers = g.get("servers", {})
    out: list[Check] = []
    for fam in g["config"]["families"]:
        for c in g["config"]["concurrency"]:
            ours = _level(servers.get(server, {}), fam, c)
            echo = _level(servers.get("echo", {}), fam, c)
            mls = _level(servers.get("mlserver", {}), fam, c)
            scope = f"{fam}, c={c}"
            target = f"gRPC p50 ≤ {GRPC_VS_ECHO:g}× the bare echo server"
            if ours and echo:
                out.append(Check(4, target, scope, ours["p50_us"] / echo["p50_us"],
                                 GRPC_VS_ECHO, at_least=False,
                                 repeats_met=_paired(ours.get("p50_us_runs", []),
                                                     echo.get("p50_us_runs", []),
                                                     1 / GRPC_VS_ECHO, higher_is_better=False)))
            else:
                out.append(Check(4, target, scope, None, GRPC_VS_ECHO, at_least=False,
                                 note="not measured"))
            for key, goal, target, better in (
                    ("p50_us", GRPC_LATENCY_VS_MLSERVER,
                     f"gRPC p50 ≥ {GRPC_LATENCY_VS_MLSERVER:g}× lower than MLServer's", False),
                    ("calls_per_s", GRPC_THROUGHPUT_VS_MLSERVER,
                     f"gRPC calls/s ≥ {GRPC_THROUGHPUT_VS_MLSERVER:g}× MLServer's", True)):
                if not (ours and mls and ours.get(key) and mls.get(key)):
                    out.append(Check(4, target, scope, None, goal, note="not measured"))
                    continue
                a, b = ours[key], mls[key]
                value = a / b if better else b / a
                note = ""
                if echo and echo.get(key):  # what a server doing no work at all reaches
                    floor = echo[key] / b if better else b / echo[key]
                    note = f"bare echo server: {floor:.1f}×" + (
                        " (the bare server itself misses the goal)" if floor < goal else "")
                out.append(Check(4, target, scope, value, goal,
                                 repeats_met=_paired(ours.get(f"{key}_runs", []),
                                                     mls.get(f"{key}_runs", []), goal,
                                                     higher_is_better=better),
                                 note=note))
    return out


def evaluate(results: dict[str, Any]) -> list[Check]:
    """Every target of one run, families first (issue 6), then the gRPC phase (issue 4)."""
    cfg = results["config"]
    big = max(cfg["batch_sizes"])
    most = max(cfg["thread_settings"])
    checks: list[Check] = []
    for fam, fr in results.get("families", {}).items():
        checks += _family_checks(fam, fr, big, most)
    checks += _grpc_checks(results.get("grpc") or {})
    return checks


# --- rendering -------------------------------------------------------------------------------
def _fmt_value(c: Check) -> str:
    if not c.at_least and c.goal < 1e-6:  # an absolute difference
        return fmt_diff(c.value)
    return fmt_ratio(c.value)


def _fmt_goal(c: Check) -> str:
    sign = "≥" if c.at_least else "≤"
    return f"{sign} {c.goal:g}" + ("" if c.goal < 1e-6 else "×")


def _verdict(c: Check) -> str:
    if c.met is None:
        return "n/a"
    if c.met:
        return "met"
    if c.value == float("inf"):
        return "**missed**"
    # how far the value is from the goal, relative to the goal
    short = (c.goal - c.value) / c.goal if c.at_least else (c.value - c.goal) / c.goal
    return f"**missed** by {short * 100:.0f} %"


def summary(checks: Sequence[Check]) -> str:
    judged = [c for c in checks if c.met is not None]
    met = sum(bool(c.met) for c in judged)
    return (f"{met} of {len(judged)} targets met"
            + (f" ({len(checks) - len(judged)} not applicable or not measured)"
               if len(judged) != len(checks) else ""))


def render_targets(results: dict[str, Any], *, only_missed: bool = False,
                   heading: str = "## Targets") -> list[str]:
    """Markdown: a summary line and one row per check (or per missed check)."""
    checks = evaluate(results)
    if not checks:
        return []
    lines = [heading, "",
             f"{summary(checks)}. Ratio = how many times better tablescore is (a time: the "
             "other's / ours; a rate: ours / the other's; gRPC vs echo: ours / echo's p50, "
             "lower is better). *Repeats* = paired repeats (engines interleaved within each) in "
             "which the target held: a figure met in few of them sits within the machine's "
             "noise.", ""]
    rows = [c for c in checks if not only_missed or c.met is False]
    if only_missed and not rows:
        return [*lines, "Every target that applies was met in this run.", ""]
    if only_missed:
        lines += ["Missed in this run (the full list is in the report):", ""]
    lines += ["| issue | target | scope | measured | goal | verdict | repeats | note |",
              "|---|---|---|---|---|---|---|---|"]
    for c in rows:
        rep = f"{c.repeats_met[0]}/{c.repeats_met[1]}" if c.repeats_met else "–"
        lines.append(f"| #{c.issue} | {c.target} | {c.scope} | {_fmt_value(c)} | "
                     f"{_fmt_goal(c)} | {_verdict(c)} | {rep} | "
                     f"{c.note.replace('|', '/')} |")
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m benchmarks.targets RESULTS.json", file=sys.stderr)
        return 2
    results = json.loads(Path(args[0]).read_text())
    print("\n".join(render_targets(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
