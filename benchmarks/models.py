"""Model zoo: the benchmark families, their synthetic data and how to fit them.

Every family is a plain unfitted estimator plus the task that decides the data generator
(``make_classification`` or ``make_regression``). Libraries other than scikit-learn are
imported only when their family is built, so a missing XGBoost skips one family, not the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Family:
    """One benchmark family.

    Attributes
    ----------
    name : str
        Key used on the command line and in the results.
    task : {"classification", "regression"}
        Binary classification (engines return P(class 1)) or regression (the value).
    description : str
        Human-readable model description for the report.
    build : callable
        ``build(n_estimators, seed) -> unfitted estimator``; ``n_estimators`` is ``None`` for
        the family's own size, or an override (``--quick`` shrinks tree ensembles).
    ensemble : bool
        Whether ``n_estimators`` means anything to this family.
    """

    name: str
    task: Task
    description: str
    build: Callable[[int | None, int], Any]
    ensemble: bool = True


def _logreg(n_estimators: int | None, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=1000, random_state=seed))])


def _ridge(n_estimators: int | None, seed: int) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("reg", Ridge(alpha=1.0))])


def _forest(n_estimators: int | None, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    # n_jobs=-1 only speeds up fitting; the native adapter sets n_jobs to the thread setting.
    return RandomForestClassifier(n_estimators=n_estimators or 100, max_depth=10,
                                  random_state=seed, n_jobs=-1)


def _gbm(n_estimators: int | None, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=n_estimators or 200, random_state=seed)


def _histgb(n_estimators: int | None, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # early_stopping="auto" switches on above 10k rows and would stop well short of max_iter.
    return HistGradientBoostingClassifier(max_iter=n_estimators or 200, early_stopping=False,
                                          random_state=seed)


def _xgboost(n_estimators: int | None, seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=n_estimators or 200, max_depth=6, tree_method="hist",
                         random_state=seed)


def _lightgbm(n_estimators: int | None, seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=n_estimators or 200, num_leaves=31, random_state=seed,
                          verbose=-1)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("logreg", "classification", "Pipeline(StandardScaler, LogisticRegression)", _logreg,
           ensemble=False),
    Family("forest", "classification", "RandomForestClassifier(100 trees, max_depth=10)",
           _forest),
    Family("gbm", "classification", "GradientBoostingClassifier(200 trees)", _gbm),
    Family("histgb", "classification", "HistGradientBoostingClassifier(max_iter=200)", _histgb),
    Family("xgboost", "classification", "XGBClassifier(200 trees, max_depth=6)", _xgboost),
    Family("lightgbm", "classification", "LGBMClassifier(200 trees, 31 leaves)", _lightgbm),
    # Not in the default set: exercises the regression path (engines return the value).
    Family("ridge", "regression", "Pipeline(StandardScaler, Ridge)", _ridge, ensemble=False),
)}

#: Families run when ``--families`` is not given.
DEFAULT_FAMILIES: tuple[str, ...] = ("logreg", "forest", "gbm", "histgb", "xgboost", "lightgbm")


@dataclass(frozen=True)
class Dataset:
    """Training rows and fresh scoring rows drawn from one synthetic distribution."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_score: np.ndarray


def make_data(task: Task, *, n_train: int, n_score: int, n_features: int = 30,
              seed: int = 0) -> Dataset:
    """Synthetic data: one draw of ``n_train + n_score`` rows, split so scoring rows are unseen.

    Arrays are C-contiguous float64, the layout a caller would hand any engine.
    """
    from sklearn.datasets import make_classification, make_regression

    n = n_train + n_score
    informative = max(1, n_features // 2)
    if task == "classification":
        X, y = make_classification(n_samples=n, n_features=n_features,
                                   n_informative=informative,
                                   n_redundant=min(5, n_features - informative),
                                   random_state=seed)
    else:
        X, y = make_regression(n_samples=n, n_features=n_features, n_informative=informative,
                               noise=10.0, random_state=seed)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return Dataset(X_train=X[:n_train].copy(), y_train=y[:n_train].copy(),
                   X_score=X[n_train:].copy())


def fit(family: Family, data: Dataset, *, n_estimators: int | None = None,
        seed: int = 0) -> tuple[Any, float]:
    """Build and fit the family's estimator. Returns ``(fitted model, fit seconds)``."""
    est = family.build(n_estimators, seed)
    t0 = time.perf_counter()
    est.fit(data.X_train, data.y_train)
    return est, time.perf_counter() - t0
