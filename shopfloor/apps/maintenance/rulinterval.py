"""A calibrated RUL and interval: learnt from a back-test of the service's fits against observed failures.

Why: the power-law fit's own interval (the block bootstrap of degradation.py) only knows how well the curve
fits the history; the remaining life also depends on the duty cycle to come (stoppages, speeds, a starved
line), which no resampling of past residuals sees. On the virtual CNC it covered the true RUL in 11-74 %
of the fits with under 10 h left, not 80 % (docs/maintenance.md). Rather than model the duty cycle, this
measures how wrong the service's own predictions were on bearings that have failed, and widens each new
prediction by as much (split-conformal prediction, per bin of the prediction: a "Mondrian" conformal
predictor).

How:
* back-test (``backtest``): on each past life (trend points and failure time) the fit is replayed the way
  the service runs it (the last ``max_points`` points, the same onset level, horizon and minimum points)
  every ``every_h``; each fit gives a predicted RUL ``p`` and the true one ``r``;
* a monotone map of ``log p`` to ``log r`` (isotonic least squares: a longer prediction never means a shorter
  life) turns ``p`` into the calibrated RUL ``c(p)``. Early in a rise the fit can predict 100 or 1,000 h
  for a bearing that has 30 h left: past some length a prediction says no more than "long", and the map
  goes flat there;
* the score is the log ratio ``log(r / c(p))`` (a scale-free error: 2 h wrong matters at 4 h left, not
  at 40 h), each life's from a map learnt without that life (``folds`` groups of lives, cross-fitting), so
  that the map's fit to the very lives that measure it does not make the interval too narrow;
* the fits are put in ``bins`` bins of equal counts of ``p``, as the error changes with it (early fits
  confuse onset with exponent, late ones feel every stoppage); in each, the conformal quantiles of the
  scores, the ``floor((n + 1) a)``-th and ``ceil((n + 1) (1 - a))``-th of n with ``a = (1 - coverage) / 2``,
  give the factors: a new fit's interval is ``[c(p) f_lo, c(p) f_hi]`` of its bin, its RUL ``c(p)``.
If the fits were exchangeable this would cover at least ``coverage`` of new fits; fits of one life are
correlated (a life that runs long is long at every fit), so it holds as an average over lives only, and
the coverage measured on held-out lives is what counts (the artifact's metrics).

Choices, made by a 5-fold cross-validation over the calibration lives (seeds 101-110 of the virtual line,
100 lives), never on the held-out ones:
* the map: with factors on ``p`` itself (no map), the last bin (``p`` over 24 h) held predictions of 24 h
  and of 1,000 h alike, its lower factor was 0.2, and the maintenance alarm (lower bound under 8 h) fired
  a median 23 h before the failure, in 62 of 100 lives more than 16 h before; with the map, 9.2 h (at
  most 16.9 h), the same coverage (80 / 80 / 82 % with under 10, 10-20, over 20 h left), narrower
  intervals over 20 h left (mean log width 0.61 against 1.10);
* 8 bins: 5 and 12 covered alike (within a point);
* no bootstrap: its width does rank the fits within a bin of ``p`` (Spearman 0.1-0.6 with the error), but
  scores scaled by it (normalised conformal, four offsets tried) were never narrower at the same coverage
  (mean log width 0.44-0.52 against 0.44 with under 10 h left, 0.75-1.32 against 0.61 over 20 h), and it
  costs fifty fits per fit. The service keeps the bootstrap as its interval only when no calibration is
  configured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.maintenance.degradation import NoTrend, RulEstimate, RulFit, estimate_rul, fit_rul

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class CalibrationError(ValueError):
    """Back-test data that cannot give a calibration: too few lives or fits, NaN, negative times."""


@dataclass(frozen=True, slots=True)
class Life:
    """One run-to-failure history as the service's trend: point times (h, bucket middles), indicator (the
    failure level's unit), failure time (h) and level. A plant has these from its historian after failures."""

    source: str
    t_h: FloatArray
    d: FloatArray
    failure_h: float
    failure_level: float

    def __post_init__(self) -> None:
        if self.t_h.shape != self.d.shape or self.t_h.ndim != 1:
            raise ValueError(f"{self.source}: times {self.t_h.shape} and indicator {self.d.shape} must be 1-D, alike")
        if not (np.isfinite(self.failure_h) and np.isfinite(self.failure_level) and self.failure_level > 0):
            raise ValueError(f"{self.source}: failure time {self.failure_h} and level {self.failure_level} "
                             "must be finite (level > 0)")


