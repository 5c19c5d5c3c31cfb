"""The report's statistics: equal to scipy / statsmodels, and right in simulation (A/A false
positives at one look and under daily peeking, power, CUPED). Simulations are vectorised over
experiments: one array of shape (experiments, looks, units per look) per arm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from scorer.experiments import stats as S

TOL = 1e-9
SIMS = 1000
LOOKS = 30
PER_LOOK = 50  # units per arm per day


def moments(y: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.full(np.delete(y.shape, axis), y.shape[axis], dtype=np.float64),
            y.mean(axis=axis), y.var(axis=axis, ddof=1))


def cumulative(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sims, looks, per_look) -> n, mean, var of the units seen by each look, (sims, looks)."""
    n = np.arange(1, y.shape[1] + 1) * y.shape[2] * 1.0
    s = np.cumsum(y.sum(axis=2), axis=1)
    ss = np.cumsum((y * y).sum(axis=2), axis=1)
    return n, s / n, (ss - s * s / n) / (n - 1)


# --- equal to the references ----------------------------------------------------------------
@pytest.mark.parametrize(("n1", "n2", "sd1", "sd2", "shift"),
                         [(300, 500, 2.0, 1.0, 0.2), (12, 7, 1.0, 5.0, -1.0),
                          (2000, 2000, 1.0, 1.0, 0.0)])
def test_welch_equals_scipy_and_statsmodels(n1: int, n2: int, sd1: float, sd2: float,
                                            shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(10 + shift, sd1, n1), rng.normal(10, sd2, n2)
    for alpha in (0.05, 0.1):
        r = S.welch_test(*moments(a), *moments(b), alpha=alpha)
        ref = st.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(1 - alpha)
        assert r.statistic == pytest.approx(ref.statistic, abs=TOL)
        assert r.p_value == pytest.approx(ref.pvalue, abs=TOL)
        assert r.df == pytest.approx(ref.df, abs=TOL)
        assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), abs=TOL)
        cm = CompareMeans(DescrStatsW(a), DescrStatsW(b))
        assert (r.ci_low, r.ci_high) == pytest.approx(
            cm.tconfint_diff(alpha, usevar="unequal"), abs=TOL)
        t, p, df = cm.ttest_ind(usevar="unequal")
        assert (r.statistic, r.p_value, r.df) == pytest.approx((t, p, df), abs=TOL)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"),
                         [(30, 300, 50, 400), (512, 10_000, 470, 9_800), (0, 50, 3, 60)])
def test_two_proportion_equals_statsmodels(x1: int, n1: int, x2: int, n2: int) -> None:
    r = S.two_proportion_test(x1, n1, x2, n2, alpha=0.05)
    z, p = proportions_ztest([x1, x2], [n1, n2])
    assert (r.statistic, r.p_value) == pytest.approx((z, p), abs=TOL)
    lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="wald", compare="diff")
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=TOL)


def test_srm_equals_scipy_chisquare() -> None:
    obs, w = np.array([5100, 2400, 2630]), np.array([0.5, 0.25, 0.25])
    chi2, df, p = S.srm_test(obs, w)
    ref = st.chisquare(obs, obs.sum() * w)
    assert (chi2, p) == pytest.approx((ref.statistic, ref.pvalue), abs=TOL)
    assert df == 2
    # unnormalised weights mean the same shares
    assert S.srm_test(obs, w * 4)[2] == pytest.approx(p, abs=TOL)
    assert S.srm_test([5000, 5000], [1, 1])[2] == pytest.approx(1.0)
    assert S.srm_test([5200, 4800], [1, 1])[2] < S.SRM_THRESHOLD


def test_msprt_is_the_papers_balanced_formula_and_its_sequence_inverts_it() -> None:
    # Johari et al.: n per arm, V = sigma1^2 + sigma2^2, Lambda = sqrt(V/(V + n tau^2))
    # exp(n^2 tau^2 D^2 / (2 V (V + n tau^2)))
    n, v, tau2, d = 400.0, 2.5, 0.01, 0.17
    seq = S.msprt(d, v / n, tau2)
    paper = np.sqrt(v / (v + n * tau2)) * np.exp(n**2 * tau2 * d**2 / (2 * v * (v + n * tau2)))
    assert np.exp(seq.log_lr) == pytest.approx(paper, rel=1e-12)
    assert seq.p_value == pytest.approx(min(1.0, 1.0 / paper), rel=1e-12)
    # the sequence's ends are exactly the differences the test rejects at 1/alpha
    for end in (seq.ci_low, seq.ci_high):
        assert S.msprt(d - end, v / n, tau2).log_lr == pytest.approx(np.log(20.0), rel=1e-9)


def test_mixing_sd_for_makes_the_sequence_tightest_at_that_size() -> None:
    phis = np.linspace(0.01, 0.2, 400)
    n = 5000.0
    width = S.msprt(0.0, 2.0 / n, phis**2).ci_high  # sigma = 1 in both arms
    assert phis[np.argmin(width)] == pytest.approx(S.mixing_sd_for(n), abs=0.001)


def test_relative_lift_interval_covers() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.exponential(1.1, (2000, 800)), rng.exponential(1.0, (2000, 800))
    lift, lo, hi = S.relative_lift(*moments(a), *moments(b))
    assert np.mean(lift) == pytest.approx(0.1, abs=0.005)
    assert np.mean((lo <= 0.1) & (0.1 <= hi)) == pytest.approx(0.95, abs=0.015)
    assert np.isnan(S.relative_lift(10, 1.0, 1.0, 10, 0.0, 1.0)[0])


