"""Box IoU, VOC AP and ROC AUC on cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopfloor.apps.inspection.metrics import (
    Detection,
    GroundTruth,
    average_precision,
    box_iou,
    class_ap,
    mean_average_precision,
    roc_auc,
)


def test_iou_hand_computed() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]])
    iou = box_iou(a, b)[0]
    # overlap 5x5=25, union 100+100-25=175
    assert iou == pytest.approx([25 / 175, 1.0, 0.0, 0.5])


def test_iou_touching_and_degenerate_boxes_are_zero() -> None:
    assert box_iou(np.array([0, 0, 10, 10]), np.array([10, 0, 20, 10]))[0, 0] == 0.0
    assert box_iou(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 0]))[0, 0] == 0.0


def test_all_point_ap_by_hand() -> None:
    # 3 ground truths; ranked detections TP, FP, TP, FP, TP
    # recall    1/3, 1/3, 2/3, 2/3, 1
    # precision 1,   1/2, 2/3, 1/2, 3/5
    # envelope  1,   2/3, 2/3, 3/5, 3/5 -> AP = 1/3*1 + 1/3*2/3 + 1/3*3/5
    recall = np.array([1, 1, 2, 2, 3]) / 3
    precision = np.array([1, 1 / 2, 2 / 3, 1 / 2, 3 / 5])
    assert average_precision(recall, precision) == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)


def test_class_ap_matches_hand_ranking() -> None:
    gts = [GroundTruth(0, 0, (0, 0, 10, 10)), GroundTruth(0, 0, (20, 20, 30, 30)), GroundTruth(1, 0, (0, 0, 10, 10))]
    dets = [
        Detection(0, 0, 0.9, (0, 0, 10, 10)),      # TP
        Detection(0, 0, 0.8, (0, 0, 10, 9)),       # duplicate of a matched box: FP
        Detection(1, 0, 0.7, (1, 1, 10, 10)),      # IoU 0.81: TP
        Detection(1, 0, 0.6, (50, 50, 60, 60)),    # FP
        Detection(0, 0, 0.5, (20, 20, 30, 31)),    # IoU 100/110: TP
        Detection(0, 1, 0.99, (20, 20, 30, 30)),   # another class: ignored for class 0
    ]
    assert class_ap(dets, gts, 0) == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)


def test_iou_below_threshold_is_false_positive_and_missed_truth_caps_recall() -> None:
    gts = [GroundTruth(0, 0, (0, 0, 10, 10)), GroundTruth(0, 0, (50, 50, 60, 60))]
    dets = [Detection(0, 0, 0.9, (0, 0, 10, 10)), Detection(0, 0, 0.8, (0, 0, 10, 4))]  # IoU 0.4
    # recall reaches 1/2 at precision 1; never more
    assert class_ap(dets, gts, 0) == pytest.approx(0.5)


def test_map_ignores_classes_without_truth() -> None:
    gts = [GroundTruth(0, 0, (0, 0, 10, 10))]
    dets = [Detection(0, 0, 0.9, (0, 0, 10, 10)), Detection(0, 2, 0.9, (0, 0, 10, 10))]
    mean, aps = mean_average_precision(dets, gts, 3)
    assert mean == 1.0
    assert aps[0] == 1.0 and math.isnan(aps[1]) and math.isnan(aps[2])


def test_roc_auc_by_hand() -> None:
    # pairs (pos, neg): (0.8 > 0.1), (0.8 > 0.9 no), (0.4 > 0.1), (0.4 > 0.9 no) -> 2/4
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([0.8, 0.1, 0.4, 0.9])) == pytest.approx(0.5)
    assert roc_auc(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])) == 1.0
    assert math.isnan(roc_auc(np.array([0, 0]), np.array([0.1, 0.2])))
