"""The external PMML conformance corpus (../shared/data/pmml): PMML documents written by R,
KNIME, RapidMiner, SAS and the JPMML converters, with inputs and the producers' own expected
outputs. Loading and comparing cases; used by ``tablescore conformance matrix --external``
and by the test suite. Cases known not to pass are listed with their reason in
:mod:`conformance.pmml_known`.

Per-family summary: ``python -m conformance.pmml_corpus [CASE-SUBSTRING ...]``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPUS = (Path(os.environ["TABLESCORE_SHARED_DATA"]) if os.environ.get("TABLESCORE_SHARED_DATA")
          else Path(__file__).resolve().parents[1].parent / "shared" / "data") / "pmml"
#: rows scored per case (keeps the whole corpus under CI's time budget)
MAX_ROWS = 200
_MISSING = {"N/A", "NA", ""}


@dataclass
class Case:
    id: str  # "<source>/<Case>" path under cases/
    family: str
    model_element: str
    meta: dict

    @property
    def dir(self) -> Path:
        return CORPUS / "cases" / self.id


def cases() -> list[Case]:
    if not (CORPUS / "INDEX.csv").is_file():
        return []
    out = []
    with open(CORPUS / "INDEX.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            cid = row["path"]
            meta = json.loads((CORPUS / "cases" / cid / "case.json").read_text())
            out.append(Case(cid, row["family"], row["model_element"], meta))
    return out


def read_csv(path: Path, limit: int = MAX_ROWS) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        head = fh.readline()
        sep = "\t" if "\t" in head else ","
        fh.seek(0)
        r = csv.reader(fh, delimiter=sep)
        header = next(r)
        rows = []
        for row in r:
            rows.append(row)
            if len(rows) >= limit:
                break
    return header, rows


def inputs_for(model, case: Case) -> dict[str, np.ndarray] | np.ndarray:
    if (case.meta.get("input_fix") or "").startswith("dedup"):
        # the upstream test drops duplicate input rows (its expected file has one row per
        # distinct input): first occurrences, in file order
        header, every = read_csv(CORPUS / case.meta["input"], limit=1 << 62)
        seen: set[tuple[str, ...]] = set()
        rows = []
        for r in every:
            if tuple(r) not in seen:
                seen.add(tuple(r))
                rows.append(r)
        rows = rows[:MAX_ROWS]
    else:
        header, rows = read_csv(CORPUS / case.meta["input"])
    if not model.bundle.inputs:  # a constant model: an (n, 0) array still says how many rows
        return np.empty((len(rows), 0))
    pos = {h: i for i, h in enumerate(header)}
    cols: dict[str, np.ndarray] = {}
    for f in model.bundle.inputs:
        if f.name not in pos:
            raise KeyError(f"input column '{f.name}' not in {case.meta['input']}")
        raw = [r[pos[f.name]] if pos[f.name] < len(r) else "" for r in rows]
        if f.type == "string":
            cols[f.name] = np.array([None if v in _MISSING else v for v in raw], dtype=object)
        else:
            def num(v: str) -> float:
                if v in _MISSING:
                    return math.nan
                if v.upper() in ("TRUE", "FALSE"):
                    return 1.0 if v.upper() == "TRUE" else 0.0
                return float(v)
            cols[f.name] = np.array([num(v) for v in raw], dtype=np.float64)
    return cols


def _tolerance(spec: str):
    """``(kind, a, b)`` from case.json's upstream_equivalence."""
    spec = spec or "new PMMLEquivalence(1e-13, 1e-13)"
    m = re.match(r"new (\w+)\((.*)\)", spec.strip())
    kind, args = m.group(1), m.group(2)
    # jpmml-sklearn's XGBoost encoder tests: TOLERANCE_AUDIT = 32 + 32
    args = args.replace("TOLERANCE_AUDIT", "64")
    parts = [sum(float(t) for t in p.split("+")) for p in args.split(",")]  # "32 + 8"
    return kind, parts


def _ulps32(a: float, b: float) -> float:
    ia = np.array([a], dtype=np.float32).view(np.int32).astype(np.int64)[0]
    ib = np.array([b], dtype=np.float32).view(np.int32).astype(np.int64)[0]
    ia = ia if ia >= 0 else -(ia & 0x7FFFFFFF)
    ib = ib if ib >= 0 else -(ib & 0x7FFFFFFF)
    return abs(int(ia) - int(ib))


def _ulps64(a: float, b: float) -> float:
    ia = int(np.array([a]).view(np.int64)[0])
    ib = int(np.array([b]).view(np.int64)[0])
    ia = ia if ia >= 0 else -(ia & 0x7FFFFFFFFFFFFFFF)
    ib = ib if ib >= 0 else -(ib & 0x7FFFFFFFFFFFFFFF)
    return abs(ia - ib)


def close(got: float, exp: float, kind: str, args: list) -> bool:
    if math.isnan(exp) or math.isnan(got):
        return math.isnan(exp) and math.isnan(got)
    if kind == "PMMLEquivalence":
        p, z = args
        return abs(got - exp) <= p * abs(exp) or (abs(got) <= z and abs(exp) <= z)
    if kind == "FloatEquivalence":
        return _ulps32(got, exp) <= args[0]
    if kind == "RealNumberEquivalence":
        return _ulps64(got, exp) <= args[0]
    raise ValueError(kind)


def _same_label(got, exp: str) -> bool:
    if exp in _MISSING:
        return got is None or (isinstance(got, float) and math.isnan(got))
    if str(got) == exp:
        return True
    try:
        return float(got) == float(exp)
    except (TypeError, ValueError):
        return str(got).lower() == exp.lower()


