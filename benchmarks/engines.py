"""Engine adapters: one class per scoring engine behind one small interface.

An adapter turns a fitted model into something its engine scores, then answers
:meth:`Engine.predict_one` (one ``(1, n_features)`` float64 row -> one float) and
:meth:`Engine.predict_batch` (``(n, n_features)`` -> ``(n,)``). Both return the positive-class
probability for a binary classifier, or the predicted value for a regressor, so the runner
compares every engine on the same numbers.

Adding an engine (``pypmml``, ``tl2cgen``, ``mlserver`` are planned; see :data:`PLANNED`):
subclass :class:`Engine`, list the modules it needs in ``requires``, decorate it with
:func:`register`. Raise :class:`EngineSkip` from :meth:`Engine.prepare` when the engine cannot
take a model (conversion refused); anything else raised is recorded as an error. Engines that
hold resources (a server process, a gRPC channel) release them in :meth:`Engine.close`, and
report engine-specific figures (artifact size, start-up time) from
:meth:`Engine.extra_measures`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class EngineSkip(Exception):
    """The engine cannot handle this model (a conversion or export refused it).

    Recorded in the results as ``status: "skipped"`` with the message as the reason; the run
    goes on with the other engines.
    """


def short_reason(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, truncated (some converters dump whole tree
    arrays into the message), plus the first line of the chained cause, which is often the
    informative part."""

    def line(e: BaseException) -> str:
        text = str(e).strip().splitlines()
        first = text[0].rstrip(" ,:") if text else ""
        if len(first) > limit:
            first = first[: limit - 3] + "..."
        return f"{type(e).__name__}: {first}" if first else type(e).__name__

    cause = exc.__cause__ or exc.__context__
    return line(exc) + (f" (caused by {line(cause)})" if cause is not None else "")


def final_estimator(model: Any) -> Any:
    """The last step of a Pipeline, else the model itself."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def is_classifier(model: Any) -> bool:
    """True when the model exposes ``predict_proba`` (Pipelines forward it conditionally)."""
    return hasattr(model, "predict_proba")


def model_library(model: Any) -> str:
    """Top-level package of the final estimator: ``sklearn``, ``xgboost``, ``lightgbm``..."""
    return type(final_estimator(model)).__module__.split(".")[0]


def _positive(out: np.ndarray, classifier: bool) -> np.ndarray:
    """Positive-class column of a probability matrix, or the flattened value."""
    if classifier and out.ndim == 2:
        return out[:, 1] if out.shape[1] > 1 else out[:, 0]
    return out.reshape(-1)


class Engine(ABC):
    """Base adapter. Subclasses set ``name`` and implement prepare / predict_one / predict_batch.

    Parameters
    ----------
    workdir : Path
        A private, existing scratch directory (deleted after the family is done).
    """

    #: Engine key used on the command line and in the results.
    name: ClassVar[str]
    #: Importable modules the engine needs; absent ones skip the engine for the whole run.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Caps for slow engines (None: the run's own figures). ``max_latency_calls`` bounds the
    #: timed calls per latency repeat (and the warm-up); ``max_batch_rows`` bounds the rows of
    #: any batch it scores (a larger batch size is measured on its first ``max_batch_rows``
    #: rows, recorded as ``rows_scored``; faithfulness too).
    max_latency_calls: ClassVar[int | None] = None
    max_batch_rows: ClassVar[int | None] = None
    #: False: the engine has no thread knob; its batches are measured at 1 thread only.
    threaded: ClassVar[bool] = True

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.classifier = True

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the engine cannot run here (a missing module), or ``None`` when it can."""
        for mod in cls.requires:
            if importlib.util.find_spec(mod) is None:
                return f"module '{mod}' is not installed"
        return None

    @abstractmethod
    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        """Make ``model`` scorable by this engine. Raise :class:`EngineSkip` if it cannot."""

    def set_threads(self, n: int) -> None:  # noqa: B027  (optional hook, default no-op)
        """Apply the thread setting (the runner already limits OpenMP/BLAS process-wide)."""

    @abstractmethod
    def predict_one(self, row: np.ndarray) -> float:
        """Score one ``(1, n_features)`` row; return P(class 1) or the value."""

    @abstractmethod
    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        """Score ``(n, n_features)`` rows; return shape ``(n,)``."""

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        """Engine-specific figures (artifact size, load time); called once per family.

        ``repeats``: repeats of in-process measures. ``fresh_process``: how many new
        interpreters to time start-up in, where that applies (seconds each; 0 = none).
        """
        return {}

    def close(self) -> None:  # noqa: B027  (optional hook, default no-op)
        """Release whatever :meth:`prepare` acquired (sessions, servers, thread settings)."""


