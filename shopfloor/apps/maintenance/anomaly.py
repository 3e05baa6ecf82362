"""Streaming anomaly detection for live tags: one record at a time, no look-ahead.

`StreamingDetector` (ours) scores each new value from what it has seen before it only:
1. Surprise of the recent pattern: the last few values, scaled by the range seen so far, compared with
   the patterns seen before (k nearest neighbours), as a conformal p-value against recent surprises; and
   whether the value leaves the range seen so far by a margin (a new extreme, scored 1 at once).
2. Anomaly likelihood, the post-processing of Numenta's NAB detector (Ahmad et al. 2017): the short-term
   average of the raw surprise is compared with the distribution of that average over a long history; the
   tail probability, log-scaled, is the anomaly score. A raw score that is always high (a noisy tag) then
   does not alarm; a raw score that rises above its own habit does.
3. After a strong detection the score is damped for a refractory period, so one event raises one alarm.

`WindowedGaussian` is NAB's windowed Gaussian baseline (window 1,000 values, step 1; the score is one minus
the two-sided Gaussian tail probability of the value under the window's mean and standard deviation),
written here after NAB's `windowedGaussian_detector.py`.

`DETECTORS` names every detector for a stream: ours, the windowed Gaussian, and ARTime (`anomaly_artime.py`,
NAB's best published detector, which like NAB's reference detectors is told the stream's minimum, maximum
and length before the first record).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.maintenance.anomaly_artime import ARTime
from shopfloor.apps.maintenance.data import dataset_dir, files_sha256
from shopfloor.core.errors import ShopfloorError

FloatArray = NDArray[np.float64]


class NabFormatError(ShopfloorError, ValueError):
    """A NAB data or label file that cannot be read, or a window not on the file's timestamps."""


def tail_probability(x: float, mean: float, std: float) -> float:
    """NAB's normalProbability: the Gaussian Q-function of the distance from the mean, Q(|x - mean| / std)."""
    if std <= 0:
        std = 1e-6
    z = abs(x - mean) / std
    return 0.5 * math.erfc(z / math.sqrt(2.0))


class WindowedGaussian:
    """NAB's windowed Gaussian detector (window 1,000, step 1)."""

    def __init__(self, window: int = 1000) -> None:
        self.window: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._sq = 0.0
        self.mean = 0.0
        self.std = 1.0

    def update(self, value: float) -> float:
        score = 0.0
        if self.window:
            score = 1.0 - tail_probability(value, self.mean, self.std)
        if len(self.window) == self.window.maxlen:
            old = self.window[0]
            self._sum -= old
            self._sq -= old * old
        self.window.append(value)
        self._sum += value
        self._sq += value * value
        n = len(self.window)
        self.mean = self._sum / n
        var = max(self._sq / n - self.mean * self.mean, 0.0)
        if n < 50 or var < 1e-9 * max(self.mean * self.mean, 1.0):  # recompute exactly where sums lose precision
            arr = np.fromiter(self.window, dtype=np.float64)
            self.mean = float(arr.mean())
            var = float(arr.var())
        self.std = math.sqrt(var) if var > 0 else 1e-6
        return score


class _Conformal:
    """Conformal p-value of a non-conformity score against the last n scores: how unusual it is here."""

    def __init__(self, n: int = 500, min_n: int = 50) -> None:
        self.scores: deque[float] = deque(maxlen=n)
        self.min_n = min_n

    def surprise(self, x: float) -> float:
        """1 - p, 0 while fewer than min_n scores are known; x joins the calibration set afterwards."""
        out = 0.0
        if len(self.scores) >= self.min_n:
            arr = np.fromiter(self.scores, dtype=np.float64)
            p = (float(np.sum(arr >= x)) + 1.0) / (arr.size + 1.0)
            out = -math.log(p) / math.log(arr.size + 1.0)
        self.scores.append(x)
        return out


