"""The statistics of an experiment report, on summary statistics so that one call handles one
comparison, the looks of a daily series, or thousands of simulated experiments at once.

Every function takes arrays that broadcast against each other (shape ``(...)``: a scalar, one
value per look, ``(simulations, looks)``) and returns arrays of the broadcast shape. Index 1 is
the treatment arm, index 2 the control arm; a difference is always ``treatment - control``.

Fixed-horizon tests (valid at one pre-planned look):

- :func:`welch_test`: Welch's unequal-variance t-test and its confidence interval (equal to
  ``scipy.stats.ttest_ind(equal_var=False)`` and statsmodels' ``CompareMeans``);
- :func:`two_proportion_test`: the two-proportion z-test with the pooled proportion (equal to
  ``statsmodels.stats.proportion.proportions_ztest``) and the unpooled Wald interval;
- :func:`relative_lift`: ``mean1 / mean2 - 1`` with a delta-method interval;
- :func:`srm_test`: Pearson's chi-square of the arms' unit counts against their weights.

Always-valid inference (safe under continuous monitoring): :func:`msprt` (the mixture
sequential probability ratio test, normal mixing distribution) and :func:`always_valid`
(its running minimum p-value and running intersection of intervals over looks).

Variance reduction: :func:`cuped_theta`, :func:`cuped_adjust` (Deng et al. 2013).

The formulas and references are in docs/experiments.md (Analysis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

#: a sample-ratio mismatch is flagged below this p-value: strict, because the test is run on
#: every report and a false alarm stops an experiment (the usual industry threshold)
SRM_THRESHOLD = 0.001

#: the default standard deviation of the normal mixing distribution over the effect, in units
#: of the metric's per-unit standard deviation; the boundary is tightest near
#: ``mixing_sd_for``'s sample size (about 6,400 units per arm at alpha = 0.05)
DEFAULT_MIXING_SD = 0.05


@dataclass(frozen=True)
class TestResult:
    """A two-sample comparison; every field has the inputs' broadcast shape ``(...)``.

    Attributes
    ----------
    difference : ndarray, shape (...)
        ``mean1 - mean2``.
    se : ndarray, shape (...)
        Standard error of the difference.
    ci_low, ci_high : ndarray, shape (...)
        The two-sided ``1 - alpha`` confidence interval of the difference.
    statistic : ndarray, shape (...)
        t (Welch) or z (two proportions).
    df : ndarray, shape (...)
        Welch-Satterthwaite degrees of freedom; ``inf`` for a z-test.
    p_value : ndarray, shape (...)
        Two-sided p-value.
    """

    difference: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    statistic: np.ndarray
    df: np.ndarray
    p_value: np.ndarray


def welch_test(n1: np.ndarray | float, mean1: np.ndarray | float, var1: np.ndarray | float,
               n2: np.ndarray | float, mean2: np.ndarray | float, var2: np.ndarray | float,
               alpha: float = 0.05) -> TestResult:
    """Welch's t-test of ``mean1 == mean2``, and the t interval of the difference.

    Parameters
    ----------
    n1, n2 : array_like, shape (...)
        Units per group (at least 2 each for a finite result).
    mean1, mean2 : array_like, shape (...)
        Sample means.
    var1, var2 : array_like, shape (...)
        Sample variances with ``ddof=1``.
    alpha : float
        1 - the interval's coverage.

    Returns
    -------
    TestResult
        ``df`` is the Welch-Satterthwaite approximation.
    """
    n1, mean1, var1, n2, mean2, var2 = (np.asarray(a, dtype=np.float64)
                                        for a in (n1, mean1, var1, n2, mean2, var2))
    a, b = var1 / n1, var2 / n2
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(a + b)
        df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
        diff = mean1 - mean2
        t = diff / se
        p = 2.0 * stats.t.sf(np.abs(t), df)
        half = stats.t.ppf(1.0 - alpha / 2.0, df) * se
    return TestResult(diff, se, diff - half, diff + half, t, df, p)


def two_proportion_test(x1: np.ndarray | float, n1: np.ndarray | float,
                        x2: np.ndarray | float, n2: np.ndarray | float,
                        alpha: float = 0.05) -> TestResult:
    """The two-proportion z-test of ``p1 == p2`` and the Wald interval of ``p1 - p2``.

    The test's standard error uses the pooled proportion (its value under the null, as
    statsmodels' ``proportions_ztest`` does); the interval's uses each group's own proportion
    (the null does not hold where the interval is read).

    Parameters
    ----------
    x1, x2 : array_like, shape (...)
        Successes (units with metric 1).
    n1, n2 : array_like, shape (...)
        Units.
    alpha : float
        1 - the interval's coverage.

    Returns
    -------
    TestResult
        ``se`` is the unpooled standard error (the interval's); ``df`` is ``inf``.
    """
    x1, n1, x2, n2 = (np.asarray(a, dtype=np.float64) for a in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        pooled = (x1 + x2) / (n1 + n2)
        diff = p1 - p2
        z = diff / np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
        p = 2.0 * special.ndtr(-np.abs(z))
        se = np.sqrt(p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2)
    half = special.ndtri(1.0 - alpha / 2.0) * se
    return TestResult(diff, se, diff - half, diff + half, z, np.full_like(z, np.inf), p)


def relative_lift(n1: np.ndarray | float, mean1: np.ndarray | float, var1: np.ndarray | float,
                  n2: np.ndarray | float, mean2: np.ndarray | float, var2: np.ndarray | float,
                  alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``mean1 / mean2 - 1`` and its delta-method normal interval (Deng, Knoblich, Lu 2018).

    ``Var(m1/m2) ~= v1/(n1 m2^2) + m1^2 v2/(n2 m2^4)`` for independent groups. Undefined
    (``nan``) where ``mean2`` is 0.

    Parameters
    ----------
    n1, mean1, var1, n2, mean2, var2 : array_like, shape (...)
        As for :func:`welch_test`.
    alpha : float
        1 - the interval's coverage.

    Returns
    -------
    lift, low, high : ndarray, shape (...)
    """
    n1, mean1, var1, n2, mean2, var2 = (np.asarray(a, dtype=np.float64)
                                        for a in (n1, mean1, var1, n2, mean2, var2))
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = np.where(mean2 == 0.0, np.nan, mean2)
        lift = mean1 / m2 - 1.0
        se = np.sqrt(var1 / (n1 * m2**2) + mean1**2 * var2 / (n2 * m2**4))
    half = special.ndtri(1.0 - alpha / 2.0) * se
    return lift, lift - half, lift + half


def srm_test(observed: np.ndarray, weights: np.ndarray) -> tuple[float, int, float]:
    """Pearson's chi-square test of arm sizes against the configured weights.

    Parameters
    ----------
    observed : array_like, shape (arms,)
        Units per arm.
    weights : array_like, shape (arms,)
        Each arm's configured share (normalised to sum 1 here).

    Returns
    -------
    chi2 : float
    df : int
        ``arms - 1``.
    p_value : float
        As ``scipy.stats.chisquare(observed, total * weights)``.
    """
    obs = np.asarray(observed, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    expected = obs.sum() * w / w.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.sum((obs - expected) ** 2 / expected))
    df = len(obs) - 1
    return chi2, df, float(stats.chi2.sf(chi2, df))


def mixing_sd_for(units_per_arm: float, alpha: float = 0.05) -> float:
    """The mixing standard deviation (in per-unit SDs) whose boundary is tightest at
    ``units_per_arm`` units in each of two arms: Howard et al. 2021's optimal mixture
    ``rho`` for a target time, ``tau^2 = s^2 (2 log(1/alpha) + log(1 + 2 log(1/alpha)))``
    with ``s^2 = 2 sigma^2 / n`` the variance of the difference then.

    Parameters
    ----------
    units_per_arm : float
        The planned units per arm.
    alpha : float
        The sequential test's level.

    Returns
    -------
    float
        ``tau / sigma``.
    """
    c = 2.0 * np.log(1.0 / alpha)
    return float(np.sqrt(2.0 * (c + np.log1p(c)) / units_per_arm))


def mixing_tau2(var1: np.ndarray | float, var2: np.ndarray | float,
                mixing_sd: float = DEFAULT_MIXING_SD) -> np.ndarray:
    """The mixing distribution's variance over the difference, ``tau^2 = (phi sigma)^2`` with
    ``sigma^2 = (var1 + var2) / 2`` the per-unit variance pooled over both arms.

    Scaling by the metric's own spread lets one ``phi`` (an effect size in standard
    deviations) serve every metric; the estimate of ``sigma`` converges, which the
    asymptotic validity argument allows (Waudby-Smith et al. 2024).

    Parameters
    ----------
    var1, var2 : array_like, shape (...)
        Sample variances.
    mixing_sd : float
        ``phi``.

    Returns
    -------
    ndarray, shape (...)
    """
    return mixing_sd**2 * (np.asarray(var1, np.float64) + np.asarray(var2, np.float64)) / 2.0


@dataclass(frozen=True)
class SequentialResult:
    """The mSPRT at each look; fields have the inputs' broadcast shape ``(...)``.

    Attributes
    ----------
    log_lr : ndarray, shape (...)
        Log of the mixture likelihood ratio ``Lambda``.
    p_value : ndarray, shape (...)
        ``min(1, 1 / Lambda)`` at this look alone (see :func:`always_valid` for the running
        minimum that is safe to read at any look).
    ci_low, ci_high : ndarray, shape (...)
        The confidence sequence at this look: the differences ``theta0`` the test would not
        reject.
    """

    log_lr: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def msprt(difference: np.ndarray | float, se2: np.ndarray | float, tau2: np.ndarray | float,
          alpha: float = 0.05) -> SequentialResult:
    """The mixture sequential probability ratio test of ``difference == 0`` (Johari, Koomen,
    Pekelis, Walsh 2017; Robbins 1970), with a normal mixing distribution ``N(0, tau^2)``.

    With the estimate ``D ~ N(delta, s^2)`` at a look, the likelihood ratio of
    ``delta ~ N(0, tau^2)`` against ``delta = 0`` is::

        Lambda = sqrt(s^2 / (s^2 + tau^2)) * exp(tau^2 D^2 / (2 s^2 (s^2 + tau^2)))

    (for ``n`` units per arm and per-pair variance ``V``, ``s^2 = V / n``: the paper's
    ``sqrt(V / (V + n tau^2)) exp(n^2 tau^2 D^2 / (2 V (V + n tau^2)))``). ``Lambda`` is a
    nonnegative martingale under the null, so ``P(sup Lambda >= 1/alpha) <= alpha`` (Ville):
    rejecting when ``Lambda >= 1/alpha`` at any look controls the false-positive rate however
    often one looks. Inverting it gives the confidence sequence ``D +- r`` with::

        r^2 = s^2 (s^2 + tau^2) / tau^2 * (2 log(1/alpha) + log((s^2 + tau^2) / s^2))

    (Howard et al. 2021's normal-mixture boundary).

    Parameters
    ----------
    difference : array_like, shape (...)
        The estimate ``D`` at each look.
    se2 : array_like, shape (...)
        Its variance ``s^2`` (Welch's ``var1/n1 + var2/n2``).
    tau2 : array_like, shape (...)
        The mixing variance (:func:`mixing_tau2`).
    alpha : float
        The level.

    Returns
    -------
    SequentialResult
    """
    d, s2, t2 = (np.asarray(a, dtype=np.float64) for a in (difference, se2, tau2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (s2 + t2) / s2
        log_lr = -0.5 * np.log(ratio) + t2 * d**2 / (2.0 * s2 * (s2 + t2))
        p = np.minimum(1.0, np.exp(-log_lr))
        r = np.sqrt(s2 * (s2 + t2) / t2 * (2.0 * np.log(1.0 / alpha) + np.log(ratio)))
    return SequentialResult(log_lr, p, d - r, d + r)


def always_valid(seq: SequentialResult, axis: int = -1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The running minimum p-value and running intersection of intervals along the looks.

    Both stay valid at every look (the test's guarantee is over the whole sequence), so the
    value at the last look is the one to report; looks with undefined statistics (fewer than
    two units in an arm) are skipped.

    Parameters
    ----------
    seq : SequentialResult
        Fields of shape ``(..., looks, ...)``.
    axis : int
        The looks' axis.

    Returns
    -------
    p_value, ci_low, ci_high : ndarray, shape of ``seq``'s fields
    """
    p = np.fmin.accumulate(np.where(np.isnan(seq.p_value), 1.0, seq.p_value), axis=axis)
    lo = np.fmax.accumulate(np.where(np.isnan(seq.ci_low), -np.inf, seq.ci_low), axis=axis)
    hi = np.fmin.accumulate(np.where(np.isnan(seq.ci_high), np.inf, seq.ci_high), axis=axis)
    return p, lo, hi


def cuped_theta(y: np.ndarray, x: np.ndarray, axis: int = -1) -> np.ndarray:
    """CUPED's ``theta = cov(Y, X) / var(X)`` (Deng, Xu, Kohavi, Walker 2013), over all units
    given (the caller pools the arms: a common ``theta`` keeps the adjusted difference
    unbiased, since ``X`` is measured before assignment).

    Parameters
    ----------
    y : ndarray, shape (..., units)
        The metric.
    x : ndarray, shape (..., units)
        The pre-period covariate.
    axis : int
        The units' axis.

    Returns
    -------
    ndarray, shape (...)
        ``0`` where ``X`` is constant (no adjustment).
    """
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    sxx = np.sum(xc * xc, axis=axis)
    sxy = np.sum(xc * yc, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sxx > 0, sxy / sxx, 0.0)


def cuped_adjust(y: np.ndarray, x: np.ndarray, theta: np.ndarray | float,
                 axis: int = -1) -> np.ndarray:
    """``Y - theta (X - mean(X))``: the same mean as ``Y``, and variance
    ``var(Y) (1 - rho^2)`` at the optimal ``theta``.

    Parameters
    ----------
    y, x : ndarray, shape (..., units)
    theta : array_like, shape (...)
    axis : int
        The units' axis.

    Returns
    -------
    ndarray, shape (..., units)
    """
    th = np.expand_dims(np.asarray(theta, dtype=np.float64), axis)
    return y - th * (x - x.mean(axis=axis, keepdims=True))