#: Registered engines, in report order.
ENGINES: dict[str, type[Engine]] = {}

#: Engines planned but not written yet, with what the adapter will do. (MLServer is measured
#: in the gRPC transport phase, :mod:`benchmarks.serving`, not as an in-process engine.)
PLANNED: dict[str, str] = {}


def register(cls: type[Engine]) -> type[Engine]:
    """Class decorator adding an adapter to :data:`ENGINES` under ``cls.name``."""
    ENGINES[cls.name] = cls
    return cls


@register
class NativeEngine(Engine):
    """The training library itself: ``predict_proba`` (or ``predict`` for regressors)."""

    name = "native"

    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        self.model = model
        self.classifier = is_classifier(model)
        self._fn = model.predict_proba if self.classifier else model.predict
        # RandomForest / XGBoost / LightGBM take their prediction threads from n_jobs.
        self._jobs = [k for k in model.get_params(deep=True)
                      if k == "n_jobs" or k.endswith("__n_jobs")]

    def set_threads(self, n: int) -> None:
        if self._jobs:
            self.model.set_params(**dict.fromkeys(self._jobs, n))

    def predict_one(self, row: np.ndarray) -> float:
        return float(_positive(self._fn(row), self.classifier)[0])

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        return _positive(np.asarray(self._fn(X)), self.classifier)

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        return {"pickle_bytes": len(pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL))}


@register
class OnnxRuntimeEngine(Engine):
    """ONNX Runtime (CPU) on a model converted by skl2onnx, or onnxmltools for XGBoost/LightGBM.

    Inputs are float32 (the converters' standard input type); the cast is part of each timed
    call, because callers hold float64 rows. One session per thread setting, with
    ``intra_op_num_threads`` set to it.
    """

    name = "onnxruntime"
    requires = ("onnxruntime", "onnx")

    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.classifier = is_classifier(model)
        t0 = time.perf_counter()
        onx = self._convert(model, X_sample.shape[1])
        self.convert_s = time.perf_counter() - t0
        self._bytes = onx.SerializeToString()
        self._sessions: dict[int, Any] = {}
        try:
            sess = self._session(1)
        except Exception as exc:
            raise EngineSkip(f"onnxruntime refused the converted model: {short_reason(exc)}"
                             ) from exc
        self._input = sess.get_inputs()[0].name
        outs = sess.get_outputs()
        floats = [o for o in outs if o.type == "tensor(float)"]
        if not floats:
            raise EngineSkip("converted model has no float tensor output: "
                             f"{[o.name for o in outs]}")
        named = [o for o in floats if o.name == "probabilities"]
        self._output = [(named or floats)[-1 if self.classifier else 0].name]
        self._sess = sess

    def _convert(self, model: Any, n_features: int) -> Any:
        lib = model_library(model)
        try:
            if lib == "sklearn":
                if importlib.util.find_spec("skl2onnx") is None:
                    raise EngineSkip("skl2onnx is not installed")
                from skl2onnx import convert_sklearn
                from skl2onnx.common.data_types import FloatTensorType

                options = ({id(final_estimator(model)): {"zipmap": False}}
                           if self.classifier else None)
                return convert_sklearn(model, initial_types=[
                    ("X", FloatTensorType([None, n_features]))], options=options)
            if lib in ("xgboost", "lightgbm"):
                if importlib.util.find_spec("onnxmltools") is None:
                    raise EngineSkip("onnxmltools is not installed")
                import onnxmltools

                # onnxmltools checks for its own tensor type class, not skl2onnx's.
                from onnxmltools.convert.common.data_types import FloatTensorType as MltFloat

                types = [("X", MltFloat([None, n_features]))]
                if lib == "xgboost":
                    return onnxmltools.convert_xgboost(model, initial_types=types)
                return onnxmltools.convert_lightgbm(model, initial_types=types, zipmap=False)
        except EngineSkip:
            raise
        except Exception as exc:
            raise EngineSkip(f"ONNX conversion failed: {short_reason(exc)}") from exc
        raise EngineSkip(f"no ONNX converter wired for {lib} models")

    def _session(self, n: int) -> Any:
        sess = self._sessions.get(n)
        if sess is None:
            so = self._ort.SessionOptions()
            so.intra_op_num_threads = n
            so.inter_op_num_threads = 1
            so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
            so.log_severity_level = 3  # converters emit harmless shape warnings on every run
            sess = self._ort.InferenceSession(self._bytes, sess_options=so,
                                              providers=["CPUExecutionProvider"])
            self._sessions[n] = sess
        return sess

    def set_threads(self, n: int) -> None:
        self._sess = self._session(n)

    def predict_one(self, row: np.ndarray) -> float:
        out = self._sess.run(self._output, {self._input: row.astype(np.float32)})[0]
        return float(_positive(out, self.classifier)[0])

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        out = self._sess.run(self._output, {self._input: X.astype(np.float32)})[0]
        return _positive(out, self.classifier)

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        return {"onnx_bytes": len(self._bytes), "convert_s": self.convert_s}

    def close(self) -> None:
        self._sessions.clear()
        self._sess = None