@dataclass
class _Likelihood:
    """NAB/HTM anomaly likelihood over a raw score stream (defaults as in Numenta's detector)."""

    learning: int = 288
    history: int = 8640
    average: int = 10
    reestimate: int = 100
    raw: deque[float] = field(default_factory=deque)
    recent: deque[float] = field(default_factory=deque)
    seen: int = 0
    mean: float = 0.0
    std: float = 1.0

    def update(self, raw_score: float) -> float:
        self.recent.append(raw_score)
        if len(self.recent) > self.average:
            self.recent.popleft()
        avg = sum(self.recent) / len(self.recent)
        self.raw.append(avg)
        if len(self.raw) > self.history:
            self.raw.popleft()
        self.seen += 1
        if self.seen <= self.learning:
            return 0.5
        if self.seen == self.learning + 1 or self.seen % self.reestimate == 0:
            arr = np.fromiter(self.raw, dtype=np.float64)
            self.mean = float(arr.mean())
            self.std = max(float(arr.std()), 0.03)  # the floor keeps a flat history from making noise alarming
        if avg <= self.mean:
            return 0.0
        return 1.0 - tail_probability(avg, self.mean, self.std)


def log_scale(likelihood: float) -> float:
    """Numenta's log scaling: 0.5 -> ~0.03, 0.99999 -> 0.5, 1 - 1e-10 -> 1."""
    return math.log(1.0000000001 - likelihood) / math.log(1.0 - 0.9999999999)


