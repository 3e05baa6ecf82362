"""Anomaly detection from defect-free images only: nearest-neighbour distance of local texture (PatchCore-style).

Training keeps a memory bank of window descriptors (features.cells_to_windows, one per 8 x 8 cell) from good
images, standardised and projected on their first principal components (48 dims, so that the neighbour search
stays cheap on 2 cores), thinned by greedy k-centre selection so that the bank covers the variety of normal
texture with a few thousand entries. A new image's cells are scored by their distance to the nearest bank
entry; the cell scores are the heat map and the image score is the mean of its highest cell scores. Nothing
about the defects is learnt, which is the point for lines that have few or no defect samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from shopfloor.apps.inspection.features import cells_to_windows

F32 = NDArray[np.float32]
FloatArray = NDArray[np.float64]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class AnomalyConfig:
    """Fixed choices: window radii, bank size, how many top cells make the image score, heat-map smoothing."""

    radii: tuple[int, ...] = (1, 2)
    bank_size: int = 2000
    candidates_per_image: int = 24
    components: int = 48
    top_cells: int = 5
    smooth_cells: float = 1.0
    seed: int = 0


def greedy_coreset(points: FloatArray, size: int, seed: int = 0) -> NDArray[np.int64]:
    """k-centre greedy selection (each new point is the one farthest from those chosen): covers the space."""
    n = len(points)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(size - 1):
        k = int(np.argmax(dist))
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(points - points[k], axis=1))
    return np.asarray(chosen, dtype=np.int64)


@dataclass
class AnomalyDetector:
    """Memory bank of normal window descriptors and the scaler they were standardised with."""

    bank: FloatArray
    mean: FloatArray
    scale: FloatArray
    projection: PCA
    config: AnomalyConfig
    index: NearestNeighbors

    @classmethod
    def train(cls, good_cells: F32, config: AnomalyConfig | None = None, progress: Progress | None = None
              ) -> AnomalyDetector:
        """Build the bank from defect-free images' cell means (N x C x gh x gw, features.image_cells)."""
        cfg = config or AnomalyConfig()
        rng = np.random.default_rng(cfg.seed)
        samples: list[F32] = []
        for cells in good_cells:
            win = cells_to_windows(cells, cfg.radii)
            flat = win.reshape(-1, win.shape[-1])
            pick = rng.choice(len(flat), min(len(flat), cfg.candidates_per_image), replace=False)
            samples.append(flat[pick])
            if progress is not None:
                progress(1)
        x = np.concatenate(samples).astype(np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        projection = PCA(n_components=min(cfg.components, x.shape[1], len(x)), random_state=cfg.seed)
        z = projection.fit_transform((x - mean) / scale)
        bank = z[greedy_coreset(z, cfg.bank_size, cfg.seed)]
        index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(bank)
        return cls(bank, mean, scale, projection, cfg, index)

    def heat_map(self, cells: F32) -> FloatArray:
        """Distance of every cell's window descriptor to the nearest normal one (gh x gw)."""
        win = cells_to_windows(cells, self.config.radii)
        gh, gw, d = win.shape
        z = self.projection.transform((win.reshape(-1, d).astype(np.float64) - self.mean) / self.scale)
        dist, _ = self.index.kneighbors(z)
        heat = dist[:, 0].reshape(gh, gw)
        if self.config.smooth_cells > 0:
            heat = ndimage.gaussian_filter(heat, self.config.smooth_cells)
        return np.asarray(heat, dtype=np.float64)

    def image_score(self, heat: FloatArray) -> float:
        """Mean of the highest cell scores: one bad region is enough, one noisy cell is not."""
        top = np.sort(heat.ravel())[-self.config.top_cells:]
        return float(top.mean())