@register
class TablescoreEngine(Engine):
    """tablescore: export a bundle to a scratch directory, ``scorer.load`` it, score it.

    Threads are Numba's (``numba.set_num_threads``); they matter only to ops with a parallel
    kernel. The original thread count is restored on :meth:`close`.
    """

    name = "tablescore"
    requires = ("scorer", "exporters", "numba")

    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        import numba

        import exporters
        import scorer
        from scorer.errors import ExportError

        self._numba = numba
        self._threads0 = numba.get_num_threads()
        self.path = self.workdir / "bundle"
        t0 = time.perf_counter()
        try:
            exporters.export(model, self.path, sample=X_sample, overwrite=True)
        except ExportError as exc:  # includes UnsupportedEstimatorError
            raise EngineSkip(f"export refused: {short_reason(exc)}") from exc
        self.export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.model = scorer.load(self.path)  # export's own check already ran the kernels
        self.load_after_export_s = time.perf_counter() - t0
        self.classifier = hasattr(self.model, "predict_proba")
        self._fn = self.model.predict_proba if self.classifier else self.model.predict

    def set_threads(self, n: int) -> None:
        self._numba.set_num_threads(max(1, min(n, self._numba.config.NUMBA_NUM_THREADS)))

    def predict_one(self, row: np.ndarray) -> float:
        return float(_positive(self._fn(row), self.classifier)[0])

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        return _positive(self._fn(X), self.classifier)

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        """Bundle size on disk and load times.

        ``load_ms``: ``scorer.load`` in this process, kernels already compiled (the serving
        case of loading a new model version). ``process_*``: a fresh interpreter importing
        ``scorer``, loading the bundle (kernels from Numba's on-disk cache) and scoring one row.
        """
        import scorer

        loads = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            scorer.load(self.path)  # includes verification of the stored rows, as in serving
            loads.append((time.perf_counter_ns() - t0) / 1e6)
        files = [p for p in self.path.rglob("*") if p.is_file()]
        out: dict[str, Any] = {
            "bundle_bytes": sum(p.stat().st_size for p in files),
            "bundle_files": len(files),
            "export_s": self.export_s,
            "load_after_export_s": self.load_after_export_s,
            "load_ms": statistics.median(loads),
            "load_ms_runs": loads,
        }
        if fresh_process:
            runs = [_fresh_process_start(self.path) for _ in range(fresh_process)]
            for key in runs[0]:
                out[f"process_{key}"] = statistics.median(r[key] for r in runs)
            out["process_runs"] = runs
        return out

    def close(self) -> None:
        if hasattr(self, "_threads0"):
            self._numba.set_num_threads(self._threads0)


