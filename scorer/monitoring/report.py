"""The batch drift report (``tablescore drift``): a data file counted into a bundle's
reference bins, streamed in Arrow record batches, compared with the reference, written as JSON
and as HTML with the reference and current histograms."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingFieldError
from ..files import DataFileError
from .drift import FeatureDrift, Thresholds, compare_flat
from .profile import CategoryMap, Profile, count_feature, reference_profile

log = logging.getLogger("tablescore.drift")

#: rows per record batch read from a data file
BATCH_ROWS = 1 << 16
#: detailed histograms in the HTML report besides those of features past the warn level
DEFAULT_PLOTS = 10
#: batches read ahead of the counting (a reader thread: Arrow decodes without the GIL)
READ_AHEAD = 2


def iter_batches(path: str | os.PathLike[str], batch_rows: int = BATCH_ROWS, *,
                 columns: Collection[str] | None = None,
                 types: Mapping[str, str] | None = None,
                 empty_text: Collection[str] = ()) -> Iterator[dict[str, np.ndarray]]:
    """The columns of a CSV or Parquet file, ``batch_rows`` rows at a time (rows,) each:
    numbers as float64 / int64 (missing: NaN), text as objects (missing: None).

    ``columns``: read only these (those the file has; the others are left out); None: all.
    ``types``: column -> the model's field type: a CSV's ``string`` field is read as text
    (zip codes ``02134`` stay text, not the number 2134) and a number field as float64
    (not typed by its first block: a ``1.5`` after a million integers is read too).
    ``empty_text``: string fields whose empty CSV cell is the category ``""`` (a field whose
    vocabulary holds it, as the model reads it), not a missing value.
    """
    with _reading(path) as p:
        if _is_parquet(p):
            import pyarrow.parquet as pq

            # memory-mapped: pages are decoded straight from the page cache (no read copy)
            pf = pq.ParquetFile(p, memory_map=True)
            names = pf.schema_arrow.names
            batches: Any = pf.iter_batches(batch_size=batch_rows, columns=(
                None if columns is None else [c for c in names if c in columns]))
        else:
            batches = _csv_batches(p, columns, types or {}, batch_rows, set(empty_text))
        for batch in batches:
            yield {name: _column(batch.column(i))
                   for i, name in enumerate(batch.schema.names)}


@contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The data file ``path`` as a Path, its read errors (and its absence) as DataFileError."""
    import pyarrow as pa

    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"data file '{p}' does not exist")
    try:
        yield p
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"cannot read data file '{p}': {exc}") from exc


def _is_parquet(p: Path) -> bool:
    return p.suffix.lower() in (".parquet", ".pq")


def _typing(fields: Sequence[Any]) -> dict[str, Any]:
    """:func:`iter_batches`' ``types`` and ``empty_text`` for the model's input ``fields``."""
    return {"types": {f.name: f.type for f in fields},
            "empty_text": {f.name for f in fields if "" in (f.categories or ())}}


