"""Hand-crafted texture features for steel-surface images, in NumPy only.

Two shapes of the same descriptors:

- `image_features(img)`: one vector per image (classification): completed local binary patterns (sign,
  magnitude, centre; rotation-invariant uniform codes) at three radii and on a two-level pyramid, Gabor
  energies (5 frequencies x 6 orientations), grey-level co-occurrence statistics, Haar wavelet energies,
  gradient-orientation histograms and intensity statistics.
- `dense_channels(img)` + `window_features(...)`: the same kinds of measurements per pixel, summed per cell
  and pooled over windows around every cell (localisation and anomaly heat maps), so that one pass over an
  image gives the features of every window through box sums instead of re-running the descriptors.

Why hand-crafted: no pretrained weights may be fetched and training runs on 2 CPU cores; NEU textures are
what LBP/Gabor descriptors were designed for (the published AECLBP + SVM result is 98.93 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
F32 = NDArray[np.float32]

FEATURE_VERSION = "tex-1"
LBP_SCALES: tuple[tuple[int, float], ...] = ((8, 1.0), (16, 2.0), (24, 3.0))
GABOR_FREQS: tuple[float, ...] = (0.04, 0.08, 0.14, 0.22, 0.33)
GABOR_ORIENTS = 6
GLCM_LEVELS = 16
GLCM_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (d * dy, d * dx) for d in (1, 2, 4, 8) for dy, dx in ((0, 1), (1, 1), (1, 0), (1, -1))
)


# ---------------------------------------------------------------------------------------- local binary patterns

def _bilinear_neighbours(img: FloatArray, points: int, radius: float) -> FloatArray:
    """The P circular neighbours of every pixel (P x H x W), bilinear interpolation, edges replicated."""
    h, w = img.shape
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(img, pad, mode="edge")
    out = np.empty((points, h, w))
    for p in range(points):
        angle = 2.0 * np.pi * p / points
        dy, dx = -radius * np.sin(angle), radius * np.cos(angle)
        dy, dx = round(dy, 6), round(dx, 6)
        y0, x0 = int(np.floor(dy)), int(np.floor(dx))
        fy, fx = dy - y0, dx - x0

        def sl(oy: int, ox: int) -> FloatArray:
            return padded[pad + oy: pad + oy + h, pad + ox: pad + ox + w]

        out[p] = ((1 - fy) * (1 - fx) * sl(y0, x0) + (1 - fy) * fx * sl(y0, x0 + 1)
                  + fy * (1 - fx) * sl(y0 + 1, x0) + fy * fx * sl(y0 + 1, x0 + 1))
    return out


def _riu2(bits: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Rotation-invariant uniform code: number of ones if at most 2 transitions around the circle, else P+1."""
    points = bits.shape[0]
    ones = bits.sum(axis=0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    return np.asarray(np.where(transitions <= 2, ones, points + 1), dtype=np.int64)


@dataclass(frozen=True)
class LbpCodes:
    """Per-pixel completed-LBP codes at one (P, R): sign and magnitude riu2 codes (0..P+1) and centre bit."""

    points: int
    sign: NDArray[np.int64]
    magnitude: NDArray[np.int64]
    centre: NDArray[np.int64]


def clbp_codes(img: FloatArray, points: int, radius: float) -> LbpCodes:
    """Completed LBP (Guo, Zhang and Zhang 2010): sign, magnitude (thresholded at the image's mean) and centre."""
    neighbours = _bilinear_neighbours(img, points, radius)
    diff = neighbours - img[None]
    sign = _riu2(diff >= 0)
    mag = np.abs(diff)
    magnitude = _riu2(mag >= mag.mean())
    centre = (img >= img.mean()).astype(np.int64)
    return LbpCodes(points, sign, magnitude, centre)


def _hist(codes: NDArray[np.int64], bins: int) -> FloatArray:
    counts = np.bincount(codes.ravel(), minlength=bins).astype(np.float64)
    return np.asarray(counts / max(counts.sum(), 1.0), dtype=np.float64)


def lbp_histograms(img: FloatArray) -> FloatArray:
    """CLBP histograms: S, M and joint S/M/C at three radii, and S/M at (8, 1) on 2x and 4x downsampled images."""
    parts: list[FloatArray] = []
    for points, radius in LBP_SCALES:
        c = clbp_codes(img, points, radius)
        n = points + 2
        parts.append(_hist(c.sign, n))
        parts.append(_hist(c.magnitude, n))
        parts.append(_hist((c.sign * n + c.magnitude) * 2 + c.centre, n * n * 2))
    level = img
    for _ in range(2):
        level = _downsample2(level)
        c = clbp_codes(level, 8, 1.0)
        parts.append(_hist(c.sign * 10 + c.magnitude, 100))
    return np.concatenate(parts)


def _downsample2(img: FloatArray) -> FloatArray:
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    return np.asarray(img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)), dtype=np.float64)


