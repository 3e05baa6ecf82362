"""Remaining useful life of a degrading bearing from the trend of its health indicator, with an interval.

The indicator is the spindle's vibration over its healthy level, normalised to rated speed (mm/s): about
zero while the bearing is sound, rising ever faster once a defect develops (the P-F curve), and at the
failure level when the bearing fails. After the onset the rise is modelled as a power law of the time
since an unknown start, ``d(t) = c * (t - t0) ** m``: with ``m = 1`` a steady rise, with larger ``m`` an
accelerating one, and unlike an exponential it has a start, which a defect has. Fit: for each candidate
``t0`` on a grid before the first point, least squares of ``log d`` on ``log (t - t0)`` gives ``c`` and
``m``; the ``t0`` with the smallest residual wins. The predicted failure time is where the curve meets the
failure level; RUL is that time minus now.

Interval: a residual bootstrap. The fit's log residuals are resampled onto the fitted curve ``n_boot``
times, in circular blocks of sqrt(n) consecutive points (the residuals are correlated in time), each
resample is fitted the same way (the ``t0`` grid included), and the ``(1 - coverage) / 2``
and ``(1 + coverage) / 2`` quantiles of the resampled failure times bound the RUL. It covers the
uncertainty of the fitted curve given this much history, not changes of the process to come (a new load,
a second defect); the interval narrows as the history grows and the failure comes near.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class NoTrend(ValueError):
    """Too few points above the onset level, or an indicator that does not rise: no RUL can be given."""


@dataclass(frozen=True, slots=True)
class RulEstimate:
    """RUL point estimate and interval (in the time unit of the inputs), the fitted exponent and start."""

    rul: float
    low: float
    high: float
    exponent: float
    onset: float
    points: int


def _fit(t: FloatArray, y: FloatArray, t0_grid: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Least squares of the columns of ``y`` (log d) on log(t - t0) for every t0: the best t0, log c, m per
    column. ``y`` is (n points, k series)."""
    best_sse = np.full(y.shape[1], np.inf)
    best = np.zeros((3, y.shape[1]))
    for t0 in t0_grid:
        x = np.log(t - t0)
        xm = x.mean()
        xc = x - xm
        sxx = float(xc @ xc)
        m = (xc @ (y - y.mean(axis=0))) / sxx
        a = y.mean(axis=0) - m * xm
        sse = ((y - a - np.outer(x, m)) ** 2).sum(axis=0)
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        best[:, better] = np.vstack([np.full(better.sum(), t0), a[better], m[better]])
    return best[0], best[1], best[2]


def estimate_rul(
    t: FloatArray, d: FloatArray, failure_level: float, now: float, *, onset_level: float, min_points: int = 6,
    n_boot: int = 200, coverage: float = 0.8, seed: int = 0, horizon: float = math.inf,
) -> RulEstimate:
    """RUL at ``now`` from indicator points ``(t, d)`` (same time unit for all; d in the failure level's unit).

    Only points at or above ``onset_level`` take part (below it the indicator is noise around zero).
    Estimates beyond ``horizon`` are reported as the horizon (a curve that barely rises would otherwise
    predict centuries). Raises NoTrend when fewer than ``min_points`` remain or the fitted curve does not rise.
    """
    t = np.asarray(t, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(d) & (d >= onset_level)
    t, d = t[keep], d[keep]
    if t.size < min_points:
        raise NoTrend(f"{t.size} points above the onset level {onset_level:g}, need {min_points}")
    if not failure_level > onset_level:
        raise ValueError(f"failure level {failure_level} must lie above the onset level {onset_level}")
    span = max(float(t.max() - t.min()), 1e-9)
    t0_grid = float(t.min()) - span * np.geomspace(0.05, 20.0, 40)
    y = np.log(d)
    t0, a, m = _fit(t, y[:, None], t0_grid)
    if not m[0] > 0.2:
        raise NoTrend(f"the indicator does not rise (fitted exponent {m[0]:.2f})")
    fitted = a[0] + m[0] * np.log(t - t0[0])
    resid = y - fitted
    # Moving blocks of residuals, not single ones: the indicator wanders for minutes to hours (the duty
    # cycle, stoppages), and resampling single residuals would treat that as independent noise and give
    # intervals far too narrow.
    n = resid.size
    block = max(1, math.ceil(math.sqrt(n)))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, (math.ceil(n / block), n_boot))
    idx = ((starts[:, None, :] + np.arange(block)[None, :, None]) % n).reshape(-1, n_boot)[:n]
    boot = fitted[:, None] + resid[idx]
    bt0, ba, bm = _fit(t, boot, t0_grid)
    log_level = math.log(failure_level)

    def failure_time(t0_: FloatArray, a_: FloatArray, m_: FloatArray) -> FloatArray:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            tf = t0_ + np.exp((log_level - a_) / np.maximum(m_, 1e-6))
        return np.where(m_ > 0, tf, np.inf)

    tf = float(failure_time(t0, a, m)[0])
    btf = failure_time(bt0, ba, bm)
    lo_q, hi_q = (1.0 - coverage) / 2.0, (1.0 + coverage) / 2.0
    low, high = np.quantile(btf, [lo_q, hi_q])
    rul = min(max(tf - now, 0.0), horizon)
    low_ = min(max(float(low) - now, 0.0), rul)
    high_ = min(max(float(high) - now, rul), horizon)
    return RulEstimate(rul, low_, high_, float(m[0]), float(t0[0]), int(t.size))


__all__ = ["NoTrend", "RulEstimate", "estimate_rul"]
