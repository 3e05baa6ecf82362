"""Physics-based bearing diagnosis of one accelerometer window: envelope analysis at the defect frequencies.

Why physics and not the CWRU classifier: a classifier learns one test rig (its bearing, its resonances, its
sampling rate); the spindles of a plant have other bearings and other mounts, and no labelled failures to
train on when the platform starts. Envelope analysis needs only the bearing geometry, the shaft speed and
the band of the structural resonance the strikes ring, all known when the sensor is installed, and it is
what a vibration analyst reads by hand. A trained model (an artifact chosen in config) can replace it
where labelled history exists.

Method: band-pass the window around the resonance, take the envelope (magnitude of the analytic signal),
its amplitude spectrum, and read, for each fault type, the lines at its characteristic frequencies (three
harmonics of BPFO; three harmonics of BPFI and the shaft-rate sidebands of the first; BSF, 2xBSF, 4xBSF)
as a ratio in dB over the spectrum's median around that line (the local floor), averaged per fault type.
The strongest fault type is the diagnosis; its level over a detection threshold (``detect_db``) gives the
probability that there is a fault at all (a logistic curve ``spread_db`` wide), shared among the fault
types by a softmax of their levels (``temperature_db``). Confidence is that probability, a score by
construction (checked on generated windows in the tests, not calibrated on plant failures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sps

from shopfloor.apps.maintenance.signal import BearingGeometry, SignalError

FloatArray = NDArray[np.float64]
FAULT_CODES: Final = {"normal": 0, "inner": 1, "outer": 2, "ball": 3}
FAULT_LABELS: Final = {0: "normal", 1: "inner race", 2: "outer race", 3: "ball"}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One window's verdict: the fault type, its confidence (0-1), every class's probability, and the
    strongest fault type's line level in dB over the envelope spectrum's floor."""

    fault: str
    confidence: float
    probabilities: dict[str, float]
    defect_db: float
    levels_db: dict[str, float]


class EnvelopeDiagnoser:
    """Envelope-spectrum diagnosis for one bearing geometry and resonance band (module docstring)."""

    def __init__(
        self, geometry: BearingGeometry, band_hz: tuple[float, float], *, detect_db: float = 10.0,
        spread_db: float = 1.5, temperature_db: float = 2.0, min_samples: int = 1024,
    ) -> None:
        if not 0 < band_hz[0] < band_hz[1]:
            raise SignalError(f"envelope band must be 0 < low < high, got {band_hz}")
        self.geometry = geometry
        self.band_hz = (float(band_hz[0]), float(band_hz[1]))
        self.detect_db = detect_db
        self.spread_db = spread_db
        self.temperature_db = temperature_db
        self.min_samples = min_samples
        self._sos: dict[float, NDArray[np.float64]] = {}

    def _filter(self, fs: float) -> NDArray[np.float64]:
        sos = self._sos.get(fs)
        if sos is None:
            if not self.band_hz[1] < fs / 2:
                raise SignalError(f"envelope band {self.band_hz} Hz does not fit under {fs / 2:g} Hz (fs {fs:g})")
            sos = np.asarray(sps.butter(4, self.band_hz, btype="bandpass", fs=fs, output="sos"), dtype=np.float64)
            self._sos[fs] = sos
        return sos

    def envelope_spectrum(self, x: FloatArray, fs: float) -> tuple[FloatArray, FloatArray]:
        """Frequencies and amplitude spectrum of the band-passed window's envelope."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 1 or arr.size < self.min_samples:
            raise SignalError(f"need a 1-D window of at least {self.min_samples} samples, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise SignalError("window holds NaN or infinite samples")
        band = sps.sosfiltfilt(self._filter(fs), arr - arr.mean())
        env = np.abs(sps.hilbert(band))
        env -= env.mean()
        hann = np.hanning(env.size)
        spec = np.abs(np.fft.rfft(env * hann)) * 2.0 / hann.sum()
        return np.asarray(np.fft.rfftfreq(env.size, 1.0 / fs), dtype=np.float64), np.asarray(spec, dtype=np.float64)

    def lines(self, shaft_hz: float) -> dict[str, list[float]]:
        """The envelope lines (Hz) read for each fault type at this shaft speed."""
        f = self.geometry.frequencies(shaft_hz)
        return {
            "inner": [f["bpfi"], 2 * f["bpfi"], 3 * f["bpfi"], f["bpfi"] - shaft_hz, f["bpfi"] + shaft_hz],
            "outer": [f["bpfo"], 2 * f["bpfo"], 3 * f["bpfo"]],
            "ball": [f["bsf"], 2 * f["bsf"], 4 * f["bsf"]],
        }

    def diagnose(self, x: FloatArray, fs: float, rpm: float) -> Diagnosis:
        """Diagnose one window sampled at ``fs`` with the shaft at ``rpm``; SignalError if it cannot be read."""
        if not (math.isfinite(rpm) and rpm > 0):
            raise SignalError(f"shaft speed must be positive, got {rpm} rpm")
        if not (math.isfinite(fs) and fs > 0):
            raise SignalError(f"sampling rate must be positive, got {fs}")
        freqs, spec = self.envelope_spectrum(x, fs)
        shaft = rpm / 60.0
        targets = self.lines(shaft)
        top = max(max(v) for v in targets.values()) * 1.1
        if top >= fs / 2:
            raise SignalError(f"defect lines up to {top:.0f} Hz do not fit under {fs / 2:g} Hz at {rpm:g} rpm")
        resolution = fs / (2 * (spec.size - 1))
        levels: dict[str, float] = {}
        for fault, hz in targets.items():
            ratios = []
            for f0 in hz:
                tol = max(1.5 * resolution, 0.006 * f0)
                lo, hi = np.searchsorted(freqs, [f0 - tol, f0 + tol])
                peak = float(spec[lo:hi + 1].max()) if hi >= lo else 0.0
                # The floor around the line (+-half a shaft order, the line itself left out): the envelope
                # spectrum of band-passed noise slopes, so one floor for all lines would favour low ones.
                a, b = np.searchsorted(freqs, [f0 - 0.5 * shaft - tol, f0 + 0.5 * shaft + tol])
                around = np.concatenate([spec[a:lo], spec[hi + 1:b + 1]])
                floor = float(np.median(around)) if around.size else float(np.median(spec))
                ratios.append(peak / (floor + 1e-15))
            levels[fault] = float(np.mean(20.0 * np.log10(np.asarray(ratios) + 1e-12)))
        best = max(levels, key=lambda k: levels[k])
        defect_db = levels[best]
        p_fault = 1.0 / (1.0 + math.exp(-(defect_db - self.detect_db) / self.spread_db))
        z = np.array([levels[k] for k in targets]) / self.temperature_db
        share = np.exp(z - z.max())
        share /= share.sum()
        probs = {"normal": 1.0 - p_fault} | {k: float(p_fault * s) for k, s in zip(targets, share, strict=True)}
        fault = max(probs, key=lambda k: probs[k])
        return Diagnosis(fault, probs[fault], probs, defect_db, levels)


__all__ = ["FAULT_CODES", "FAULT_LABELS", "Diagnosis", "EnvelopeDiagnoser"]
