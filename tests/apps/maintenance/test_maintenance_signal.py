"""Signal processing pinned on generated bearing signals whose defect frequencies are known."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.apps.maintenance import cwru
from shopfloor.apps.maintenance.signal import (
    SKF_6205,
    TIME_FEATURES,
    BearingGeometry,
    SignalError,
    amplitude_spectrum,
    bandpass,
    envelope_spectrum,
    peak_near,
    time_statistics,
)

FS = 12_000.0


def impacts(rate_hz: float, seconds: float = 1.0, resonance_hz: float = 3000.0, noise: float = 0.05,
            seed: int = 0, modulation_hz: float | None = None) -> np.ndarray:
    """Decaying 3 kHz bursts repeating at rate_hz (a local defect), optionally amplitude-modulated, plus noise."""
    rng = np.random.default_rng(seed)
    n = int(FS * seconds)
    t = np.arange(n) / FS
    x = np.zeros(n)
    ring = np.exp(-t[:200] * 900.0) * np.sin(2 * np.pi * resonance_hz * t[:200])
    for k in np.arange(0.0, seconds, 1.0 / rate_hz):
        i = int(k * FS)
        amp = 1.0 if modulation_hz is None else 1.0 + 0.8 * np.cos(2 * np.pi * modulation_hz * k)
        x[i:i + 200] += amp * ring[: n - i]
    return x + noise * rng.standard_normal(n)


def test_defect_orders_of_the_cwru_drive_end_bearing() -> None:
    orders = SKF_6205.orders()
    # the CWRU table: BPFI 5.4152, BPFO 3.5848, FTF 0.39828, rolling element 4.7135 (= 2 x BSF)
    assert orders["bpfi"] == pytest.approx(5.4152, abs=2e-4)
    assert orders["bpfo"] == pytest.approx(3.5848, abs=2e-4)
    assert orders["ftf"] == pytest.approx(0.39828, abs=5e-5)
    assert 2 * orders["bsf"] == pytest.approx(4.7135, abs=2e-3)
    hz = SKF_6205.frequencies(1797 / 60)
    assert hz["bpfi"] == pytest.approx(162.2, abs=0.1)
    assert hz["bpfo"] == pytest.approx(107.4, abs=0.1)


def test_geometry_and_speed_are_checked() -> None:
    with pytest.raises(SignalError):
        BearingGeometry(n_balls=9, ball_diameter=2.0, pitch_diameter=1.0)
    with pytest.raises(SignalError):
        SKF_6205.frequencies(0.0)


def test_amplitude_spectrum_reads_a_sine_amplitude_at_its_frequency() -> None:
    t = np.arange(12_000) / FS
    freqs, spec = amplitude_spectrum(2.5 * np.sin(2 * np.pi * 500.0 * t), FS)
    assert freqs[np.argmax(spec)] == pytest.approx(500.0, abs=1.0)
    assert spec.max() == pytest.approx(2.5, rel=0.02)


@pytest.mark.parametrize("name", ["bpfo", "bpfi"])
def test_envelope_spectrum_finds_the_defect_rate_the_raw_spectrum_hides(name: str) -> None:
    shaft_hz = 29.95
    rate = SKF_6205.frequencies(shaft_hz)[name]
    x = impacts(rate, seconds=1.0)
    freqs, spec = envelope_spectrum(x, FS, band=(2000.0, 4000.0))
    low = (freqs > 20) & (freqs < 400)
    assert freqs[low][np.argmax(spec[low])] == pytest.approx(rate, abs=2.0)
    # the raw spectrum's energy sits at the 3 kHz resonance, not at the defect rate
    rf, rs = amplitude_spectrum(x, FS)
    assert rf[np.argmax(rs)] > 2000.0
    assert peak_near(freqs, spec, 2 * rate, 3.0) > 5 * np.median(spec[low])


def test_inner_race_sidebands_at_shaft_speed() -> None:
    shaft_hz = 29.95
    rate = SKF_6205.frequencies(shaft_hz)["bpfi"]
    x = impacts(rate, seconds=2.0, modulation_hz=shaft_hz)  # the defect turns through the load zone
    freqs, spec = envelope_spectrum(x, FS, band=(2000.0, 4000.0))
    floor = float(np.median(spec[(freqs > 20) & (freqs < 600)]))
    assert peak_near(freqs, spec, rate - shaft_hz, 1.5) > 5 * floor
    assert peak_near(freqs, spec, rate + shaft_hz, 1.5) > 5 * floor


def test_time_statistics_of_a_sine_and_of_impacts() -> None:
    t = np.arange(12_000) / FS
    s = time_statistics(np.sin(2 * np.pi * 50 * t))
    assert len(s) == len(TIME_FEATURES)
    rms, _, peak, _, crest, kurt, skew = s[:7]
    assert rms == pytest.approx(1 / np.sqrt(2), rel=1e-3)
    assert peak == pytest.approx(1.0, rel=1e-3)
    assert crest == pytest.approx(np.sqrt(2), rel=1e-3)
    assert kurt == pytest.approx(1.5, rel=1e-2)
    assert skew == pytest.approx(0.0, abs=1e-6)
    assert time_statistics(impacts(107.4))[5] > 5.0  # impulsive: kurtosis far above a Gaussian's 3


def test_bad_windows_raise_signal_errors() -> None:
    with pytest.raises(SignalError):
        amplitude_spectrum(np.array([1.0, np.nan] * 20), FS)
    with pytest.raises(SignalError):
        time_statistics(np.ones(3))
    with pytest.raises(SignalError):
        bandpass(np.ones(1000), FS, 5000.0, 7000.0)
    with pytest.raises(SignalError):
        cwru.feature_matrix(np.ones((2, 100)), 30.0)


def test_features_separate_outer_and_inner_race_faults_at_another_speed() -> None:
    """Trained at one shaft speed, the order-domain features still classify at another (the cross-load idea)."""
    def batch(kind: str, shaft_hz: float, seed: int) -> np.ndarray:
        rate = SKF_6205.frequencies(shaft_hz)[kind]
        x = impacts(rate, seconds=1.4, seed=seed, noise=0.2)
        return cwru.feature_matrix(cwru.windows(x, 0, len(x), cwru.WINDOW), shaft_hz)

    x_train = np.vstack([batch("bpfo", 29.95, 1), batch("bpfi", 29.95, 2)])
    y_train = np.r_[np.zeros(8, dtype=np.int64), np.ones(8, dtype=np.int64)]
    model = cwru.make_classifier(0).fit(x_train, y_train)
    x_test = np.vstack([batch("bpfo", 29.5, 3), batch("bpfi", 29.5, 4)])
    assert np.array_equal(model.predict(x_test), y_train)


def test_windows_stay_inside_their_span() -> None:
    x = np.arange(10_000, dtype=np.float64)
    w = cwru.windows(x, 1000, 7000, 2048)
    assert w.shape == (2, 2048)
    assert w[0, 0] == 1000 and w[-1, -1] < 7000
    assert cwru.windows(x, 0, 100, 50).shape == (0, 2048)
