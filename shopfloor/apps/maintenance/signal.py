"""Vibration signal processing for rolling-element bearings: defect frequencies, spectra, envelopes, statistics.

A local defect on a race or a ball strikes once per pass and rings the structure at its resonances; the
impacts repeat at a characteristic frequency set by the bearing geometry and the shaft speed (BPFO, BPFI,
BSF, FTF). The ringing sits at kHz, the repetition at tens to hundreds of Hz, so the repetition shows in
the spectrum of the envelope of a band-passed signal (envelope analysis), not in the raw spectrum. Features
are taken in orders (multiples of shaft speed) so that they stay at the same place when the load, and with
it the speed, changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sps
from scipy import stats

from shopfloor.core.errors import ShopfloorError

FloatArray = NDArray[np.float64]


class SignalError(ShopfloorError, ValueError):
    """A vibration window that cannot be analysed (too short, not finite, bad sampling rate or band)."""


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-element bearing geometry; diameters in any one unit, contact angle in degrees."""

    n_balls: int
    ball_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.n_balls < 1 or self.ball_diameter <= 0 or self.pitch_diameter <= self.ball_diameter:
            raise SignalError(f"impossible bearing geometry: {self}")

    @property
    def _ratio(self) -> float:
        return self.ball_diameter / self.pitch_diameter * math.cos(math.radians(self.contact_angle_deg))

    def orders(self) -> dict[str, float]:
        """Defect frequencies as multiples of shaft speed (outer race fixed, inner race turning with the shaft)."""
        r = self._ratio
        return {
            "bpfo": self.n_balls / 2.0 * (1.0 - r),
            "bpfi": self.n_balls / 2.0 * (1.0 + r),
            "bsf": self.pitch_diameter / (2.0 * self.ball_diameter) * (1.0 - r * r),
            "ftf": 0.5 * (1.0 - r),
        }

    def frequencies(self, shaft_hz: float) -> dict[str, float]:
        """Defect frequencies in Hz at a shaft speed in Hz."""
        if not shaft_hz > 0:
            raise SignalError(f"shaft speed must be positive, got {shaft_hz}")
        return {name: order * shaft_hz for name, order in self.orders().items()}


# SKF 6205-2RS JEM, the drive-end bearing of the CWRU rig: 9 balls, 0.3126 in, pitch 1.537 in.
SKF_6205 = BearingGeometry(n_balls=9, ball_diameter=0.3126, pitch_diameter=1.537)


def _check(x: FloatArray, fs: float, min_len: int = 16) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size < min_len:
        raise SignalError(f"need a 1-D window of at least {min_len} samples, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SignalError("window holds NaN or infinite samples")
    if not fs > 0:
        raise SignalError(f"sampling rate must be positive, got {fs}")
    return arr


def amplitude_spectrum(x: FloatArray, fs: float) -> tuple[FloatArray, FloatArray]:
    """One-sided amplitude spectrum with a Hann window, scaled so a sine of amplitude A peaks near A."""
    arr = _check(x, fs)
    arr = arr - arr.mean()
    win = np.hanning(arr.size)
    spec = np.abs(np.fft.rfft(arr * win)) * 2.0 / win.sum()
    return np.asarray(np.fft.rfftfreq(arr.size, 1.0 / fs), dtype=np.float64), np.asarray(spec, dtype=np.float64)


def bandpass(x: FloatArray, fs: float, low_hz: float, high_hz: float, order: int = 4) -> FloatArray:
    """Zero-phase Butterworth band-pass (second-order sections, stable at narrow bands)."""
    arr = _check(x, fs)
    nyq = fs / 2.0
    if not 0 < low_hz < high_hz < nyq:
        raise SignalError(f"band {low_hz}-{high_hz} Hz must lie inside 0-{nyq} Hz")
    sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    return np.asarray(sps.sosfiltfilt(sos, arr), dtype=np.float64)


def envelope(x: FloatArray, fs: float, band: tuple[float, float] | None = None) -> FloatArray:
    """Magnitude of the analytic signal, after an optional band-pass around the structural resonance."""
    arr = _check(x, fs)
    if band is not None:
        arr = bandpass(arr, fs, band[0], band[1])
    return np.asarray(np.abs(sps.hilbert(arr - arr.mean())), dtype=np.float64)


def envelope_spectrum(
    x: FloatArray, fs: float, band: tuple[float, float] | None = None
) -> tuple[FloatArray, FloatArray]:
    """Amplitude spectrum of the envelope: where impact repetition rates (BPFO, BPFI...) show as lines."""
    return amplitude_spectrum(envelope(x, fs, band), fs)


def peak_near(freqs: FloatArray, spec: FloatArray, target_hz: float, tolerance_hz: float) -> float:
    """Largest spectral amplitude within +-tolerance of a target frequency (0 if the target is out of range)."""
    lo = np.searchsorted(freqs, target_hz - tolerance_hz, side="left")
    hi = np.searchsorted(freqs, target_hz + tolerance_hz, side="right")
    if hi <= lo:
        return 0.0
    return float(spec[lo:hi].max())


TIME_FEATURES: tuple[str, ...] = (
    "rms", "std", "peak", "peak_to_peak", "crest", "kurtosis", "skewness", "shape", "impulse", "clearance",
)


def time_statistics(x: FloatArray) -> FloatArray:
    """Classic condition-monitoring statistics of a window, in the order of TIME_FEATURES.

    Impacts raise kurtosis, crest and impulse factors before they raise the RMS, which is why they are
    kept beside the energy measures.
    """
    arr = _check(x, 1.0)
    centred = arr - arr.mean()
    rms = float(np.sqrt(np.mean(centred**2)))
    std = float(centred.std())
    peak = float(np.max(np.abs(centred)))
    mean_abs = float(np.mean(np.abs(centred)))
    sqrt_mean = float(np.mean(np.sqrt(np.abs(centred)))) ** 2
    tiny = 1e-12
    return np.array([
        rms, std, peak, float(centred.max() - centred.min()),
        peak / (rms + tiny),
        float(stats.kurtosis(centred, fisher=False)) if std > 0 else 0.0,
        float(stats.skew(centred)) if std > 0 else 0.0,
        rms / (mean_abs + tiny), peak / (mean_abs + tiny), peak / (sqrt_mean + tiny),
    ])