def file_columns(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a CSV (its header) or Parquet file (its schema)."""
    with _reading(path) as p:
        if _is_parquet(p):
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(p).schema_arrow.names)
        import pyarrow.csv as pcsv

        r = pcsv.open_csv(p)
        try:
            return list(r.schema.names)
        finally:
            r.close()


_NULL_TEXT = ["", "NA", "N/A"]


def _csv_batches(p: Path, columns: Collection[str] | None, types: Mapping[str, str],
                 batch_rows: int, empty_text: set[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    column_types = {name: pa.string() if t == "string" else pa.float64()
                    for name, t in types.items()}
    # text cells are kept as text here (Arrow's null markers apply to every string column
    # alike), then made missing per column below
    nulls = pa.array(_NULL_TEXT)
    nulls_but_empty = pa.array(_NULL_TEXT[1:])

    def reader(include: list[str] | None) -> Any:
        return pcsv.open_csv(p, read_options=pcsv.ReadOptions(block_size=8 << 20),
                             convert_options=pcsv.ConvertOptions(
                                 null_values=_NULL_TEXT, strings_can_be_null=False,
                                 include_columns=include, column_types=column_types))

    def missing_marked(b: Any) -> Any:
        cols = []
        for name, col in zip(b.schema.names, b.columns, strict=True):
            if pa.types.is_string(col.type):
                marks = nulls_but_empty if name in empty_text else nulls
                col = pc.if_else(pc.is_in(col, value_set=marks), pa.scalar(None, col.type), col)
            cols.append(col)
        return pa.RecordBatch.from_arrays(cols, names=b.schema.names)

    def sliced(r: Any) -> Iterator[Any]:
        # (a block holds ~8 MB of text: hundreds of thousands of rows, three of them alive at
        # once with the read-ahead; counted in batch_rows pieces like Parquet's)
        for b in r:
            b = missing_marked(b)
            for o in range(0, b.num_rows, batch_rows):
                yield b.slice(o, batch_rows)

    r = reader(None)
    if columns is not None:
        names = r.schema.names
        keep = [c for c in names if c in columns]
        if len(keep) != len(names):
            r.close()  # reopened parsing only the wanted columns
            r = reader(keep)
    return sliced(r)


def _column(col: Any) -> np.ndarray:
    """One Arrow column as NumPy (rows,): numbers as numbers (an integer column with nulls
    becomes float64 with NaN), anything else as objects (None for null)."""
    import pyarrow as pa

    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def read_ahead(it: Iterator[Any], depth: int = READ_AHEAD) -> Iterator[Any]:
    """``it``'s items, produced by a background thread up to ``depth`` ahead (so reading the
    next record batch overlaps counting this one); its exceptions are raised here, in order.
    Stopping early (an exception in the consumer) stops the thread at its next item."""
    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in it:
                if not put((0, x)):
                    return
            put((1, None))
        except BaseException as exc:  # handed to the consumer
            put((2, exc))

    t = threading.Thread(target=produce, name="tablescore-drift-reader", daemon=True)
    t.start()
    try:
        while True:
            kind, x = q.get()
            if kind == 1:
                return
            if kind == 2:
                raise x
            yield x
    finally:
        stop.set()
        t.join()


class FileCounter:
    """Counts record batches into ``layout``'s bins: the numeric columns with the compiled
    kernels (no per-row Python), split over ``threads`` threads by column (the kernels run
    without the GIL; each feature owns its own slice of ``counts``).

    Inputs are the batch's columns named like the model's inputs; outputs are the batch's
    columns named like an output when present, else the model's scores of the batch (when
    every input is there), computed beside the input counting.
    """

    def __init__(self, layout: Profile, model: Any, *, threads: int | None = None) -> None:
        self.layout = layout
        self.model = model
        self.offsets = layout.offsets()
        self.counts = np.zeros(int(self.offsets[-1]), dtype=np.int64)
        self.rows = 0
        #: rows of batches the model refused to score (their outputs are not counted) and why
        self.unscored = 0
        self.unscored_reason: str | None = None
        self.n_inputs = len(layout.inputs)
        self.inputs = [f.name for f in model.bundle.inputs]
        self.cmaps = {i: CategoryMap(fp.categories or []) for i, fp in enumerate(layout.features)
                      if fp.kind == "categorical"}
        self.threads = max(1, threads if threads is not None else min(os.cpu_count() or 1, 8))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tablescore-drift") \
            if self.threads > 1 else None

    def columns(self) -> set[str]:
        """The columns worth reading: the model's inputs and every profiled feature."""
        return {*self.inputs, *(f.name for f in self.layout.features)}

    def _count(self, jobs: list[tuple[int, Any]]) -> None:
        for i, values in jobs:
            count_feature(self.layout.features[i], values, self.counts, int(self.offsets[i]),
                          self.cmaps.get(i))

    def _run(self, jobs: list[tuple[int, Any]]) -> None:
        if self._pool is None or len(jobs) < 2:
            self._count(jobs)
            return
        parts = [jobs[k::self.threads] for k in range(self.threads)]
        for f in [self._pool.submit(self._count, part) for part in parts if part]:
            f.result()

    def add(self, cols: Mapping[str, np.ndarray]) -> None:
        """Count one batch of columns (rows,) each."""
        if not cols:
            return
        self.rows += len(next(iter(cols.values())))
        feats = self.layout.features
        scoring = (any(fp.name not in cols for fp in self.layout.outputs)
                   and all(c in cols for c in self.inputs))
        scored = None
        if scoring:
            inputs = {c: cols[c] for c in self.inputs}
            scored = (self._pool.submit(self.model.score_arrays, inputs) if self._pool
                      else None)
        self._run([(i, cols[feats[i].name]) for i in range(self.n_inputs)
                   if feats[i].name in cols])
        outputs: dict[str, Any] = {}
        if scoring:
            try:
                outputs = scored.result() if scored is not None else self.model.score_arrays(
                    {c: cols[c] for c in self.inputs})
            except InputError as exc:
                # a batch holding rows the model refuses (a missing value it does not
                # accept, ...): the refused rows found by halving, the others scored and
                # their outputs counted; every row's inputs are counted (a missing-value bin
                # filling up is drift too)
                from ..batch import score_isolating

                n = len(next(iter(cols.values())))
                arrays, good, _ = score_isolating(
                    lambda inp, _n: self.model.score_arrays(inp),
                    {c: cols[c] for c in self.inputs}, n, failed=exc)
                outputs = arrays or {}
                self.unscored += int(n - good.sum())
                self.unscored_reason = self.unscored_reason or str(exc)
        src = {**outputs, **cols}
        self._run([(i, src[feats[i].name]) for i in range(self.n_inputs, len(feats))
                   if feats[i].name in src])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def count_file(layout: Profile, model: Any, path: str | os.PathLike[str], *,
               batch_rows: int = BATCH_ROWS, threads: int | None = None) -> FileCounter:
    """Count a data file into ``layout``'s bins: the :class:`FileCounter` that did (its
    ``counts``, ``rows``, ``unscored``).

    The file is streamed in record batches of ``batch_rows`` (read ahead by a thread, only
    the columns the layout or the model uses) and counted with ``threads`` threads (default:
    the CPUs, at most 8). A feature with no column is left without counts.
    """
    inputs = list(model.bundle.inputs) if model is not None else []
    if inputs:
        have = set(file_columns(path))
        absent = [f.name for f in inputs if f.name not in have]
        if len(absent) == len(inputs):
            # (else every feature would read "n/a" and the report say "no drift", exit 0)
            raise DataFileError(f"data file '{path}' has none of the model's inputs "
                                f"({', '.join(absent)}); its columns: "
                                f"{', '.join(sorted(have)) or 'none'}")
        if absent:
            # (the model cannot score such rows: the outputs, the drift that matters most,
            # would read "n/a" and a nightly job's exit status say "no drift")
            raise MissingFieldError(f"data file '{path}' lacks the model's input"
                                    f"{'s' if len(absent) > 1 else ''} "
                                    f"{', '.join(map(repr, absent))}: its outputs cannot be "
                                    "scored, so their drift cannot be measured")
    counter = FileCounter(layout, model, threads=threads)
    try:
        for cols in read_ahead(iter_batches(path, batch_rows, columns=counter.columns(),
                                            **_typing(inputs))):
            counter.add(cols)
    finally:
        counter.close()
    return counter


