"""RUL from a degradation trend: the power-law fit, its bootstrap interval, and when no RUL can be given."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopfloor.apps.maintenance.degradation import NoTrend, estimate_rul

FAILURE = 8.0


def trend(t: np.ndarray, t0: float, t_fail: float, m: float, noise: float, seed: int = 0) -> np.ndarray:
    """A power-law rise from t0 that reaches FAILURE at t_fail, with multiplicative noise."""
    c = FAILURE / (t_fail - t0) ** m
    rng = np.random.default_rng(seed)
    return c * np.clip(t - t0, 0.0, None) ** m * np.exp(noise * rng.standard_normal(t.size))


def test_noise_free_power_law_gives_the_failure_time_exactly() -> None:
    t = np.linspace(10.0, 20.0, 60)
    d = trend(t, t0=2.0, t_fail=30.0, m=3.0, noise=0.0)
    est = estimate_rul(t, d, FAILURE, now=20.0, onset_level=0.1)
    assert est.rul == pytest.approx(10.0, rel=0.03)
    assert est.exponent == pytest.approx(3.0, rel=0.1)
    assert est.low <= est.rul <= est.high
    assert est.high - est.low < 0.5  # no noise: a tight interval


def test_the_interval_covers_the_truth_late_errs_early_and_narrows_as_the_failure_nears() -> None:
    """Late in life the 80 % interval covers the true RUL about as often as it says (8 of these 10 runs).
    Early, onset and exponent are hard to tell apart and the fit leans to an earlier failure: its interval
    covers less often than 80 %, but its lower bound never promises more life than there is."""
    late_covered = 0
    for seed in range(10):
        t = np.linspace(0.0, 40.0, 400)
        d = trend(t, t0=-15.0, t_fail=50.0, m=2.5, noise=0.08, seed=seed)
        early = estimate_rul(t[:150], d[:150], FAILURE, now=t[149], onset_level=0.3, seed=seed)
        late = estimate_rul(t, d, FAILURE, now=t[-1], onset_level=0.3, seed=seed)
        for est in (early, late):
            assert est.low <= est.rul <= est.high
        assert early.low < 50.0 - t[149]
        late_covered += late.low <= 10.0 <= late.high
        assert late.high - late.low < early.high - early.low
    assert late_covered >= 7


def test_points_below_the_onset_level_are_left_out() -> None:
    t = np.linspace(0.0, 20.0, 200)
    d = trend(t, t0=8.0, t_fail=25.0, m=2.0, noise=0.0)
    d[t < 8.0] = np.random.default_rng(1).normal(0.0, 0.05, (t < 8.0).sum())  # noise around zero before onset
    est = estimate_rul(t, d, FAILURE, now=20.0, onset_level=0.3)
    assert est.rul == pytest.approx(5.0, rel=0.1)
    assert est.points == int((d >= 0.3).sum())


def test_too_few_points_or_no_rise_is_no_trend() -> None:
    t = np.arange(5.0)
    with pytest.raises(NoTrend, match="need 6"):
        estimate_rul(t, np.full(5, 2.0), FAILURE, now=5.0, onset_level=0.3)
    t = np.linspace(0.0, 10.0, 50)
    falling = 3.0 * np.exp(-0.1 * t)
    with pytest.raises(NoTrend, match="does not rise"):
        estimate_rul(t, falling, FAILURE, now=10.0, onset_level=0.3)
    with pytest.raises(NoTrend):  # NaN points do not count
        estimate_rul(t, np.full(50, math.nan), FAILURE, now=10.0, onset_level=0.3)


def test_a_barely_rising_curve_is_capped_at_the_horizon() -> None:
    t = np.linspace(0.0, 10.0, 50)
    d = 0.5 + 0.001 * t
    est = estimate_rul(t, d, FAILURE, now=10.0, onset_level=0.3, horizon=1000.0)
    assert est.rul == est.high == 1000.0
    assert est.low <= 1000.0


def test_past_the_failure_level_rul_is_zero() -> None:
    t = np.linspace(0.0, 10.0, 50)
    d = trend(t, t0=-1.0, t_fail=9.0, m=2.0, noise=0.0)
    est = estimate_rul(t, d, FAILURE, now=10.0, onset_level=0.3)
    assert est.rul == 0.0 and est.low == 0.0
