"""SplineTransformer: bundle == scikit-learn 1.9.0, bit for bit, for every extrapolation,
knots 'uniform' / 'quantile' / an array, include_bias, handle_missing and sparse_output."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer

import scorer
from exporters import export
from scorer.errors import ExportError, InputError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity

MODES = ["constant", "linear", "continue", "periodic", "error"]


def _transform(model: scorer.Model, X: np.ndarray, *, reference: bool = False) -> np.ndarray:
    res = model.score_arrays(X, reference=reference)
    return np.column_stack([res[o.name] for o in model.bundle.outputs])


def _data(ds: str) -> np.ndarray:
    if ds == "synthetic_nan":  # NaN cells, integer-valued columns (repeated quantile knots)
        return synthetic(300, 5, seed=4, nan=True)[:, [0, 1, 4]]
    return sklearn_dataset(ds)[0][:, :4]


def _beyond(X: np.ndarray) -> np.ndarray:
    """X, values beyond the fitted range on both sides, and the range's ends."""
    lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    span = hi - lo
    return np.vstack([X, lo - span, hi + 2 * span, lo, hi, lo - 1e-9, (lo + hi) / 2])


@pytest.mark.parametrize("ds", ["breast_cancer", "diabetes", "synthetic_nan"])
@pytest.mark.parametrize("mode", MODES)
def test_bit_exact(ds, mode, tmp_path):
    X = _data(ds)
    missing = "zeros" if np.isnan(X).any() else "error"
    for i, (degree, knots, bias) in enumerate(itertools.product(
            [0, 1, 3], ["uniform", "quantile"], [True, False])):
        if degree == 0 and mode == "constant":
            continue  # scikit-learn fails above the knots: test_degree_0_constant_...
        n_knots = 4 if degree < 3 else 6
        est = SplineTransformer(n_knots=n_knots, degree=degree, knots=knots,
                                extrapolation=mode, include_bias=bias,
                                handle_missing=missing).fit(X)
        Z = X if mode == "error" else _beyond(X)
        model = assert_parity(est, Z, tmp_path / f"m{i}")
        want = est.transform(Z)
        np.testing.assert_array_equal(_transform(model, Z), want)
        np.testing.assert_array_equal(_transform(model, Z, reference=True), want)


def test_knots_array_and_periodic_day_of_year(tmp_path):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 365, 400), rng.normal(size=400)])
    knots = np.column_stack([np.linspace(0, 365, 13), np.linspace(-3, 3, 13)])
    est = SplineTransformer(knots=knots, degree=3, extrapolation="periodic").fit(X)
    Z = np.vstack([X, [[366.0, 9.0], [-1.0, -9.0], [730.5, 0.0], [0.0, 3.0], [365.0, -3.0]]])
    model = assert_parity(est, Z, tmp_path / "m")
    np.testing.assert_array_equal(_transform(model, Z), est.transform(Z))


def test_linear_extrapolation_reproduces_scikit_learns_per_feature_degree(tmp_path):
    """scikit-learn 1.9.0 raises its ``degree`` variable for degree <= 1 inside the feature
    loop: from the second feature on, 'linear' extrapolates from t[2] / t[-3]. The bundle
    gives what the original gives."""
    X = np.tile(np.arange(5.0)[:, None], (1, 3))
    est = SplineTransformer(n_knots=5, degree=1, extrapolation="linear").fit(X)
    Z = np.array([[0.5, 0.5, 0.5], [-1.0, -1.0, -1.0], [4.5, 4.5, 4.5]])
    want = est.transform(Z)
    assert not np.array_equal(want[0, :5], want[0, 5:10])  # the quirk is there
    model = assert_parity(est, Z, tmp_path / "m", sample=X)
    np.testing.assert_array_equal(_transform(model, Z), want)


def test_missing_and_infinite_values(tmp_path):
    X = synthetic(200, 3, seed=5, nan=True)
    Z = np.vstack([X, [[math.inf, -math.inf, 1e300], [-1e300, math.nan, -math.inf]]])
    for mode in ["constant", "linear", "continue", "periodic"]:
        for degree in (0, 2) if mode != "constant" else (1, 2):  # degree 0: see below
            est = SplineTransformer(n_knots=5, degree=degree, extrapolation=mode,
                                    handle_missing="zeros").fit(X)
            export(est, tmp_path / f"{mode}{degree}", sample=X)
            model = scorer.load(tmp_path / f"{mode}{degree}")
            with np.errstate(all="ignore"):
                want = est.transform(Z)
            np.testing.assert_array_equal(_transform(model, Z), want)
    # handle_missing='error' (the default): NaN and inf refused at the input
    est = SplineTransformer().fit(np.nan_to_num(X))
    export(est, tmp_path / "strict", sample=np.nan_to_num(X))
    model = scorer.load(tmp_path / "strict")
    for bad in (math.nan, math.inf):
        with pytest.raises(InputError):
            model.score_arrays(np.array([[bad, 0.0, 0.0]]))


