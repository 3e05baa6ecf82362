"""Synthesised steel-like surface images with injected defects and their pixel masks.

The camera of the virtual factory needs parts to photograph, and the anomaly detector needs images whose
defects are known to the pixel. A surface is band-limited noise stretched along the rolling direction plus
slow shading; a defect is one of: a scratch (thin bright or dark line), a pit cluster (dark spots), a patch
(a smooth dark blob) or an inclusion (an elongated dark streak). Everything is drawn from one seeded
generator, so a test or a benchmark gets the same images every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

DEFECT_KINDS: tuple[str, ...] = ("scratch", "pits", "patch", "inclusion")


@dataclass(frozen=True)
class SyntheticPart:
    """One synthesised image, its defect mask (True on defect pixels) and the defect kind ('' if none)."""

    image: NDArray[np.uint8]
    mask: NDArray[np.bool_]
    kind: str


def surface(rng: np.random.Generator, size: int = 200) -> NDArray[np.float64]:
    """A defect-free surface: anisotropic grain, fine noise and slow shading, values around 128."""
    grain = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=(0.8, 6.0))
    grain /= grain.std() + 1e-9
    fine = rng.normal(size=(size, size))
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi)
    shading = 8.0 * np.sin(2 * np.pi * (0.5 * xx + 0.3 * yy) + phase)
    return np.asarray(128.0 + 14.0 * grain + 5.0 * fine + shading, dtype=np.float64)


def _scratch(rng: np.random.Generator, size: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    x0, y0 = rng.uniform(0.2, 0.8, 2) * size
    angle = rng.uniform(-0.35, 0.35) + np.pi / 2  # mostly across the grain
    length = rng.uniform(0.3, 0.7) * size
    dx, dy = np.cos(angle), np.sin(angle)
    along = (xx - x0) * dx + (yy - y0) * dy
    across = -(xx - x0) * dy + (yy - y0) * dx
    width = rng.uniform(1.0, 2.0)
    profile = np.exp(-(across**2) / (2 * width**2)) * (np.abs(along) < length / 2)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return sign * 45.0 * profile, profile > 0.2


def _pits(rng: np.random.Generator, size: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    field = np.zeros((size, size))
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    for _ in range(int(rng.integers(6, 15))):
        y = int(np.clip(cy + rng.normal(0, size * 0.08), 0, size - 1))
        x = int(np.clip(cx + rng.normal(0, size * 0.08), 0, size - 1))
        field[y, x] = 1.0
    spots = ndimage.gaussian_filter(field, rng.uniform(1.5, 2.5))
    spots /= spots.max() + 1e-12
    return -60.0 * spots, spots > 0.25


def _blob(rng: np.random.Generator, size: int, elongation: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    ry = rng.uniform(0.06, 0.14) * size * elongation
    rx = rng.uniform(0.06, 0.14) * size / elongation
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    wobble = ndimage.gaussian_filter(rng.normal(size=(size, size)), 6) * 8
    shape = np.clip(1.2 - d + wobble, 0, 1)
    shape = ndimage.gaussian_filter(shape, 1.5)
    return -40.0 * shape, shape > 0.3


def make_part(rng: np.random.Generator, kind: str = "", size: int = 200) -> SyntheticPart:
    """A surface with one defect of `kind` (one of DEFECT_KINDS) or none if kind is ''."""
    base = surface(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    if kind == "scratch":
        delta, mask = _scratch(rng, size)
    elif kind == "pits":
        delta, mask = _pits(rng, size)
    elif kind == "patch":
        delta, mask = _blob(rng, size, 1.0)
    elif kind == "inclusion":
        delta, mask = _blob(rng, size, 2.5)
    elif kind == "":
        delta = np.zeros_like(base)
    else:
        raise ValueError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECT_KINDS)}")
    image = np.clip(base + delta, 0, 255).astype(np.uint8)
    return SyntheticPart(image, mask, kind)


def make_batch(n_good: int, n_defect: int, seed: int = 0, size: int = 200) -> list[SyntheticPart]:
    """n_good defect-free parts, then n_defect parts cycling through the defect kinds."""
    rng = np.random.default_rng(seed)
    parts = [make_part(rng, "", size) for _ in range(n_good)]
    parts += [make_part(rng, DEFECT_KINDS[k % len(DEFECT_KINDS)], size) for k in range(n_defect)]
    return parts