@dataclass(frozen=True, slots=True)
class TrendSettings:
    """How the service fits the trend (config.py); a calibration holds only for the settings it was learnt with."""

    onset_fraction: float = 0.04
    max_points: int = 720
    bucket_s: float = 60.0
    min_speed_frac: float = 0.5
    min_points: int = 6
    horizon_h: float = 1000.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def differences(self, other: TrendSettings) -> list[str]:
        """What differs, as ``name: this != other`` lines (empty when alike)."""
        a, b = self.as_dict(), other.as_dict()
        return [f"{k}: {a[k]:g} != {b[k]:g}" for k in a if not math.isclose(a[k], b[k], rel_tol=1e-9)]


@dataclass(frozen=True, slots=True)
class Backtest:
    """The service's fits replayed on past lives: per fit the life, the time, the predicted and true RUL (h),
    and the bootstrap bounds (NaN unless asked for)."""

    life: IntArray
    now_h: FloatArray
    predicted: FloatArray
    truth: FloatArray
    boot_low: FloatArray
    boot_high: FloatArray

    def __len__(self) -> int:
        return int(self.predicted.size)

    def select(self, mask: NDArray[np.bool_]) -> Backtest:
        return Backtest(self.life[mask], self.now_h[mask], self.predicted[mask], self.truth[mask],
                        self.boot_low[mask], self.boot_high[mask])


def backtest(lives: Sequence[Life], settings: TrendSettings = TrendSettings(), *, every_h: float = 0.5,
             bootstrap: bool = False) -> Backtest:
    """Fit each life every ``every_h`` of its time the way the service does, up to (not at) its failure.

    A fit is made at the end of the first trend point of each ``every_h`` slot (the service fits at the end
    of every point; one in a slot keeps the cost down and the fits less alike). Fits with no trend yet
    (NoTrend) are not counted: the service writes no RUL then. ``bootstrap`` adds the bootstrap bounds
    (fifty times the cost), to compare with.
    """
    if not every_h > 0:
        raise ValueError(f"every_h must be positive, got {every_h}")
    half_h = settings.bucket_s / 7200.0
    rows: list[tuple[int, float, float, float, float, float]] = []
    for k, life in enumerate(lives):
        ends = life.t_h + half_h
        slot = np.floor(ends / every_h)
        first = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        for i in first.tolist():
            now = float(ends[i])
            if now >= life.failure_h:
                break
            lo = max(0, i + 1 - settings.max_points)
            t, d = life.t_h[lo:i + 1], life.d[lo:i + 1]
            onset = settings.onset_fraction * life.failure_level
            try:
                if bootstrap:
                    est = estimate_rul(t, d, life.failure_level, now, onset_level=onset,
                                       min_points=settings.min_points, horizon=settings.horizon_h)
                    rul, blo, bhi = est.rul, est.low, est.high
                else:
                    rul = fit_rul(t, d, life.failure_level, now, onset_level=onset, min_points=settings.min_points,
                                  horizon=settings.horizon_h).rul
                    blo = bhi = math.nan
            except NoTrend:
                continue
            rows.append((k, now, rul, life.failure_h - now, blo, bhi))
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Backtest(a[:, 0].astype(np.int64), a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5])


