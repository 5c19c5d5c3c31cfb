"""Regenerate the README's "How it compares" section from the latest full benchmark results.

``python -m benchmarks.readme [RESULTS.json]`` replaces the text between the README markers
``<!-- bench:start -->`` and ``<!-- bench:end -->`` with the headline and gRPC tables of the
newest ``benchmarks/results/<date>.json`` (full runs only; quick runs are skipped), and the
targets that run missed (:mod:`benchmarks.targets`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .report import atomic_write_text, render_grpc, render_headline
from .targets import render_targets

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def latest(results_dir: Path = ROOT / "benchmarks" / "results") -> Path:
    full = sorted(p for p in results_dir.glob("*.json") if p.stem.count("-") == 2)
    if not full:
        raise FileNotFoundError(f"no full benchmark results in {results_dir}: run make bench")
    return full[-1]


def section(results: dict, source: Path) -> str:
    m = results["machine"]
    lines = [
        f"From `{source.relative_to(ROOT)}` ({m.get('cpu_model', '?')}, "
        f"{m.get('cores_usable', '?')} cores, shared and noisy: compare ratios within the "
        "table, not across runs). p50 = single-row latency in process; rows/s at 100,000 rows "
        "with 1 and 2 threads; max abs diff = largest difference from the original library's "
        "own prediction. Full report: `benchmarks/results/`.",
        "",
    ]
    lines += render_headline(results)
    lines += render_targets(results, only_missed=True)
    if results.get("grpc"):
        lines += ["", *render_grpc(results)]
    # the report's headings sit one level below the README's "How it compares"
    return "\n".join("#" + line if line.startswith("##") else line for line in lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]).resolve() if args else latest()
    results = json.loads(source.read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(readme, f"{head}{START}\n{section(results, source)}\n{END}{tail}")
    print(f"README.md: 'How it compares' regenerated from {source.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