_FRESH_START = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import scorer
t1 = time.perf_counter()
m = scorer.load(sys.argv[1])
t2 = time.perf_counter()
m.predict(np.zeros((1, len(m.input_names))))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2,
                  "total_s": t3 - t0}))
"""


def _fresh_process_start(path: Path) -> dict[str, float]:
    """Time import + load + first one-row predict in a new interpreter (same environment)."""
    proc = subprocess.run([sys.executable, "-c", _FRESH_START, str(path)], capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- PMML: one document per model, shared by pypmml and tablescore's reader -------------------
_PMML_CACHE: dict[int, tuple[Any, Path, float]] = {}


def pmml_feature_names(n: int) -> list[str]:
    """Input field names given to the PMML document (the models are fitted on bare arrays)."""
    return [f"x{i}" for i in range(n)]


def column_index(used: Sequence[str], n: int) -> np.ndarray | None:
    """Positions of the fields a PMML model reads among all ``n`` features, or None when it
    reads all of them in order. sklearn2pmml leaves features no tree splits on out of the
    MiningSchema, and tablescore's reader then expects exactly the used fields."""
    names = pmml_feature_names(n)
    if list(used) == names:
        return None
    pos = {name: i for i, name in enumerate(names)}
    missing = [u for u in used if u not in pos]
    if missing:
        raise EngineSkip(f"PMML model reads fields that are not features: {missing[:5]}")
    return np.asarray([pos[u] for u in used], dtype=np.intp)


def pmml_document(model: Any, X_sample: np.ndarray, workdir: Path) -> tuple[Path, float]:
    """Export ``model`` to PMML once (sklearn2pmml through ``exporters.to_pmml``) and return
    ``(path, export seconds)``; the next engine asking for the same model gets the same file.

    The file lives in the first asker's workdir, which lasts as long as the family.
    """
    hit = _PMML_CACHE.get(id(model))
    if hit is not None and hit[0] is model and hit[1].is_file():
        return hit[1], hit[2]
    import exporters
    from scorer.errors import ExportError

    path = workdir / "model.pmml"
    t0 = time.perf_counter()
    try:
        exporters.to_pmml(model, path, sample=X_sample[:64],
                          feature_names=pmml_feature_names(X_sample.shape[1]))
    except ExportError as exc:
        raise EngineSkip(f"PMML export refused: {short_reason(exc)}") from exc
    secs = time.perf_counter() - t0
    _PMML_CACHE.clear()  # one model at a time: the family's
    _PMML_CACHE[id(model)] = (model, path, secs)
    return path, secs


