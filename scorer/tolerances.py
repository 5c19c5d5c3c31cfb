"""The one table of tolerances between tablescore and the original model, per family.

Used by exporters (recorded with the verification rows), by the scorer's load-time check, by
the conformance suite and by the tests. Labels must always be equal; these bound numeric
outputs as ``|ours - theirs| <= abs + rel * |theirs|``. None is loosened to make a case pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    abs: float
    rel: float
    why: str


TOLERANCES: dict[str, Tolerance] = {
    # Same float64 formula as scikit-learn; only the summation order of the dot product differs
    # (BLAS vs a sequential loop), worth a few ulp of the largest partial sum.
    "linear": Tolerance(1e-12, 1e-12, "float64 dot product, summation order differs from BLAS"),
    # Scalers / imputers / encoders are elementwise float64 with the same operation order.
    "preprocessing": Tolerance(0.0, 0.0, "elementwise, same operations in the same order"),
    "encoding": Tolerance(0.0, 0.0, "exact lookups"),
    # interpolate: numpy.interp's operations in its order (isotonic calibration)
    "calibration": Tolerance(0.0, 0.0, "numpy.interp's float64 operations in its order"),
    # quantile_transform: numpy.interp twice and Cephes' ndtri, same operations, same libm
    "quantile": Tolerance(0.0, 0.0, "numpy.interp and Cephes ndtri's float64 operations"),
    # bspline: SciPy's interval search, de Boor recursion and coefficient sum, same order
    "spline": Tolerance(0.0, 0.0, "SciPy BSpline's float64 operations in its order"),
    # Tree ensembles select leaves bit-exactly (same comparison dtype and operator); the only
    # difference left is how leaf values are summed and the link function's libm.
    "tree_ensemble": Tolerance(1e-12, 1e-12, "float64 accumulation; bit-exact leaf selection"),
    # XGBoost accumulates margins in float32: compare as float32 (a few float32 ulp).
    "xgboost": Tolerance(1e-6, 1e-6, "float32 accumulation and float32 sigmoid / softmax"),
    # LightGBM compares and sums in float64, same order.
    "lightgbm": Tolerance(1e-12, 1e-12, "float64 accumulation, same order"),
    # PMML derived fields: float64 arithmetic in document order, but libm functions (exp, log,
    # pow) may differ from the producing tool's in the last ulp.
    "expression": Tolerance(1e-12, 1e-12, "float64 expressions; libm last-ulp differences"),
    # General-predicate trees select leaves exactly; only score aggregation rounds.
    "predicate_tree": Tolerance(1e-12, 1e-12, "exact node selection; float64 aggregation"),
    # Naive Bayes: probabilities are exp(jll - logsumexp(jll)), so an absolute rounding error
    # in a joint log-likelihood becomes a relative error of the probability; jll is a float64
    # sum over the features (BLAS order in scikit-learn, another libm log / exp / log1p) whose
    # rounding grows with sum |x * log p|: measured 1e-13 on digits, more on long count rows.
    "naive_bayes": Tolerance(1e-10, 1e-10, "float64 log-likelihood sums (BLAS order, libm) "
                             "magnified by exp() into relative probability error"),
    # SVMs: kernel values and the expansion over support vectors in float64, but libsvm sums
    # dot products / squared distances with BLAS (another order) and the expansion cancels
    # (sum |coef * K| is 2.7e3 x |decision| on a linear SVR of wine; more with a larger C),
    # so rounding shows far above one ulp: measured 2.3e-13 there.
    "svm": Tolerance(1e-9, 1e-9, "float64 kernel expansion; BLAS summation order, cancellation"),
    # Distances are float64 sums in field order. scikit-learn's KMeans / brute-force KNN use
    # the squared-norm expansion -2 x.c + |x|^2 + |c|^2 through BLAS, whose dot-product
    # summation order differs: the cancellation amplifies that rounding to ~1e-15 * (|x|^2 +
    # |c|^2) in a squared distance, so small distances differ by more than a few ulp.
    "clustering": Tolerance(1e-9, 1e-9, "float64 distances; BLAS squared-norm expansion"),
    "nearest_neighbor": Tolerance(1e-9, 1e-9, "float64 distances and weights; BLAS "
                                  "squared-norm expansion in brute-force scikit-learn"),
    # Multilayer perceptrons: float64 matrix products summed in source order where
    # scikit-learn's BLAS blocks / reorders them, and tanh / exp / expit from another libm;
    # each layer re-amplifies the previous layer's rounding by its weights.
    "neural_network": Tolerance(1e-9, 1e-9, "float64 layer products: BLAS summation order, "
                                "libm tanh / exp, amplified layer by layer"),
}


def close_mask(got: np.ndarray, expected: np.ndarray, abs_tol: float,
               rel_tol: float) -> np.ndarray:
    """Elementwise ``|got - expected| <= abs_tol + rel_tol * |expected|``, where equal values
    (the same infinity included) and NaN against NaN also count as close. Arrays of any shape,
    compared in float64; the one definition every comparison of outputs uses."""
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (g == e) | (np.isnan(g) & np.isnan(e)) | (
            np.abs(g - e) <= abs_tol + rel_tol * np.abs(e))


def tolerance_for(families: list[str]) -> Tolerance:
    """The loosest tolerance among the families a model uses (a pipeline chains several)."""
    tols = [TOLERANCES[f] for f in families if f in TOLERANCES] or [TOLERANCES["linear"]]
    return Tolerance(max(t.abs for t in tols), max(t.rel for t in tols),
                     "; ".join(sorted({t.why for t in tols})))