def test_in_a_pipeline(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    X = X[:, :6]
    for mode in MODES:
        est = make_pipeline(SplineTransformer(n_knots=4, extrapolation=mode),
                            LogisticRegression(max_iter=3000)).fit(X, y)
        model = assert_parity(est, X, tmp_path / mode)
        np.testing.assert_array_equal(model.predict(X), est.predict(X))
    Xd, yd = sklearn_dataset("diabetes")
    est = make_pipeline(SplineTransformer(n_knots=5, degree=2, knots="quantile",
                                          extrapolation="linear"), Ridge()).fit(Xd, yd)
    assert_parity(est, Xd, tmp_path / "ridge")


def test_non_finite_features_feeding_a_step_refuse_the_row(tmp_path):
    X = synthetic(200, 2, seed=6)
    y = (X[:, 1] > 0).astype(int)
    est = make_pipeline(SplineTransformer(extrapolation="continue", handle_missing="zeros"),
                        LogisticRegression()).fit(X, y)
    export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    with pytest.raises(ValueError):  # scikit-learn: LogisticRegression's check_array
        est.predict_proba(np.array([[math.inf, 0.0]]))
    with pytest.raises(InputError, match="not finite"):
        model.score_arrays(np.array([[math.inf, 0.0]]))
    # constant extrapolation of inf is finite: scored as scikit-learn scores it
    est = make_pipeline(SplineTransformer(handle_missing="zeros"), LogisticRegression()).fit(X, y)
    export(est, tmp_path / "c", sample=X)
    got = scorer.load(tmp_path / "c").score_arrays(np.array([[math.inf, 0.0]]))
    np.testing.assert_array_equal(got["probability(1)"],
                                  est.predict_proba(np.array([[math.inf, 0.0]]))[:, 1])


def test_extrapolation_error_refuses_a_row_outside_the_knots(tmp_path):
    X = sklearn_dataset("wine")[0][:, :3]
    est = SplineTransformer(extrapolation="error").fit(X)
    export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    Z = X[:2].copy()
    Z[1, 2] = X[:, 2].max() + 1
    with pytest.raises(ValueError, match="beyond the limits"):
        est.transform(Z)
    with pytest.raises(InputError, match="outside the knots"):
        model.score_arrays(Z)


@pytest.mark.parametrize("mode", MODES)
def test_sparse_output_gives_the_dense_values(mode, tmp_path):
    X = _data("diabetes")
    est = SplineTransformer(n_knots=5, degree=2, extrapolation=mode, sparse_output=True).fit(X)
    Z = X if mode == "error" else _beyond(X)
    model = assert_parity(est, Z, tmp_path / "m")
    np.testing.assert_array_equal(_transform(model, Z), est.transform(Z).toarray())


def test_refusals(tmp_path):
    X = _data("diabetes")
    cases = [
        # scikit-learn cannot transform these at all
        (SplineTransformer(degree=0, extrapolation="periodic", sparse_output=True),
         "sparse path"),
        (SplineTransformer(n_knots=2, degree=0, extrapolation="linear"), "extrapolates 2 columns"),
        (SplineTransformer(n_knots=2, degree=0, include_bias=False), "no columns"),
    ]
    for est, match in cases:
        est.fit(X)
        with pytest.raises(ExportError, match=match):
            export(est, tmp_path / "m", sample=X)


def test_degree_0_constant_above_the_knots_is_refused_as_scikit_learn_fails(tmp_path):
    X = _data("diabetes")
    est = SplineTransformer(n_knots=4, degree=0).fit(X)
    export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    above = X[:1] + (X.max(axis=0) - X.min(axis=0))
    with pytest.raises(ValueError):
        est.transform(above)
    with pytest.raises(InputError, match="above the last knot"):
        model.score_arrays(above)
    below = X[:1] - (X.max(axis=0) - X.min(axis=0))
    np.testing.assert_array_equal(_transform(model, below), est.transform(below))