@register
class PypmmlEngine(Engine):
    """pypmml (PMML4S on a JVM through py4j) scoring the sklearn2pmml document.

    Single row: ``predict`` on a dict (pypmml's fastest one-record path); batch: a DataFrame.
    It is slow (milliseconds per row), so its latency calls and batch rows are capped
    (:attr:`max_latency_calls`, :attr:`max_batch_rows`), and as it has no thread setting its
    batches run at 1 thread only. PMML4S evaluates in float64 (sklearn compares float32
    thresholds): forests show ~1e-3 differences from native.
    """

    name = "pypmml"
    requires = ("pypmml", "pandas", "exporters")
    max_latency_calls = 300
    max_batch_rows = 5_000
    threaded = False

    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        import pandas as pd
        from pypmml import Model

        self._pd = pd
        self.classifier = is_classifier(model)
        self.path, self.export_s = pmml_document(model, X_sample, self.workdir)
        t0 = time.perf_counter()
        self.model = Model.fromFile(str(self.path))
        self.load_s = time.perf_counter() - t0
        # pypmml picks its fields by name and ignores the others: pass every feature
        self._inputs = pmml_feature_names(X_sample.shape[1])
        outs = list(self.model.outputNames)
        if self.classifier:
            probs = [o for o in outs if o.startswith("probability")]
            if not probs:
                raise EngineSkip(f"pypmml: no probability output in {outs}")
            self._out = probs[-1]  # probability(1)
        else:
            self._out = outs[0]

    def predict_one(self, row: np.ndarray) -> float:
        rec = dict(zip(self._inputs, row[0].tolist(), strict=True))
        return float(self.model.predict(rec)[self._out])

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        df = self._pd.DataFrame(X, columns=self._inputs)
        return np.asarray(self.model.predict(df)[self._out], dtype=np.float64)

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        return {"pmml_bytes": self.path.stat().st_size, "pmml_export_s": self.export_s,
                "load_s": self.load_s, "caps": {"latency_calls": self.max_latency_calls,
                                               "batch_rows": self.max_batch_rows,
                                               "threads": [1]}}

    def close(self) -> None:
        m = getattr(self, "model", None)
        if m is not None:
            with contextlib.suppress(Exception):
                m.close()  # releases the model on the JVM side; the gateway stays up
        self.model = None


@register
class TablescorePmmlEngine(TablescoreEngine):
    """tablescore's own PMML reader (``scorer.load("model.pmml")``) on the very document
    pypmml scores: the same kernels as a bundle, fed from PMML instead of ``exporters``."""

    name = "tablescore-pmml"
    requires = ("scorer", "exporters", "numba")

    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        import numba

        import scorer

        self._numba = numba
        self._threads0 = numba.get_num_threads()
        self.path, self.export_s = pmml_document(model, X_sample, self.workdir)
        t0 = time.perf_counter()
        try:
            self.model = scorer.load(self.path)
        except Exception as exc:  # reader unfinished, or it refuses this document
            raise EngineSkip(f"tablescore's PMML reader refused the document: "
                             f"{short_reason(exc)}") from exc
        self.load_after_export_s = time.perf_counter() - t0
        self.classifier = hasattr(self.model, "predict_proba")
        fn = self.model.predict_proba if self.classifier else self.model.predict
        # the reader's inputs are the document's used fields; gathering them from the full
        # row is part of every timed call (a caller holding all features pays it too)
        idx = column_index(self.model.input_names, X_sample.shape[1])
        self.columns_used = len(self.model.input_names)
        self._fn = fn if idx is None else (lambda X: fn(X[:, idx]))

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        # loading a large document takes seconds: fewer repeats, and no fresh interpreter
        # (its figure is the same parse + load plus the import)
        out = super().extra_measures(min(repeats, 2), fresh_process=0)
        out["pmml_bytes"] = out.pop("bundle_bytes")
        out.pop("bundle_files", None)
        out["pmml_export_s"] = out.pop("export_s")
        out["columns_used"] = self.columns_used
        return out


#: Libraries compiled by :class:`Tl2cgenEngine`, keyed by model + tl2cgen version + params.
TL2CGEN_CACHE = Path(__file__).resolve().parent / ".cache" / "tl2cgen"


