"""Defect localisation: sliding-window box classification on texture descriptors -> boxes and heat maps.

An image is cut into 8 x 8-pixel cells whose dense texture channels (features.image_cells: LBP sign and
magnitude histograms, intensity, gradient, Gabor energy) are summed into an integral image. Candidate boxes
are every placement, at a one-cell stride, of a set of box shapes learnt from the training boxes (k-means on
width and height). Each candidate is described by the texture inside it, how that differs from the image as a
whole and from a ring around it, its geometry, and the image classifier's decision values; a LightGBM model
says which class it is a box of (IoU >= 0.5 with an annotated box of that class, box names as labels) or
none, and a LightGBM regressor on the same descriptors predicts the box's IoU with the nearest annotated box.
A box's confidence for a class is the geometric mean of that class probability and the predicted IoU (ranking
by localisation quality as well as class: +0.026 mAP on a validation split inside the training images); greedy
NMS removes duplicates, and the heat map of a class is the mean confidence of the candidates covering each cell.

Why this and not a CNN detector: no pretrained weights may be fetched, training must fit in minutes on 2 CPU
cores, and integral images make the descriptor of any of the ~6,000 boxes per image a few additions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from sklearn.cluster import KMeans

from shopfloor.apps.inspection.dataset import CLASSES, Box
from shopfloor.apps.inspection.metrics import Detection, box_iou

F32 = NDArray[np.float32]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class LocaliserConfig:
    """The fixed choices of the localiser (decided without looking at the test split)."""

    cell: int = 8
    shapes: int = 24
    positives_per_image: int = 80
    negatives_per_image: int = 80
    positive_iou: float = 0.5
    rounds: int = 150
    learning_rate: float = 0.1
    leaves: int = 31
    nms_iou: float = 0.3     # chosen with max_boxes on a validation split inside the training images
    max_boxes: int = 25
    threads: int = 1
    seed: int = 0


def box_shapes(boxes: Sequence[Sequence[Box]], cell: int, grid: int, k: int, seed: int) -> IntArray:
    """k box shapes (width, height in cells) from k-means over the training boxes, plus the whole image."""
    wh = np.asarray([((b.xmax - b.xmin) / cell, (b.ymax - b.ymin) / cell) for bs in boxes for b in bs])
    k = min(k, len(np.unique(np.round(wh), axis=0)))
    centres = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(np.log(np.maximum(wh, 0.5))).cluster_centers_
    shapes = np.clip(np.round(np.exp(centres)), 1, grid).astype(np.int64)
    shapes = np.vstack([shapes, [[grid, grid]]])
    return np.asarray(np.unique(shapes, axis=0), dtype=np.int64)


def candidates(shapes: IntArray, grid: int) -> IntArray:
    """Every placement of every shape at a one-cell stride: (N x 4) [x0, y0, x1, y1] in cells."""
    out: list[IntArray] = []
    for w, h in shapes:
        xs, ys = np.meshgrid(np.arange(grid - w + 1), np.arange(grid - h + 1))
        x0, y0 = xs.ravel(), ys.ravel()
        out.append(np.stack([x0, y0, x0 + w, y0 + h], axis=1))
    return np.asarray(np.concatenate(out), dtype=np.int64)


def _box_sums(integral: FloatArray, b: IntArray) -> FloatArray:
    """Channel sums over boxes (N x C) from an integral image (C x G+1 x G+1)."""
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    s = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    return np.asarray(s.T, dtype=np.float64)


# channels of features.dense_channels used for the side and half contrasts: LBP (8, 1) sign histogram,
# intensity, its square, gradient and the 12 Gabor energies (the last 15 channels)
EDGE_CHANNELS = np.r_[0:10, 56:71]


def _mean_over(integral: FloatArray, b: IntArray, fallback: FloatArray) -> FloatArray:
    """Channel means over boxes; boxes of zero area take `fallback` (e.g. a box on the image border)."""
    area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).astype(np.float64)
    safe = np.where(area[:, None] > 0, _box_sums(integral, b) / np.maximum(area, 1)[:, None], fallback)
    return np.asarray(safe, dtype=np.float64)


def box_descriptors(cells: F32, boxes: IntArray, image_scores: FloatArray) -> F32:
    """Descriptor of each candidate box (N x D).

    Inside means, inside minus image, inside minus a surrounding ring, then for a subset of channels the
    contrast with each of the four strips just outside the box (does the defect end at this side?) and
    between the box's halves (does it fill the box?), the geometry and the image classifier's scores.
    """
    c, gh, gw = cells.shape
    integral = np.zeros((c, gh + 1, gw + 1))
    integral[:, 1:, 1:] = cells.astype(np.float64).cumsum(axis=1).cumsum(axis=2)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    area = (w * h).astype(np.float64)
    inside = _box_sums(integral, boxes) / area[:, None]
    margin_x, margin_y = np.maximum(1, w // 4), np.maximum(1, h // 4)
    outer = np.stack([np.maximum(boxes[:, 0] - margin_x, 0), np.maximum(boxes[:, 1] - margin_y, 0),
                      np.minimum(boxes[:, 2] + margin_x, gw), np.minimum(boxes[:, 3] + margin_y, gh)], axis=1)
    outer_area = ((outer[:, 2] - outer[:, 0]) * (outer[:, 3] - outer[:, 1])).astype(np.float64)
    ring_area = outer_area - area
    ring_sum = _box_sums(integral, outer) - inside * area[:, None]
    ring = np.where(ring_area[:, None] > 0, ring_sum / np.maximum(ring_area, 1)[:, None], inside)
    image_mean = cells.mean(axis=(1, 2)).astype(np.float64)
    sub = integral[EDGE_CHANNELS]
    sub_in = inside[:, EDGE_CHANNELS]
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    sides = [
        np.stack([x0, np.maximum(y0 - margin_y, 0), x1, y0], axis=1),
        np.stack([x0, y1, x1, np.minimum(y1 + margin_y, gh)], axis=1),
        np.stack([np.maximum(x0 - margin_x, 0), y0, x0, y1], axis=1),
        np.stack([x1, y0, np.minimum(x1 + margin_x, gw), y1], axis=1),
    ]
    contrasts = [sub_in - _mean_over(sub, s, sub_in) for s in sides]
    xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
    halves = [
        _mean_over(sub, np.stack([x0, y0, np.maximum(xm, x0 + 1), y1], axis=1), sub_in)
        - _mean_over(sub, np.stack([np.minimum(xm, x1 - 1), y0, x1, y1], axis=1), sub_in),
        _mean_over(sub, np.stack([x0, y0, x1, np.maximum(ym, y0 + 1)], axis=1), sub_in)
        - _mean_over(sub, np.stack([x0, np.minimum(ym, y1 - 1), x1, y1], axis=1), sub_in),
    ]
    geometry = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], w, h, area, w / h,
                         ring_area / area], axis=1).astype(np.float64)
    scores = np.broadcast_to(image_scores, (len(boxes), len(image_scores)))
    return np.hstack([inside, inside - image_mean, inside - ring, *contrasts, *[np.abs(h) for h in halves],
                      geometry, scores]).astype(np.float32)


def box_targets(boxes_px: FloatArray, truths: Sequence[Box], iou: float, classes: Sequence[str] = CLASSES
                ) -> tuple[IntArray, FloatArray]:
    """Per candidate: 1 + class of the best-overlapping annotated box if IoU >= `iou`, else 0; and that IoU."""
    if not truths:
        return np.zeros(len(boxes_px), dtype=np.int64), np.zeros(len(boxes_px))
    gt = np.asarray([[b.xmin, b.ymin, b.xmax, b.ymax] for b in truths])
    ious = box_iou(boxes_px, gt)
    best = ious.argmax(axis=1)
    best_iou = ious[np.arange(len(boxes_px)), best]
    labels = np.asarray([classes.index(b.label) + 1 for b in truths])[best]
    return np.where(best_iou >= iou, labels, 0).astype(np.int64), best_iou


def nms(boxes: FloatArray, scores: FloatArray, iou: float, limit: int | None = None) -> list[int]:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while len(order) and (limit is None or len(keep) < limit):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i][None], boxes[rest])[0] < iou]
    return keep


@dataclass
class Localiser:
    """A trained box classifier, its box shapes and the rules that turn its scores into boxes and heat maps."""

    model: lgb.LGBMClassifier
    iou_model: lgb.LGBMRegressor
    shapes: IntArray
    config: LocaliserConfig
    grid: int
    n_classes: int = len(CLASSES)

    @classmethod
    def train(cls, cells: F32, boxes: Sequence[Sequence[Box]], image_scores: FloatArray,
              config: LocaliserConfig | None = None, progress: Progress | None = None) -> Localiser:
        """Fit on per-image cells (N x C x G x G), their boxes, and out-of-fold image classifier scores (N x K)."""
        cfg = config or LocaliserConfig()
        grid = cells.shape[-1]
        shapes = box_shapes(boxes, cfg.cell, grid, cfg.shapes, cfg.seed)
        cand = candidates(shapes, grid)
        cand_px = cand.astype(np.float64) * cfg.cell
        rng = np.random.default_rng(cfg.seed)
        xs: list[F32] = []
        ys: list[IntArray] = []
        ious: list[FloatArray] = []
        for k in range(len(cells)):
            labels, best_iou = box_targets(cand_px, boxes[k], cfg.positive_iou)
            pos = np.flatnonzero(labels > 0)
            hard = np.flatnonzero((labels == 0) & (best_iou >= 0.2))
            easy = np.flatnonzero((labels == 0) & (best_iou < 0.2))
            n_neg = cfg.negatives_per_image
            pick = np.concatenate([
                rng.choice(pos, min(len(pos), cfg.positives_per_image), replace=False),
                rng.choice(hard, min(len(hard), n_neg // 2), replace=False),
                rng.choice(easy, min(len(easy), n_neg - min(len(hard), n_neg // 2)), replace=False),
            ]).astype(np.int64)
            xs.append(box_descriptors(cells[k], cand[pick], image_scores[k]))
            ys.append(labels[pick])
            ious.append(best_iou[pick])
            if progress is not None:
                progress(1)
        params: dict[str, Any] = {
            "n_estimators": cfg.rounds, "learning_rate": cfg.learning_rate, "num_leaves": cfg.leaves,
            "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.3, "min_child_samples": 20,
            "random_state": cfg.seed, "n_jobs": cfg.threads, "verbose": -1,
        }
        x = np.concatenate(xs)
        model = lgb.LGBMClassifier(**params).fit(x, np.concatenate(ys))
        iou_model = lgb.LGBMRegressor(**params).fit(x, np.concatenate(ious))
        return cls(model, iou_model, shapes, cfg, grid)

    def score_candidates(self, cells: F32, image_scores: FloatArray) -> tuple[IntArray, FloatArray]:
        """All candidate boxes of one image (in cells) and their confidence per class (N x classes).

        Confidence = sqrt(P(class) x predicted IoU), so boxes are ranked by how well they fit, not only by class.
        """
        cand = candidates(self.shapes, self.grid)
        desc = box_descriptors(cells, cand, image_scores)
        proba = np.asarray(self.model.predict_proba(desc), dtype=np.float64)
        full = np.zeros((len(cand), self.n_classes + 1))
        full[:, np.asarray(self.model.classes_, dtype=np.int64)] = proba
        quality = np.clip(np.asarray(self.iou_model.predict(desc), dtype=np.float64), 0.0, 1.0)
        return cand, np.sqrt(full[:, 1:] * quality[:, None])

    def detect(self, cells: F32, image_scores: FloatArray, image_index: int = 0
               ) -> tuple[list[Detection], FloatArray]:
        """Boxes (pixels) with class and confidence, and the class heat maps (classes x G x G) of one image."""
        cfg = self.config
        cand, proba = self.score_candidates(cells, image_scores)
        px = cand.astype(np.float64) * cfg.cell
        found: list[Detection] = []
        for c in range(self.n_classes):
            top = np.argsort(-proba[:, c])[:300]
            for i in nms(px[top], proba[top, c], cfg.nms_iou, cfg.max_boxes):
                x0, y0, x1, y1 = (float(v) for v in px[top[i]])
                found.append(Detection(image_index, c, float(proba[top[i], c]), (x0, y0, x1, y1)))
        return found, self.heat_maps(cand, proba)

    def heat_maps(self, cand: IntArray, proba: FloatArray) -> FloatArray:
        """Mean class confidence of the candidate boxes covering each cell (classes x G x G)."""
        g = self.grid
        total = np.zeros((self.n_classes, g + 1, g + 1))
        count = np.zeros((g + 1, g + 1))
        x0, y0, x1, y1 = cand[:, 0], cand[:, 1], cand[:, 2], cand[:, 3]
        for sign, ys, xs in ((1, y0, x0), (-1, y0, x1), (-1, y1, x0), (1, y1, x1)):
            np.add.at(count, (ys, xs), sign)
            for c in range(self.n_classes):
                np.add.at(total[c], (ys, xs), sign * proba[:, c])
        cover = count.cumsum(0).cumsum(1)[:g, :g]
        sums = total.cumsum(1).cumsum(2)[:, :g, :g]
        return np.asarray(sums / np.maximum(cover, 1)[None], dtype=np.float64)


def upsample(heat: FloatArray, cell: int) -> FloatArray:
    """A cell-resolution heat map brought to pixel resolution (bilinear) for overlays."""
    return np.asarray(ndimage.zoom(heat, cell, order=1), dtype=np.float64)
