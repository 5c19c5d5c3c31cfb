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

ENGINE_ORDER = ("native", "onnxruntime", "tl2cgen", "pypmml", "tablescore", "tablescore-pmml")
#: Engines whose batches were capped to fewer rows than the batch size (see ``rows_scored``).
CAP_MARK = "†"


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


def _rate_cell(eng: dict[str, Any], rows: int, threads: int) -> str:
    for r in eng.get("throughput", []):
        if r["rows"] == rows and r["threads"] == threads:
            return fmt_rate(r["rows_per_s"]) + (CAP_MARK if r.get("rows_scored") else "")
    return "–"


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
    caps = _caps_note(results)
    if caps:
        lines += [caps, ""]
    lines += render_headline(results)
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
    from .targets import render_targets  # (targets uses this module's formatters)

    lines += render_targets(results)
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
            cells += [_rate_cell(e, s, t) for s, t in tp_cols]
            lm = f.get("label_mismatches")
            rows_f = f.get("rows")
            capped = f" ({rows_f:,} rows)" if rows_f and rows_f != big else ""
            cells += [fmt_diff(f.get("max_abs_diff")) + capped, "–" if lm is None else str(lm)]
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
        eng_all = fr.get("engines", {})
        ex = eng_all.get("tl2cgen", {}).get("extra", {})
        if "compile_s" in ex:
            sizes_other.append(f"tl2cgen library {fmt_bytes(ex.get('lib_bytes'))} (treelite "
                               f"import {ex.get('import_s', 0):.2f} s, gcc "
                               f"{ex.get('compile_s', 0):.1f} s"
                               + (" in an earlier run, library cached" if
                                  ex.get("compile_cached") else "") + ", DMatrix "
                               f"{ex.get('dmatrix_dtype')})")
        ex = eng_all.get("pypmml", {}).get("extra", {})
        if "pmml_bytes" in ex:
            sizes_other.append(f"PMML {fmt_bytes(ex['pmml_bytes'])} (sklearn2pmml "
                               f"{ex.get('pmml_export_s', 0):.1f} s; pypmml load "
                               f"{ex.get('load_s', 0):.2f} s)")
        ex = eng_all.get("tablescore-pmml", {}).get("extra", {})
        if "load_ms" in ex:
            fresh = (f", fresh process import+load+first row {ex['process_total_s']:.2f} s"
                     if "process_total_s" in ex else "")
            sizes_other.append(f"tablescore PMML reader: `scorer.load` {ex['load_ms']:.1f} ms"
                               f" in process{fresh}; {ex.get('columns_used')} of "
                               f"{mod.get('n_features')} fields used")
        if sizes_other:
            lines += ["Other artifacts: " + "; ".join(sizes_other) + ".", ""]
        if skipped:
            lines += [*skipped, ""]
    lines += render_pmml(results) + render_grpc(results) + render_cold_start(results)
    planned = results.get("planned_engines") or {}
    if planned:
        lines += ["Planned engines, not measured yet: " + ", ".join(sorted(planned)) + ".", ""]
    return "\n".join(lines)


def _caps_note(results: dict[str, Any]) -> str:
    """Which engines were measured on fewer calls / rows than the configuration says."""
    cfg = results["config"]
    batch: dict[str, int] = {}
    one_thread: set[str] = set()
    short: list[str] = []
    for fam, fr in results["families"].items():
        for name, e in fr.get("engines", {}).items():
            tp = e.get("throughput", [])
            for r in tp:
                if r.get("rows_scored"):
                    batch[name] = r["rows_scored"]
            if tp and len(cfg["thread_settings"]) > 1 and all(r["threads"] == 1 for r in tp):
                one_thread.add(name)
            lat = e.get("latency") or {}
            if lat and lat.get("calls", 0) < cfg["latency_calls"]:
                short.append(f"{fam}/{name} {lat['calls']:,}")
    parts = []
    if short:
        limit = cfg.get("latency_max_seconds")
        parts.append("single-row latency on fewer calls per repeat for slow engines ("
                     + (f"a repeat is cut to ~{limit:g} s; " if limit else "")
                     + "pypmml at most 300): " + ", ".join(short))
    for name, rows in batch.items():
        parts.append(f"**{name}** batches capped at {rows:,} rows ({CAP_MARK}: the larger "
                     f"batch size measured on its first {rows:,} rows; faithfulness on those "
                     "rows too)")
    if one_thread:
        parts.append(", ".join(sorted(one_thread)) + ": no thread setting, batches at 1 "
                     "thread only")
    return ("Caps: " + "; ".join(parts) + ".") if parts else ""


