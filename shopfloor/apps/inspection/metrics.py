"""Inspection metrics: box IoU, Pascal-VOC average precision (all-point interpolation), ROC AUC.

VOC AP follows the VOC2010+ devkit: detections of a class over all images sorted by confidence, a detection
is a true positive if its IoU with a not-yet-matched ground-truth box of the same class is >= 0.5, and AP is
the area under the precision envelope (precision made monotonically non-increasing) at every recall step.
Boxes are [xmin, ymin, xmax, ymax] in continuous pixel coordinates (area = width x height); the VOC devkit's
"+1" pixel convention is not used, which is how COCO-style tools and most recent NEU-DET papers measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

FloatArray = NDArray[np.float64]


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of boxes a (N x 4) and b (M x 4): an N x M matrix; empty boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def average_precision(recall: FloatArray, precision: FloatArray) -> float:
    """All-point interpolated AP: area under the monotone precision envelope (VOC2010+)."""
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


@dataclass(frozen=True)
class Detection:
    """One predicted box: image index, class index, confidence and [xmin, ymin, xmax, ymax]."""

    image: int
    label: int
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class GroundTruth:
    """One annotated box: image index, class index, [xmin, ymin, xmax, ymax] and the VOC difficult flag."""

    image: int
    label: int
    box: tuple[float, float, float, float]
    difficult: bool = False


def class_ap(detections: Sequence[Detection], truths: Sequence[GroundTruth], label: int,
             iou_threshold: float = 0.5) -> float:
    """VOC AP of one class; NaN if the class has no (non-difficult) ground truth."""
    gts = [g for g in truths if g.label == label]
    n_pos = sum(not g.difficult for g in gts)
    if n_pos == 0:
        return float("nan")
    by_image: dict[int, list[int]] = {}
    for k, g in enumerate(gts):
        by_image.setdefault(g.image, []).append(k)
    matched = np.zeros(len(gts), dtype=bool)
    dets = sorted((d for d in detections if d.label == label), key=lambda d: -d.score)
    tp = np.zeros(len(dets))
    fp = np.zeros(len(dets))
    for i, det in enumerate(dets):
        candidates = by_image.get(det.image, [])
        if not candidates:
            fp[i] = 1
            continue
        ious = box_iou(np.asarray([det.box]), np.asarray([gts[k].box for k in candidates]))[0]
        best = int(np.argmax(ious))
        k = candidates[best]
        if ious[best] >= iou_threshold:
            if gts[k].difficult:
                continue  # neither true nor false positive, as in the devkit
            if not matched[k]:
                matched[k] = True
                tp[i] = 1
            else:
                fp[i] = 1
        else:
            fp[i] = 1
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / n_pos
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return average_precision(recall, precision)


def mean_average_precision(detections: Sequence[Detection], truths: Sequence[GroundTruth], n_classes: int,
                           iou_threshold: float = 0.5) -> tuple[float, list[float]]:
    """Per-class VOC AP and their mean over the classes that have ground truth."""
    aps = [class_ap(detections, truths, c, iou_threshold) for c in range(n_classes)]
    valid = [a for a in aps if not np.isnan(a)]
    return (float(np.mean(valid)) if valid else float("nan")), aps


def roc_auc(labels: NDArray[np.generic], scores: NDArray[np.generic]) -> float:
    """ROC AUC of scores against binary labels (1 = anomalous); NaN if only one class is present."""
    y = np.asarray(labels).ravel().astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64).ravel()))