# --------------------------------------------------------------------------------------------------- Gabor bank

@lru_cache(maxsize=8)
def _gabor_bank(size: int, freqs: tuple[float, ...], orients: int) -> NDArray[np.complex128]:
    """One-sided Gabor filters in the frequency domain (F x size x size): responses are analytic signals."""
    u = np.fft.fftfreq(size)[None, :]
    v = np.fft.fftfreq(size)[:, None]
    bank = np.empty((len(freqs) * orients, size, size))
    k = 0
    for f0 in freqs:
        for o in range(orients):
            theta = np.pi * o / orients
            ur = u * np.cos(theta) + v * np.sin(theta)
            vr = -u * np.sin(theta) + v * np.cos(theta)
            su, sv = 0.45 * f0, 0.3 * f0
            bank[k] = np.exp(-((ur - f0) ** 2) / (2 * su**2) - vr**2 / (2 * sv**2))
            k += 1
    return bank.astype(np.complex128)


def gabor_magnitudes(img: FloatArray, freqs: tuple[float, ...] = GABOR_FREQS,
                     orients: int = GABOR_ORIENTS) -> FloatArray:
    """|Gabor response| per filter (F x H x W), image reflected to a power-of-two square to tame edges."""
    h, w = img.shape
    size = 1 << int(np.ceil(np.log2(max(h, w) + 32)))
    py, px = (size - h) // 2, (size - w) // 2
    padded = np.pad(img - img.mean(), ((py, size - h - py), (px, size - w - px)), mode="reflect")
    spectrum = np.fft.fft2(padded)
    bank = _gabor_bank(size, freqs, orients)
    responses = np.fft.ifft2(spectrum[None] * bank, axes=(-2, -1))
    return np.abs(responses[:, py:py + h, px:px + w])


# ------------------------------------------------------------------------------------------------ co-occurrence

def glcm_features(img: FloatArray, levels: int = GLCM_LEVELS) -> FloatArray:
    """Haralick statistics (contrast, homogeneity, energy, correlation, entropy) for 16 offsets, symmetric GLCM."""
    lo, hi = np.percentile(img, (0.5, 99.5))
    q = np.clip(((img - lo) / max(hi - lo, 1e-9) * levels).astype(np.int64), 0, levels - 1)
    i_idx, j_idx = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    feats: list[float] = []
    h, w = q.shape
    for dy, dx in GLCM_OFFSETS:
        a = q[max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
        b = q[max(0, dy): max(0, dy) + a.shape[0], max(0, dx): max(0, dx) + a.shape[1]]
        m = np.bincount((a * levels + b).ravel(), minlength=levels * levels).reshape(levels, levels).astype(float)
        m = m + m.T
        p = m / m.sum()
        mu_i = (i_idx * p).sum()
        sd = np.sqrt(((i_idx - mu_i) ** 2 * p).sum())
        feats.extend([
            ((i_idx - j_idx) ** 2 * p).sum(),
            (p / (1.0 + np.abs(i_idx - j_idx))).sum(),
            np.sqrt((p**2).sum()),
            ((i_idx - mu_i) * (j_idx - mu_i) * p).sum() / max(sd * sd, 1e-12),
            -(p[p > 0] * np.log(p[p > 0])).sum(),
        ])
    return np.asarray(feats)


# ------------------------------------------------------------------------------------------ wavelets, gradients

def haar_energies(img: FloatArray, levels: int = 3) -> FloatArray:
    """Mean |coefficient| and std of the three detail sub-bands at each level of a Haar decomposition."""
    feats: list[float] = []
    a = img
    for _ in range(levels):
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        a = a[:h, :w]
        tl, tr, bl, br = a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]
        for band in ((tl + tr - bl - br) / 2, (tl - tr + bl - br) / 2, (tl - tr - bl + br) / 2):
            feats.extend([float(np.abs(band).mean()), float(band.std())])
        a = (tl + tr + bl + br) / 2
    return np.asarray(feats)