def profile_file(layout: Profile, model: Any, path: str | os.PathLike[str], *,
                 batch_rows: int = BATCH_ROWS, threads: int | None = None
                 ) -> tuple[np.ndarray, int]:
    """:func:`count_file`'s ``(counts int64 (total bins,), rows)``."""
    c = count_file(layout, model, path, batch_rows=batch_rows, threads=threads)
    return c.counts, c.rows


def read_reference(model: Any, path: str | os.PathLike[str], *, bins: int = 10) -> Profile:
    """A reference profile from a data file (``--reference``): the file is read whole (its
    quantiles set the bins), its outputs scored by the model."""
    parts: dict[str, list[np.ndarray]] = {}
    inputs = model.bundle.inputs
    for cols in iter_batches(path, columns={f.name for f in inputs}, **_typing(inputs)):
        for k, v in cols.items():
            parts.setdefault(k, []).append(v)
    columns = {k: np.concatenate(v) for k, v in parts.items()}
    if not columns:
        raise DataFileError(f"reference file '{path}' has no rows")
    missing = [f.name for f in model.bundle.inputs if f.name not in columns]
    if missing:
        raise InputError(f"reference file '{path}' lacks the model's inputs "
                         f"{', '.join(missing)}")
    # (rows the model refuses: inputs counted, no outputs, as in the current data)
    return reference_profile(model.bundle, columns, bins=bins, skip_refused=True)


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
    #: rows whose outputs were not counted (batches the model refused to score) and why
    unscored_rows: int = 0
    unscored_reason: str | None = None

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
            "unscored_rows": self.unscored_rows, "unscored_reason": self.unscored_reason,
        }

    def unscored_note(self, tag: str = "") -> str:
        """Why some rows' outputs are not counted ("" when all were)."""
        if not self.unscored_rows:
            return ""
        text = (f"outputs of {self.unscored_rows} of {self.current_rows} rows not counted: "
                f"the model refused to score their batches ({self.unscored_reason})")
        return f"<{tag} class='warn'>{html.escape(text)}</{tag}>" if tag else text

    def plotted(self, top: int | None = DEFAULT_PLOTS) -> list[int]:
        """Feature indices (ranked order) that get a detailed histogram: every feature at the
        warn or alert level and the ``top`` highest by PSI; ``top=None``: every feature."""
        ranked = self.ranked()
        if top is None:
            return [i for i, _ in ranked]
        return [i for k, (i, d) in enumerate(ranked)
                if k < top or self.thresholds.level(d.psi) != "ok"]

    def to_html(self, *, plots: int | None = DEFAULT_PLOTS) -> str:
        """A self-contained page: the ranked table with a small histogram per feature (inline
        SVG), and a detailed histogram (base64 PNG) for the features of
        :meth:`plotted` ``(plots)``; the page names the features drawn in the table only."""
        off = self.layout.offsets()
        drawn = self.plotted(plots)
        detailed = set(drawn)
        rows, omitted = [], []
        for i, d in self.ranked():
            ref, cur = self.reference[off[i]:off[i + 1]], self.current[off[i]:off[i + 1]]
            level = self.thresholds.level(d.psi)
            name = html.escape(d.name)
            if i in detailed:
                name = f"<a href='#f{i}'>{name}</a>"
            else:
                omitted.append(html.escape(d.name))
            rows.append(f"<tr class='{level}'><td>{name}</td><td>{d.role}</td>"
                        f"<td>{_fmt(d.psi)}</td><td>{_fmt(d.js)}</td><td>{level}</td>"
                        f"<td>{_spark(ref, cur)}</td></tr>")
        figures = []
        if drawn:
            plotter = _Plotter()
            for i in drawn:
                d, fp = self.drift[i], self.layout.features[i]
                png = plotter.png(fp.bin_labels(), self.reference[off[i]:off[i + 1]],
                                  self.current[off[i]:off[i + 1]],
                                  f"{d.name}  PSI {_fmt(d.psi)}  JS {_fmt(d.js)}")
                figures.append(f"<h3 id='f{i}'>{html.escape(d.name)} ({d.role})</h3>"
                               f"<img alt='{html.escape(d.name)}' "
                               f"src='data:image/png;base64,{png}'>")
        if omitted:
            which = ("every feature at the warn or alert level" if plots == 0 else
                     f"every feature at the warn or alert level and the {plots} with the "
                     "highest PSI")
            note = (f"<p class='note'>Detailed histograms below for {len(drawn)} of "
                    f"{len(self.drift)} features ({which}). Not drawn in detail, their "
                    f"shares are in the table's small chart only ({len(omitted)}): "
                    f"{', '.join(omitted)}. <code>--plots all</code> draws every one.</p>")
        else:
            note = f"<p class='note'>Detailed histograms below for all {len(drawn)} features.</p>"
        title = f"Drift report: {html.escape(self.model)} version {html.escape(self.version)}"
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd}"
            ".alert{background:#fdd}.warn{background:#ffd}.note{max-width:60em}"
            "svg.h{vertical-align:middle}svg.h .r{fill:#1f77b4;opacity:.35}"
            "svg.h .c{fill:none;stroke:#d62728;stroke-width:1.2}</style></head><body>"
            f"<h1>{title}</h1><p>reference rows {self.reference_rows}, current rows "
            f"{self.current_rows}; PSI thresholds {self.thresholds.warn} (warn), "
            f"{self.thresholds.alert} (alert); {'DRIFT' if self.drifted else 'no drift'}</p>"
            f"{self.unscored_note('p')}<table><tr><th>feature</th><th>role</th><th>PSI</th>"
            "<th>JS distance</th>"
            "<th>level</th><th>share per bin: <span style='color:#1f77b4'>reference</span> / "
            f"<span style='color:#d62728'>current</span></th></tr>{''.join(rows)}</table>"
            f"{note}{''.join(figures)}</body></html>")


