"""Streaming detectors: one record at a time, no look-ahead; NAB file reading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from shopfloor.apps.maintenance import anomaly


def daily(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 10 * np.sin(2 * np.pi * t / 96) + rng.normal(scale=0.5, size=n)


def test_windowed_gaussian_matches_nab_definition() -> None:
    det = anomaly.WindowedGaussian(window=4)
    assert det.update(1.0) == 0.0  # nothing seen yet
    for v in (2.0, 3.0, 4.0):
        det.update(v)
    window = np.array([1.0, 2.0, 3.0, 4.0])
    expected = 1 - 0.5 * math.erfc(abs(10.0 - window.mean()) / window.std() / math.sqrt(2))
    assert det.update(10.0) == pytest.approx(expected)
    assert list(det.window) == [2.0, 3.0, 4.0, 10.0]  # the window slides by one


def test_detector_flags_a_spike_at_once_and_rarely_anything_else() -> None:
    x = daily(3000)
    x[2000] += 40.0
    scores = anomaly.run_detector(anomaly.StreamingDetector(), x)
    assert scores[2000] == 1.0
    assert np.sum(scores[500:] >= 0.5) <= 0.005 * 2500  # the rest: at most one record in 200


def test_no_look_ahead() -> None:
    x = daily(1500)
    y = x.copy()
    y[1000:] += 30.0  # a different future
    a = anomaly.run_detector(anomaly.StreamingDetector(), x)
    b = anomaly.run_detector(anomaly.StreamingDetector(), y)
    assert np.array_equal(a[:1000], b[:1000])
    g1 = anomaly.run_detector(anomaly.WindowedGaussian(), x)
    g2 = anomaly.run_detector(anomaly.WindowedGaussian(), y)
    assert np.array_equal(g1[:1000], g2[:1000])


def test_quiet_on_a_flat_and_on_a_noisy_tag() -> None:
    flat = anomaly.run_detector(anomaly.StreamingDetector(), np.full(2000, 3.0))
    assert np.all(flat < 0.5)
    noise = anomaly.run_detector(anomaly.StreamingDetector(), np.random.default_rng(4).normal(size=2000))
    assert np.sum(noise[300:] >= 0.5) <= 0.005 * 1700


def test_bad_values_raise() -> None:
    with pytest.raises(ValueError):
        anomaly.StreamingDetector().update(float("nan"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


def test_read_nab_files(root: Path) -> None:
    tmp_path = root / "nab"
    (tmp_path / "data" / "real").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    rows = "\n".join(f"2014-01-01 00:{m:02d}:00,{m}" for m in range(10))
    (tmp_path / "data" / "real" / "a.csv").write_text("timestamp,value\n" + rows + "\n")
    labels = {"real/a.csv": [["2014-01-01 00:03:00.000000", "2014-01-01 00:05:00.000000"]], "real/b.csv": []}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    series, n = anomaly.load_corpus(root)
    assert [s.name for s in series] == ["real/a.csv"] and n == 1
    assert series[0].windows == [(3, 5)] and series[0].values[9] == 9.0
    bad = {"real/a.csv": [["2014-01-01 00:03:30", "2014-01-01 00:05:00"]]}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(bad))
    with pytest.raises(anomaly.NabFormatError, match="timestamps"):
        anomaly.load_corpus(root)
    (tmp_path / "data" / "real" / "a.csv").write_text("timestamp,value\n2014-01-01 00:00:00,abc\n")
    with pytest.raises(anomaly.NabFormatError, match=":2:"):
        anomaly.load_corpus(root)
