"""The conformance matrix: every supported family x datasets x export paths x transports.

``run_matrix(subset="ci")`` covers every family at least once on every available path within a
few minutes; ``subset="full"`` runs everything (``make conformance``) and writes a Markdown
report for the docs. Each cell trains the model, exports it, loads it, and compares every output
column with the original model using :func:`conformance.check` (the one tolerance table).

Paths: ``bundle`` (exporters.export -> scorer.load) and ``pmml`` (sklearn2pmml -> tablescore's
PMML reader -> the same kernels) when Java is available; PMML cells note how often pypmml, the
reference PMML evaluator, reproduces the original and tablescore on the same document; cells
whose sklearn2pmml document cannot reproduce the original are listed with their reason in
:func:`known_pmml_issue` and reported as ``known`` (cells whose document declares some scored
rows invalid: :func:`known_pmml_refusal`; bundle cells where the original's own
result is not reproducible or meaningless: :func:`known_bundle_issue`). Transports:
``in-process`` and ``grpc`` (a real tablescore server on 127.0.0.1).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorer.errors import UnsupportedEstimatorError, VerificationError
from scorer.tolerances import Tolerance, close_mask

from .check import check


# --- datasets --------------------------------------------------------------------------------
@dataclass
class Dataset:
    name: str
    task: str  # "binary", "multiclass", "regression"
    X: Any
    y: Any
    has_strings: bool = False
    has_missing: bool = False
    #: rows to score (default: X itself); may hold unseen categories, NaN, inf
    X_score: Any = None


def _shared_dir() -> Path | None:
    import os

    env = os.environ.get("TABLESCORE_SHARED_DATA")
    p = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return p if p.is_dir() else None


def _read_shared(name: str):
    import pandas as pd

    d = _shared_dir()
    assert d is not None
    df = pd.read_csv(d / "datasets" / name, na_values=["N/A", "NA", ""], keep_default_na=False)
    # plain object columns for strings: what scikit-learn selectors and users usually have
    return df.astype({c: object for c in df.columns if df[c].dtype.kind not in "fiub"})


def datasets(subset: str) -> list[Dataset]:
    from sklearn import datasets as skd

    out: list[Dataset] = []
    names = {"ci": ["breast_cancer", "iris", "diabetes"],
             "full": ["breast_cancer", "iris", "wine", "digits", "diabetes"]}[subset]
    for n in names:
        X, y = getattr(skd, f"load_{n}")(return_X_y=True)
        task = "regression" if n == "diabetes" else ("binary" if n == "breast_cancer"
                                                     else "multiclass")
        out.append(Dataset(n, task, X.astype(np.float64), y))
    out.append(_synthetic("binary"))
    out.append(_synthetic("regression"))
    if _shared_dir() is not None:
        df = _read_shared("AuditNA.csv").drop(columns=["Deductions"])
        out.append(Dataset("AuditNA", "binary", df.drop(columns=["Adjusted"]), df["Adjusted"],
                           has_strings=True, has_missing=True,
                           X_score=_with_unseen(df.drop(columns=["Adjusted"]))))
        if subset == "full":
            h = _read_shared("HousingNA.csv")
            out.append(Dataset("HousingNA", "regression", h.drop(columns=["MEDV"]), h["MEDV"],
                               has_missing=True))
            w = _read_shared("Wine.csv")
            # quality 3..9 as class codes 0..6 (XGBoost wants labels 0..k-1)
            y = np.unique(w["quality"], return_inverse=True)[1]
            out.append(Dataset("Wine", "multiclass", w.drop(columns=["quality"]), y,
                               has_strings=True))
    return out


def _with_unseen(X):
    X = X.copy()
    for c in X.columns:
        if X[c].dtype == object:
            X.loc[X.index[:3], c] = "__never_seen__"
    return X


def _synthetic(task: str) -> Dataset:
    """Hostile numbers: NaN, +/-inf, 1e+-300, values exactly on integer ties."""
    rng = np.random.default_rng(7)
    n = 600
    X = rng.normal(size=(n, 8))
    X[:, 0] = rng.integers(0, 6, n)
    X[:, 1] = np.round(X[:, 1], 1)
    X[:, 2] *= 1e6
    X[rng.random(X.shape) < 0.04] = np.nan
    signal = np.nan_to_num(X[:, 0] + X[:, 3] - X[:, 4])
    y = (signal > 0.5).astype(int) if task == "binary" else signal * 3.0 + 1.0
    Xs = X.copy()
    Xs[:10, 5] = np.inf
    Xs[10:20, 6] = -np.inf
    Xs[20:30, 7] = np.array([1e300, -1e300, 1e-300, -1e-300, 0.0] * 2)
    return Dataset(f"synthetic_{task}", task, X, y, has_missing=True, X_score=Xs)


# --- models ----------------------------------------------------------------------------------
@dataclass
class ModelSpec:
    family: str
    name: str
    tasks: tuple[str, ...]
    factory: Callable[[str], Any]
    #: accepts NaN natively (else the matrix adds an imputer)
    native_missing: bool = False


def model_specs(subset: str) -> list[ModelSpec]:
    from sklearn import ensemble, linear_model, tree

    small = subset == "ci"
    n = 20 if small else 100
    specs = [
        ModelSpec("linear", "LogisticRegression", ("binary", "multiclass"),
                  lambda t: linear_model.LogisticRegression(max_iter=3000)),
        ModelSpec("linear", "Ridge", ("regression",), lambda t: linear_model.Ridge()),
        ModelSpec("tree_ensemble", "DecisionTree", ("binary", "multiclass", "regression"),
                  lambda t: (tree.DecisionTreeRegressor if t == "regression"
                             else tree.DecisionTreeClassifier)(max_depth=8, random_state=0),
                  native_missing=True),
        ModelSpec("tree_ensemble", "RandomForest", ("binary", "multiclass", "regression"),
                  lambda t: (ensemble.RandomForestRegressor if t == "regression"
                             else ensemble.RandomForestClassifier)(
                      n_estimators=n, max_depth=8, random_state=0), native_missing=True),
        ModelSpec("tree_ensemble", "GradientBoosting", ("binary", "multiclass", "regression"),
                  lambda t: (ensemble.GradientBoostingRegressor if t == "regression"
                             else ensemble.GradientBoostingClassifier)(
                      n_estimators=n, max_depth=3, random_state=0)),
        ModelSpec("tree_ensemble", "HistGradientBoosting", ("binary", "multiclass",
                                                            "regression"),
                  lambda t: (ensemble.HistGradientBoostingRegressor if t == "regression"
                             else ensemble.HistGradientBoostingClassifier)(
                      max_iter=n, random_state=0), native_missing=True),
    ]
    if subset == "full":
        from sklearn import naive_bayes, neighbors, neural_network, svm

        specs.append(ModelSpec(
            "tree_ensemble", "ExtraTrees", ("binary", "multiclass", "regression"),
            lambda t: (ensemble.ExtraTreesRegressor if t == "regression"
                       else ensemble.ExtraTreesClassifier)(n_estimators=n, max_depth=8,
                                                          random_state=0)))
        specs += [
            ModelSpec("svm", "SVM", ("binary", "multiclass", "regression"),
                      lambda t: svm.SVR() if t == "regression" else svm.SVC()),
            ModelSpec("neural_network", "MLP", ("binary", "multiclass", "regression"),
                      lambda t: (neural_network.MLPRegressor if t == "regression"
                                 else neural_network.MLPClassifier)(
                          hidden_layer_sizes=(20,), max_iter=300, random_state=0)),
            ModelSpec("naive_bayes", "GaussianNB", ("binary", "multiclass"),
                      lambda t: naive_bayes.GaussianNB()),
            ModelSpec("nearest_neighbor", "KNeighbors", ("binary", "multiclass", "regression"),
                      lambda t: (neighbors.KNeighborsRegressor if t == "regression"
                                 else neighbors.KNeighborsClassifier)(n_neighbors=5)),
        ]
        specs += _meta_specs(n)
    try:
        import xgboost

        specs.append(ModelSpec(
            "xgboost", "XGBoost", ("binary", "multiclass", "regression"),
            lambda t: (xgboost.XGBRegressor if t == "regression" else xgboost.XGBClassifier)(
                n_estimators=n, max_depth=4, random_state=0),
            native_missing=True))
    except ImportError:
        pass
    try:
        import lightgbm

        specs.append(ModelSpec(
            "lightgbm", "LightGBM", ("binary", "multiclass", "regression"),
            lambda t: (lightgbm.LGBMRegressor if t == "regression" else lightgbm.LGBMClassifier)(
                n_estimators=n, num_leaves=15, random_state=0, verbose=-1),
            native_missing=True))
    except ImportError:
        pass
    return specs


def _meta_specs(n: int) -> list[ModelSpec]:
    """Selection, decomposition, row-wise maps and meta-estimators (#20), each over
    members / final estimators of supported families."""
    from sklearn import (
        calibration,
        decomposition,
        ensemble,
        feature_selection,
        linear_model,
        naive_bayes,
        preprocessing,
        svm,
        tree,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    def linear(t: str) -> Any:
        return linear_model.Ridge() if t == "regression" else \
            linear_model.LogisticRegression(max_iter=3000)

    def dtree(t: str) -> Any:
        return (tree.DecisionTreeRegressor if t == "regression"
                else tree.DecisionTreeClassifier)(max_depth=4, random_state=0)

    def scaled(est: Any) -> Any:
        return make_pipeline(preprocessing.StandardScaler(), est)

    def select(t: str) -> Any:
        score = feature_selection.f_regression if t == "regression" else \
            feature_selection.f_classif
        return scaled(make_pipeline(feature_selection.SelectPercentile(score, percentile=50),
                                    linear(t)))

    def voting(t: str) -> Any:
        if t == "regression":
            return ensemble.VotingRegressor([("r", scaled(linear(t))), ("t", dtree(t))])
        return ensemble.VotingClassifier([("l", scaled(linear(t))), ("t", dtree(t)),
                                          ("nb", naive_bayes.GaussianNB())], voting="soft")

    def stacking(t: str) -> Any:
        if t == "regression":
            return ensemble.StackingRegressor([("r", scaled(linear(t))), ("t", dtree(t))],
                                              final_estimator=linear(t), cv=3)
        return ensemble.StackingClassifier([("l", scaled(linear(t))), ("t", dtree(t))],
                                           final_estimator=linear(t), cv=3)

    def bagging(t: str) -> Any:
        return (ensemble.BaggingRegressor if t == "regression" else
                ensemble.BaggingClassifier)(dtree(t), n_estimators=max(n // 4, 5),
                                            max_features=0.7, random_state=0)

    every = ("binary", "multiclass", "regression")
    return [
        ModelSpec("feature_selection", "SelectPercentile", every, select),
        ModelSpec("decomposition", "PCA", every, lambda t: scaled(make_pipeline(
            decomposition.PCA(0.9, svd_solver="full"), linear(t)))),
        ModelSpec("rowwise", "Normalizer", every, lambda t: make_pipeline(
            preprocessing.Normalizer(), linear(t))),
        ModelSpec("ensemble", "Voting", every, voting),
        ModelSpec("ensemble", "Stacking", every, stacking),
        ModelSpec("ensemble", "Bagging", every, bagging),
        ModelSpec("ensemble", "AdaBoost", every, lambda t: (
            ensemble.AdaBoostRegressor if t == "regression" else ensemble.AdaBoostClassifier)(
            n_estimators=max(n // 4, 5), random_state=0)),
        # unsupervised: y is ignored; NaN follows missing_go_to_left, inf passes
        ModelSpec("tree_ensemble", "IsolationForest", every, lambda t: ensemble.IsolationForest(
            n_estimators=max(n // 4, 5), max_features=0.7, random_state=0),
            native_missing=True),
        ModelSpec("calibration", "CalibratedClassifierCV", ("binary", "multiclass"),
                  lambda t: calibration.CalibratedClassifierCV(
                      scaled(svm.LinearSVC()), method="isotonic", cv=3)),
        # NaN passes through the quantile map (scikit-learn allows it), imputed after it
        ModelSpec("quantile", "QuantileTransformer", every, lambda t: make_pipeline(
            preprocessing.QuantileTransformer(n_quantiles=100, output_distribution="normal"),
            SimpleImputer(), linear(t)), native_missing=True),
        ModelSpec("power", "PowerTransformer", every, lambda t: make_pipeline(
            preprocessing.PowerTransformer(), SimpleImputer(), linear(t)),
            native_missing=True),
        # every distinct number a category; NaN a category of its own
        ModelSpec("target_encoding", "TargetEncoder", every, lambda t: make_pipeline(
            preprocessing.TargetEncoder(random_state=0), linear(t)), native_missing=True),
        # NaN: all-zero spline features (handle_missing='zeros')
        ModelSpec("spline", "SplineTransformer", every, lambda t: make_pipeline(
            preprocessing.SplineTransformer(n_knots=5, knots="quantile",
                                            extrapolation="linear", handle_missing="zeros"),
            linear(t)), native_missing=True),
    ]


def _wrap(spec: ModelSpec, ds: Dataset, est: Any) -> Any:
    """Add the preprocessing a user would: impute where needed, one-hot encode strings."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: list[Any] = []
    if ds.has_missing and not spec.native_missing:
        numeric.append(SimpleImputer(strategy="median"))
    if spec.family in ("linear", "svm", "neural_network", "nearest_neighbor"):
        numeric.append(StandardScaler())
    if not ds.has_strings:
        return make_pipeline(*numeric, est) if numeric else est
    cat = make_pipeline(SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    num = make_pipeline(*numeric) if numeric else "passthrough"
    ct = ColumnTransformer([("cat", cat, make_column_selector(dtype_include=object)),
                            ("num", num, make_column_selector(dtype_exclude=object))])
    return make_pipeline(ct, est)


# --- running ---------------------------------------------------------------------------------
@dataclass
class Cell:
    family: str
    model: str
    dataset: str
    path: str
    transport: str
    #: pass / fail / error / unsupported / known (see :func:`known_pmml_issue`)
    status: str
    rows: int = 0
    max_abs_error: float | None = None
    #: the largest error as a fraction of the tolerance (see ColumnResult.max_tol_ratio)
    max_tol_ratio: float | None = None
    detail: str = ""
    seconds: float = 0.0
    columns: list[dict[str, Any]] = field(default_factory=list)


def _refusals(est: Any, model: Any, X: Any) -> tuple[Any, list[int]]:
    """Rows holding +/-inf or values beyond float32 range: the original may refuse them.

    Each such row is scored alone by both; tablescore must refuse exactly the rows the
    original refuses (with an input error). Returns the rows both accept and the rows where
    the two disagree."""
    from scorer.errors import InputError

    if hasattr(X, "columns"):
        return X, []
    with np.errstate(invalid="ignore"):
        flagged = np.flatnonzero((np.isinf(X) | (np.abs(X) > np.finfo(np.float32).max))
                                 .any(axis=1))
    keep = np.ones(len(X), dtype=bool)
    disagree = []
    for r in flagged:
        row = X[r : r + 1]
        try:
            est.predict(row)
            theirs = False
        except ValueError:
            theirs = True
        try:
            model.predict(row)
            ours = False
        except InputError:
            ours = True
        if theirs != ours:
            disagree.append(int(r))
        keep[r] = not (theirs or ours)  # a disagreement is reported in its own cell
    return X[keep], disagree


class GrpcTransport:
    """Serves each cell's bundle from a real tablescore server and scores it over gRPC."""

    def __init__(self) -> None:
        from scorer.server import serve

        self.repo = Path(tempfile.mkdtemp(prefix="tablescore-conformance-repo-"))
        self.server = serve(self.repo, port=0, poll_interval=3600.0)

    def scorer_for(self, name: str, bundle: Path) -> Callable[[Any], dict[str, np.ndarray]]:
        from scorer.server.client import remote_scorer

        shutil.copytree(bundle, self.repo / name / "1")
        self.server.repository.load_model(name, timeout=120)
        return remote_scorer(self.server.address, name)

    def close(self) -> None:
        self.server.stop(1.0)
        shutil.rmtree(self.repo, ignore_errors=True)


def _pypmml_compare(est: Any, pmml: Path, X: Any, tol: Any,
                    ours: Callable[[Any], dict[str, np.ndarray]]) -> dict[str, float] | None:
    """pypmml, the reference PMML evaluator, on the same document and (up to 200) rows:
    the fraction of rows on which it reproduces the original model and the fraction on which
    it reproduces tablescore. None when pypmml is unavailable."""
    try:
        from pypmml import Model as PyPMML
    except ImportError:
        return None
    import pandas as pd

    rows = X.iloc[:200] if hasattr(X, "iloc") else pd.DataFrame(
        np.asarray(X)[:200], columns=[f"x{j}" for j in range(np.asarray(X).shape[1])])
    try:
        ref = PyPMML.fromFile(str(pmml)).predict(rows).rename(columns={"predicted_y": "y"})
    except Exception as exc:  # the reference evaluator failing is a note, not our failure
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    native = X.iloc[:200] if hasattr(X, "iloc") else np.asarray(X)[:200]  # as fitted
    if hasattr(est, "predict_proba"):
        cols = [f"probability({c})" for c in est.classes_]
        want = est.predict_proba(native)
    else:
        cols, want = ["y"], est.predict(native).reshape(-1, 1)
    absent = [c for c in cols if c not in ref.columns]
    if absent:  # the document names no such output (e.g. a classifier without probabilities)
        return {"absent": ", ".join(absent)}
    got = ref[cols].to_numpy(dtype=np.float64)
    try:
        mine = np.column_stack([np.asarray(ours(rows)[c], dtype=np.float64) for c in cols])
    except Exception as exc:  # the cell itself reports tablescore's refusal: a note here
        return {"refused": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}

    def agree(a: np.ndarray, b: np.ndarray) -> float:
        return float(close_mask(a, b, tol.abs, tol.rel).all(axis=1).mean())

    return {"original": agree(got, want), "tablescore": agree(mine, got),
            "max_abs_diff": float(np.nanmax(np.abs(got - want))) if got.size else 0.0}


def _check_cell(base: dict[str, Any], path_kind: str, transport: str, est: Any, model: Any,
                X: Any, score: Any, t0: float, detail: str = "",
                tolerance: Tolerance | None = None) -> Cell:
    try:
        report = check(est, model, X, transport=transport, score=score, tolerance=tolerance)
    except Exception as exc:  # report, keep going: one cell must not stop the matrix
        return Cell(**base, path=path_kind, transport=transport, status="error",
                    detail=f"{type(exc).__name__}: {exc}\n"
                           f"{traceback.format_exc(limit=3)}"[:1000])
    worst = max((c.max_abs_error or 0.0 for c in report.columns), default=0.0)
    worst_ratio = max((c.max_tol_ratio or 0.0 for c in report.columns), default=0.0)
    return Cell(**base, path=path_kind, transport=transport,
                status="pass" if report.passed else "fail", rows=report.rows,
                max_abs_error=worst, max_tol_ratio=worst_ratio,
                seconds=time.perf_counter() - t0,
                detail=detail if report.passed else report.to_text()[:2000],
                columns=[{"name": c.name, "max_abs_error": c.max_abs_error,
                          "max_tol_ratio": c.max_tol_ratio, "mismatches": c.mismatches}
                         for c in report.columns])


def known_pmml_issue(model: str, ds: Dataset) -> str | None:
    """Explicit list of PMML-path cells that cannot pass, with the reason: in each, the
    document sklearn2pmml writes does not encode the original model exactly (tablescore scores
    the document as written). Such a cell is reported as ``known``, never as a pass."""
    if model in ("DecisionTree", "RandomForest", "ExtraTrees", "IsolationForest") \
            and ds.has_missing:
        return ("sklearn2pmml 0.133 writes missingValueStrategy='nullPrediction' for trees; "
                "scikit-learn routes a missing value down missing_go_to_left, so rows with NaN "
                "in a split field have no prediction in the document")
    if model == "AdaBoost" and ds.task == "multiclass":
        return ("sklearn2pmml refuses a multiclass AdaBoostClassifier (0.133: 'Expected 2 "
                "target categories'): there is no document to score")
    if model == "AdaBoost" and ds.name == "diabetes":
        return ("sklearn2pmml refuses an AdaBoostRegressor whose boosting stopped early (22 "
                "members for 25 estimator_weights_: IllegalArgumentException in 0.133's "
                "MiningModelUtil.createSegmentation): there is no document to score")
    if model == "XGBoost" and ds.task == "regression":
        return ("the document adds base_score after the float32 sum of the trees (Targets "
                "rescaleConstant) where XGBoost starts the float32 sum from it: a few rows "
                "differ by a few float32 ulps, just over the 1e-6 tolerance")
    if model == "GaussianNB" and ds.name == "synthetic_binary":
        return ("rows holding +-1e300 overflow every class's log-likelihood to -inf: "
                "scikit-learn's predict_proba is NaN there but its predict takes class 0 "
                "(argmax of equal -inf); the document derives the label from the probabilities, "
                "so those rows have no prediction (a missing label)")
    if model == "QuantileTransformer":
        return ("sklearn2pmml writes tied quantiles as repeated LinearNorm orig values in one "
                "NormContinuous; scikit-learn maps a value on a tie to the AVERAGE of np.interp "
                "from the left and from the right (0.5 * (interp(x, q, r) - interp(-x, -q[::-1], "
                "-r[::-1]))) and snaps values within 1e-7 of the first/last quantile to 0/1, "
                "but a NormContinuous is one piecewise-linear function whose value at a "
                "repeated orig is one tied point's norm, never the average (tablescore takes "
                "the last, as numpy.interp and JPMML-Evaluator's NormalizationUtil; pypmml the "
                "first): rows on a tied quantile differ "
                "(tablescore matches the document, evaluated with numpy, to 1e-14). The "
                "document's ModelVerification rows are scikit-learn's outputs, which the "
                "document itself does not reproduce")
    if model == "KNeighbors" and ds.name == "AuditNA":
        return known_bundle_issue(model, ds)
    if model == "KNeighbors" and ds.task == "multiclass":
        return ("the document's majorityVote breaks vote ties by PMML's rule (the class with "
                "most training instances, then the smallest value); scikit-learn takes the "
                "smallest class index (argmax of predict_proba), and with k=5 and 3+ classes "
                "2-2-1 votes are common; on data with duplicate rows (Wine) scikit-learn's "
                "KD-tree also orders exactly tied neighbours by its traversal, PMML by "
                "training order")
    return None


def known_pmml_refusal(model: str, ds: Dataset) -> str | None:
    """Explicit list of PMML-path cells whose document declares some of the scored rows
    invalid (so a conforming evaluator refuses them) where the original scores them, with the
    reason. The cell compares the rows the document accepts: ``known`` when those all pass,
    ``fail`` otherwise; a refusal in an unlisted cell stays an error."""
    if model == "TargetEncoder" and ds.name.startswith("synthetic"):
        return ("the scored rows 20-29 hold x7 values never seen in fit (+-1e300, +-1e-300, "
                "0.0): "
                "scikit-learn encodes an unseen category as the target mean, but the document "
                "declares the fitted values as x7's DataField Values and keeps the default "
                "invalidValueTreatment='returnInvalid', so per PMML such a row's result is "
                "invalid (the MapValues defaultValue is never reached); tablescore refuses "
                "those rows, pypmml returns no prediction for them")
    return None


def known_bundle_issue(model: str, ds: Dataset, *, refusals: bool = False) -> str | None:
    """Explicit list of bundle-path cells that cannot pass, with the reason: in each, the
    original's own result is not reproducible (or meaningless), not a tablescore defect.
    ``refusals``: the cell comparing which rows are refused. Reported as ``known``, never as
    a pass."""
    if model == "KNeighbors" and refusals and ds.name.startswith("synthetic"):
        return ("rows holding +-1e300: every squared distance overflows to inf, so there are "
                "no nearest neighbours; scikit-learn returns training row 0 five times at "
                "distance inf (its search's placeholder), tablescore refuses the row")
    if model == "KNeighbors" and ds.name == "AuditNA" and not refusals:  # brute force
        return ("one-hot inputs make many training rows exactly equidistant in exact "
                "arithmetic; scikit-learn's brute-force search decides those ties by the "
                "rounding of its BLAS dgemm/ddot expansion (CPU-specific, and dependent on "
                "the row's 256-row chunk: it scores some rows differently alone and in a "
                "batch) and, for batches under 4 * 256 * threads rows, by how its threads "
                "split the training rows")
    return None


def _converter_refusal(exc: Exception) -> str | None:
    """The converter's own reason when ``to_pmml`` failed because sklearn2pmml refused the
    model (the last Java exception line of its log), else None."""
    from scorer.errors import ExportError

    text = str(exc)
    if not isinstance(exc, ExportError) or "sklearn2pmml could not convert" not in text:
        return None
    lines = [ln.strip() for ln in text.splitlines() if "Exception: " in ln]
    return lines[-1] if lines else text.splitlines()[0]


def _pmml_cell(base: dict[str, Any], est: Any, ds: Dataset, X: Any, bundle_model: Any,
               doc: Path) -> Cell:
    """sklearn2pmml -> tablescore's native reader, checked against the original with the same
    tolerance table as the bundle path; pypmml's agreement on the same document is noted."""
    import exporters
    import scorer
    from scorer.errors import VerificationError

    t0 = time.perf_counter()
    v = bundle_model.bundle.verification
    tol = Tolerance(v.abs_tol, v.rel_tol, "tolerance table") if v is not None else None
    notes = []
    try:
        exporters.to_pmml(est, doc, sample=ds.X, target_name="y")
        try:
            model = scorer.load(doc)
        except VerificationError as exc:
            # the document's own ModelVerification precision is stricter than the family
            # tolerance (e.g. relative-only on float32 probabilities near 0): say so, then
            # judge by the tolerance table like every other path
            notes.append(f"document's ModelVerification not met ({str(exc)[:160]})")
            model = scorer.load(doc, verify=False)
    except Exception as exc:
        known = known_pmml_issue(base["model"], ds)
        if known and known.startswith("sklearn2pmml refuses"):
            return Cell(**base, path="pmml", transport="in-process", status="known",
                        detail=f"known: {known}; {type(exc).__name__}: {exc}"[:300])
        refusal = _converter_refusal(exc)
        if refusal is not None:  # sklearn2pmml cannot convert this model: not our error
            return Cell(**base, path="pmml", transport="in-process", status="unsupported",
                        detail=f"sklearn2pmml refuses it: {refusal}"[:300])
        return Cell(**base, path="pmml", transport="in-process", status="error",
                    detail=f"{type(exc).__name__}: {exc}"[:300])
    score = None
    if not hasattr(X, "columns"):
        # sklearn2pmml keeps only the fields the model uses: score by name, not by position
        import pandas as pd

        names = [f"x{j}" for j in range(np.asarray(X).shape[1])]
        score = lambda A: model.score_arrays(pd.DataFrame(np.asarray(A), columns=names))  # noqa: E731
    known = known_pmml_issue(base["model"], ds)
    known_refusal = known_pmml_refusal(base["model"], ds)
    refused: list[int] = []
    if known_refusal:
        # the document declares some rows invalid: compare on the rows it accepts, and say
        # which it refused; unlisted cells score the whole batch (a refusal is an error)
        X, refused = _document_refusals(X, score or model.score_arrays)
    cell = _check_cell(base, "pmml", "in-process", est, model, X, score, t0,
                       detail="", tolerance=tol)
    if refused:
        notes.insert(0, f"the document refuses {len(refused)} of the {len(refused) + len(X)} "
                        f"compared rows (positions {refused[:10]}); the other {len(X)} compared")
    if tol is not None:
        cmp = _pypmml_compare(est, doc, X, tol, model.score_arrays)
        if cmp is not None and "absent" in cmp:
            notes.append(f"pypmml not compared: its output has no {cmp['absent']}")
        elif cmp is not None and "error" in cmp:
            notes.append(f"pypmml could not score the document ({cmp['error']})")
        elif cmp is not None and "refused" in cmp:
            notes.append(f"pypmml not compared: tablescore refused its rows ({cmp['refused']})")
        elif cmp is not None:
            notes.append(f"pypmml reproduces the original on {cmp['original']:.1%} of rows "
                         f"(max abs diff {cmp['max_abs_diff']:.2g}) and tablescore on "
                         f"{cmp['tablescore']:.1%}")
    if refused and cell.status == "pass":  # the accepted rows match: the refusals are the issue
        cell.status = "known"
        notes.insert(0, f"known: {known_refusal}")
    elif cell.status == "fail" and known:
        cell.status = "known"
        notes.insert(0, f"known: {known}")
    cell.detail = "; ".join(notes) if cell.status in ("pass", "known") else \
        "\n".join([cell.detail, *(["; ".join(notes)] if notes else [])])
    return cell


def _document_refusals(X: Any, score: Callable[[Any], Any]) -> tuple[Any, list[int]]:
    """The rows of ``X`` the document accepts, and the positions of those it refuses with an
    input error (each row scored alone once the whole batch was refused); other errors are
    left for the cell to report."""
    from scorer.errors import InputError

    try:
        score(X)
        return X, []
    except InputError:
        pass
    except Exception:  # not a refusal of rows: the cell reports it
        return X, []
    rows = (lambda i: X.iloc[i : i + 1]) if hasattr(X, "iloc") else (lambda i: X[i : i + 1])
    keep = np.ones(len(X), dtype=bool)
    for i in range(len(X)):
        try:
            score(rows(i))
        except InputError:
            keep[i] = False
        except Exception:  # not a refusal: the cell scores this row and reports the error
            continue
    return (X.iloc[keep] if hasattr(X, "iloc") else X[keep]), np.flatnonzero(~keep).tolist()


def _known_bundle(spec: ModelSpec, ds: Dataset, cell: Cell) -> Cell:
    """A failing bundle cell listed in :func:`known_bundle_issue` becomes ``known``."""
    known = known_bundle_issue(spec.name, ds)
    if cell.status == "fail" and known:
        cell.status = "known"
        cell.detail = f"known: {known}; {cell.detail.splitlines()[0] if cell.detail else ''}"
    return cell


def run_cell(spec: ModelSpec, ds: Dataset, workdir: Path, *, pmml: bool = False,
             grpc: GrpcTransport | None = None) -> list[Cell]:
    """Train one model on one dataset and check it on every requested path and transport."""
    import exporters
    import scorer

    cells: list[Cell] = []
    t0 = time.perf_counter()
    est = _wrap(spec, ds, spec.factory(ds.task))
    name = f"{spec.name}-{ds.name}"
    base = dict(family=spec.family, model=spec.name, dataset=ds.name)
    try:
        est.fit(ds.X, ds.y)
    except Exception as exc:  # the library itself refuses this dataset: say so, go on
        return [Cell(**base, path="bundle", transport="in-process", status="error",
                     detail=f"fit failed: {type(exc).__name__}: {exc}"[:300])]
    path = workdir / name
    try:
        try:
            exporters.export(est, path, sample=ds.X)
        except VerificationError:
            if not known_bundle_issue(spec.name, ds):
                raise
            # the verification rows meet the listed issue: export without them, then score
            # every row, judged by the tolerance table below (failing cells report ``known``)
            exporters.export(est, path, sample=ds.X, verification_rows=0)
        model = scorer.load(path)
    except UnsupportedEstimatorError as exc:
        return [Cell(**base, path="bundle", transport="in-process", status="unsupported",
                     detail=str(exc).split(";")[0])]
    except Exception as exc:  # report, keep going: one cell must not stop the matrix
        return [Cell(**base, path="bundle", transport="in-process", status="error",
                     detail=f"{type(exc).__name__}: {exc}"[:300],
                     seconds=time.perf_counter() - t0)]
    X, disagree = _refusals(est, model, ds.X_score if ds.X_score is not None else ds.X)
    if disagree:
        known = known_bundle_issue(spec.name, ds, refusals=True)
        detail = f"refusals differ from the original on rows {disagree[:10]}"
        cells.append(Cell(**base, path="bundle", transport="in-process",
                          status="known" if known else "fail",
                          detail=f"known: {known}; {detail}" if known else detail))
    cells.append(_known_bundle(spec, ds, _check_cell(base, "bundle", "in-process", est, model,
                                                     X, None, t0)))
    if grpc is not None:
        try:
            score = grpc.scorer_for(name, path)
            cells.append(_known_bundle(spec, ds, _check_cell(base, "bundle", "grpc", est, model,
                                                             X, score, t0)))
        except Exception as exc:
            cells.append(Cell(**base, path="bundle", transport="grpc", status="error",
                              detail=f"{type(exc).__name__}: {exc}"[:300]))
    if pmml:
        cells.append(_pmml_cell(base, est, ds, X, model, workdir / f"{name}.pmml"))
    return cells


def run_matrix(*, subset: str = "ci", families: list[str] | None = None,
               paths: tuple[str, ...] = ("bundle", "pmml"),
               transports: tuple[str, ...] = ("in-process", "grpc"),
               progress: Callable[[Cell], None] | None = None) -> list[Cell]:
    """Run the matrix and return one :class:`Cell` per (model, dataset, path, transport).

    In the ``ci`` subset the PMML path and the gRPC transport run on each model's first
    dataset only (sklearn2pmml starts a JVM per document); ``full`` runs them everywhere.
    """
    cells: list[Cell] = []
    workdir = Path(tempfile.mkdtemp(prefix="tablescore-conformance-"))
    grpc = GrpcTransport() if "grpc" in transports else None
    want_pmml = "pmml" in paths and shutil.which("java") is not None
    try:
        for spec in model_specs(subset):
            if families and spec.family not in families:
                continue
            first = True
            for ds in datasets(subset):
                if ds.task not in spec.tasks:
                    continue
                extra = first or subset == "full"
                first = False
                for cell in run_cell(spec, ds, workdir, pmml=want_pmml and extra,
                                     grpc=grpc if extra else None):
                    cells.append(cell)
                    if progress:
                        progress(cell)
    finally:
        if grpc is not None:
            grpc.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return cells


def summary(cells: list[Cell]) -> str:
    """Markdown: one row per family x path x transport with pass counts, then failures."""
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.family, c.path, c.transport), []).append(c)
    # the worst error as a fraction of the tolerance, not the absolute error: the datasets
    # hold +-1e300 inputs, so a model's outputs reach ~1e300 and a last-bit difference there
    # is an absolute error of ~1e284 in a cell that passes
    lines = ["| family | path | transport | pass | fail | error | unsupported | known "
             "| max error / tolerance |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (fam, path, tr), cs in sorted(groups.items()):
        count = {s: sum(c.status == s for c in cs) for s in ("pass", "fail", "error",
                                                             "unsupported", "known")}
        worst = max((c.max_tol_ratio for c in cs if c.max_tol_ratio is not None and
                     c.status in ("pass", "fail")), default=0.0)
        lines.append(f"| {fam} | {path} | {tr} | {count['pass']} | {count['fail']} | "
                     f"{count['error']} | {count['unsupported']} | {count['known']} | "
                     f"{worst:.3g} |")
    lines += ["", "Max error / tolerance: the largest |tablescore - original| / (abs + rel * "
              "|original|) over every output of the group's cells that were compared (pass or "
              "fail); 1 or less passes."]
    notes = [c for c in cells if c.status == "pass" and c.detail]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {c.model} on {c.dataset} ({c.path}): {c.detail}" for c in notes]
    bad = [c for c in cells if c.status not in ("pass",)]
    if bad:
        lines += ["", "Cells that did not pass:", ""]
        for c in bad:
            first = c.detail.splitlines()[0] if c.detail else ""
            lines.append(f"- {c.model} on {c.dataset} ({c.path}, {c.transport}): "
                         f"{c.status} — {first}")
    return "\n".join(lines)