#: the Java constants upstream ``excludeFields(...)`` calls use, as column names
_EXCLUDE_NAMES = {
    "AUDIT_PROBABILITY_FALSE": "probability(0)", "AUDIT_PROBABILITY_TRUE": "probability(1)",
    "AUDIT_ADJUSTED": "Adjusted", "IRIS_SPECIES": "Species", "AUTO_MPG": "mpg",
    "IRIS_PROBABILITY_SETOSA": "probability(setosa)",
    "IRIS_PROBABILITY_VERSICOLOR": "probability(versicolor)",
    "IRIS_PROBABILITY_VIRGINICA": "probability(virginica)",
}


def excluded_columns(spec: str | None) -> set[str]:
    """Column names from case.json's ``upstream_excludes`` (a Java expression upstream)."""
    if not spec:
        return set()
    out = {v for k, v in _EXCLUDE_NAMES.items() if re.search(rf"\b{k}\b", spec)}
    out |= set(re.findall(r'^excludeFields\((?:"[^"]*"(?:, )?)+\)$', spec) and
               re.findall(r'"([^"]*)"', spec))
    m = re.search(r"createNeighborFields\((\d+)\)", spec)  # jpmml-sklearn's kNN tests
    if m:
        out |= {f"neighbor({i})" for i in range(1, int(m.group(1)) + 1)}
    m = re.search(r'FieldNameUtil\.create\(Estimator\.FIELD_PREDICT, "([^"]+)"\)', spec)
    if m:
        out.add(f"predict({m.group(1)})")
    return out


def run_case(case: Case) -> tuple[int, str | None]:
    """Score a case; ``(rows, None)`` on success, else ``(rows, first difference)``."""
    import scorer

    model = scorer.load(case.dir / "model.pmml", verify=True)
    X = inputs_for(model, case)
    got = model.score_arrays(X)
    header, rows = read_csv(case.dir / "expected.csv")
    excludes = excluded_columns(case.meta.get("upstream_excludes"))
    cmap = case.meta.get("column_map") or {}
    inv = {v: k for k, v in cmap.items()}
    kind, args = _tolerance(case.meta.get("upstream_equivalence"))
    checked = 0
    for j, h in enumerate(header):
        if h in excludes or (cmap and h not in inv):
            continue
        name = inv.get(h, h)
        if name not in got:
            return len(rows), f"column '{name}' not produced (have {sorted(got)[:8]})"
        g = got[name]
        checked += 1
        for i, r in enumerate(rows):
            e = r[j] if j < len(r) else ""
            gi = g[i]
            if isinstance(gi, (float, np.floating)) and e not in _MISSING:
                try:
                    ef = float(e)
                except ValueError:
                    ef = None
                if ef is not None:
                    if not close(float(gi), ef, kind, args):
                        return len(rows), f"row {i} column '{h}': got {gi!r}, expected {e}"
                    continue
            if isinstance(gi, (float, np.floating)) and e in _MISSING:
                if not math.isnan(gi):
                    return len(rows), f"row {i} column '{h}': got {gi!r}, expected missing"
                continue
            if not _same_label(gi.item() if hasattr(gi, "item") else gi, e):
                return len(rows), f"row {i} column '{h}': got {gi!r}, expected {e!r}"
    if not checked:
        return len(rows), "no column compared"
    return len(rows), None


def run_corpus(select: list[str] | None = None) -> tuple[list[dict], str]:
    """Every case (or those whose id contains one of ``select``): one dict per case with
    ``status`` pass / fail / known (listed in :mod:`conformance.pmml_known`) / fixed (listed
    there but passing now), and a Markdown summary per model family."""
    import collections

    from .pmml_known import XFAIL

    results = []
    for c in cases():
        if select and not any(s in c.id for s in select):
            continue
        try:
            _, err = run_case(c)
        except Exception as exc:  # a refused document is a result, not a crash
            err = f"{type(exc).__name__}: {exc}"
        known = c.id in XFAIL
        status = ("fixed" if known else "pass") if err is None else (
            "known" if known else "fail")
        results.append({"case": c.id, "family": c.family, "status": status,
                        "detail": (XFAIL.get(c.id) if status == "known" else err) or ""})
    by_family: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        by_family[r["family"]][r["status"]] += 1
    lines = ["| family | cases | pass | known (listed, with reason) | fail | fixed |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for fam in sorted(by_family):
        n = by_family[fam]
        lines.append(f"| {fam} | {sum(n.values())} | {n['pass']} | {n['known']} | "
                     f"{n['fail']} | {n['fixed']} |")
    total = collections.Counter(r["status"] for r in results)
    lines.append(f"| **all** | {len(results)} | {total['pass']} | {total['known']} | "
                 f"{total['fail']} | {total['fixed']} |")
    bad = [r for r in results if r["status"] in ("fail", "fixed")]
    if bad:
        lines += ["", "Unexpected:", ""] + [
            f"- {r['case']}: {r['status']} — {r['detail'][:200]}" for r in bad]
    return results, "\n".join(lines)


def main(argv: list[str]) -> int:
    import collections

    sel = [c for c in cases() if not argv or any(a in c.id for a in argv)]
    stats: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    t0 = time.time()
    reasons = collections.Counter()
    for c in sel:
        try:
            _, err = run_case(c)
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
        stats[c.family][1] += 1
        if err is None:
            stats[c.family][0] += 1
        else:
            short = re.sub(r"line \d+", "line N", err)[:110]
            reasons[short] += 1
            print(f"FAIL {c.id}: {err[:300]}")
    print(f"\n{'family':70s} pass/total")
    for fam in sorted(stats):
        print(f"{fam:70s} {stats[fam][0]}/{stats[fam][1]}")
    print(f"total {sum(s[0] for s in stats.values())}/{len(sel)} in {time.time() - t0:.0f}s")
    for r, n in reasons.most_common(40):
        print(n, r)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
