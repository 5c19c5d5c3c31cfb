"""``PowerTransformer`` (Yeo-Johnson, Box-Cox; ``standardize``): one ``expression`` step of
elementwise formulas, then the fitted ``StandardScaler`` as an ``affine`` step. No op of
its own.

Per column with ``lmbda = lambdas_[i]`` (SciPy's formulas, which scikit-learn calls):

- Yeo-Johnson (``stats._morestats._yeojohnson_transform``): ``x >= 0``:
  ``log1p(x)`` if ``|lmbda| < eps`` else ``expm1(lmbda * log1p(x)) / lmbda``; ``x < 0``:
  ``-expm1((2 - lmbda) * log1p(-x)) / (2 - lmbda)`` if ``|lmbda - 2| > eps`` else
  ``-log1p(-x)``. NaN takes the ``x < 0`` branch and stays NaN.
- Box-Cox (``scipy.special.boxcox``): ``log(x)`` if ``|lmbda| < 1e-19`` else
  ``expm1(lmbda * log(x)) / lmbda``. scikit-learn refuses a batch holding a value ``<= 0``
  (``_check_input(check_positive=True)``, NaN ignored): the bundle refuses such a row
  (``REFUSE_IF``, an input error).

The operations are scikit-learn's in its order; only ``log1p`` / ``expm1`` may come from
another implementation (NumPy may use SIMD versions, the scorer libm): a few ulp, within the
``expression`` tolerance. NaN passes through (``ensure_all_finite='allow-nan'``); inf is
refused.

As a transformer before another step (``register_transform``: a pipeline step before the
last, a ColumnTransformer / FeatureUnion member) a finite value whose transform overflows to
+-inf (Yeo-Johnson of about +-1e300) makes the row refused: the estimators after it validate
with ``check_array``, which refuses inf. As the last step the +-inf is returned, as
scikit-learn returns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .programs import Program
from .registry import export_into, register, register_transform

EPS = float(np.finfo(np.float64).eps)


def _refuse_inf(p: Program) -> None:
    # the value on top is kept; a +-inf one refuses the row (NaN compares false)
    p.emit("DUP").emit("ABS").const(np.inf).emit("EQ").emit("REFUSE_IF")


def _yeo_johnson(p: Program, j: int, lmbda: float, refuse_inf: bool) -> None:
    p.load(j).const(0.0).emit("GE")  # the condition, below both branches
    if abs(lmbda) < EPS:  # x >= 0
        p.load(j).emit("LN1P")
    else:
        p.const(lmbda).load(j).emit("LN1P").emit("MUL").emit("EXPM1").const(lmbda).emit("DIV")
    two = 2 - lmbda
    if abs(lmbda - 2) > EPS:  # x < 0: -expm1((2 - lmbda) * log1p(-x)) / (2 - lmbda)
        p.const(two).load(j).emit("NEG").emit("LN1P").emit("MUL").emit("EXPM1").emit("NEG")
        p.const(two).emit("DIV")
    else:
        p.load(j).emit("NEG").emit("LN1P").emit("NEG")
    p.emit("IF")
    if refuse_inf:
        _refuse_inf(p)
    p.store(j)


def _box_cox(p: Program, j: int, lmbda: float, refuse_inf: bool) -> None:
    p.load(j).const(0.0).emit("LE").emit("REFUSE_IF")  # NaN compares false: not refused
    if abs(lmbda) < 1e-19:
        p.load(j).emit("LN")
    else:
        p.const(lmbda).load(j).emit("LN").emit("MUL").emit("EXPM1").const(lmbda).emit("DIV")
    if refuse_inf:
        _refuse_inf(p)
    p.store(j)


@register("sklearn.PowerTransformer")
def export_power_transformer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return _export(est, g, cols, refuse_inf=False)


@register_transform("sklearn.PowerTransformer")
def export_power_transform(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return _export(est, g, cols, refuse_inf=True)


def _export(est: Any, g: Graph, cols: list[str], *, refuse_inf: bool) -> list[str]:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"PowerTransformer received string column '{c}': encode it "
                              "first (OneHotEncoder / OrdinalEncoder)")
    lambdas = np.asarray(est.lambdas_, dtype=np.float64)
    if len(lambdas) != len(cols):
        raise ExportError(f"PowerTransformer has {len(lambdas)} lambdas but receives "
                          f"{len(cols)} columns")
    if est.method not in ("yeo-johnson", "box-cox"):
        raise ExportError(f"PowerTransformer(method={est.method!r}) is not supported")
    g.require(cols, nan=True, inf=False)  # ensure_all_finite='allow-nan'
    p = Program()
    for j, lmbda in enumerate(lambdas):
        (_yeo_johnson if est.method == "yeo-johnson" else _box_cox)(p, j, float(lmbda),
                                                                    refuse_inf)
    outs = g.new_columns("power", len(cols))
    why = []
    if est.method == "box-cox":
        why.append("method='box-cox' needs strictly positive values")
    if refuse_inf:
        why.append("a value whose transform overflows to inf is refused by the next step")
    params = {"refuse_message": "PowerTransformer: " + "; ".join(why)} if why else {}
    g.add_step("expression", name="power_transformer", inputs=cols, outputs=outs,
               family="expression", params=params, elementwise=True,
               tables={"program": p.table()})
    if est.standardize:
        outs = export_into(est._scaler, g, outs)
    return outs