def render_headline(results: dict[str, Any]) -> list[str]:
    """One row per family x engine: p50, largest batch at 1 thread and all cores, fidelity."""
    cfg = results["config"]
    big = max(cfg["batch_sizes"])
    threads = sorted(cfg["thread_settings"])
    t1, tn = threads[0], threads[-1]
    head = ["family", "engine", "p50 µs", f"{big:,} rows {t1}t rows/s"]
    if tn != t1:
        head.append(f"{big:,} rows {tn}t rows/s")
    head += ["max abs diff vs native", "status"]
    lines = ["## Headline", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fam, fr in results["families"].items():
        if fr.get("status") != "ok":
            lines.append(f"| {fam} | – |" + " – |" * (len(head) - 3)
                         + f" {fr.get('status')}: {_md_escape(str(fr.get('reason')))[:80]} |")
            continue
        for name in _engines(results):
            e = fr.get("engines", {}).get(name)
            if e is None:
                continue
            if e.get("status") != "ok":
                why = _md_escape(str(e.get("reason")).split("; supported:")[0])[:90]
                lines.append(f"| {fam} | {name} |" + " – |" * (len(head) - 3)
                             + f" {e.get('status')}: {why} |")
                continue
            f = e.get("faithfulness", {})
            cells = [fam, name, fmt_us((e.get("latency") or {}).get("p50_us")),
                     _rate_cell(e, big, t1)]
            if tn != t1:
                cells.append(_rate_cell(e, big, tn))
            cells += [fmt_diff(f.get("max_abs_diff")), "ok"]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def render_pmml(results: dict[str, Any]) -> list[str]:
    """tablescore's PMML reader against pypmml (target >= 100x) and the direct bundle (1x)."""
    cfg = results["config"]
    big = max(cfg["batch_sizes"])
    rows = []
    for fam, fr in results["families"].items():
        r = fr.get("ratios_pmml")
        tsp = fr.get("engines", {}).get("tablescore-pmml", {})
        if not r and tsp:
            rows.append(f"| {fam} | tablescore-pmml {tsp.get('status')}: "
                        f"{_md_escape(str(tsp.get('reason')))[:140]} | | | |")
            continue
        if not r:
            continue
        pp, ts = r.get("pypmml", {}), r.get("tablescore", {})
        rows.append(f"| {fam} | {fmt_ratio(pp.get('latency_p50'))} | "
                    f"{fmt_ratio(_speedup(pp, big, 1))} | "
                    f"{fmt_ratio(ts.get('latency_p50'))} | "
                    f"{fmt_ratio(_speedup(ts, big, 1))} |")
    if not rows:
        return []
    return ["## tablescore's PMML reader", "",
            "The same sklearn2pmml document scored by pypmml and loaded by `scorer.load(...pmml)`"
            ". Targets: ≥ 100× pypmml on single-row p50 and batch throughput; the same speed "
            "as the bundle exported directly (ratio ≥ 1 means the PMML-loaded model is at "
            "least as fast). pypmml throughput is its capped batch, at 1 thread.", "",
            f"| family | vs pypmml: p50 | vs pypmml: {big:,} rows 1t | vs bundle: p50 | "
            f"vs bundle: {big:,} rows 1t |", "|---|---|---|---|---|", *rows, ""]


def _grpc_cell(r: dict[str, Any] | None) -> str:
    if not r or r.get("p50_us") is None:
        return "error: " + _md_escape(str((r or {}).get("error")))[:60] if r else "–"
    return (f"{fmt_us(r['p50_us'])} / {fmt_us(r['p99_us'])} µs, "
            f"{r['calls_per_s']:,.0f}/s" + (f" ({r['errors']} err)" if r.get("errors") else ""))


def render_grpc(results: dict[str, Any]) -> list[str]:
    g = results.get("grpc")
    if not g:
        return []
    lines = ["## gRPC transport (single-row ModelInfer round trips)", ""]
    if g.get("status") != "ok":
        return [*lines, f"**{g.get('status')}**: {_md_escape(str(g.get('reason')))}", ""]
    c = g["config"]
    concs = list(c["concurrency"])
    lines += [f"Payload: {g['payload']}. Client: {g['client']}. Each cell: {c['repeats']} "
              f"interleaved windows of {c['window_s']:g} s after {c['warmup_s']:g} s warm-up "
              "per client task; medians of the windows. All servers on 127.0.0.1, on the "
              "same cores as the clients. Start-up = process start to first successful "
              "ModelInfer (servers started one at a time).", ""]
    if g.get("truncated"):
        lines += [f"**Truncated**: {g['truncated']}.", ""]
    servers = g.get("servers", {})
    for fam in c["families"]:
        head = ["server", "start-up"] + [f"c={k}: p50 / p99, calls/s" for k in concs]
        lines += [f"### {fam}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, st in servers.items():
            if st.get("status") != "ok":
                lines.append(f"| {name} | {st.get('status')}: "
                             f"{_md_escape(str(st.get('reason')))[:160]} |"
                             + " |" * len(concs))
                continue
            levels = {r["concurrency"]: r for r in st.get("families", {}).get(fam, {}).get(
                "levels", [])}
            cells = [name, f"{st.get('startup_s', 0):.2f} s"]
            cells += [_grpc_cell(levels.get(k)) for k in concs]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        ratios = g.get("ratios", {}).get(fam, {})
        if ratios:
            lines += ["Targets: p50 ≤ 1.5× the bare echo server; ≥ 10× lower p50 and ≥ 5× the "
                      "calls/s of MLServer at every concurrency.", "",
                      "| server | concurrency | p50 / echo p50 | calls/s / echo | MLServer p50 / "
                      "ours | ours calls/s / MLServer |", "|---|---|---|---|---|---|"]
            for ours, rows in ratios.items():
                for r in rows:
                    lines.append(f"| {ours} | {r['concurrency']} | "
                                 f"{fmt_ratio(r.get('p50_vs_echo'))} | "
                                 f"{fmt_ratio(r.get('throughput_vs_echo'))} | "
                                 f"{fmt_ratio(r.get('mlserver_latency_p50'))} | "
                                 f"{fmt_ratio(r.get('mlserver_throughput'))} |")
            lines.append("")
    for name, st in servers.items():
        if st.get("command"):
            lines.append(f"- {name}: `{_md_escape(st['command'])}`")
    lines.append("")
    return lines


def render_cold_start(results: dict[str, Any]) -> list[str]:
    cs = results.get("cold_start")
    if not cs:
        return []
    lines = ["## Cold start", ""]
    if cs.get("status") != "ok":
        return [*lines, f"**{cs.get('status')}**: {_md_escape(str(cs.get('reason')))}", ""]
    fam = cs.get("rss_family", "forest")
    lines += [f"- `tablescore serve` ({fam} bundle): process start → first prediction "
              f"{cs['startup_s']:.2f} s.",
              f"- New version into a running server: version 2 published (copy + rename) → "
              f"`ModelReady(version 2)` in {cs['watch_publish_to_ready_s'] * 1e3:.0f} ms "
              f"(repository watcher, poll interval {cs['watch_poll_interval_s']:g} s: up to "
              "that much is waiting for the next scan); version 3 published, then "
              f"`RepositoryModelLoad` returned after {cs['explicit_load_s'] * 1e3:.0f} ms "
              f"(ready: {cs.get('explicit_ready_v3')}).",
              ]
    b, k = cs.get("rss_bundle", {}), cs.get("rss_sklearn", {})
    if b:
        lines.append(f"- RSS per loaded {fam} model ({b['copies']} copies in one process, "
                     f"RSS delta / copies): tablescore bundle as the server loads it "
                     f"{fmt_bytes(int(b['rss_per_model']))}, keeping the parameter tables "
                     f"{fmt_bytes(int(cs.get('rss_bundle_full', {}).get('rss_per_model', 0)))}"
                     f" (bundle "
                     f"{fmt_bytes(b.get('bundle_bytes'))} on disk; peak "
                     f"{fmt_bytes(int(b['peak_per_model']))} per copy); scikit-learn "
                     f"joblib {fmt_bytes(int(k.get('rss_per_model', 0)))} (file "
                     f"{fmt_bytes(k.get('joblib_bytes'))}).")
    fresh = []
    for f, fr in results["families"].items():
        x = fr.get("engines", {}).get("tablescore", {}).get("extra", {})
        if "process_total_s" in x:
            fresh.append(f"{f} {x['process_total_s']:.2f} s")
    if fresh:
        lines.append("- Fresh interpreter, import + `scorer.load` + first row (in-process "
                     "scoring, kernels from Numba's cache): " + ", ".join(fresh) + ".")
    lines.append("")
    return lines


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

    paths = _grpc_charts(results, out, stem, plt)
    fams = [f for f, r in results["families"].items() if r.get("status") == "ok"]
    if not fams:
        return paths
    engines = _engines(results)
    cfg = results["config"]
    big = max(cfg["batch_sizes"])
    threads = list(cfg["thread_settings"])

    def get(f: str, e: str, key: str) -> dict[str, Any] | None:
        r = results["families"][f].get("engines", {}).get(e, {})
        return r.get(key) if r.get("status") == "ok" else None

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


def _grpc_charts(results: dict[str, Any], out: Path, stem: str, plt: Any) -> list[Path]:
    """gRPC p50 and calls/s per server, one group per family x concurrency."""
    g = results.get("grpc") or {}
    if g.get("status") != "ok":
        return []
    servers = [n for n, s in g.get("servers", {}).items() if s.get("status") == "ok"]
    if not servers:
        return []
    groups: list[str] = []
    p50: dict[str, dict[str, float | None]] = {}
    rate: dict[str, dict[str, float | None]] = {}
    for fam in g["config"]["families"]:
        for c in g["config"]["concurrency"]:
            key = f"{fam} c={c}"
            groups.append(key)
            for n in servers:
                lv = next((r for r in g["servers"][n].get("families", {}).get(fam, {}).get(
                    "levels", []) if r["concurrency"] == c), {})
                p50.setdefault(key, {})[n] = lv.get("p50_us")
                rate.setdefault(key, {})[n] = lv.get("calls_per_s")
    fig, axes = plt.subplots(1, 2, squeeze=False, figsize=(max(6, 1.2 * len(groups) + 2) * 1.6,
                                                           4.2))
    _bar_chart(axes[0][0], groups, servers, p50, "µs per call (log)",
               "gRPC single-row round trip p50 (lower is better)")
    _bar_chart(axes[0][1], groups, servers, rate, "calls/s (log)",
               "gRPC single-row calls/s (higher is better)")
    path = _save(fig, out / f"{stem}-grpc.png")
    plt.close(fig)
    return [path]


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
