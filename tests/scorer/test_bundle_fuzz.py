"""Fuzzed bundles: one table cell or step parameter changed at a time must never crash the
scorer. Every mutant is either refused with a tablescore error or scored.

Small bundles of every op are exported (scikit-learn estimators, and a PMML document for the
``expression`` and ``predicate_tree`` ops); a child process per bundle loads and scores the
mutants (:mod:`tests.scorer.bundle_fuzz`), so a kernel writing out of bounds fails this test
instead of killing pytest. Fixed seed, fixed count: the same mutants on every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SEED = 19
#: the bundles fuzzed (see _builders), and mutants per bundle
BUNDLES = ["logreg", "encoders", "gbm", "forest", "naive_bayes", "knn", "kmeans", "mlp", "svc",
           "calibrated", "quantile", "spline", "pmml_tree"]
#: random mutants per bundle, after its edge mutants (4 per integer table column)
MUTANTS = 20
ROOT = Path(__file__).resolve().parents[2]

_PMML = """<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>
<DataDictionary>
  <DataField name="x" optype="continuous" dataType="double"/>
  <DataField name="z" optype="continuous" dataType="double"/>
  <DataField name="c" optype="categorical" dataType="string">
    <Value value="a"/><Value value="b"/><Value value="c"/></DataField>
  <DataField name="y" optype="continuous" dataType="double"/>
</DataDictionary>
<TransformationDictionary>
  <DerivedField name="d" dataType="double" optype="continuous">
    <Apply function="if"><Apply function="isIn"><FieldRef field="c"/><Constant>a</Constant>
      <Constant>c</Constant></Apply><Apply function="pow"><FieldRef field="x"/>
      <Constant>2</Constant></Apply><Apply function="abs"><FieldRef field="z"/></Apply>
    </Apply></DerivedField>
