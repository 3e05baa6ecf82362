"""Texture descriptors on generated images: known answers, invariances, and window sums against brute force."""

from __future__ import annotations

import numpy as np

from shopfloor.apps.inspection.features import (
    GABOR_FREQS,
    GABOR_ORIENTS,
    cell_sums,
    clbp_codes,
    gabor_magnitudes,
    glcm_features,
    haar_energies,
    image_features,
    lbp_histograms,
    window_means,
)


def noise(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (size, size))


def test_lbp_of_flat_image_is_all_ones_code() -> None:
    codes = clbp_codes(np.full((20, 20), 7.0), 8, 1.0)
    assert (codes.sign == 8).all()       # every neighbour >= centre: uniform code P
    assert (codes.centre == 1).all()


def test_riu2_codes_are_rotation_invariant() -> None:
    img = noise()
    for points, radius in ((8, 1.0), (16, 2.0)):
        a = np.bincount(clbp_codes(img, points, radius).sign.ravel(), minlength=points + 2)
        b = np.bincount(clbp_codes(np.rot90(img).copy(), points, radius).sign.ravel(), minlength=points + 2)
        # equal up to rounding ties of interpolated neighbours (a few pixels in thousands)
        assert np.abs(a - b).sum() <= 0.002 * a.sum()
    assert np.allclose(lbp_histograms(img), lbp_histograms(np.rot90(img).copy()), atol=5e-3)


def test_gabor_peaks_at_the_grating_frequency_and_orientation() -> None:
    x = np.arange(128)
    grating = 128 + 60 * np.cos(2 * np.pi * 0.14 * x)[None, :].repeat(128, axis=0)
    energy = gabor_magnitudes(grating).mean(axis=(1, 2)).reshape(len(GABOR_FREQS), GABOR_ORIENTS)
    f, o = np.unravel_index(int(np.argmax(energy)), energy.shape)
    assert GABOR_FREQS[f] == 0.14 and o == 0


def test_glcm_and_wavelets_of_flat_image() -> None:
    flat = np.full((32, 32), 100.0)
    glcm = glcm_features(flat).reshape(-1, 5)
    assert np.allclose(glcm[:, 0], 0.0) and np.allclose(glcm[:, 2], 1.0)  # no contrast, all energy in one cell
    assert np.allclose(haar_energies(flat), 0.0)


def test_image_features_are_finite_and_fixed_length() -> None:
    a = image_features(noise(1, 200).astype(np.uint8))
    b = image_features(np.full((200, 200), 90, dtype=np.uint8))
    assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()


def test_window_means_match_brute_force() -> None:
    chans = np.random.default_rng(2).random((3, 40, 48)).astype(np.float32)
    cells = cell_sums(chans, 8)
    assert cells.shape == (3, 5, 6)
    assert np.isclose(cells[1, 2, 3], chans[1, 16:24, 24:32].sum(), rtol=1e-5)
    win = window_means(cells, 1)
    assert np.isclose(win[0, 0, 0], cells[0, 0:2, 0:2].mean(), rtol=1e-5)    # clipped at the corner
    assert np.isclose(win[2, 2, 3], cells[2, 1:4, 2:5].mean(), rtol=1e-5)