# --- simulations ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aa() -> tuple[np.ndarray, np.ndarray]:
    """1,000 A/A experiments, 30 daily looks of 50 units per arm: (sims, looks, units)."""
    rng = np.random.default_rng(20260501)
    return (rng.normal(3.0, 2.0, (SIMS, LOOKS, PER_LOOK)),
            rng.normal(3.0, 2.0, (SIMS, LOOKS, PER_LOOK)))


def test_aa_false_positive_rate_at_one_look(aa: tuple[np.ndarray, np.ndarray]) -> None:
    t, c = (y.reshape(SIMS, -1) for y in aa)
    welch = S.welch_test(*moments(t), *moments(c))
    rate = np.mean(welch.p_value < 0.05)
    assert 0.035 <= rate <= 0.065, rate
    # the interval agrees with the test
    assert np.array_equal(welch.p_value < 0.05, (welch.ci_low > 0) | (welch.ci_high < 0))
    # 0/1 metric: the z-test
    rng = np.random.default_rng(3)
    x1, x2 = rng.binomial(1500, 0.08, SIMS), rng.binomial(1500, 0.08, SIMS)
    rate = np.mean(S.two_proportion_test(x1, 1500, x2, 1500).p_value < 0.05)
    assert 0.035 <= rate <= 0.065, rate


def test_peeking_daily_sequential_stays_valid_naive_does_not(
        aa: tuple[np.ndarray, np.ndarray]) -> None:
    (n1, m1, v1), (n2, m2, v2) = cumulative(aa[0]), cumulative(aa[1])
    welch = S.welch_test(n1, m1, v1, n2, m2, v2)  # (sims, looks)
    naive = np.mean((welch.p_value < 0.05).any(axis=1))
    seq = S.msprt(welch.difference, welch.se**2, S.mixing_tau2(v1, v2, S.mixing_sd_for(750)))
    p, lo, hi = S.always_valid(seq, axis=1)
    sequential = np.mean(p[:, -1] < 0.05)
    assert sequential <= 0.05, sequential
    assert naive > 0.15, naive  # peeking 30 times multiplies the false positives
    # the sequence and the p-value agree at every look, and the sequence covers 0 as often
    assert np.array_equal(p < 0.05, (lo > 0) | (hi < 0))
    assert np.mean(((lo > 0) | (hi < 0)).any(axis=1)) <= 0.05
    # the default mixing width is valid too
    seq = S.msprt(welch.difference, welch.se**2, S.mixing_tau2(v1, v2))
    assert np.mean(S.always_valid(seq, axis=1)[0][:, -1] < 0.05) <= 0.05


def test_a_known_effect_is_found() -> None:
    rng = np.random.default_rng(11)
    sims, looks, per, effect = 300, 30, 50, 0.25  # 0.125 SD; 1,500 units per arm in the end
    t = rng.normal(3.0 + effect, 2.0, (sims, looks, per))
    c = rng.normal(3.0, 2.0, (sims, looks, per))
    (n1, m1, v1), (n2, m2, v2) = cumulative(t), cumulative(c)
    welch = S.welch_test(n1, m1, v1, n2, m2, v2)
    assert np.mean(welch.p_value[:, -1] < 0.05) > 0.8  # about 0.93 by the normal approximation
    covered = (welch.ci_low[:, -1] <= effect) & (effect <= welch.ci_high[:, -1])
    assert np.mean(covered) == pytest.approx(0.95, abs=0.04)
    assert np.mean(welch.difference[:, -1]) == pytest.approx(effect, abs=0.02)
    seq = S.msprt(welch.difference, welch.se**2, S.mixing_tau2(v1, v2, S.mixing_sd_for(1500)))
    p, lo, hi = S.always_valid(seq, axis=1)
    assert np.mean(p[:, -1] < 0.05) > 0.6  # the price of peeking safely: less power
    assert np.mean((lo[:, -1] <= effect) & (effect <= hi[:, -1])) >= 0.95


def test_cuped_reduces_variance_and_stays_unbiased() -> None:
    rng = np.random.default_rng(5)
    sims, n, effect, rho = 1000, 400, 0.3, 0.8
    x = rng.normal(0.0, 1.0, (sims, 2 * n))
    y = 5.0 + rho * x + np.sqrt(1 - rho**2) * rng.normal(0.0, 1.0, (sims, 2 * n))
    y[:, :n] += effect  # the first n units are the treatment arm
    theta = S.cuped_theta(y, x)  # pooled over both arms
    assert np.mean(theta) == pytest.approx(rho, abs=0.01)
    adj = S.cuped_adjust(y, x, theta)
    raw = S.welch_test(*moments(y[:, :n]), *moments(y[:, n:]))
    cup = S.welch_test(*moments(adj[:, :n]), *moments(adj[:, n:]))
    # unbiased: the mean estimate is the effect, within 4 standard errors of the mean
    assert abs(np.mean(cup.difference) - effect) < 4 * np.std(cup.difference) / np.sqrt(sims)
    # the variance falls by rho^2, both as reported (se) and across simulations
    assert np.mean(1 - cup.se**2 / raw.se**2) == pytest.approx(rho**2, abs=0.02)
    assert np.var(cup.difference) / np.var(raw.difference) == pytest.approx(1 - rho**2, abs=0.06)
    # a covariate with no information leaves the variance alone
    noise = rng.normal(0.0, 1.0, (sims, 2 * n))
    none = S.cuped_adjust(y, noise, S.cuped_theta(y, noise))
    flat = S.welch_test(*moments(none[:, :n]), *moments(none[:, n:]))
    assert np.mean(flat.se**2 / raw.se**2) == pytest.approx(1.0, abs=0.01)
    assert S.cuped_theta(np.arange(5.0), np.ones(5)) == 0.0
