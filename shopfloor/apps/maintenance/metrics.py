"""Scoring: C-MAPSS RUL error measures, and the Numenta Anomaly Benchmark (NAB) scorer.

The NAB part follows NAB v1.1's own code (nab/sweeper.py, nab/optimizer.py, nab/runner.py): each record
gets a weighted score from its position relative to the labelled windows (a scaled sigmoid: early in a
window is worth nearly a full true positive, a false positive right after a window costs little, one far
from any window costs the full FP weight), only the first detection in a window counts, missed windows
cost the FN weight, records in the probation period are not scored, one threshold per profile is chosen
to maximise the summed score over all files, and the total is normalised so that the null detector scores
0 and a perfect one 100.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def rul_rmse(predicted: ArrayLike, truth: ArrayLike) -> float:
    """Root mean square error of RUL predictions."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no predictions to score")
    return float(np.sqrt(np.mean(d * d)))


def rul_score(predicted: ArrayLike, truth: ArrayLike) -> float:
    """PHM08 asymmetric score: sum(exp(-d/13) - 1) for early (d < 0), sum(exp(d/10) - 1) for late (d >= 0)."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no predictions to score")
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


# --- NAB -----------------------------------------------------------------------------------------------

PROBATION_PERCENT = 0.15


@dataclass(frozen=True)
class CostMatrix:
    """A NAB profile's weights."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}


def profiles_from_json(doc: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, CostMatrix]:
    """NAB's config/profiles.json as CostMatrix objects."""
    return {
        name: CostMatrix(tp=p["CostMatrix"]["tpWeight"], fp=p["CostMatrix"]["fpWeight"], fn=p["CostMatrix"]["fnWeight"])
        for name, p in doc.items()
    }


def scaled_sigmoid(relative_position: float) -> float:
    """NAB's reward curve: about 0.987 at a window's left edge (-1), 0 at its right edge, -1 from 3 on."""
    if relative_position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * relative_position)) - 1.0


def probation_length(n_records: int, percent: float = PROBATION_PERCENT) -> float:
    """Records at the start that are not scored: 15 % of the file, at most 15 % of 5,000."""
    return min(math.floor(percent * n_records), percent * 5000)


@dataclass
class SweptFile:
    """Per-record weighted scores of one file (NAB's sweep), ready for any threshold.

    `window` is -1 outside windows, -2 in the probation period, else the window's number.
    """

    name: str
    anomaly: FloatArray
    weighted: FloatArray
    window: NDArray[np.int64]
    n_windows: int


