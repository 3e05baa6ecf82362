"""ARTime: a streaming anomaly detector built on adaptive resonance theory (ART).

ARTime is Mark Hampton's detector (2021, "ARTimeNAB.jl"), the best published result on the Numenta
Anomaly Benchmark (NAB: 74.9 standard / 65.1 reward-low-FP / 80.4 reward-low-FN over the 58 series).
This module is an independent implementation written from a functional description of its behaviour
(clean room: no code of the AGPL-3.0 original was read, copied or translated); it is meant to give the
same score on every record as the published NAB results.

Like NAB's reference detectors, it is told the stream's minimum, maximum and length before the first
record (NAB reads them from the whole file). The length only sets the probation period: 15 % of the
records, at most 750 (made even); ARTime learns for that long and scores nothing before it.

Published parameters, used unchanged: feature window 8 downsampled steps, 13 windows per probation
period (downsampling factor max(1, probation // 104)), 81 quantisation levels, snapping radius 0.075,
starting-vigilance ART at 0.80, guard of 12 steps, activation = feature similarity^3 x energy
similarity^2, upper vigilance capped at 0.97, lower vigilance rising by 0.19 of its gap, score weights
0.35 / 0.65 / 1.5, scores rounded to 6 decimals.

How it works, per downsampled step (one step every `s` records; records between steps score 0):
1. The block of `s` values becomes its mean, or its extreme value (the one farther from a smoothed trend)
   when that differs from the mean by 10 % of it or more, so spikes survive downsampling.
2. That value is scaled by the given minimum/maximum, quantised to 81 levels and snapped to the running
   median level when it lies within 0.075 of it: the step's symbol.
3. The last 8 symbols, min-max normalised, go through a 3-level Haar wavelet transform; the normalised
   coefficients and the raw symbols form a 16-value feature vector.
4. A dual-vigilance fuzzy ART memory (complement coding, an extra "energy" term on the newest symbol)
   matches the vector against its categories. A vector that resonates with none (a new cluster) is an
   anomaly, unless a mask is set (after any new cluster or vigilance change, until 12 quiet steps) and
   the match is not much worse than at the last anomaly.
5. The vigilances adapt: the starting one from how alike the probation vectors are, later ones from
   the mean and minimum of recent similarities, periodically and 12 steps after each anomaly.
The score of an anomaly grows with how far its similarity is below both vigilances and how unlike the
newest symbol is from the best category's.

Extension for live use (NAB never needs it): a value outside the given [minimum, maximum] gives a level
clamped to 0..80 (the original fails there), so it counts as the nearest extreme level.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Iterable

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

WINDOW = 8  # downsampled values per feature vector; also the first step that learns
WINDOWS_PER_PROBATION = 13
LEVELS = 80  # quantisation levels 0..80
CHOMP = 0.075  # snapping radius around the running median
INITIAL_RHO = 0.80  # both vigilances of the scratch ART that estimates the starting vigilance
GUARD = 12  # steps (1.5 x WINDOW): mask length, quiet steps to lift it, vigilance update after an anomaly
SPIKE_FRACTION = 0.1
UPPER_CAP = 0.97
RISE = 0.19
GAP_FLOOR = 0.05
GAP_CAP = 0.37
MIN_DECREMENT = 0.01
DEEP_NEAR = 0.90
DEEP_FAR = 0.70
SIMILARITY_CAP = 0.999
HAAR = 0.7071067811865476  # sqrt(0.5) in double: one ulp above 1/math.sqrt(2), as the reference library has it
MIN_LENGTH = 94  # shorter series leave no scratch-ART similarities to average for the starting vigilance

_FEATURES = 2 * WINDOW
_INPUT = 2 * _FEATURES  # complement-coded
_ENERGY = _FEATURES - 1  # the newest symbol's position in the feature vector


def haar_transform(x: ArrayLike) -> FloatArray:
    """Full 3-level orthonormal Haar transform of 8 values, laid out (A3, D3, D2_1, D2_2, D1_1..D1_4).

    Each level maps pairs (a, b) to approximation h*a + h*b and detail h*b - h*a (later minus earlier).
    """
    a = [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]
    if len(a) != WINDOW:
        raise ValueError(f"the Haar transform here takes {WINDOW} values, got {len(a)}")
    details: list[list[float]] = []
    while len(a) > 1:
        approx = [HAAR * a[2 * j] + HAAR * a[2 * j + 1] for j in range(len(a) // 2)]
        details.append([HAAR * a[2 * j + 1] - HAAR * a[2 * j] for j in range(len(a) // 2)])
        a = approx
    out = a + [d for level in reversed(details) for d in level]
    return np.array(out, dtype=np.float64)


def _min_max_normalise(x: list[float]) -> list[float]:
    """Shift to start at 0 and divide by the largest value unless that is 0."""
    low = min(x)
    shifted = [v - low for v in x]
    top = max(shifted)
    if top != 0.0:
        return [v / top for v in shifted]
    return shifted


def _plain_sum(x: Iterable[float]) -> float:
    """Left-to-right sum (Python's sum() of floats is compensated from 3.12 on: not the same numbers)."""
    total = 0.0
    for v in x:
        total += v
    return total


@numba.njit(cache=True, nogil=True)
def _present(
    weights: FloatArray, wsum: FloatArray, esum: FloatArray, count: int, inp: FloatArray,
    lower: float, upper: float, learn: bool, act: FloatArray,
) -> tuple[float, float, int]:  # pragma: no cover - njit
    """Match a complement-coded input against categories 0..count-1; learn when asked.

    Returns (similarity, energy similarity, outcome): outcome 0 = nothing added (categories at or above
    the upper vigilance learned, or learning was off), 1 = a category added to the best one's cluster
    (best activation between the vigilances), 2 = a new cluster (best activation below the lower one).
    The caller makes room for one more row in `weights` before calling.
    """
    best = 0
    best_e = 0.0
    for j in range(count):
        s = 0.0
        for i in range(inp.shape[0]):
            w = weights[j, i]
            v = inp[i]
            s += v if v < w else w
        den = wsum[j] if wsum[j] != 0.0 else 0.001
        f = s / den
        e = (min(inp[_ENERGY], weights[j, _ENERGY]) + min(inp[_INPUT - 1], weights[j, _INPUT - 1])) / esum[j]
        m = (f * f * f) * (e * e)
        act[j] = m
        if j == 0:
            best_e = e
        elif not math.isnan(act[best]) and (math.isnan(m) or m > act[best]):
            best = j
            best_e = e
    top = act[best]
    similarity = top if top > 0.0 else 0.0
    energy = best_e if top > 0.0 else 0.0
    if not learn:
        return similarity, energy, 0
    if top >= upper:  # every category at or above the upper vigilance learns (fast learning: the fuzzy AND)
        for j in range(count):
            if act[j] >= upper:
                s = 0.0
                for i in range(inp.shape[0]):
                    if inp[i] < weights[j, i]:
                        weights[j, i] = inp[i]
                    s += weights[j, i]
                wsum[j] = s
                esum[j] = weights[j, _ENERGY] + weights[j, _INPUT - 1]
        return similarity, energy, 0
    s = 0.0
    for i in range(inp.shape[0]):
        weights[count, i] = inp[i]
        s += inp[i]
    wsum[count] = s
    esum[count] = inp[_ENERGY] + inp[_INPUT - 1]
    return similarity, energy, (1 if top >= lower else 2)


@numba.njit(cache=True, nogil=True)
def _typicality(g: FloatArray) -> FloatArray:  # pragma: no cover - njit
    """Column sums of the cosine-similarity matrix of the rows of g (diagonal 1; a zero row has
    similarity 1 - |other| with any other row)."""
    n = g.shape[0]
    norms = np.empty(n)
    for i in range(n):
        s = 0.0
        for t in range(g.shape[1]):
            s += g[i, t] * g[i, t]
        norms[i] = math.sqrt(s)
    c = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            if norms[i] == 0.0:
                v = 1.0 - norms[j]
            elif norms[j] == 0.0:
                v = 1.0 - norms[i]
            else:
                d = 0.0
                for t in range(g.shape[1]):
                    d += g[i, t] * g[j, t]
                v = d / (norms[i] * norms[j])
            c[i, j] = v
            c[j, i] = v
    out = np.empty(n)
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += c[j, i]
        out[i] = s
    return out


class _ArtMemory:
    """Dual-vigilance fuzzy ART with an energy term; categories in creation order, grown on demand."""

    def __init__(self, lower: float, upper: float) -> None:
        self.lower = lower
        self.upper = upper
        self.count = 0
        self.weights = np.empty((64, _INPUT))
        self.wsum = np.empty(64)
        self.esum = np.empty(64)
        self.act = np.empty(64)

    def _grow(self) -> None:
        size = 2 * self.weights.shape[0]
        for name in ("weights", "wsum", "esum"):
            old = getattr(self, name)
            new = np.empty((size, *old.shape[1:]))
            new[: self.count] = old[: self.count]
            setattr(self, name, new)
        self.act = np.empty(size)

    def present(self, features: FloatArray, learn: bool) -> tuple[float, float, bool]:
        """Similarity, energy similarity and whether a new cluster was made (only when learning)."""
        if self.count == 0:  # the very first input only creates the all-ones category; it is not learned
            self.weights[0] = 1.0
            self.wsum[0] = float(_INPUT)
            self.esum[0] = 2.0
            self.count = 1
            return 0.0, 0.0, False
        if self.count == self.weights.shape[0]:
            self._grow()
        inp = np.concatenate((features, 1.0 - features))
        sim, energy, outcome = _present(
            self.weights, self.wsum, self.esum, self.count, inp, self.lower, self.upper, learn, self.act
        )
        if outcome:
            self.count += 1
        return float(sim), float(energy), outcome == 2


def _starting_vigilance(vectors: list[FloatArray], half: int) -> float:
    """Mean similarity reported by a scratch ART (vigilance 0.80) fed the probation vectors from least to
    most typical, over positions `half`..end (1-based)."""
    g = np.array(vectors, dtype=np.float64)
    order = np.argsort(_typicality(g), kind="stable")
    scratch = _ArtMemory(INITIAL_RHO, INITIAL_RHO)
    sims = [scratch.present(g[i], learn=True)[0] for i in order.tolist()]
    tail = sims[half - 1:]
    return _plain_sum(tail) / len(tail)


class ARTime:
    """ARTime for one stream of known minimum, maximum and length; `update(value)` scores each record.

    The length sets the probation period (15 % of it, at most 750 records); feeding more records than
    announced is allowed and changes nothing.
    """

    def __init__(self, minimum: float, maximum: float, length: int) -> None:
        lo, hi = float(minimum), float(maximum)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"ARTime needs a finite minimum and maximum, got {minimum!r} and {maximum!r}")
        if lo > hi:
            raise ValueError(f"ARTime minimum {lo} is above the maximum {hi}")
        try:
            n = operator.index(length)
        except TypeError:
            raise ValueError(f"ARTime length must be an integer number of records, got {length!r}") from None
        if n < 1:
            raise ValueError(f"ARTime length must be at least 1 record, got {n}")
        if n < MIN_LENGTH:
            raise ValueError(f"ARTime needs a series of at least {MIN_LENGTH} records to set itself up, got {n}")
        self.minimum, self.maximum, self.length = lo, hi, n
        probation = math.floor(0.15 * n) if n < 5000 else 750
        probation -= probation % 2
        self.step = max(1, probation // (WINDOW * WINDOWS_PER_PROBATION))  # records per downsampled step
        self.training = probation // self.step  # steps that only learn
        self.half = self.training // 2  # vigilance-update period
        self._block: list[float] = []
        self._k = 0
        self._trend = 0.0
        self._hist = [0] * (LEVELS + 1)
        self._median = 0
        self._below = 0
        self._above = 0
        self._symbols: deque[float] = deque([0.0] * WINDOW, maxlen=WINDOW)
        self._stored: list[FloatArray] = []
        self._memory = _ArtMemory(0.0, 0.0)
        self._last_anomaly = 0
        self._last_anomaly_sim = 0.0
        self._last_update = 0
        self._mask = False
        self._quiet = 0
        self._lows: list[float] = []  # per reported anomaly: the lowest similarity around it
        self._mean = 0.0
        self._seen = 0
        self._recent: deque[float] = deque([1.0] * (self.half + 1), maxlen=self.half + 1)
        self._gaps: deque[float] = deque([0.0] * (self.training + 1), maxlen=self.training + 1)

    @classmethod
    def for_series(cls, values: ArrayLike) -> ARTime:
        """A detector told the whole series' minimum, maximum and length, as NAB does for its detectors."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"ARTime needs a non-empty 1-D series, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("ARTime needs finite values; the series holds NaN or infinity")
        return cls(float(arr.min()), float(arr.max()), int(arr.size))

    @property
    def lower_vigilance(self) -> float:
        return self._memory.lower

    @property
    def upper_vigilance(self) -> float:
        return self._memory.upper

    def update(self, value: float) -> float:
        """The anomaly score of this record, in [0, 1]; 0 between downsampled steps and in probation."""
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"ARTime needs finite values, got {value!r}")
        self._block.append(v)
        if len(self._block) < self.step:
            return 0.0
        block, self._block = self._block, []
        self._k += 1
        features = self._features(self._symbol(block))
        if self._k < self.training:
            self._stored.append(features)
            return 0.0
        if self._k == self.training:
            self._stored.append(features)
            rho = _starting_vigilance(self._stored[WINDOW - 1:], self.half)
            self._memory = _ArtMemory(rho, rho)
            for k, f in enumerate(self._stored, start=1):
                self._detect(k, f)
            self._stored = []
            return 0.0
        return self._detect(self._k, features)

    # --- one downsampled step -------------------------------------------------------------------------

    def _symbol(self, block: list[float]) -> float:
        """Downsample the block (keeping a spike), scale, quantise, track the median level and snap to it."""
        mean = _plain_sum(block) / len(block)
        self._trend = mean if self._k == 1 else (self._trend + mean) / 2.0
        hi, lo = max(block), min(block)
        y = lo if abs(hi - self._trend) < abs(lo - self._trend) else hi
        if abs(y - mean) < SPIKE_FRACTION * mean:
            y = mean
        z = y - self.minimum
        if self.maximum != self.minimum:
            z = z / (self.maximum - self.minimum)
        level = min(LEVELS, max(0, round(z * LEVELS)))  # clamping only matters outside [minimum, maximum]
        self._track_median(level)
        q = level / LEVELS
        med = self._median / LEVELS
        return med if abs(q - med) < CHOMP else q

    def _track_median(self, level: int) -> None:
        """Running median of all levels, moving at most one occupied level per step."""
        hist = self._hist
        hist[level] += 1
        if self._k == 1:
            self._median = level
        if level < self._median:
            self._below += 1
        elif level > self._median:
            self._above += 1
        half = self._k // 2
        if self._above > half:
            self._below += hist[self._median]
            self._median = next(m for m in range(self._median + 1, LEVELS + 1) if hist[m] > 0)
            self._above -= hist[self._median]
        elif self._below > half:
            self._above += hist[self._median]
            self._median = next(m for m in range(self._median - 1, -1, -1) if hist[m] > 0)
            self._below -= hist[self._median]

    def _features(self, symbol: float) -> FloatArray:
        """Normalised Haar coefficients of the last 8 symbols followed by the symbols; zeros until 8 exist."""
        self._symbols.append(symbol)
        if self._k < WINDOW:
            return np.zeros(_FEATURES)
        raw = list(self._symbols)
        coeffs = _min_max_normalise(haar_transform(_min_max_normalise(raw)).tolist())
        return np.array(coeffs + raw, dtype=np.float64)

    def _detect(self, k: int, features: FloatArray) -> float:
        """Match the step's features, decide whether it is an anomaly, adapt the vigilances."""
        t = self.training
        since = k - self._last_anomaly
        after_anomaly = since == GUARD
        periodic = k - self._last_update >= self.half
        near = since <= GUARD
        if k > t + GUARD and self._mask and self._quiet >= GUARD:
            self._mask = False
        mem = self._memory
        sim, energy, new = mem.present(features, learn=k >= WINDOW)
        new = new or k < WINDOW
        self._quiet = 0 if new else self._quiet + 1
        self._seen += 1
        self._mean = self._mean + (1.0 / self._seen) * (sim - self._mean)
        self._recent.append(sim)
        self._gaps.append(mem.upper - sim)
        if since < GUARD and self._lows and sim < self._lows[-1]:
            self._lows[-1] = sim
        score = 0.0
        deep = sim < self._last_anomaly_sim * (DEEP_NEAR if near else DEEP_FAR)
        if k > t and new and (not (self._mask or near) or deep):
            score = self._score(sim, energy)
            self._lows.append(sim)
            self._last_anomaly_sim = sim
            self._last_anomaly = k
        self._mask = self._mask or new
        if k > t and (after_anomaly or periodic):
            self._adapt(k)
            self._last_update = k
            self._mask = True
        return score

    def _adapt(self, k: int) -> None:
        """New vigilances: the upper one follows the mean similarity, the lower one the recent minimum."""
        mem = self._memory
        recent_min = min(self._recent)
        upper = min(UPPER_CAP, self._mean)
        if mem.lower <= recent_min:
            lower = mem.lower + (recent_min - mem.lower) * RISE
        else:
            step = 0.0
            if k > 2 * self.training:
                gaps = [min(g, GAP_CAP) for g in self._gaps if g > GAP_FLOOR]
                if gaps:
                    step = _plain_sum(gaps) / len(gaps)
            lower = mem.lower - max(MIN_DECREMENT, step) / 2.0
            if self._lows:
                lower = max(_plain_sum(self._lows) / len(self._lows), lower)
        mem.lower = min(upper, lower)
        mem.upper = upper

    def _score(self, sim: float, energy: float) -> float:
        """How far the similarity is below both vigilances, plus the energy mismatch; 6 decimals."""
        a = min(SIMILARITY_CAP, sim)
        upper = ((1.0 - a) - (1.0 - self._memory.upper)) / (1.0 - a)
        lower = ((1.0 - a) - (1.0 - self._memory.lower)) / (1.0 - a)
        sigma = min(1.0, (upper * 0.35 + lower * 0.65) + (1.0 - energy) * 1.5)
        return round(sigma * 1e6) / 1e6


def run_artime(values: ArrayLike) -> FloatArray:
    """Scores of a whole series, the detector told its minimum, maximum and length first."""
    arr = np.asarray(values, dtype=np.float64)
    det = ARTime.for_series(arr)
    return np.array([det.update(v) for v in arr.tolist()], dtype=np.float64)
