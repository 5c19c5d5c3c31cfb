"""A loaded model: steps bound to kernels, input encoding, output assembly, verification."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import read_bundle
from .errors import BundleFormatError, TablescoreError, VerificationError
from .inputs import InputEncoder, copy_checked, copy_into
from .ir import Bundle, Output
from .ops import BindContext, Bound, compile_later, entry_point, foreground, get_op
from .tolerances import close_mask

log = logging.getLogger("tablescore.scorer")


class Model:
    """A bundle ready to score.

    Use :func:`scorer.load` to get one. ``predict`` / ``predict_proba`` /
    ``decision_function`` mirror the original estimator (the latter two exist only where the
    original has them); :meth:`score` returns every output column as a DataFrame.

    Parameters
    ----------
    bundle : Bundle
        The model's IR.
    verify : bool
        Score the bundle's verification rows now and refuse it if they do not reproduce.
    display_name : str, optional
        The name the model is known by where it is used (a server's model directory), for
        errors and logs; default the bundle's own name. ``name`` stays the bundle's.
    """

    def __init__(self, bundle: Bundle, *, verify: bool = True,
                 display_name: str | None = None) -> None:
        self.bundle = bundle
        self.name = bundle.name
        #: the name errors and logs use: the served name where a server set it (the bundle's
        #: internal name, "model" for a PMML document called model.pmml, means nothing to a
        #: client that asked for "churn")
        self.display_name = display_name or bundle.name
        self.version = bundle.version
        self.fingerprint = bundle.fingerprint
        index = {f.name: i for i, f in enumerate(bundle.inputs)}
        if len(index) != len(bundle.inputs):
            raise BundleFormatError("duplicate input field names")
        ctx = BindContext(index=index, vocab={
            f.name: list(f.categories or []) for f in bundle.inputs if f.type == "string"})
        self._plan: list[Bound] = []
        for step in bundle.steps:
            spec = get_op(step.op, step.op_version)
            for out in step.outputs:
                if out in ctx.index:
                    raise BundleFormatError(f"step '{step.name}' redefines column '{out}'")
                ctx.index[out] = len(ctx.index)
            try:
                bound = spec.bind(step, ctx)
            except (KeyError, ValueError, IndexError, TypeError) as exc:
                raise BundleFormatError(
                    f"step '{step.name}' (op '{step.op}'): malformed parameters ({exc!r})"
                ) from exc
            bound.name = step.name
            ctx.vocab.update(bound.out_vocab)
            self._plan.append(bound)
        self._index = ctx.index
        self.width = len(ctx.index)
        #: the steps' tables were dropped after binding (:func:`load` with keep_tables=False)
        self.tables_released = False
        self._encoder = InputEncoder(bundle.inputs, self.width)
        # rows per chunk of a large batch: a chunk's workspace (~4 MiB) stays in L2 / L3, and
        # chunks are large enough that the per-chunk Python and dispatch cost stays small
        # (logistic regression, 30 features: 13.4M rows/s at 1 MiB chunks, 14.7M at 4 MiB)
        # (at most 16k rows: a 100k batch still spreads over the cores)
        self._chunk_rows = min(16384, max(1024, (4 << 20) // (8 * self.width)))
        self._has_parallel = any(b.parallel is not None for b in self._plan)
        #: the one-row path: (kernel, args) per step (the one-row kernels once compiled, the
        #: batch kernels until then), and the same with the kernels' entry points once
        #: resolved; the input copy's entry points by the row's writeability
        self._single_fast = _single_steps(self._plan)
        self._single_steps = self._single_fast
        self._single_plan: list[tuple[Any, tuple[Any, ...]]] | None = None
        self._plan_lock = threading.Lock()
        #: per step: its parallel kernel is compiled (batches use the serial one until then)
        self._parallel_ready = [False] * len(self._plan)
        #: per step: the batch kernel's arguments now (``Bound.args``, until the step's own
        #: ``Bound.specialised`` ones are compiled), and the parallel kernel's
        self._args = [b.args for b in self._plan]
        self._parallel_args = [b.args if b.specialised is None else b.specialised
                               for b in self._plan]
        self._single_copy: dict[bool | None, Any] = {}
        # the shape a one-row request has (None: string inputs never take the one-row path)
        self._one_row = (1, self._encoder.n_inputs) if self._encoder.all_numeric else None
        self._ws_one_row = (1, self.width)
        self._outputs = bundle.outputs
        for o in self._outputs:
            for c in ([o.column] if o.column else []) + list(o.columns or []):
                if c not in self._index:
                    raise BundleFormatError(f"output '{o.name}' reads unknown column '{c}'")
        # The result of a run holds only the workspace columns some output reads ("keep");
        # everything below indexes that result.
        used = sorted({self._index[c] for o in self._outputs
                       for c in ([o.column] if o.column else []) + list(o.columns or [])})
        self._keep = np.array(used, dtype=np.int64)
        self._keep_sel = _as_slice(self._keep)
        self._pos = {name: used.index(i) for name, i in self._index.items() if i in used}
        self._proba = [o for o in self._outputs if o.kind == "probability"]
        self._decision = [o for o in self._outputs if o.kind == "decision"]
        self._proba_sel = _as_slice(np.array([self._pos[o.column] for o in self._proba],
                                             dtype=np.int64))
        # the same columns in the workspace itself (the one-row path returns them from it)
        self._ws_proba_sel = _as_slice(np.array([self._index[o.column] for o in self._proba],
                                                dtype=np.int64))
        self._decision_sel = _as_slice(np.array([self._pos[o.column] for o in self._decision],
                                                dtype=np.int64))
        self._label = next((o for o in self._outputs if o.kind == "label"), None)
        #: the value outputs' columns (several targets: predict returns them all)
        self._value_cols = [o.column for o in self._outputs if o.kind == "value"]
        #: value outputs named value(j) are the columns of a 2-D prediction, one target too
        self._value_2d = any(o.kind == "value" and o.name == "value(0)" for o in self._outputs)
        # every label output, with what it needs precomputed (a model may have several:
        # PMML with two targets, or a categorical output field)
        self._label_rules: dict[str, tuple[str, Any, float, np.ndarray]] = {}
        for o in self._outputs:
            if o.kind != "label":
                continue
            if o.rule == "argmax":
                sel: Any = np.array([self._pos[c] for c in o.columns], dtype=np.int64)
            elif o.rule == "threshold":
                sel = self._pos[o.column]
            else:
                raise BundleFormatError(f"label rule '{o.rule}' unknown (output '{o.name}')")
            self._label_rules[o.name] = (o.rule, sel, float(o.threshold or 0.0),
                                         np.asarray(o.classes))
        if self._label is not None:
            self._classes = self._label_rules[self._label.name][3]
        if verify and bundle.verification is not None:
            self.verify()
        self._compile_fast_paths()

    # --- metadata -----------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return self.bundle.input_names

    @property
    def output_names(self) -> list[str]:
        return self.bundle.output_names

    @property
    def numeric_inputs(self) -> bool:
        """Every input is a number (double, integer or boolean): a numeric matrix in the
        order of :attr:`input_names` scores like the same columns by name."""
        return self._encoder.all_numeric

    @property
    def parallel_min_rows(self) -> int | None:
        """Smallest batch for which some step runs a parallel (prange) kernel, else None.
        Servers use it to warm the parallel kernels and to size batches."""
        rows = [b.parallel_min_rows for b in self._plan if b.parallel is not None]
        return min(rows) if rows else None

    @property
    def classes_(self) -> np.ndarray:
        if self._label is None:
            raise AttributeError(f"model '{self.display_name}' is not a classifier")
        return self._classes

    # --- core ---------------------------------------------------------------------------------
    def _run(self, X: Any, *, reference: bool = False,
             serial: bool = False) -> tuple[np.ndarray, bool]:
        """Score ``X``; return the output-relevant workspace columns (``self._keep``) as an
        array of shape (n_rows, len(keep)) and whether ``X`` was a single row. ``serial``:
        in the calling thread only (no parallel kernel, no thread pool)."""
        if (not reference and isinstance(X, np.ndarray) and X.ndim == 2
                and X.shape[0] > self._chunk_rows and X.dtype.kind in "fiub"
                and self._encoder.all_numeric):
            try:
                return self._run_chunked(X, serial=serial), False
            except TablescoreError:
                pass  # re-run whole below: the error then names the row in the caller's terms
        if serial:
            ws, single = self._encoder.encode(X)
            self._run_rows(ws, reference=reference, serial=True)
            return ws[:, self._keep_sel], single
        if not reference:
            ws = self._run_single(X)
            if ws is not None:
                return ws[:, self._keep_sel], False
        ws, single = self._encoder.encode(X)
        self._run_rows(ws, reference=reference)
        return ws[:, self._keep_sel], single

    def _run_single(self, X: Any) -> np.ndarray | None:
        """The workspace (float64[1, width]) of a one-row 2-D numeric array, by the lean path
        a single request takes; None when ``X`` is anything else, or when its row is refused
        (the general path then scores it and words the error).

        Each step runs its one-row kernel where it has one, called through its compiled entry
        point once the first call has compiled it: a single row costs a few microseconds, of
        which Python and the dispatchers' argument checks were half.
        """
        # (every check is a few attribute reads: each costs 15-60 ns of a ~3 µs call)
        if type(X) is not np.ndarray or X.shape != self._one_row:
            return None
        dt = X.dtype
        # (an unpickled array carries its own, equal dtype object: `is` alone would send
        # it the slow way)
        if dt is _F64 or dt == _F64:
            # The copy has entry points for C-order float64 rows (the usual ones), writable
            # or not (a view of request bytes is read-only: another type to Numba).
            flags = X.flags
            key = flags.writeable if flags.c_contiguous else None
        elif dt.kind in "fiub" and dt.isnative and dt.itemsize <= 8:
            key = None  # other numeric dtypes and layouts: the dispatcher picks the copy
        else:
            return None
        ws = np.empty(self._ws_one_row, dtype=np.float64)
        enc = self._encoder
        copy = self._single_copy.get(key, copy_into)
        if copy(ws, X, enc.nan_checked, enc.inf_checked) >= 0:
            return None
        if key is not None and key not in self._single_copy:
            # (None until the copy is compiled for this type: copy_into until then)
            fn = entry_point(copy_checked, (ws, X, enc.nan_checked, enc.inf_checked))
            if fn is not None:
                self._single_copy[key] = fn
        plan = self._single_plan
        if plan is not None:
            for fn, args in plan:
                if fn(ws, *args) >= 0:
                    return None
            return ws
        steps = self._single_steps
        for fn, args in steps:
            if fn(ws, *args) >= 0:
                return None
        # every step is compiled now: resolve its entry points (unless the one-row kernels
        # replaced these steps meanwhile: the next call resolves theirs)
        resolved = [(entry_point(fn, (ws, *args)) or fn, args) for fn, args in steps]
        with self._plan_lock:
            if steps is self._single_steps:
                self._single_plan = resolved
        return ws

    def _compile_fast_paths(self) -> None:
        """Get the one-row and parallel kernels compiled (:func:`scorer.ops.compile_later`:
        from the on-disk cache at once, else on the background compile thread) and switch
        to them when they are; until then the batch kernels, which verification compiled,
        give the same results. A model's load then compiles only what verification needs
        (with the other kernel changes of #18, an empty-cache start of the 7 demo models went
        from 43.9 s to 14.3 s, benchmarks/results/coldstart-2026-12-06.json; with one shared
        tree variant and the input copies and request scan in the background, 15.9 s to
        9.8 s in a later run, coldstart-2026-12-06-shared-variant.json)."""
        ws = np.empty(self._ws_one_row, dtype=np.float64)  # (a batch's workspace: same type)
        fast = self._single_fast
        if any(b.single is not None or b.specialised is not None for b in self._plan):
            # (else fast is the batch kernels, which verification compiled)
            self._single_steps = [(b.kernel, b.args) for b in self._plan]
            left = [len(fast)]

            def one_done() -> None:
                with self._plan_lock:
                    left[0] -= 1
                    if left[0] == 0:
                        self._single_steps = self._single_fast
                        self._single_plan = None

            for fn, args in fast:
                compile_later(fn, (ws, *args), one_done)
        for i, b in enumerate(self._plan):
            if b.specialised is not None:
                compile_later(b.kernel, (ws, *b.specialised), lambda i=i: self._specialised(i))
            if b.parallel is not None:
                compile_later(b.parallel, (ws, *self._parallel_args[i]),
                              lambda i=i: self._parallel_ready.__setitem__(i, True))

    def _specialised(self, i: int) -> None:
        """Step ``i``'s batch kernel is compiled for its own arguments: batches take them
        (the same results), and the shared variant's arrays are dropped."""
        b = self._plan[i]
        if b.specialised is not None:
            self._args[i] = b.args = b.specialised

    def columns(self, X: Any, names: list[str] | None = None, *,
                reference: bool = False) -> np.ndarray:
        """Intermediate workspace columns (e.g. a tree step's raw margins), for debugging and
        conformance work: float64[n_rows, len(names)], or the whole workspace when ``names``
        is None (inputs first, then every step's outputs in step order)."""
        ws, _ = self._encoder.encode(X)
        self._run_rows(ws, reference=reference)
        if names is None:
            return ws
        try:
            return ws[:, [self._index[c] for c in names]]
        except KeyError as exc:
            raise KeyError(f"model '{self.display_name}' has no workspace column {exc.args[0]!r}") \
                from None

    def _run_chunked(self, X: np.ndarray, *, serial: bool = False) -> np.ndarray:
        """Large numeric batches in cache-sized row chunks: each chunk's workspace stays in
        cache from one step to the next, and only the output columns of all rows are kept
        (no n_rows x width workspace to allocate and fault in). ``serial``: the chunks one
        after the other in the calling thread, by the serial kernels."""
        n = X.shape[0]
        out = np.empty((n, len(self._keep)), dtype=np.float64)
        n_chunks = -(-n // self._chunk_rows)
        threads = 1 if serial else min(_num_threads(), n_chunks)
        # Chunks spread over threads, each running the serial kernels (which release the
        # GIL), whenever there are enough chunks to share out: a thread that is done takes
        # the next chunk, so one slow core delays one chunk, not every parallel loop (2
        # cores, XGBoost 200 trees: 1.10M -> 1.14M rows/s median). Too few chunks: the
        # prange kernels use every core inside each chunk.
        pooled = threads > 1 and (not self._has_parallel or n_chunks >= 2 * threads)
        if pooled:  # chunks of one size, as many per thread (13 chunks on 2 threads: 7 + 6)
            n_chunks = -(-n_chunks // threads) * threads
        chunk = -(-n // n_chunks)

        def work(i0: int) -> None:
            Xc = X[i0 : i0 + chunk]
            ws = _scratch(Xc.shape[0], self.width)
            self._encoder.encode_numeric(Xc, ws)
            self._run_rows(ws, serial=serial or pooled)
            out[i0 : i0 + chunk] = ws[:, self._keep_sel]

        if pooled:
            _share(work, range(0, n, chunk), threads)
        else:
            for i0 in range(0, n, chunk):
                work(i0)
        return out

    def _run_rows(self, ws: np.ndarray, *, reference: bool = False,
                  serial: bool = False) -> None:
        """Run every step on the workspace ``ws`` (float64[n_rows, width]); ``serial``: never
        the parallel kernels (the caller spreads work over threads itself)."""
        n = ws.shape[0]
        for i, b in enumerate(self._plan):
            if reference:
                status = b.reference(ws, *b.args)
            elif serial or n < b.parallel_min_rows or not self._parallel_ready[i]:
                # small batches never pay thread start-up
                status = b.kernel(ws, *self._args[i])
            else:
                status = b.parallel(ws, *self._parallel_args[i])
            if status >= 0:
                raise b.error(ws, int(status)) if b.error else RuntimeError(
                    f"step '{b.name}' failed on row {status}")

    def _labels(self, res: np.ndarray, o: Output | None = None) -> np.ndarray:
        """Class values, shape (n_rows,); a row without a prediction (every argmax column, or
        the threshold column, NaN: e.g. a PMML nullPrediction) has a missing label, None (the
        array is then of object dtype)."""
        rule, sel, threshold, classes = self._label_rules[(o or self._label).name]
        if res.shape[0] == 1:  # one row (a request): the same rules on Python scalars
            if rule == "argmax":
                i = _argmax(res[0, sel].tolist())
            else:
                v = float(res[0, sel])
                i = -1 if v != v else int(v > threshold)
            if i >= 0:
                return classes[i : i + 1].copy()  # (never a view of the model's classes)
            return np.array([None], dtype=object)
        vals = res[:, sel]
        if rule == "argmax":
            idx = np.argmax(vals, axis=1)
            missing = np.isnan(vals).all(axis=1)
        else:
            idx = (vals > threshold).astype(np.int64)
            missing = np.isnan(vals)
        out = classes[idx]
        if missing.any():
            out = out.astype(object)
            out[missing] = None
        return out

    def _column(self, res: np.ndarray, o: Output) -> np.ndarray:
        if o.kind == "label":
            return self._labels(res, o)
        return res[:, self._pos[o.column]]

    # --- sklearn-like API ---------------------------------------------------------------------
    def predict(self, X: Any, *, reference: bool = False) -> np.ndarray:
        """Labels (classifiers) or values (regressors): shape (n_rows,), or (n_rows,
        n_targets) for a model of several value outputs (or of one named ``value(0)``: a
        regressor fitted on a 2-D y), as the original's ``predict``."""
        res, _ = self._run(X, reference=reference)
        if self._label is not None:
            return self._labels(res)
        cols = [self._pos[c] for c in self._value_cols]
        if len(cols) > 1 or self._value_2d:
            return res[:, cols]
        if cols:
            return res[:, cols[0]].copy()
        raise AttributeError(f"model '{self.display_name}' has no predicted value or label output")

    def _predict_proba(self, X: Any, *, reference: bool = False) -> np.ndarray:
        if not reference:
            ws = self._run_single(X)
            if ws is not None:  # one row: straight from its private workspace
                return ws[:, self._ws_proba_sel]
        res, _ = self._run(X, reference=reference)
        return np.ascontiguousarray(res[:, self._proba_sel])

    def _decision_function(self, X: Any, *, reference: bool = False) -> np.ndarray:
        res, _ = self._run(X, reference=reference)
        out = np.ascontiguousarray(res[:, self._decision_sel])
        return out[:, 0].copy() if out.shape[1] == 1 else out

    @property
    def predict_proba(self):
        """Class probabilities, shape (n_rows, n_classes), columns in ``classes_`` order."""
        if not self._proba:
            raise AttributeError(f"model '{self.display_name}' has no probability outputs")
        return self._predict_proba

    @property
    def decision_function(self):
        """Decision function: shape (n_rows,) for one column, else (n_rows, n_classes)."""
        if not self._decision:
            raise AttributeError(f"model '{self.display_name}' has no decision outputs")
        return self._decision_function

    def score(self, X: Any, *, reference: bool = False):
        """Every output column, named as in the output schema, as a pandas DataFrame."""
        import pandas as pd

        res, _ = self._run(X, reference=reference)
        return pd.DataFrame({o.name: self._column(res, o) for o in self._outputs})

    def score_arrays(self, X: Any, *, reference: bool = False,
                     serial: bool = False) -> dict[str, np.ndarray]:
        """Every output column as a dict of 1-D arrays (no pandas; used by transports).
        ``serial``: in the calling thread only, never a parallel kernel (background work
        beside requests: Numba's workqueue layer aborts the process when two threads launch
        parallel kernels at once); the same results."""
        # one row first, straight to its lean path (one Python frame less than through _run:
        # ~0.3 µs of a ~5 µs one-row call of a linear model); None for anything else
        ws = None if reference or serial else self._run_single(X)
        res = (ws[:, self._keep_sel] if ws is not None
               else self._run(X, reference=reference, serial=serial)[0])
        return {o.name: np.ascontiguousarray(self._column(res, o)) for o in self._outputs}

    def _release_tables(self) -> None:
        """Drop the steps' parameter tables (see :func:`load`); the bundle is this model's own."""
        for step in self.bundle.steps:
            step.tables = {}
        self.tables_released = True
        self.bundle.tables_released = True  # write_bundle refuses it

    # --- verification -------------------------------------------------------------------------
    def verify(self) -> int:
        """Score the bundle's verification rows and compare with the recorded outputs.

        Returns the number of rows checked. Raises :class:`VerificationError` naming the first
        row and column that differs beyond the recorded tolerance.
        """
        v = self.bundle.verification
        if v is None:
            return 0
        inputs = {k: np.asarray(c) for k, c in v.inputs.items()}
        n = len(next(iter((inputs or v.expected).values()), ()))
        if n == 0:
            return 0
        # a model without inputs: an (n, 0) array still says how many rows to score
        got = self.score_arrays(inputs if inputs else np.empty((n, 0)))
        for name, expected in v.expected.items():
            if name not in got:
                raise VerificationError(
                    f"model '{self.display_name}': verification column '{name}' is not an output")
            check_close(got[name], np.asarray(expected), abs_tol=v.abs_tol, rel_tol=v.rel_tol,
                        what=f"model '{self.display_name}' verification", column=name)
        log.info("model %s version %s verified (%d rows, fingerprint %s)", self.display_name,
                 self.version, n, (self.fingerprint or "")[:12])
        return n


_F64 = np.dtype(np.float64)


_POOLS: dict[int, Any] = {}
_SCRATCH = threading.local()


def _argmax(values: list[float]) -> int:
    """``np.argmax`` of a short list of floats, or -1 when every value is NaN: the first NaN
    when there is one (NumPy takes NaN for the maximum), else the first maximum. Scalars
    instead of array calls: a one-row label costs a few hundred nanoseconds less per call."""
    best = -1
    top = 0.0
    for j, v in enumerate(values):
        if v != v:
            return j if any(w == w for w in values) else -1
        if best < 0 or v > top:
            best, top = j, v
    return best


def _single_steps(plan: list[Bound]) -> list[tuple[Any, tuple[Any, ...]]]:
    """``[(kernel, args), ...]`` for a one-row workspace: each step's one-row kernel where it
    has one, and a link step folded into the step before it where that step can apply it
    in the same call (a boosted classifier's margin, then its sigmoid)."""
    out: list[tuple[Any, tuple[Any, ...]]] = []
    i = 0
    while i < len(plan):
        b = plan[i]
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        if b.single_then_link is not None and nxt is not None and nxt.link:
            out.append((b.single_then_link, (*b.single_args, *nxt.single_args)))
            i += 2
            continue
        out.append((b.single, b.single_args) if b.single is not None else
                   (b.kernel, b.args if b.specialised is None else b.specialised))
        i += 1
    return out


def _scratch(rows: int, width: int) -> np.ndarray:
    """A float64[rows, width] workspace from this thread's scratch buffer, shared by every
    model the thread scores and reused from chunk to chunk: a fresh chunk-sized array per
    chunk can come from the OS each time (glibc maps and unmaps blocks this large), and its
    page faults made a large batch up to 1.5x slower (logistic regression 44 -> 66 ns/row).
    Valid until the thread's next call; results must be copied out of it."""
    need = rows * width
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.shape[0] < need:
        buf = _SCRATCH.buf = np.empty(max(need, 1 << 19), dtype=np.float64)
    return buf[:need].reshape(rows, width)


def _num_threads() -> int:
    import numba

    return numba.get_num_threads()  # honours numba.set_num_threads / NUMBA_NUM_THREADS


def _share(work: Any, starts: range, threads: int) -> None:
    """Call ``work(i0)`` for every ``i0`` of ``starts`` on ``threads`` threads: the caller
    and ``threads - 1`` pool workers each take the next start from one shared iterator until
    none is left. One pool task per helper per batch, not one per chunk: a task is a queue
    put, a futex wake and a future, tens of microseconds on a VM. With a task per chunk, a
    100k-row logistic regression at 2 threads ran at 4.6-5.6M rows/s against 7.4-8.2M at 1
    thread (1k-row chunks), and 6.9-15.0M against 7.5-9.2M (8k-row chunks); with the shared
    iterator, 17M at 2 threads. Returns when every chunk is done; re-raises the first error
    (the caller's own first)."""
    it = iter(starts)  # a range iterator's next() is atomic under the GIL

    def loop() -> None:
        for i0 in it:
            work(i0)

    helpers = [_pool(threads - 1).submit(loop) for _ in range(threads - 1)]
    try:
        loop()
    finally:
        for _ in it:  # after an error, leave the helpers nothing more to start
            pass
        for f in helpers:
            f.exception()  # waits; a helper must not write into the output after we return
    for f in helpers:
        f.result()


def _pool(threads: int) -> Any:
    """A process-wide thread pool per size (kernels run with the GIL released)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS.setdefault(threads, ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="tablescore-chunk"))
    return pool


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """A basic slice when ``idx`` is a run of consecutive columns (a view, no gather)."""
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def check_close(got: np.ndarray, expected: np.ndarray, *, abs_tol: float, rel_tol: float,
                what: str, column: str) -> None:
    """Raise :class:`VerificationError` on the first row where ``got`` and ``expected`` differ.

    Numbers: ``|got - expected| <= abs_tol + rel_tol * |expected|`` with NaN == NaN.
    Anything else (labels): exact equality after conversion to str.
    """
    if expected.dtype.kind in "fiu" and got.dtype.kind in "fiub":
        g = got.astype(np.float64)
        e = expected.astype(np.float64)
        ok = close_mask(g, e, abs_tol, rel_tol)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            gi, ei = float(g[i]), float(e[i])
            diff = abs(gi - ei)
            rel = diff / abs(ei) if ei != 0 else np.inf
            # a recorded value that is a float32 (XGBoost's outputs) has float32 precision:
            # say how far off in its ulps, and whether ours rounds to it
            f32 = bool(np.isfinite(ei)) and float(np.float32(ei)) == ei
            if f32:
                ulps = diff / float(np.spacing(np.float32(abs(ei))))
                own = bool(np.float32(gi) == np.float32(ei))
                precision = f"{ulps:.3g} float32 ulps; "
                verdict = ("within the value's own float32 precision (it rounds to the "
                           "expected float32): the recorded tolerance is tighter than the "
                           "output's precision" if own else
                           "beyond the value's own float32 precision (it does not round to "
                           "the expected float32)")
            else:
                ulps = diff / float(np.spacing(abs(ei))) if bool(np.isfinite(ei)) else np.inf
                precision = f"{ulps:.3g} float64 ulps; "
                verdict = "beyond float64 rounding" if ulps > 1 else "within one float64 ulp"
            raise VerificationError(
                f"{what}: row {i}, column '{column}': got {gi!r}, expected {ei!r}: differs by "
                f"{diff:.3g} (relative {rel:.3g}; {precision}"
                f"tolerance {abs_tol:g} + {rel_tol:g}*|expected| = "
                f"{abs_tol + rel_tol * abs(ei):.3g}), {verdict}; the parameters no longer "
                "reproduce the original model"
            )
        return
    g = np.array([str(x) for x in got])
    e = np.array([str(x) for x in expected])
    bad = g != e
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VerificationError(
            f"{what}: row {i}, column '{column}': got {g[i]!r}, expected {e[i]!r}")


def load(path: str | os.PathLike[str], *, verify: bool = True,
         keep_tables: bool = True, name: str | None = None) -> Model:
    """Load a bundle directory or a ``.pmml`` / ``.xml`` PMML document.

    Checks the schema version, the fingerprint and every table hash, binds every step to its
    kernel and, unless ``verify=False``, reproduces the verification rows.

    ``keep_tables=False`` drops the parameter tables once the kernels hold what they need
    (about half the memory of a tree ensemble, as a server wants it); ``model.bundle`` then
    keeps its manifest data (inputs, outputs, step params, verification) but its steps have
    no tables, so it can no longer be written, and ``reference=True`` scoring of tree
    ensembles (whose reference re-reads the tables) is refused.

    ``name`` is the model's :attr:`Model.display_name` (a server passes the name it serves
    the model under), used in errors and logs from the verification on.

    A PMML document has no fingerprint of its own: the reader makes it the sha256 of the
    document's bytes it parsed; its creation time is the document's ``Header/Timestamp``,
    or the file's modification time where that is absent or not an ISO 8601 date-time.
    """
    p = Path(path)
    with foreground():  # (no background compile delays this load's own compiles)
        if p.suffix.lower() in (".pmml", ".xml") and p.is_file():
            from scorer.pmml import read_pmml

            b = read_pmml(p)
            _identify_document(b, p)
            model = Model(b, verify=verify, display_name=name)
        else:
            model = Model(read_bundle(p), verify=verify, display_name=name)
    if not keep_tables:
        model._release_tables()
    return model


def _identify_document(b: Bundle, path: Path) -> None:
    """Give a bundle read from a PMML document the fingerprint (sha256 of the document's
    bytes, so that equal documents fingerprint equal) and creation time (the file's mtime,
    UTC) that ModelConfig and logs report, where the reader set none."""
    if not b.fingerprint:
        with open(path, "rb") as fh:
            b.fingerprint = hashlib.file_digest(fh, "sha256").hexdigest()
    if not b.created:
        mtime = path.stat().st_mtime
        b.created = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")