def _num(x: float) -> float | None:
    return None if x != x else x


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.4f}"


def _shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ref / max(int(ref.sum()), 1), cur / max(int(cur.sum()), 1)


def _spark(ref: np.ndarray, cur: np.ndarray, *, width: int = 5, height: int = 24) -> str:
    """A small inline SVG of one feature's shares per bin (bins,): the reference as filled
    steps, the current as a line (text only: no drawing library, so every feature has one)."""
    p, q = _shares(ref, cur)
    top = max(float(p.max(initial=0.0)), float(q.max(initial=0.0))) or 1.0
    ys = lambda v: " ".join(  # noqa: E731 - one step path per side
        f"H{k * width} V{height - height * x / top:.1f} H{(k + 1) * width}"
        for k, x in enumerate(v))
    n = len(p)
    return (f"<svg class='h' width='{n * width}' height='{height}' "
            f"viewBox='0 0 {n * width} {height}'><path class='r' d='M0 {height} {ys(p)} "
            f"V{height} Z'/><path class='c' d='M0 {height} {ys(q)}'/></svg>")


class _Plotter:
    """One Agg figure reused for every detailed histogram: creating a figure, pyplot's state,
    ``tight_layout`` and a title placed by measuring the ticks cost more than drawing. The
    axes, legend and title stay; each plot swaps in two step outlines (``stairs``: one artist
    each, not one rectangle per bin) and sets the ticks. PNG at 72 dpi."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        self.fig = Figure(figsize=(6.0, 2.6), dpi=72)
        FigureCanvasAgg(self.fig)
        ax = self.ax = self.fig.add_axes((0.09, 0.36, 0.89, 0.54))
        ax.set_ylabel("share of rows", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.tick_params(axis="x", labelsize=6, labelrotation=60)
        # proxies: the legend is made once, not from each plot's artists
        ax.legend([Patch(color=self.REF, alpha=0.35), Line2D([], [], color=self.CUR)],
                  ["reference", "current"], fontsize=6, loc="upper right")
        self.title = ax.set_title("", fontsize=8, y=1.0)  # y given: not placed by measuring
        self.artists: list[Any] = []

    REF, CUR = "#1f77b4", "#d62728"

    def png(self, labels: list[str], ref: np.ndarray, cur: np.ndarray, title: str) -> str:
        """Base64 PNG of one feature's shares per bin (bins,)."""
        p, q = _shares(ref, cur)
        n = len(labels)
        self.fig.set_size_inches(max(4.0, 0.3 * n + 1.5), 2.6)
        ax = self.ax
        for a in self.artists:
            a.remove()
        edges = np.arange(n + 1) - 0.5
        self.artists = [ax.stairs(p, edges, fill=True, alpha=0.35, color=self.REF),
                        ax.stairs(q, edges, color=self.CUR, linewidth=1.5)]
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0.0, 1.15 * max(float(p.max(initial=0.0)), float(q.max(initial=0.0)),
                                    1e-9))
        ax.set_xticks(np.arange(n), labels, ha="right", rotation_mode="anchor")
        self.title.set_text(title)
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png")
        return base64.b64encode(buf.getvalue()).decode("ascii")


def drift_report(model: Any, data: str | os.PathLike[str], *,
                 reference: str | os.PathLike[str] | None = None,
                 thresholds: Thresholds | None = None,
                 batch_rows: int = BATCH_ROWS, threads: int | None = None) -> DriftReport:
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
    c = count_file(layout, model, data, batch_rows=batch_rows, threads=threads)
    if c.rows == 0:
        raise DataFileError(f"data file '{data}' has no rows")
    ref = layout.flat_counts()
    return DriftReport(model.display_name, str(model.version), layout, ref, c.counts,
                       layout.rows, c.rows, compare_flat(layout, ref, c.counts),
                       thresholds or Thresholds(), time.perf_counter() - t0,
                       c.unscored, c.unscored_reason)


def dumps(report: DriftReport) -> str:
    """The report's JSON text (NaN as null)."""
    return json.dumps(report.to_json(), indent=2, allow_nan=False,
                      default=lambda o: None if isinstance(o, float) and math.isnan(o) else o)
