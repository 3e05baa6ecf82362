"""Classifier, localiser, anomaly detector and artifacts, trained on small generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopfloor.apps.inspection.anomaly import AnomalyDetector, greedy_coreset
from shopfloor.apps.inspection.classify import DefectClassifier, cross_validate, extract_features
from shopfloor.apps.inspection.dataset import Box
from shopfloor.apps.inspection.features import image_cells
from shopfloor.apps.inspection.localise import (
    Localiser,
    LocaliserConfig,
    box_targets,
    candidates,
    nms,
    upsample,
)
from shopfloor.apps.inspection.metrics import box_iou, roc_auc
from shopfloor.apps.inspection.synthetic import DEFECT_KINDS, SyntheticPart, make_batch, make_part


@pytest.fixture(scope="module")
def parts() -> list[SyntheticPart]:
    return make_batch(12, 12, seed=3)


@pytest.fixture(scope="module")
def cells(parts: list[SyntheticPart]) -> np.ndarray:
    return np.stack([image_cells(p.image) for p in parts])


def mask_box(mask: np.ndarray, label: str) -> Box:
    ys, xs = np.nonzero(mask)
    return Box(label, float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def test_synthetic_parts_are_seeded_and_masked() -> None:
    a = make_part(np.random.default_rng(1), "scratch")
    b = make_part(np.random.default_rng(1), "scratch")
    assert np.array_equal(a.image, b.image) and a.mask.any()
    assert not make_part(np.random.default_rng(1), "").mask.any()
    with pytest.raises(ValueError, match="unknown defect kind"):
        make_part(np.random.default_rng(1), "rust")
    assert [p.kind for p in make_batch(1, 4, seed=0)] == ["", *DEFECT_KINDS]


def test_classifier_nested_cv_and_prediction(parts: list[SyntheticPart], tmp_path: Path) -> None:
    few = parts[6:18]  # 6 good, 6 defective
    images = np.stack([p.image for p in few])
    labels = np.asarray([0 if p.kind == "" else 1 for p in few], dtype=np.int64)
    features = extract_features(images, tmp_path / "f.npz")
    again = extract_features(images, tmp_path / "f.npz")  # from the cache
    assert np.array_equal(features, again)
    report = cross_validate(features, labels, folds=3)
    assert report.predictions.shape == labels.shape and len(report.chosen) == 3
    assert 0.0 <= report.accuracy <= 1.0 and report.confusion.sum() == len(labels)
    model = DefectClassifier.train(features, labels, ("plain", "marked"))
    name, confidence, proba = model.predict_image(images[0])
    assert name in ("plain", "marked") and 0.0 <= confidence <= 1.0 and proba.sum() == pytest.approx(1.0)


def test_candidates_and_their_targets() -> None:
    cand = candidates(np.array([[2, 1], [3, 3]]), 3)
    assert len(cand) == 2 * 3 + 1 and cand.tolist()[0] == [0, 0, 2, 1] and cand.tolist()[-1] == [0, 0, 3, 3]
    truths = [Box("scratches", 0, 0, 16, 8), Box("patches", 0, 0, 24, 24)]
    labels, best = box_targets(cand.astype(float) * 8, truths, 0.5)
    assert labels[0] == 6 and best[0] == 1.0      # exactly the scratch box
    assert labels[-1] == 3 and best[-1] == 1.0    # the whole grid is the patch box
    assert labels[5] == 0                        # [1, 2, 3, 3]: 16x8 px, IoU 2/9 with the patch box
    assert box_targets(cand.astype(float), [], 0.5)[0].sum() == 0


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=float)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5) == [1, 2]


def test_localiser_finds_injected_defects(parts: list[SyntheticPart], cells: np.ndarray) -> None:
    defect = [k for k, p in enumerate(parts) if p.kind]
    good = [k for k, p in enumerate(parts) if p.kind == ""][:6]
    train = defect[:9] + good
    held = defect[9:]
    boxes = [[mask_box(parts[k].mask, "patches")] if parts[k].mask.any() else [] for k in range(len(parts))]
    config = LocaliserConfig(rounds=40, learning_rate=0.2, shapes=6)
    no_scores = np.zeros((len(parts), 2))
    model = Localiser.train(cells[train], [boxes[k] for k in train], no_scores[train], config)
    ious = []
    for k in held:
        dets, heat = model.detect(cells[k], no_scores[k])
        assert heat.shape == (6, 25, 25) and upsample(heat[2], 8).shape == (200, 200)
        inside = np.zeros((25, 25), dtype=bool)
        truth = boxes[k][0]
        inside[int(truth.ymin) // 8: int(truth.ymax) // 8, int(truth.xmin) // 8: int(truth.xmax) // 8] = True
        assert heat[2][inside].mean() > heat[2][~inside].mean()
        best = max((d for d in dets if d.label == 2), key=lambda d: d.score)
        ious.append(box_iou(np.array(best.box), np.array([truth.xmin, truth.ymin, truth.xmax, truth.ymax]))[0, 0])
    # a 15-image training set: the best box lands on the defect, though not yet tightly
    assert min(ious) > 0.2 and np.mean(ious) > 0.3


def test_anomaly_detector_scores_defects_above_good_parts(cells: np.ndarray, parts: list[SyntheticPart]) -> None:
    good = [k for k, p in enumerate(parts) if p.kind == ""]
    train, test = good[:8], good[8:] + [k for k, p in enumerate(parts) if p.kind]
    detector = AnomalyDetector.train(cells[train])
    heats = [detector.heat_map(cells[k]) for k in test]
    scores = np.array([detector.image_score(h) for h in heats])
    labels = np.array([parts[k].kind != "" for k in test])
    assert roc_auc(labels, scores) > 0.85
    pixel = roc_auc(np.stack([parts[k].mask for k in test if parts[k].kind]),
                    np.stack([upsample(h, 8) for h, k in zip(heats, test, strict=True) if parts[k].kind]))
    assert pixel > 0.8


def test_greedy_coreset_covers_far_points() -> None:
    pts = np.concatenate([np.zeros((50, 2)), np.array([[10.0, 10.0], [-10.0, 5.0]])])
    chosen = set(greedy_coreset(pts, 3).tolist())
    assert {50, 51} <= chosen
