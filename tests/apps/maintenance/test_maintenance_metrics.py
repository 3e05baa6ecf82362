"""RUL error measures and the NAB scorer on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopfloor.apps.maintenance import metrics
from shopfloor.apps.maintenance.metrics import CostMatrix

STANDARD = metrics.PROFILES["standard"]


def test_rul_rmse_and_score_by_hand() -> None:
    pred = [110.0, 50.0, 20.0]
    truth = [100.0, 63.0, 20.0]
    # d = +10 (late), -13 (early), 0
    assert metrics.rul_rmse(pred, truth) == pytest.approx(math.sqrt((100 + 169 + 0) / 3))
    assert metrics.rul_score(pred, truth) == pytest.approx((math.e - 1) + (math.e - 1) + 0.0)


def test_late_predictions_cost_more_than_early_ones() -> None:
    assert metrics.rul_score([30.0], [20.0]) > metrics.rul_score([10.0], [20.0])
    assert metrics.rul_score([20.0], [20.0]) == 0.0
    with pytest.raises(ValueError):
        metrics.rul_rmse([], [])


def test_scaled_sigmoid_anchor_points() -> None:
    assert metrics.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert metrics.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert metrics.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert metrics.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert metrics.scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_capped_at_750() -> None:
    assert metrics.probation_length(20) == 3
    assert metrics.probation_length(4032) == 604
    assert metrics.probation_length(22695) == 750


def _case() -> tuple[np.ndarray, list[tuple[int, int]]]:
    scores = np.zeros(20)
    scores[12], scores[5], scores[15] = 0.9, 0.8, 0.7
    return scores, [(10, 13)]


def test_sweep_weights_by_hand() -> None:
    scores, windows = _case()
    f = metrics.sweep("f", scores, windows, STANDARD)
    assert list(f.window[:3]) == [-2, -2, -2]  # probation: 3 records of 20
    assert f.weighted[10] == pytest.approx(1.0)  # left edge of the window: a full true positive
    assert f.weighted[12] == pytest.approx(0.84828 / 0.98661, abs=1e-5)
    assert f.weighted[5] == pytest.approx(-0.11)  # before any window: the full FP weight
    past = abs(13 - 15) / 3.0  # two records after a width-4 window
    assert f.weighted[15] == pytest.approx(0.11 * (2 / (1 + math.exp(5 * past)) - 1))


def test_threshold_optimisation_and_normalisation_by_hand() -> None:
    scores, windows = _case()
    f = metrics.sweep("f", scores, windows, STANDARD)
    thresholds, totals = metrics.scores_by_threshold([f], STANDARD)
    assert thresholds[0] == 1.1 and totals[0] == pytest.approx(-1.0)  # nothing detected: one missed window
    tp12 = 0.84828 / 0.98661
    fp15 = 0.11 * (2 / (1 + math.exp(5 * 2 / 3)) - 1)
    assert dict(zip(thresholds[1:4].round(3), totals[1:4], strict=True)) == pytest.approx(
        {0.9: tp12, 0.8: tp12 - 0.11, 0.7: tp12 - 0.11 + fp15}, abs=1e-5)
    # null detector (constant 0.5): better to detect everything here than nothing
    before = 7 * -0.11  # records 3..9
    after = sum(0.11 * (2 / (1 + math.exp(5 * abs(13 - i) / 3)) - 1) for i in range(14, 20))
    null = 1.0 + before + after
    assert metrics.null_detector_raw([f], STANDARD) == pytest.approx(null, abs=1e-5)
    result = metrics.nab_score([f], STANDARD, "standard", n_windows_labelled=1)
    assert result.threshold == pytest.approx(0.9)
    assert result.raw == pytest.approx(tp12, abs=1e-5)
    assert result.normalised == pytest.approx(100 * (tp12 - null) / (1 - null), abs=1e-3)
    assert result.false_alarms == {"f": 0} and result.windows_found == 1


def test_only_the_first_detection_in_a_window_counts_and_misses_cost_fn_weight() -> None:
    low_fn = metrics.PROFILES["reward_low_FN_rate"]
    scores = np.zeros(40)
    scores[[22, 23, 24]] = 1.0
    f = metrics.sweep("f", scores, [(20, 29), (33, 36)], low_fn)
    total, false_alarms, found = metrics.file_score_at(f, 1.0, low_fn)
    first = metrics.scaled_sigmoid(-(29 - 22 + 1) / 10) / metrics.scaled_sigmoid(-1.0)
    assert total == pytest.approx(first - 2.0)  # the second window is missed: fnWeight 2
    assert (false_alarms, found) == (0, 1)


def test_profiles_from_nab_json() -> None:
    doc = {"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}}}
    assert metrics.profiles_from_json(doc) == {"standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0)}


def test_windows_outside_the_file_are_refused() -> None:
    with pytest.raises(ValueError):
        metrics.sweep("f", np.zeros(10), [(5, 12)], STANDARD)