def gradients(img: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Sobel gradient magnitude and unsigned orientation in [0, pi)."""
    p = np.pad(img, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)


def orientation_histogram(img: FloatArray, bins: int = 12) -> FloatArray:
    """Magnitude-weighted histogram of gradient orientation (a global HOG), at full and half resolution."""
    parts: list[FloatArray] = []
    level = img
    for _ in range(2):
        mag, ang = gradients(level)
        idx = np.minimum((ang / np.pi * bins).astype(np.int64), bins - 1)
        hist = np.bincount(idx.ravel(), weights=mag.ravel(), minlength=bins)
        parts.append(hist / max(hist.sum(), 1e-12))
        parts.append(np.asarray([mag.mean(), mag.std()]))
        level = _downsample2(level)
    return np.concatenate(parts)


def intensity_statistics(img: FloatArray) -> FloatArray:
    """Grey-level moments, percentiles, a 16-bin histogram, and how much rows and columns differ."""
    x = img.ravel()
    mu, sd = x.mean(), x.std()
    z = (x - mu) / max(sd, 1e-9)
    pct = np.percentile(x, (1, 5, 25, 50, 75, 95, 99))
    hist = np.histogram(x, bins=16, range=(0.0, 255.0))[0] / x.size
    return np.concatenate([[mu, sd, (z**3).mean(), (z**4).mean()], pct, hist,
                           [img.mean(axis=1).std(), img.mean(axis=0).std()]])


def image_features(image: NDArray[np.uint8]) -> FloatArray:
    """The classification descriptor of one grayscale image (2,723 values for 200 x 200)."""
    img = image.astype(np.float64)
    gabor = gabor_magnitudes(img)
    return np.concatenate([
        lbp_histograms(img),
        gabor.mean(axis=(1, 2)),
        gabor.std(axis=(1, 2)),
        glcm_features(img),
        haar_energies(img),
        orientation_histogram(img),
        intensity_statistics(img),
    ])


# ------------------------------------------------------------------------------------ dense (per-window) features

DENSE_LBP: tuple[tuple[int, float], ...] = ((8, 1.0), (16, 2.0))
DENSE_GABOR_FREQS: tuple[float, ...] = (0.06, 0.14, 0.3)
DENSE_GABOR_ORIENTS = 4


def dense_channels(image: NDArray[np.uint8]) -> F32:
    """Per-pixel channels whose window sums give window descriptors (C x H x W, float32).

    One-hot LBP sign and magnitude codes at two radii (window sum = histogram), and intensity, its square,
    Sobel magnitude and 12 Gabor magnitudes (window sum = mean; the squared intensity gives the std).
    """
    img = image.astype(np.float64)
    chans: list[FloatArray] = []
    for points, radius in DENSE_LBP:
        c = clbp_codes(img, points, radius)
        for codes in (c.sign, c.magnitude):
            chans.append(np.eye(points + 2)[codes].transpose(2, 0, 1))
    norm = img / 255.0
    mag, _ = gradients(norm)
    gab = gabor_magnitudes(norm, DENSE_GABOR_FREQS, DENSE_GABOR_ORIENTS)
    chans.append(np.stack([norm, norm**2, mag]))
    chans.append(gab)
    return np.concatenate(chans).astype(np.float32)


def cell_sums(channels: F32, cell: int) -> F32:
    """Sum every channel over non-overlapping cell x cell blocks (C x H/cell x W/cell)."""
    c, h, w = channels.shape
    gh, gw = h // cell, w // cell
    blocks = channels[:, : gh * cell, : gw * cell].reshape(c, gh, cell, gw, cell)
    return np.asarray(blocks.sum(axis=(2, 4)), dtype=np.float32)


def window_means(cells: F32, radius: int) -> F32:
    """Mean of each channel over the (2r+1)^2 cells around every cell, clipped at the image border."""
    c, gh, gw = cells.shape
    integral = np.zeros((c, gh + 1, gw + 1), dtype=np.float64)
    integral[:, 1:, 1:] = cells.cumsum(axis=1).cumsum(axis=2)
    ys, xs = np.arange(gh), np.arange(gw)
    y0, y1 = np.clip(ys - radius, 0, gh), np.clip(ys + radius + 1, 0, gh)
    x0, x1 = np.clip(xs - radius, 0, gw), np.clip(xs + radius + 1, 0, gw)
    total = (integral[:, y1][:, :, x1] - integral[:, y0][:, :, x1]
             - integral[:, y1][:, :, x0] + integral[:, y0][:, :, x0])
    area = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).astype(np.float64)
    return (total / area[None]).astype(np.float32)


def image_cells(image: NDArray[np.uint8], cell: int = 8) -> F32:
    """Per-cell means of the dense channels (C x H/cell x W/cell): what window features are built from."""
    return cell_sums(dense_channels(image), cell) / float(cell * cell)


def cells_to_windows(cells: F32, radii: tuple[int, ...] = (1, 3)) -> F32:
    """Descriptor of the window around every cell, at several window sizes (gh x gw x D).

    For each radius r: the mean channels over (2r+1)^2 cells (LBP histograms, mean intensity and its square,
    mean gradient and Gabor energy), then the same minus the image's mean, so that a classifier sees both the
    local texture and how it stands out from the rest of the image.
    """
    image_mean = cells.mean(axis=(1, 2), keepdims=True)
    parts: list[F32] = []
    for r in radii:
        win = window_means(cells, r)
        parts.append(win)
        parts.append(win - image_mean)
    return np.ascontiguousarray(np.concatenate(parts).transpose(1, 2, 0))


def window_features(image: NDArray[np.uint8], cell: int = 8, radii: tuple[int, ...] = (1, 3)) -> F32:
    """`cells_to_windows(image_cells(image))`: window descriptors of every cell of one image."""
    return cells_to_windows(image_cells(image, cell), radii)
