"""ARTime (clean-room implementation): behaviour on generated series, its pieces, and NAB conformance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from shopfloor.apps.maintenance import anomaly, metrics
from shopfloor.apps.maintenance.anomaly_artime import ARTime, _ArtMemory, haar_transform, run_artime
from shopfloor.apps.maintenance.data import DataMissing, dataset_dir

# NAB's published ARTime results, standard profile, at its threshold 0.317486 (numenta/NAB,
# results/ARTime/ARTime_standard_scores.csv): file -> (score, records detected in windows, false alarms).
PUBLISHED_THRESHOLD = 0.317486
PUBLISHED_STANDARD = {
    "artificialWithAnomaly/art_daily_flatmiddle.csv": (0.8039739326751801, 1, 1),
    "artificialWithAnomaly/art_daily_jumpsdown.csv": (0.9934530536103384, 2, 0),
    "artificialWithAnomaly/art_daily_jumpsup.csv": (0.8589086704377245, 1, 0),
    "artificialWithAnomaly/art_daily_nojump.csv": (-1.11, 0, 1),
    "artificialWithAnomaly/art_increase_spike_density.csv": (0.846035950698122, 2, 0),
    "artificialWithAnomaly/art_load_balancer_spikes.csv": (0.0493832824805146, 2, 8),
    "realAdExchange/exchange-2_cpc_results.csv": (0.5319830425923286, 1, 3),
    "realAdExchange/exchange-2_cpm_results.csv": (-0.14465135576188293, 2, 0),
    "realAdExchange/exchange-3_cpc_results.csv": (2.7007622427413946, 3, 0),
    "realAdExchange/exchange-3_cpm_results.csv": (0.6422052124689215, 1, 2),
    "realAdExchange/exchange-4_cpc_results.csv": (2.046652209252552, 3, 3),
    "realAdExchange/exchange-4_cpm_results.csv": (1.2574684165754575, 3, 3),
    "realTraffic/TravelTime_387.csv": (1.9284703309998337, 5, 5),
    "realTraffic/TravelTime_451.csv": (0.8548083738085046, 1, 0),
    "realTraffic/occupancy_6005.csv": (0.3602790466645597, 2, 5),
    "realTraffic/occupancy_t4013.csv": (1.6144604483793383, 2, 1),
    "realTraffic/speed_6005.csv": (0.8393187159363497, 1, 0),
    "realTraffic/speed_7578.csv": (3.1077313980278403, 7, 4),
    "realTraffic/speed_t4013.csv": (1.6144604483793383, 4, 1),
}
# Per-record values read from the published result files: 1-based row -> anomaly score.
PUBLISHED_ROWS = {
    "realAdExchange/exchange-2_cpc_results.csv": {326: 0.317585, 702: 0.485745, 824: 0.586766, 1044: 0.592796},
}


def daily(n: int, seed: int = 0, noise: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 10 * np.sin(2 * np.pi * t / 96) + rng.normal(scale=noise, size=n)


def test_setup_follows_the_probation_period() -> None:
    # (length) -> (records per step, training steps, vigilance-update period), as for NAB's files
    for n, expected in {4032: (5, 120, 60), 1624: (2, 121, 60), 7267: (7, 107, 53), 1127: (1, 168, 84),
                        22695: (7, 107, 53), 1538: (2, 115, 57)}.items():
        det = ARTime(0.0, 1.0, n)
        assert (det.step, det.training, det.half) == expected, n


def test_haar_transform_of_the_hand_computed_vector() -> None:
    h = math.sqrt(0.5)
    x = [0, 0.25, 1, 0.5, 0, 0, 0.75, 1]
    # level 1: pairs (0, .25) (1, .5) (0, 0) (.75, 1); detail = later - earlier
    d1 = [h * 0.25, -h * 0.5, 0.0, h * 0.25]
    a1 = [h * 0.25, h * 1.5, 0.0, h * 1.75]
    d2 = [h * (a1[1] - a1[0]), h * (a1[3] - a1[2])]  # 0.625, 0.875
    a2 = [h * (a1[0] + a1[1]), h * (a1[2] + a1[3])]  # 0.875, 0.875
    expected = [h * (a2[0] + a2[1]), h * (a2[1] - a2[0]), *d2, *d1]
    y = haar_transform(x)
    assert y == pytest.approx(expected, abs=1e-12)
    assert y == pytest.approx([1.237436867076, 0, 0.625, 0.875, 0.176776695297, -0.353553390593, 0, 0.176776695297],
                              abs=1e-12)
    assert haar_transform([1, 0, 0, 0, 0, 0, 0, 0])[-4] == -0.7071067811865476  # the library's h, and the sign
    norm = (y - y.min()) / (y - y.min()).max()
    assert norm == pytest.approx([1, 2 / 9, 0.615059322881, 0.772194163145, 1 / 3, 0, 2 / 9, 1 / 3], abs=1e-12)
    with pytest.raises(ValueError):
        haar_transform([1.0, 2.0, 3.0])


def test_the_all_ones_category_against_the_zero_input() -> None:
    mem = _ArtMemory(0.9, 0.9)
    zero = np.zeros(16)
    assert mem.present(zero, learn=True) == (0.0, 0.0, False)  # the first input only creates it
    assert mem.present(zero, learn=False) == (0.03125, 0.5, False)  # F = 16/32, E = 1/2: 0.5^3 * 0.5^2
    assert mem.count == 1
    assert mem.present(zero, learn=True) == (0.03125, 0.5, True)  # below both vigilances: a new cluster
    assert mem.present(zero, learn=False) == (1.0, 1.0, False)  # which it now matches exactly


def test_a_spike_is_flagged_at_once_and_nothing_else() -> None:
    for sign in (1.0, -1.0):
        x = daily(3000)
        x[2000] += sign * 30.0
        scores = run_artime(x)
        det = ARTime.for_series(x)
        step_end = (2000 // det.step + 1) * det.step - 1  # scores come at the end of the spike's block
        assert scores[step_end] >= 0.9
        assert np.count_nonzero(scores) == 1


def test_a_level_shift_is_flagged_where_it_starts() -> None:
    x = daily(3000)
    x[2000:] += 12.0
    scores = run_artime(x)
    at_shift = scores[2000:2010].max()
    assert at_shift >= 0.9
    assert scores[:2000].max() < 0.3
    assert scores[2010:].max() < at_shift  # what follows while it re-learns the new level scores lower


def test_a_clean_periodic_series_is_quiet_after_probation() -> None:
    for seed in range(3):
        assert not np.any(run_artime(daily(3000, seed))), seed
    t = np.arange(3000)
    assert not np.any(run_artime(np.where((t // 48) % 2 == 0, 10.0, 2.0)))  # a square wave


def test_a_constant_series_starts_at_full_vigilance_and_never_scores() -> None:
    det = ARTime(3.0, 3.0, 500)
    assert det.step == 1 and det.training == 74
    for _ in range(74):
        assert det.update(3.0) == 0.0
    assert det.lower_vigilance == det.upper_vigilance == 1.0
    assert not np.any(run_artime(np.full(500, 3.0)))


def test_no_look_ahead() -> None:
    x = daily(3000, seed=1)
    y = x.copy()
    y[2000:] += 8.0  # a different future, inside the same bounds
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    a = anomaly.run_detector(ARTime(lo, hi, 3000), x)
    b = anomaly.run_detector(ARTime(lo, hi, 3000), y)
    assert np.array_equal(a[:2000], b[:2000])
    assert not np.array_equal(a, b)
    prefix = anomaly.run_detector(ARTime(lo, hi, 3000), x[:2000])  # the series stops early
    assert np.array_equal(prefix, a[:2000])


def test_scores_only_on_step_ends_after_probation() -> None:
    x = daily(4032, seed=3, noise=0.5)
    x[[1500, 2500, 3500]] += 20.0
    scores = run_artime(x)
    det = ARTime.for_series(x)
    rows = np.flatnonzero(scores) + 1  # 1-based records
    assert rows.size >= 3
    assert np.all(rows % det.step == 0)
    assert rows.min() >= (det.training + 13) * det.step
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(np.round(scores * 1e6) == scores * 1e6)  # six decimals


def test_values_outside_the_bounds_count_as_the_nearest_extreme() -> None:
    # one record per step (length 200): a value far above the maximum scores as the maximum itself would
    x = daily(200, seed=2)
    lo, hi = x.min(), x.max()
    y = x.copy()
    y[150] = hi + 1e6
    z = x.copy()
    z[150] = hi
    a = anomaly.run_detector(ARTime(lo, hi, 200), y)
    b = anomaly.run_detector(ARTime(lo, hi, 200), z)
    assert ARTime(lo, hi, 200).step == 1
    assert np.array_equal(a, b)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="above the maximum"):
        ARTime(2.0, 1.0, 1000)
    with pytest.raises(ValueError, match="finite"):
        ARTime(float("nan"), 1.0, 1000)
    with pytest.raises(ValueError, match="at least 1"):
        ARTime(0.0, 1.0, 0)
    with pytest.raises(ValueError, match="at least 94"):
        ARTime(0.0, 1.0, 93)
    with pytest.raises(ValueError, match="integer"):
        ARTime(0.0, 1.0, 1000.5)  # type: ignore[arg-type]
    det = ARTime(0.0, 1.0, 1000)
    with pytest.raises(ValueError, match="finite"):
        det.update(float("nan"))
    with pytest.raises(ValueError, match="finite"):
        ARTime.for_series([1.0, float("nan"), 2.0] * 50)
    with pytest.raises(ValueError, match="non-empty"):
        ARTime.for_series([])
    with pytest.raises(ValueError, match="at least 94"):
        run_artime([1.0, 2.0, 3.0])


def test_matches_the_published_nab_results() -> None:
    """Same NAB score, detections and false alarms per file as NAB's published ARTime run (skips without data)."""
    try:
        folder = dataset_dir("nab", required=["labels/combined_windows.json"])
    except DataMissing as exc:
        pytest.skip(str(exc))
    labels = json.loads((folder / "labels" / "combined_windows.json").read_text())
    present = [name for name in PUBLISHED_STANDARD if (folder / "data" / name).exists()]
    if not present:
        pytest.skip("none of the NAB files with published ARTime results is present")
    cost = metrics.PROFILES["standard"]
    for name in present:
        series = anomaly.read_series(folder / "data" / name, name, labels[name])
        scores = run_artime(series.values)
        swept = metrics.sweep(name, scores, series.windows, cost)
        score, false_alarms, _ = metrics.file_score_at(swept, PUBLISHED_THRESHOLD, cost)
        detected = int(((swept.anomaly >= PUBLISHED_THRESHOLD) & (swept.window >= 0)).sum())
        published = PUBLISHED_STANDARD[name]
        assert (detected, false_alarms) == published[1:], name
        assert score == pytest.approx(published[0], abs=1e-9), name
        if name in PUBLISHED_ROWS:
            rows = PUBLISHED_ROWS[name]
            assert {int(r) + 1: float(scores[r]) for r in np.flatnonzero(scores)} == rows, name
        if name.endswith("art_daily_jumpsup.csv"):  # the only non-zero score within rows 2720..3074
            window = scores[2719:3074]
            assert window[2990 - 2720] == 1.0 and np.count_nonzero(window) == 1
