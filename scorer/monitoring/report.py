"""The batch drift report (``tablescore drift``): a data file counted into a bundle's
reference bins, streamed in Arrow record batches, compared with the reference, written as JSON
and as HTML with the reference and current histograms."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files import DataFileError
from .drift import FeatureDrift, Thresholds, compare_flat
from .profile import Profile, count_feature, reference_profile

#: rows per record batch read from a data file
BATCH_ROWS = 1 << 16


def iter_batches(path: str | os.PathLike[str], batch_rows: int = BATCH_ROWS
                 ) -> Iterator[dict[str, np.ndarray]]:
    """The columns of a CSV or Parquet file, ``batch_rows`` rows at a time (rows,) each:
    numbers as float64 / int64 (missing: NaN), text as objects (missing: None)."""
    import pyarrow as pa

    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"data file '{p}' does not exist")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            batches: Any = pq.ParquetFile(p).iter_batches(batch_size=batch_rows)
        else:
            import pyarrow.csv as pcsv

            batches = pcsv.open_csv(p, read_options=pcsv.ReadOptions(block_size=8 << 20),
                                    convert_options=pcsv.ConvertOptions(
                                        null_values=["", "NA", "N/A"], strings_can_be_null=True))
        for batch in batches:
            yield {name: _column(batch.column(i))
                   for i, name in enumerate(batch.schema.names)}
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"cannot read data file '{p}': {exc}") from exc


def _column(col: Any) -> np.ndarray:
    """One Arrow column as NumPy (rows,): numbers as numbers (an integer column with nulls
    becomes float64 with NaN), anything else as objects (None for null)."""
    import pyarrow as pa

    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def profile_file(layout: Profile, model: Any, path: str | os.PathLike[str], *,
                 batch_rows: int = BATCH_ROWS) -> tuple[np.ndarray, int]:
    """Count a data file into ``layout``'s bins: ``(counts int64 (total bins,), rows)``.

    Inputs are the file's columns named like the model's inputs; outputs are the file's
    columns named like an output when present, else the model's scores of the batch (when
    every input is there). A feature with no column is left without counts.
    """
    counts = np.zeros(int(layout.offsets()[-1]), dtype=np.int64)
    off = layout.offsets()
    n_in = len(layout.inputs)
    rows = 0
    inputs = [f.name for f in model.bundle.inputs]
    for cols in iter_batches(path, batch_rows):
        n = len(next(iter(cols.values()))) if cols else 0
        rows += n
        outputs: dict[str, Any] = {}
        if any(fp.name not in cols for fp in layout.outputs) and all(c in cols for c in inputs):
            outputs = model.score_arrays({c: cols[c] for c in inputs})
        for i, fp in enumerate(layout.features):
            src = cols if i < n_in else {**outputs, **cols}
            if fp.name in src:
                count_feature(fp, src[fp.name], counts, int(off[i]))
    return counts, rows


def read_reference(model: Any, path: str | os.PathLike[str], *, bins: int = 10) -> Profile:
    """A reference profile from a data file (``--reference``): the file is read whole (its
    quantiles set the bins), its outputs scored by the model."""
    parts: dict[str, list[np.ndarray]] = {}
    for cols in iter_batches(path):
        for k, v in cols.items():
            parts.setdefault(k, []).append(v)
    columns = {k: np.concatenate(v) for k, v in parts.items()}
    missing = [f.name for f in model.bundle.inputs if f.name not in columns]
    if missing:
        raise InputError(f"reference file '{path}' lacks the model's inputs "
                         f"{', '.join(missing)}")
    return reference_profile(model.bundle, columns, bins=bins)


@dataclass
class DriftReport:
    """A batch comparison: the layout, both count vectors and the drift per feature."""

    model: str
    version: str
    layout: Profile
    reference: np.ndarray
    current: np.ndarray
    reference_rows: int
    current_rows: int
    drift: list[FeatureDrift]
    thresholds: Thresholds
    seconds: float

    def ranked(self) -> list[tuple[int, FeatureDrift]]:
        """``(feature index, drift)`` by PSI, largest first (features without one last)."""
        return sorted(enumerate(self.drift),
                      key=lambda t: (-(t[1].psi if t[1].psi == t[1].psi else -1.0), t[0]))

    @property
    def max_psi(self) -> float:
        values = [d.psi for d in self.drift if d.psi == d.psi]
        return max(values) if values else float("nan")

    @property
    def drifted(self) -> bool:
        """Whether some feature or output reached the alert threshold."""
        return any(self.thresholds.level(d.psi) == "alert" for d in self.drift)

    def to_json(self) -> dict[str, Any]:
        off = self.layout.offsets()
        feats = []
        for i, d in self.ranked():
            fp = self.layout.features[i]
            feats.append({
                "name": d.name, "role": d.role, "psi": _num(d.psi), "js": _num(d.js),
                "level": self.thresholds.level(d.psi), "bins": fp.bin_labels(),
                "reference": self.reference[off[i]:off[i + 1]].tolist(),
                "current": self.current[off[i]:off[i + 1]].tolist(),
            })
        return {
            "model": self.model, "version": self.version,
            "rows": {"reference": self.reference_rows, "current": self.current_rows},
            "thresholds": {"warn": self.thresholds.warn, "alert": self.thresholds.alert},
            "drifted": self.drifted, "max_psi": _num(self.max_psi),
            "psi": {f"{d.role}:{d.name}" if d.role == "output" else d.name: _num(d.psi)
                    for _, d in self.ranked()},
            "features": feats, "seconds": round(self.seconds, 3),
        }

    def to_html(self) -> str:
        """A self-contained page: the ranked table and one plot per feature (base64 PNG)."""
        off = self.layout.offsets()
        rows, plots = [], []
        for i, d in self.ranked():
            fp = self.layout.features[i]
            level = self.thresholds.level(d.psi)
            anchor = f"f{i}"
            rows.append(f"<tr class='{level}'><td><a href='#{anchor}'>{html.escape(d.name)}"
                        f"</a></td><td>{d.role}</td><td>{_fmt(d.psi)}</td><td>{_fmt(d.js)}"
                        f"</td><td>{level}</td></tr>")
            png = _plot(fp.bin_labels(), self.reference[off[i]:off[i + 1]],
                        self.current[off[i]:off[i + 1]], f"{d.name}  PSI {_fmt(d.psi)}")
            plots.append(f"<h3 id='{anchor}'>{html.escape(d.name)} ({d.role})</h3>"
                         f"<img alt='{html.escape(d.name)}' src='data:image/png;base64,{png}'>")
        title = f"Drift report: {html.escape(self.model)} version {html.escape(self.version)}"
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd}"
            ".alert{background:#fdd}.warn{background:#ffd}</style></head><body>"
            f"<h1>{title}</h1><p>reference rows {self.reference_rows}, current rows "
            f"{self.current_rows}; PSI thresholds {self.thresholds.warn} (warn), "
            f"{self.thresholds.alert} (alert); {'DRIFT' if self.drifted else 'no drift'}</p>"
            "<table><tr><th>feature</th><th>role</th><th>PSI</th><th>JS distance</th>"
            f"<th>level</th></tr>{''.join(rows)}</table>{''.join(plots)}</body></html>")


def _num(x: float) -> float | None:
    return None if x != x else x


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.4f}"


def _plot(labels: list[str], ref: np.ndarray, cur: np.ndarray, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = ref / max(ref.sum(), 1)
    q = cur / max(cur.sum(), 1)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(labels) + 1.5), 2.6), dpi=72)
    ax.bar(x - 0.2, p, 0.4, label="reference")
    ax.bar(x + 0.2, q, 0.4, label="current")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("share of rows", fontsize=7)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def drift_report(model: Any, data: str | os.PathLike[str], *,
                 reference: str | os.PathLike[str] | None = None,
                 thresholds: Thresholds | None = None,
                 batch_rows: int = BATCH_ROWS) -> DriftReport:
    """Compare ``data`` with the bundle's reference profile (or with the ``reference`` file).

    Raises
    ------
    InputError
        The bundle has no reference profile and no ``reference`` file was given, or a file
        cannot be read.
    """
    t0 = time.perf_counter()
    if reference is not None:
        layout = read_reference(model, reference)
    elif model.bundle.drift_reference:
        layout = Profile.from_json(model.bundle.drift_reference)
    else:
        raise InputError("the bundle has no drift reference (export it with a sample, or "
                         "pass --reference FILE)")
    counts, rows = profile_file(layout, model, data, batch_rows=batch_rows)
    if rows == 0:
        raise DataFileError(f"data file '{data}' has no rows")
    ref = layout.flat_counts()
    return DriftReport(model.display_name, str(model.version), layout, ref, counts,
                       layout.rows, rows, compare_flat(layout, ref, counts),
                       thresholds or Thresholds(), time.perf_counter() - t0)


def dumps(report: DriftReport) -> str:
    """The report's JSON text (NaN as null)."""
    return json.dumps(report.to_json(), indent=2, allow_nan=False,
                      default=lambda o: None if isinstance(o, float) and math.isnan(o) else o)