class _Seasonal:
    """Surprise of the value against the same phase one period ago, once a period has shown itself.

    The period is looked for in the autocorrelation of the history at 600, 1,200, 2,400 and 4,800
    records: the highest peak past the first zero crossing (and past lag 20), up to half the history,
    with a correlation of at least 0.5 (so two full periods are needed).
    """

    checkpoints = (600, 1200, 2400, 4800)

    def __init__(self, history: int = 5000) -> None:
        self.values: deque[float] = deque(maxlen=history)
        self.period = 0
        self.conformal = _Conformal()
        self.likelihood = _Likelihood()
        self.count = 0

    def _find_period(self) -> int:
        x = np.fromiter(self.values, dtype=np.float64)
        x = x - x.mean()
        n = x.size
        spec = np.fft.rfft(x, 2 * n)
        ac = np.fft.irfft(spec * np.conj(spec))[:n]
        if ac[0] <= 0:
            return 0
        ac = ac / ac[0]
        below = np.flatnonzero(ac[: n // 2] < 0)  # past the first zero crossing: neighbours no longer look alike
        if below.size == 0:
            return 0
        lags = np.arange(max(int(below[0]), 20), n // 2)
        if lags.size == 0:
            return 0
        best = int(lags[np.argmax(ac[lags])])
        return best if ac[best] >= 0.5 else 0

    def score(self, value: float, span: float) -> float:
        """0 until a period is known; then the log-scaled likelihood of the residual's surprise."""
        out = 0.0
        if self.period:  # the likelihood sees only residuals, never the zeros from before the period
            residual = abs(value - self.values[-self.period]) / (span if span > 0 else 1.0)
            out = log_scale(self.likelihood.update(min(self.conformal.surprise(residual), 0.999)))
        self.values.append(value)
        self.count += 1
        if self.count in self.checkpoints and not self.period:
            self.period = self._find_period()
        return out


class StreamingDetector:
    """Our detector for one tag; `update(value)` returns an anomaly score in [0, 1].

    Raw surprise: the last `window` values, scaled by the range seen so far, form a pattern; its mean
    distance to the `k` nearest patterns among the last `memory` ones (not counting those that overlap
    it) is the non-conformity, turned into a conformal p-value against recent non-conformities. That
    feeds the anomaly likelihood. A value beyond the range seen so far by 5 % of it (a new extreme,
    after 100 records) scores 1. After a score >= 0.5 the next `refractory` scores are halved.
    """

    def __init__(self, window: int = 10, memory: int = 1500, k: int = 3, refractory: int = 150) -> None:
        self.window = window
        self.k = k
        self.recent: deque[float] = deque(maxlen=window)
        self.patterns = np.zeros((memory, window))
        self.stored = 0
        self.next_slot = 0
        self.conformal = _Conformal()
        self.likelihood = _Likelihood()
        self.lo = math.inf
        self.hi = -math.inf
        self.count = 0
        self.refractory = refractory
        self.quiet = 0
        self.seasonal = _Seasonal()

    def _pattern_surprise(self, value: float) -> float:
        self.recent.append(value)
        if len(self.recent) < self.window:
            return 0.0
        span = self.hi - self.lo
        pattern = np.fromiter(self.recent, dtype=np.float64) / (span if span > 0 else 1.0)
        out = 0.0
        usable = self.stored
        if usable >= self.k + self.window:
            dist = np.sqrt(((self.patterns[:usable] - pattern) ** 2).sum(axis=1))
            memory = len(self.patterns)
            for j in range(self.window):  # the newest patterns overlap this one: not neighbours
                dist[(self.next_slot - 1 - j) % memory] = np.inf
            out = self.conformal.surprise(float(np.partition(dist, self.k - 1)[: self.k].mean()))
        self.patterns[self.next_slot] = pattern
        self.next_slot = (self.next_slot + 1) % len(self.patterns)
        self.stored = min(self.stored + 1, len(self.patterns))
        return min(out, 0.999)

    def update(self, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"not a finite value: {value}")
        span = self.hi - self.lo
        new_extreme = self.count > 100 and span > 0 and (value > self.hi + 0.05 * span or value < self.lo - 0.05 * span)
        raw = self._pattern_surprise(value)
        seasonal = self.seasonal.score(value, span)
        self.lo, self.hi = min(self.lo, value), max(self.hi, value)
        self.count += 1
        score = 1.0 if new_extreme else 0.99 * max(log_scale(self.likelihood.update(raw)), seasonal)
        if self.quiet > 0:
            self.quiet -= 1
            return score * 0.5
        if self.refractory and score >= 0.5:
            self.quiet = self.refractory
        return score


class Detector(Protocol):
    """A streaming detector: one score per value, from that value and the ones before it only."""

    def update(self, value: float) -> float: ...


def run_detector(detector: Detector, values: Iterable[float]) -> FloatArray:
    """Feed values one at a time; the score of each comes before the detector learns it."""
    return np.array([detector.update(float(v)) for v in values])


# name -> factory given the whole stream; only ARTime reads it (its minimum, maximum and length, as NAB
# gives them to its reference detectors), the others ignore it
DETECTORS: dict[str, Callable[[FloatArray], Detector]] = {
    "artime": ARTime.for_series,
    "ours": lambda values: StreamingDetector(),
    "windowed_gaussian": lambda values: WindowedGaussian(),
}


# --- NAB corpus ------------------------------------------------------------------------------------------


@dataclass
class NabSeries:
    """One NAB file: values, timestamps, and its labelled windows as inclusive index ranges."""

    name: str
    timestamps: list[datetime]
    values: FloatArray
    windows: list[tuple[int, int]]


def _parse_ts(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise NabFormatError(f"bad timestamp {text!r}") from exc


def read_series(path: Path, name: str, windows: Sequence[Sequence[str]]) -> NabSeries:
    """A NAB CSV (timestamp,value) and its windows, located on the file's own timestamps."""
    ts: list[datetime] = []
    vals: list[float] = []
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        if header[:2] != ["timestamp", "value"]:
            raise NabFormatError(f"{path}: header must be timestamp,value, got {header}")
        for line_no, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            parts = line.strip().split(",")
            try:
                ts.append(_parse_ts(parts[0]))
                vals.append(float(parts[1]))
            except (IndexError, ValueError) as exc:
                raise NabFormatError(f"{path}:{line_no}: {exc}") from None
    index = {t: i for i, t in enumerate(ts)}
    spans = []
    for w in windows:
        a, b = _parse_ts(w[0]), _parse_ts(w[1])
        if a not in index or b not in index:
            raise NabFormatError(f"{path}: window {w} does not start and end on timestamps of the file")
        spans.append((index[a], index[b]))
    return NabSeries(name, ts, np.array(vals), sorted(spans))


def load_corpus(root: Path | None = None) -> tuple[list[NabSeries], int]:
    """Every series present and labelled; also the number of labelled windows over those files."""
    folder = dataset_dir("nab", root, required=["labels/combined_windows.json"])
    labels = json.loads((folder / "labels" / "combined_windows.json").read_text())
    series = []
    for name in sorted(labels):
        path = folder / "data" / name
        if path.exists():
            series.append(read_series(path, name, labels[name]))
    if not series:
        raise NabFormatError(f"{folder}: no labelled series found")
    return series, sum(len(s.windows) for s in series)


def data_hash(root: Path | None = None) -> str:
    """sha256 over the NAB files used (data and labels)."""
    folder = dataset_dir("nab", root)
    return files_sha256([*folder.glob("data/*/*.csv"), folder / "labels" / "combined_windows.json"])