</TransformationDictionary>
<TreeModel functionName="regression" missingValueStrategy="defaultChild"
    noTrueChildStrategy="returnLastPrediction">
  <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>
    <MiningField name="z"/><MiningField name="c"/></MiningSchema>
  <Node score="0" defaultChild="n1"><True/>
    <Node id="n1" score="1"><CompoundPredicate booleanOperator="and">
        <SimpleSetPredicate field="c" booleanOperator="isIn"><Array type="string">a b</Array>
        </SimpleSetPredicate>
        <SimplePredicate field="d" operator="greaterThan" value="0.5"/></CompoundPredicate>
      <Node score="3"><SimplePredicate field="z" operator="lessThan" value="0"/></Node>
      <Node score="4"><True/></Node>
    </Node>
    <Node score="2"><CompoundPredicate booleanOperator="surrogate">
        <SimplePredicate field="x" operator="lessOrEqual" value="0"/>
        <SimplePredicate field="c" operator="equal" value="c"/></CompoundPredicate></Node>
  </Node></TreeModel></PMML>"""


def _data(n: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(SEED)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.integers(0, 4, size=n).astype(float)})
    y = (X["a"] + X["b"] > 0).astype(int).to_numpy() + (X["c"] > 2).to_numpy()
    return X, y


def _export(est, X, path: Path) -> None:
    import exporters

    exporters.export(est, path, sample=X, verification_rows=20)


def _sklearn(make: Callable[[], object], frame: Callable[[], pd.DataFrame] | None = None,
             regression: bool = False) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        X, y = _data()
        if frame is not None:
            X = frame()
        _export(make().fit(X, y.astype(float) if regression else y), X, path)
    return build


def _strings() -> pd.DataFrame:
    rng = np.random.default_rng(SEED + 1)
    n = 60
    return pd.DataFrame({"s": rng.choice(["u", "v", "w"], n), "t": rng.choice(["p", "q"], n),
                         "a": rng.normal(size=n)})


def _encoders() -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder

    ct = ColumnTransformer([
        ("oh", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["s"]),
        ("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["t"]),
        ("kb", KBinsDiscretizer(n_bins=3, encode="onehot-dense", strategy="uniform"), ["a"])])
    return make_pipeline(ct, LinearRegression())


def _pmml(path: Path) -> None:
    from exporters.pmml import read_pmml_bytes
    from scorer.bundle import write_bundle
    from scorer.ir import Verification

    b = read_pmml_bytes(_PMML.encode())
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=20)
    x[3] = np.nan
    b.verification = Verification(
        inputs={"x": x, "z": rng.normal(size=20),
                "c": np.array([["a", "b", "c", None][i % 4] for i in range(20)], dtype=object)},
        expected={}, abs_tol=0.0, rel_tol=0.0)
    write_bundle(b, path)


def _builders() -> dict[str, Callable[[Path], None]]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.cluster import KMeans
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer, SplineTransformer, StandardScaler
    from sklearn.svm import SVC

    def nan_frame() -> pd.DataFrame:
        X, _ = _data()
        X.iloc[::7, 0] = np.nan
        return X

    builders = {
        "logreg": _sklearn(lambda: make_pipeline(SimpleImputer(add_indicator=True),
                                                 StandardScaler(), LogisticRegression()),
                           nan_frame),
        "encoders": _sklearn(_encoders, _strings, regression=True),
        "gbm": _sklearn(lambda: GradientBoostingClassifier(n_estimators=3, max_depth=2)),
        "forest": _sklearn(lambda: RandomForestRegressor(n_estimators=2, max_depth=3),
                           regression=True),
        "naive_bayes": _sklearn(GaussianNB),
        "knn": _sklearn(lambda: KNeighborsClassifier(n_neighbors=3)),
        "kmeans": _sklearn(lambda: KMeans(n_clusters=3, n_init=1, random_state=0)),
        "mlp": _sklearn(lambda: MLPClassifier(hidden_layer_sizes=(4,), max_iter=50,
                                              random_state=0)),
        # probability=True: its bundle also holds the svm_probability step
        "svc": _sklearn(lambda: SVC(kernel="rbf", C=1.0, probability=True, random_state=0)),
        # isotonic calibration: its bundle holds the interpolate step
        "calibrated": _sklearn(lambda: CalibratedClassifierCV(GaussianNB(), method="isotonic",
                                                              cv=2)),
        "quantile": _sklearn(lambda: make_pipeline(QuantileTransformer(
            n_quantiles=20, output_distribution="normal"), LogisticRegression())),
        # linear extrapolation: its bundle also holds the bounds and edges tables
        "spline": _sklearn(lambda: make_pipeline(SplineTransformer(
            n_knots=4, degree=2, extrapolation="linear"), LogisticRegression())),
        "pmml_tree": _pmml,
    }
    assert list(builders) == BUNDLES
    return builders


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import warnings

    root = tmp_path_factory.mktemp("fuzz")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the tiny fits
        for name, build in _builders().items():
            build(root / name)
            out[name] = root / name
    return out


def test_the_fuzzed_bundles_cover_every_op(bundles: dict[str, Path]) -> None:
    from scorer.bundle import read_bundle
    from scorer.ops import known_ops

    used = {s.op for p in bundles.values() for s in read_bundle(p).steps}
    assert used == set(known_ops()), f"not fuzzed: {sorted(set(known_ops()) - used)}"


def _run_child(path: Path, first: int, count: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run(
        [sys.executable, "-m", "tests.scorer.bundle_fuzz", str(path), str(SEED), str(first),
         str(count)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def fuzz(path: Path, count: int) -> tuple[dict[str, int], list[str]]:
    """Outcome counts and the problems (crashes, non-tablescore exceptions) of the edge
    mutants and ``count`` random mutants of the bundle at ``path``; a crashed child is
    restarted after its mutant."""
    from scorer.bundle import read_bundle
    from tests.scorer.bundle_fuzz import n_edges

    count += n_edges(read_bundle(path))
    counts: dict[str, int] = {}
    problems: list[str] = []
    first = 0
    while first < count:
        r = _run_child(path, first, count - first)
        started: dict[int, str] = {}
        for line in r.stdout.splitlines():
            tag, i, rest = [*line.split(" ", 2), ""][:3]
            if tag == "start":
                started[int(i)] = rest
            elif tag == "done":
                what = started.pop(int(i))
                key = rest.split(":")[0].split(" ")[0]
                counts[key] = counts.get(key, 0) + 1
                if rest.startswith("BUG"):
                    problems.append(f"mutant {i} ({what}): {rest}")
                first = int(i) + 1
        if r.returncode != 0:
            what = " and ".join(f"mutant {i} ({w})" for i, w in started.items()) or "startup"
            problems.append(f"{what}: child exited with status {r.returncode} "
                            f"{r.stderr[-500:]}")
            counts["crashed"] = counts.get("crashed", 0) + 1
            if not started:
                break
            first = max(started) + 1
    return counts, problems


@pytest.mark.parametrize("name", BUNDLES)
def test_mutants_are_refused_or_scored(bundles: dict[str, Path], name: str) -> None:
    counts, problems = fuzz(bundles[name], MUTANTS)
    print(name, counts)  # outcome counts, shown with -s
    assert sum(counts.values()) >= MUTANTS, counts
    assert counts.get("scored", 0) and counts.get("refused", 0), counts
    assert not problems, "\n".join(problems)