def sweep(
    name: str, anomaly_scores: ArrayLike, windows: Sequence[tuple[int, int]], cost: CostMatrix,
    probation_percent: float = PROBATION_PERCENT,
) -> SweptFile:
    """NAB's Sweeper.calcSweepScore on index windows [(first, last)] (inclusive), sorted and disjoint."""
    scores = np.asarray(anomaly_scores, dtype=np.float64)
    n = scores.size
    weighted = np.empty(n)
    window = np.full(n, -1, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    probation = probation_length(n, probation_percent)
    pending = sorted(windows)
    for a, b in pending:
        if not 0 <= a <= b < n:
            raise ValueError(f"{name}: window ({a}, {b}) outside 0..{n - 1}")
    cur: tuple[int, int] | None = None
    cur_id = -1
    prev_right: int | None = None
    prev_width = 0.0
    next_id = 0
    for i in range(n):
        if pending and i == pending[0][0]:
            cur = pending.pop(0)
            cur_id = next_id
            next_id += 1
        if cur is not None:
            width = float(cur[1] - cur[0] + 1)
            position = -(cur[1] - i + 1) / width
            weighted[i] = scaled_sigmoid(position) * cost.tp / max_tp
            window[i] = cur_id
        else:
            past = 3.0 if prev_right is None else abs(prev_right - i) / (prev_width - 1.0)
            weighted[i] = scaled_sigmoid(past) * cost.fp
        if i < probation:
            window[i] = -2
        if cur is not None and i == cur[1]:
            prev_right, prev_width = i, float(cur[1] - cur[0] + 1)
            cur = None
    return SweptFile(name, scores, weighted, window, next_id)


def scores_by_threshold(files: Sequence[SweptFile], cost: CostMatrix) -> tuple[FloatArray, FloatArray]:
    """NAB's calcScoreByThreshold over all files together: (thresholds, total score when detecting
    every record with anomaly score >= threshold), thresholds descending, starting at 1.1 (no detection)."""
    anomaly, weighted, key = [], [], []
    offset = 0
    windows_scored = 0
    for f in files:
        scorable = f.window != -2
        anomaly.append(f.anomaly[scorable])
        weighted.append(f.weighted[scorable])
        w = f.window[scorable]
        key.append(np.where(w >= 0, w + offset, -1))
        present = np.unique(w[w >= 0])
        windows_scored += present.size
        offset += f.n_windows
    a = np.concatenate(anomaly) if anomaly else np.empty(0)
    s = np.concatenate(weighted) if weighted else np.empty(0)
    k = np.concatenate(key) if key else np.empty(0, dtype=np.int64)
    order = np.argsort(-a, kind="stable")
    a, s, k = a[order], s[order], k[order]
    thresholds = [1.1]
    totals = [-cost.fn * windows_scored]
    fp_sum = 0.0
    best = np.full(offset, np.nan)
    window_sum = -cost.fn * windows_scored
    cur = 1.1
    for score, weight, win in zip(a.tolist(), s.tolist(), k.tolist(), strict=True):
        if score != cur:
            thresholds.append(score)
            totals.append(fp_sum + window_sum)
            cur = score
        # the total saved under `score` covers every record >= score: it is updated as they are counted
        if win < 0:
            fp_sum += weight
        else:
            old = -cost.fn if np.isnan(best[win]) else float(best[win])
            if weight > old:
                window_sum += weight - old
                best[win] = weight
        totals[-1] = fp_sum + window_sum
    return np.asarray(thresholds), np.asarray(totals)


def file_score_at(f: SweptFile, threshold: float, cost: CostMatrix) -> tuple[float, int, int]:
    """One file's NAB score when records with anomaly score >= threshold are detections; also the number
    of detections (false alarms) outside windows and of windows found."""
    scorable = f.window != -2
    hit = scorable & (f.anomaly >= threshold)
    fp = hit & (f.window == -1)
    total = float(f.weighted[fp].sum())
    present = np.unique(f.window[scorable & (f.window >= 0)])
    found = 0
    for w in present.tolist():
        in_w = hit & (f.window == w)
        if in_w.any():
            total += float(max(f.weighted[in_w].max(), -cost.fn))
            found += 1
        else:
            total -= cost.fn
    return total, int(fp.sum()), found


@dataclass
class NabResult:
    """A detector's NAB result under one profile."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    per_file: dict[str, float]
    false_alarms: dict[str, int]
    windows_found: int
    windows_total: int


def nab_score(
    files: Sequence[SweptFile], cost: CostMatrix, profile: str, n_windows_labelled: int,
    null_raw: float | None = None,
) -> NabResult:
    """Optimise the threshold over all files (as NAB's optimizer does), score, and normalise.

    NAB normalises with perfect = (number of labelled windows) x tpWeight and the null detector's raw
    score as 0; `null_raw` defaults to NAB's null detector (a constant score of 0.5) run through the same
    threshold optimisation.
    """
    thresholds, totals = scores_by_threshold(files, cost)
    best = int(np.argmax(totals))  # first maximum, like NAB's sort by score (stable) then [0]
    threshold = float(thresholds[best])
    per_file, alarms = {}, {}
    found = 0
    raw = 0.0
    for f in files:
        s, fp, hit = file_score_at(f, threshold, cost)
        per_file[f.name] = s
        alarms[f.name] = fp
        found += hit
        raw += s
    if null_raw is None:
        null_raw = null_detector_raw(files, cost)
    perfect = n_windows_labelled * cost.tp
    normalised = 100.0 * (raw - null_raw) / (perfect - null_raw)
    total_windows = sum(np.unique(f.window[f.window >= 0]).size for f in files)
    return NabResult(profile, threshold, raw, normalised, per_file, alarms, found, total_windows)


def null_detector_raw(files: Sequence[SweptFile], cost: CostMatrix) -> float:
    """Raw NAB score of the null detector (constant 0.5 everywhere) at its best threshold."""
    constant = [SweptFile(f.name, np.full_like(f.anomaly, 0.5), f.weighted, f.window, f.n_windows) for f in files]
    _, totals = scores_by_threshold(constant, cost)
    return float(totals.max())