@dataclass(frozen=True, slots=True)
class IntervalCalibration:
    """A learnt map from the fit's predicted RUL to a calibrated one and, per bin of the prediction, the factors
    on it that bound the true RUL (module docstring). ``upper[i]``: the upper edge of bin i (h; the last inf)."""

    coverage: float
    map_x: tuple[float, ...]  # log predicted RUL (h) at the knots of the monotone map
    map_y: tuple[float, ...]  # log calibrated RUL (h) there
    upper: tuple[float, ...]
    low_factor: tuple[float, ...]
    high_factor: tuple[float, ...]
    fits: tuple[int, ...]
    lives: int
    floor_h: float
    settings: TrendSettings

    def center(self, predicted: float) -> float:
        """The calibrated RUL (h) for a predicted one: a longer prediction never gives a shorter one."""
        x = math.log(max(predicted, self.floor_h))
        return min(math.exp(float(np.interp(x, self.map_x, self.map_y))), self.settings.horizon_h)

    def factors(self, predicted: float) -> tuple[float, float]:
        """(low, high) factors on the calibrated RUL for a predicted RUL."""
        i = int(np.searchsorted(np.asarray(self.upper), predicted, side="left"))
        i = min(i, len(self.upper) - 1)
        return self.low_factor[i], self.high_factor[i]

    def interval(self, predicted: float) -> tuple[float, float]:
        """(low, high) RUL (h) for a predicted RUL, both capped at the horizon."""
        if not math.isfinite(predicted) or predicted < 0:
            raise ValueError(f"predicted RUL must be a finite number >= 0, got {predicted}")
        lo, hi = self.factors(predicted)
        c = self.center(predicted)
        cap = self.settings.horizon_h
        return min(c * lo, cap), min(c * hi, cap)

    def estimate(self, fit: RulFit) -> RulEstimate:
        """The calibrated RUL and interval of a fit, in the form the service writes (RUL kept inside the bounds)."""
        low, high = self.interval(fit.rul)
        rul = min(max(self.center(fit.rul), low), high)
        return RulEstimate(rul, low, high, fit.exponent, fit.onset, fit.points)

    def check(self, settings: TrendSettings) -> None:
        """CalibrationError unless the service fits the trend as the back-test did (else the factors mean nothing)."""
        diff = self.settings.differences(settings)
        if diff:
            raise CalibrationError("the RUL interval calibration was learnt with other trend settings than the "
                                   f"service's (calibration != config): {'; '.join(diff)}; train it again")

    def describe(self) -> list[dict[str, float]]:
        """One row per bin (its predicted-RUL range, the calibrated RUL at its ends, factors, fits): metadata."""
        lower = (0.0, *self.upper[:-1])
        rows = zip(lower, self.upper, self.low_factor, self.high_factor, self.fits, strict=True)
        return [{"from_h": a, "to_h": b, "calibrated_from_h": self.center(a),
                 "calibrated_to_h": self.center(b if math.isfinite(b) else self.settings.horizon_h),
                 "low_factor": lo, "high_factor": hi, "fits": n} for a, b, lo, hi, n in rows]


def _monotone_map(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Isotonic (non-decreasing) least squares of y on x, as knots for np.interp (flat beyond the ends)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, y)
    return np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)


def _conformal(scores: FloatArray, a: float) -> tuple[float, float]:
    """The floor((n+1) a)-th and ceil((n+1)(1-a))-th smallest of n scores; CalibrationError if n is too small."""
    s = np.sort(scores)
    n = s.size
    k_lo, k_hi = math.floor((n + 1) * a), math.ceil((n + 1) * (1.0 - a))
    if k_lo < 1 or k_hi > n:
        raise CalibrationError(f"{n} fits in a bin are too few for a {1 - 2 * a:.0%} conformal interval")
    return float(s[k_lo - 1]), float(s[k_hi - 1])


