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
a second defect, the stoppages and speeds of the duty cycle); the interval narrows as the history grows and
the failure comes near. On the virtual CNC it covers the true RUL far less often than it says
(docs/maintenance.md); rulinterval.py calibrates an interval on observed failures instead, from
``fit_rul``'s point estimate, and the service uses this bootstrap only when no calibration is configured.
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
    if y.shape[1] == 1:  # one series (the point fit): every t0 at once, no Python loop (a tenth of the time)
        x = np.log(t[None, :] - t0_grid[:, None])
        xm = x.mean(axis=1)
        xc = x - xm[:, None]
        y1 = y[:, 0]
        m1 = (xc @ (y1 - y1.mean())) / np.einsum("ij,ij->i", xc, xc)
        a1 = y1.mean() - m1 * xm
        i = int(np.argmin(((y1[None, :] - a1[:, None] - x * m1[:, None]) ** 2).sum(axis=1)))
        return t0_grid[i:i + 1].copy(), a1[i:i + 1], m1[i:i + 1]
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


@dataclass(frozen=True, slots=True)
class RulFit:
    """The point estimate alone: RUL (capped at the horizon), the fitted exponent and start, points used."""

    rul: float
    exponent: float
    onset: float
    points: int


@dataclass(frozen=True, slots=True)
class _Prepared:
    t: FloatArray
    y: FloatArray
    t0_grid: FloatArray
    fitted: FloatArray
    t0: float
    a: float
    m: float
    failure_time: float


def _failure_time(t0: FloatArray, a: FloatArray, m: FloatArray, log_level: float) -> FloatArray:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        tf = t0 + np.exp((log_level - a) / np.maximum(m, 1e-6))
    return np.where(m > 0, tf, np.inf)


def _prepare(t: FloatArray, d: FloatArray, failure_level: float, onset_level: float, min_points: int) -> _Prepared:
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
    tf = float(_failure_time(t0, a, m, math.log(failure_level))[0])
    return _Prepared(t, y, t0_grid, fitted, float(t0[0]), float(a[0]), float(m[0]), tf)


def fit_rul(
    t: FloatArray, d: FloatArray, failure_level: float, now: float, *, onset_level: float, min_points: int = 6,
    horizon: float = math.inf,
) -> RulFit:
    """The power-law fit's RUL at ``now``, without an interval (the arguments as for ``estimate_rul``): what a
    calibrated interval (rulinterval.py) is put around, at a fiftieth of the bootstrap's cost."""
    p = _prepare(t, d, failure_level, onset_level, min_points)
    return RulFit(min(max(p.failure_time - now, 0.0), horizon), p.m, p.t0, int(p.t.size))


def estimate_rul(
    t: FloatArray, d: FloatArray, failure_level: float, now: float, *, onset_level: float, min_points: int = 6,
    n_boot: int = 200, coverage: float = 0.8, seed: int = 0, horizon: float = math.inf,
) -> RulEstimate:
    """RUL at ``now`` from indicator points ``(t, d)`` (same time unit for all; d in the failure level's unit),
    with the block-bootstrap interval.

    Only points at or above ``onset_level`` take part (below it the indicator is noise around zero).
    Estimates beyond ``horizon`` are reported as the horizon (a curve that barely rises would otherwise
    predict centuries). Raises NoTrend when fewer than ``min_points`` remain or the fitted curve does not rise.
    """
    p = _prepare(t, d, failure_level, onset_level, min_points)
    resid = p.y - p.fitted
    # Moving blocks of residuals, not single ones: the indicator wanders for minutes to hours (the duty
    # cycle, stoppages), and resampling single residuals would treat that as independent noise and give
    # intervals far too narrow.
    n = resid.size
    block = max(1, math.ceil(math.sqrt(n)))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, (math.ceil(n / block), n_boot))
    idx = ((starts[:, None, :] + np.arange(block)[None, :, None]) % n).reshape(-1, n_boot)[:n]
    boot = p.fitted[:, None] + resid[idx]
    bt0, ba, bm = _fit(p.t, boot, p.t0_grid)
    # A resample that does not rise never fails (inf): a huge finite time instead, else a quantile between two
    # of them would be NaN (inf - inf) and so would the bound.
    btf = np.minimum(_failure_time(bt0, ba, bm, math.log(failure_level)), np.finfo(np.float64).max / 4)
    lo_q, hi_q = (1.0 - coverage) / 2.0, (1.0 + coverage) / 2.0
    low, high = np.quantile(btf, [lo_q, hi_q])
    rul = min(max(p.failure_time - now, 0.0), horizon)
    low_ = min(max(float(low) - now, 0.0), rul)
    high_ = min(max(float(high) - now, rul), horizon)
    return RulEstimate(rul, low_, high_, p.m, p.t0, int(p.t.size))


__all__ = ["NoTrend", "RulEstimate", "RulFit", "estimate_rul", "fit_rul"]