@register
class Tl2cgenEngine(Engine):
    """Treelite import + TL2cgen-compiled C (gcc) for tree ensembles.

    scikit-learn forests / GBMs via ``treelite.sklearn.import_model``, XGBoost / LightGBM via
    treelite's frontends; ``tl2cgen.export_lib(toolchain="gcc")``, then one
    ``tl2cgen.Predictor`` per thread setting (``nthread``). Each call builds a
    ``tl2cgen.DMatrix`` from the float64 rows (part of the timed call). The compiled code
    compares in float64, where scikit-learn compares float32: ~1e-3 differences on forests.
    """

    name = "tl2cgen"
    requires = ("tl2cgen", "treelite")

    def prepare(self, model: Any, X_sample: np.ndarray) -> None:
        import tl2cgen
        import treelite

        self._tl2cgen = tl2cgen
        self.classifier = is_classifier(model)
        est = final_estimator(model)
        lib = model_library(model)
        if getattr(model, "steps", None) and len(model.steps) > 1:
            raise EngineSkip("tl2cgen compiles tree ensembles only, not pipelines")
        t0 = time.perf_counter()
        try:
            if lib == "xgboost":
                tm = treelite.frontend.from_xgboost(est.get_booster())
            elif lib == "lightgbm":
                tm = treelite.frontend.from_lightgbm(est.booster_)
            elif lib == "sklearn":
                tm = treelite.sklearn.import_model(est)
            else:
                raise EngineSkip(f"no treelite importer for {lib} models")
        except EngineSkip:
            raise
        except Exception as exc:
            raise EngineSkip(f"treelite cannot import {type(est).__name__}: "
                             f"{short_reason(exc)}") from exc
        self.import_s = time.perf_counter() - t0
        self.libpath, self.compile_s, self.cached = self._build(tm)
        self._predictors: dict[int, Any] = {}
        self._pred = self._predictor(1)
        self._dtype = "float64"
        try:
            self._pred.predict(tl2cgen.DMatrix(X_sample[:2], dtype="float64"))
        except Exception:
            self._dtype = "float32"  # a float32-threshold model may insist on float32 input

    def _build(self, tm: Any) -> tuple[Path, float, bool]:
        """Compile ``tm`` with gcc, or reuse the library compiled for the very same model
        (same serialized trees, tl2cgen version and parameters) by an earlier run: gcc -O3 on
        a 100-tree depth-10 forest takes minutes on a busy 2-core machine. Returns the library
        path, the seconds its compilation took, and whether it came from the cache."""
        import hashlib
        import importlib.metadata
        import shutil

        params = {"parallel_comp": 8}
        key = hashlib.sha256(tm.serialize_bytes() + json.dumps(
            [importlib.metadata.version("tl2cgen"), params]).encode()).hexdigest()[:24]
        cache = TL2CGEN_CACHE / f"{key}.so"
        meta = cache.with_suffix(".json")
        libpath = self.workdir / "model.so"
        if cache.is_file() and meta.is_file():
            shutil.copyfile(cache, libpath)
            return libpath, float(json.loads(meta.read_text())["compile_s"]), True
        t0 = time.perf_counter()
        try:
            self._tl2cgen.export_lib(tm, toolchain="gcc", libpath=str(libpath), params=params,
                                     nthread=os.cpu_count() or 1)
        except Exception as exc:
            raise EngineSkip(f"tl2cgen could not build the library: {short_reason(exc)}"
                             ) from exc
        secs = time.perf_counter() - t0
        with contextlib.suppress(OSError):
            TL2CGEN_CACHE.mkdir(parents=True, exist_ok=True)
            (TL2CGEN_CACHE / ".gitignore").write_text("*\n")
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(libpath, tmp)
            os.replace(tmp, cache)
            meta.write_text(json.dumps({"compile_s": secs}))
        return libpath, secs, False

    def _predictor(self, n: int) -> Any:
        p = self._predictors.get(n)
        if p is None:
            p = self._tl2cgen.Predictor(str(self.libpath), nthread=n)
            self._predictors[n] = p
        return p

    def set_threads(self, n: int) -> None:
        self._pred = self._predictor(n)

    def _score(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self._pred.predict(self._tl2cgen.DMatrix(X, dtype=self._dtype)))
        out = out.reshape(out.shape[0], -1)
        if self.classifier:
            return out[:, -1] if out.shape[1] <= 2 else out[:, 1]
        return out[:, 0]

    def predict_one(self, row: np.ndarray) -> float:
        return float(self._score(row)[0])

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        return self._score(X).astype(np.float64, copy=False)

    def extra_measures(self, repeats: int, *, fresh_process: int = 0) -> dict[str, Any]:
        return {"lib_bytes": self.libpath.stat().st_size, "import_s": self.import_s,
                "compile_s": self.compile_s, "compile_cached": self.cached,
                "dmatrix_dtype": self._dtype}

    def close(self) -> None:
        self._predictors.clear()
        self._pred = None