def calibrate(bt: Backtest, *, coverage: float = 0.8, bins: int = 8, folds: int = 5, min_lives: int = 10,
              min_fits: int = 40, settings: TrendSettings = TrendSettings()) -> IntervalCalibration:
    """The calibration from a back-test (module docstring): the monotone map of log predicted to log true RUL,
    its residuals cross-fitted over ``folds`` groups of lives, their conformal quantiles in ``bins`` bins of
    equal counts of the predicted RUL. CalibrationError when there are fewer than ``min_lives`` lives, fewer
    than ``min_fits`` fits in a bin, or a value that is not a finite number of hours (true RUL > 0)."""
    if not 0.0 < coverage < 1.0:
        raise CalibrationError(f"coverage must lie in (0, 1), got {coverage}")
    if bins < 1 or folds < 2:
        raise CalibrationError(f"bins must be at least 1 and folds at least 2, got {bins} and {folds}")
    pred, truth = np.asarray(bt.predicted, np.float64), np.asarray(bt.truth, np.float64)
    if pred.shape != truth.shape or pred.shape != bt.life.shape or pred.ndim != 1:
        raise CalibrationError(f"predicted {pred.shape}, truth {truth.shape} and life {bt.life.shape} differ")
    bad = ~(np.isfinite(pred) & np.isfinite(truth))
    if bad.any():
        raise CalibrationError(f"{int(bad.sum())} fits have a NaN or infinite predicted or true RUL "
                               f"(first at index {int(np.flatnonzero(bad)[0])})")
    if (pred < 0).any() or (truth <= 0).any():
        raise CalibrationError("predicted RUL must be >= 0 and true RUL > 0 (a fit after the failure is no fit)")
    ids, life = np.unique(bt.life, return_inverse=True)
    if ids.size < max(min_lives, folds):
        raise CalibrationError(f"{ids.size} lives with a trend, need at least {max(min_lives, folds)} "
                               "run-to-failure histories")
    if pred.size < bins * min_fits:
        raise CalibrationError(f"{pred.size} fits for {bins} bins of at least {min_fits}: fewer bins or more lives")
    floor_h = settings.bucket_s / 3600.0  # a prediction of zero (past the failure level) counts as one bucket
    x, y = np.log(np.maximum(pred, floor_h)), np.log(truth)
    # Residuals of each life from a map learnt without it (cross-fitting): the map would otherwise have bent
    # towards the very lives whose errors measure it, and the interval would come out too narrow.
    fold = life % folds
    resid = np.empty_like(y)
    for f in range(folds):
        out = fold == f
        kx, ky = _monotone_map(x[~out], y[~out])
        resid[out] = y[out] - np.interp(x[out], kx, ky)
    map_x, map_y = _monotone_map(x, y)
    inner = np.unique(np.quantile(pred, np.arange(1, bins) / bins))  # ties (at the horizon) merge bins
    which = np.searchsorted(inner, pred, side="left")
    a = (1.0 - coverage) / 2.0
    lows: list[float] = []
    highs: list[float] = []
    counts: list[int] = []
    for b in range(inner.size + 1):
        r = resid[which == b]
        if r.size < min_fits:
            raise CalibrationError(f"predicted-RUL bin {b} has {r.size} fits, need {min_fits}: fewer bins or more "
                                   "lives")
        lo, hi = _conformal(r, a)
        lows.append(math.exp(lo))
        highs.append(math.exp(hi))
        counts.append(int(r.size))
    return IntervalCalibration(coverage, tuple(map_x.tolist()), tuple(map_y.tolist()),
                               (*(float(v) for v in inner), math.inf), tuple(lows), tuple(highs), tuple(counts),
                               int(ids.size), floor_h, settings)


def coverage_by_truth(bt: Backtest, low: FloatArray, high: FloatArray,
                      edges: Sequence[float] = (10.0, 20.0)) -> list[dict[str, float]]:
    """Share of fits whose interval holds the true RUL, per range of the true RUL (h), with the lives in it."""
    lower = (0.0, *edges)
    upper = (*edges, math.inf)
    out: list[dict[str, float]] = []
    for a, b in zip(lower, upper, strict=True):
        sel = (bt.truth >= a) & (bt.truth < b)
        n = int(sel.sum())
        inside = (low[sel] <= bt.truth[sel]) & (bt.truth[sel] <= high[sel])
        out.append({"from_h": a, "to_h": b, "fits": n, "lives": int(np.unique(bt.life[sel]).size),
                    "coverage": float(inside.mean()) if n else math.nan,
                    "below": float((bt.truth[sel] < low[sel]).mean()) if n else math.nan})
    return out


def alarm_leads(bt: Backtest, low: FloatArray, threshold_h: float) -> FloatArray:
    """Per life of the back-test (in order of life index): the true RUL at its first fit whose lower bound is
    under ``threshold_h`` (the alarm's lead on the failure), NaN where no fit's bound went under it."""
    leads: list[float] = []
    for k in np.unique(bt.life).tolist():
        sel = np.flatnonzero((bt.life == k) & (low < threshold_h))
        leads.append(float(bt.truth[sel[0]]) if sel.size else math.nan)
    return np.array(leads, dtype=np.float64)


def apply(cal: IntervalCalibration, bt: Backtest) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The calibrated RUL, lower and upper bound of every fit of a back-test (as ``estimate`` gives them)."""
    rows = []
    for p in bt.predicted.tolist():
        est = cal.estimate(RulFit(p, math.nan, math.nan, 0))
        rows.append((est.rul, est.low, est.high))
    a = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return a[:, 0], a[:, 1], a[:, 2]


__all__ = ["Backtest", "CalibrationError", "IntervalCalibration", "Life", "TrendSettings", "alarm_leads", "apply",
           "backtest", "calibrate", "coverage_by_truth"]
