"""Markdown tables and PNG charts from a results dict (the JSON the runner writes).

    python -m benchmarks.report benchmarks/results/2026-11-28.json   # re-render a report

Every file is written atomically (temp file in the same directory, then ``os.replace``), so a
reader never sees half a report.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENGINE_ORDER = ("native", "onnxruntime", "tablescore")


# --- atomic files ----------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make reports private
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # never leave a half-written temp file behind
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


# --- formatting ------------------------------------------------------------------------------
def _engines(results: dict[str, Any]) -> list[str]:
    names = list(results.get("engines") or ENGINE_ORDER)
    return sorted(names, key=lambda n: ENGINE_ORDER.index(n) if n in ENGINE_ORDER else 99)


def fmt_rate(x: float | None) -> str:
    """Rows per second, compact: ``1.23M``, ``456k``, ``789``."""
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def fmt_us(x: float | None) -> str:
    """Microseconds with sensible precision."""
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_diff(x: float | None) -> str:
    if x is None:
        return "–"
    return "0" if x == 0 else f"{x:.1e}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _rate(eng: dict[str, Any], rows: int, threads: int) -> float | None:
    for r in eng.get("throughput", []):
        if r["rows"] == rows and r["threads"] == threads:
            return r["rows_per_s"]
    return None


def _speedup(ratio: dict[str, Any], rows: int, threads: int) -> float | None:
    for r in ratio.get("throughput", []):
        if r["rows"] == rows and r["threads"] == threads:
            return r["speedup"]
    return None


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


# --- markdown --------------------------------------------------------------------------------
def render_markdown(results: dict[str, Any], charts: Sequence[str] = ()) -> str:
    """The whole report as Markdown: machine, config, a speedup summary, one table per family."""
    cfg = results["config"]
    m = results["machine"]
    sizes: list[int] = list(cfg["batch_sizes"])
    threads: list[int] = list(cfg["thread_settings"])
    big, most = max(sizes), max(threads)
    engines = _engines(results)
    lines = [f"# tablescore benchmarks — {results['started'][:10]} ({results['mode']})", ""]
    v = m.get("versions", {})
    lines += [
        f"- **Machine**: {m.get('cpu_model')}, {m.get('cores_usable')} usable cores "
        f"({m.get('cpu_count')} online), {m.get('memory_gib')} GiB, {m.get('platform')}",
        f"- **Python** {m.get('python')}; "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "- **Environment**: "
        + (", ".join(f"`{k}={val}`" for k, val in m.get("env", {}).items()) or "no thread "
           "variables set")
        + f"; load average {m.get('loadavg_start')} → {m.get('loadavg_end')}",
        f"- **Git**: {m.get('git', {}).get('commit', '?')[:12]}"
        + (" (dirty)" if m.get("git", {}).get("dirty") else ""),
        f"- **Config**: train {cfg['n_train']:,} rows, score {cfg['n_score']:,} fresh rows, "
        f"{cfg['n_features']} features; latency {cfg['latency_calls']:,} calls × "
        f"{cfg['latency_repeats']} repeats at {cfg['latency_threads']} thread; batches "
        f"{', '.join(f'{s:,}' for s in sizes)} rows × threads {threads}, "
        f"{cfg['batch_repeats']} repeats; trees "
        f"{cfg['n_estimators'] or 'per family'}; duration {results.get('duration_s', 0):.0f}s",
        "",
        "Every figure is the median of its repeats; engines were interleaved within each "
        "repeat. Speedup = how many times faster tablescore is (latency: other p50 / "
        "tablescore p50; throughput: tablescore rows/s / other rows/s). Faithfulness = max "
        f"|engine − native| over {big:,} rows.",
        "",
    ]
    # summary
    others = [e for e in engines if e != "tablescore"]
    head = ["family"] + [f"vs {o}: p50" for o in others] + [
        f"vs {o}: {big:,} rows, {most}t" for o in others]
    lines += ["## tablescore speedup", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    for fam, fr in results["families"].items():
        ts = fr.get("engines", {}).get("tablescore", {})
        if fr.get("status") != "ok" or ts.get("status") != "ok":
            why = fr.get("reason") if fr.get("status") != "ok" else ts.get("reason")
            why = str(why).split("; supported:")[0]  # the list of exporters is in the JSON
            lines.append(f"| {fam} | tablescore {ts.get('status', fr.get('status'))}: "
                         f"{_md_escape(why)[:120]} |" + " |" * (len(head) - 2))
            continue
        cells = [fam]
        cells += [fmt_ratio(fr["ratios"].get(o, {}).get("latency_p50")) for o in others]
        cells += [fmt_ratio(_speedup(fr["ratios"].get(o, {}), big, most)) for o in others]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for c in charts:
        lines += [f"![{c}]({c})", ""]
    # per family
    tp_cols = [(s, t) for s in sizes for t in threads]
    for fam, fr in results["families"].items():
        mod = fr.get("model", {})
        override = mod.get("n_estimators_override")
        lines += [f"## {fam} — {fr.get('description', '')}"
                  + (f" — {override} trees in this run" if override else ""), ""]
        if fr.get("status") != "ok":
            lines += [f"**{fr.get('status')}**: {_md_escape(str(fr.get('reason')))}", ""]
            continue
        est = mod.get("estimator", "")
        est = est if len(est) <= 160 else est[:157] + "..."
        lines += [f"Fitted in {mod.get('fit_s', 0):.1f} s: `{_md_escape(est)}`. Load average "
                  f"{fr.get('loadavg_start')} → {fr.get('loadavg_end')}.", ""]
        head = ["engine", "p50 µs", "p99 µs"] + [
            f"{s:,} rows {t}t rows/s" for s, t in tp_cols] + ["max abs diff", "label diffs"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        skipped = []
        for name in engines:
            e = fr.get("engines", {}).get(name)
            if e is None:
                continue
            if e.get("status") != "ok":
                why = str(e.get("reason")).split("; supported:")[0]
                skipped.append(f"- **{name}** {e.get('status')}: {_md_escape(why)}")
                continue
            lat = e.get("latency", {})
            f = e.get("faithfulness", {})
            cells = [name, fmt_us(lat.get("p50_us")), fmt_us(lat.get("p99_us"))]
            cells += [fmt_rate(_rate(e, s, t)) for s, t in tp_cols]
            lm = f.get("label_mismatches")
            cells += [fmt_diff(f.get("max_abs_diff")), "–" if lm is None else str(lm)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        ts = fr.get("engines", {}).get("tablescore", {})
        x = ts.get("extra") if ts.get("status") == "ok" else None
        if x:
            fresh = (f"; fresh process: import {x['process_import_s']:.2f} s + load "
                     f"{x['process_load_s'] * 1e3:.0f} ms + first row "
                     f"{x['process_first_predict_s'] * 1e3:.0f} ms"
                     if "process_total_s" in x else "")
            lines += [f"tablescore bundle: {fmt_bytes(x.get('bundle_bytes'))} on disk "
                      f"({x.get('bundle_files')} files); `scorer.load` {x.get('load_ms', 0):.1f}"
                      f" ms (in process, kernels cached){fresh}; export "
                      f"{x.get('export_s', 0):.2f} s.", ""]
        sizes_other = []
        for name in ("native", "onnxruntime"):
            ex = fr.get("engines", {}).get(name, {}).get("extra", {})
            if "pickle_bytes" in ex:
                sizes_other.append(f"native pickle {fmt_bytes(ex['pickle_bytes'])}")
            if "onnx_bytes" in ex:
                sizes_other.append(f"ONNX {fmt_bytes(ex['onnx_bytes'])} "
                                   f"(converted in {ex.get('convert_s', 0):.2f} s)")
        if sizes_other:
            lines += ["Other artifacts: " + "; ".join(sizes_other) + ".", ""]
        if skipped:
            lines += [*skipped, ""]
    planned = results.get("planned_engines") or {}
    if planned:
        lines += ["Planned engines, not measured yet: " + ", ".join(sorted(planned)) + ".", ""]
    return "\n".join(lines)


# --- charts ----------------------------------------------------------------------------------
def _bar_chart(ax: Any, families: list[str], engines: list[str],
               values: dict[str, dict[str, float | None]], ylabel: str, title: str) -> None:
    import numpy as np

    width = 0.8 / max(1, len(engines))
    x = np.arange(len(families))
    for i, eng in enumerate(engines):
        ys = [values.get(f, {}).get(eng) for f in families]
        pos = x + (i - (len(engines) - 1) / 2) * width
        heights = [y if y is not None else np.nan for y in ys]
        ax.bar(pos, heights, width, label=eng, color=f"C{i}")
        for p, y in zip(pos, ys, strict=True):
            if y is None:  # skipped / failed: label the empty slot (a log axis has no zero)
                ax.annotate("n/a", xy=(p, 0.01), xycoords=("data", "axes fraction"),
                            ha="center", va="bottom", fontsize=7, rotation=90, color=f"C{i}")
    ax.set_xticks(x, families)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)


def write_charts(results: dict[str, Any], out: Path, stem: str) -> list[Path]:
    """PNG charts: single-row p50 latency, and largest-batch rows/s per thread setting."""
    import matplotlib

    matplotlib.use("Agg")  # headless; must precede pyplot
    import matplotlib.pyplot as plt

    fams = [f for f, r in results["families"].items() if r.get("status") == "ok"]
    if not fams:
        return []
    engines = _engines(results)
    cfg = results["config"]
    big = max(cfg["batch_sizes"])
    threads = list(cfg["thread_settings"])

    def get(f: str, e: str, key: str) -> dict[str, Any] | None:
        r = results["families"][f].get("engines", {}).get(e, {})
        return r.get(key) if r.get("status") == "ok" else None

    paths = []
    lat = {f: {e: (get(f, e, "latency") or {}).get("p50_us") for e in engines} for f in fams}
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(fams) + 2), 4.2))
    _bar_chart(ax, fams, engines, lat, "µs per call (log)",
               f"Single-row latency p50, {cfg['latency_threads']} thread (lower is better)")
    paths.append(_save(fig, out / f"{stem}-latency_p50.png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, len(threads), squeeze=False,
                             figsize=(max(6, 1.4 * len(fams) + 2) * len(threads) * 0.8, 4.2))
    for ax, t in zip(axes[0], threads, strict=True):
        vals = {f: {e: _rate(results["families"][f].get("engines", {}).get(e, {}), big, t)
                    if get(f, e, "throughput") else None for e in engines} for f in fams}
        _bar_chart(ax, fams, engines, vals, "rows/s (log)",
                   f"{big:,}-row batch throughput, {t} thread{'s' if t > 1 else ''} "
                   "(higher is better)")
    fig.tight_layout()
    paths.append(_save(fig, out / f"{stem}-throughput_{big}.png"))
    plt.close(fig)
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_report(results: dict[str, Any], out: Path, stem: str, *,
                 charts: bool = True) -> list[Path]:
    """Write ``<stem>.md`` and (unless disabled or matplotlib is absent) the PNG charts."""
    paths: list[Path] = []
    if charts:
        try:
            paths = write_charts(results, out, stem)
        except ImportError as exc:
            print(f"charts skipped: {exc}", file=sys.stderr)
    md = out / f"{stem}.md"
    atomic_write_text(md, render_markdown(results, charts=[p.name for p in paths]) + "\n")
    return [md, *paths]


def main(argv: Sequence[str] | None = None) -> int:
    """Re-render the Markdown and charts of an existing results JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m benchmarks.report RESULTS.json", file=sys.stderr)
        return 2
    src = Path(args[0])
    results = json.loads(src.read_text())
    for p in write_report(results, src.parent, src.stem):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
