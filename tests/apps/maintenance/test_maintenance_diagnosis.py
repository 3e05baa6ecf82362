"""Envelope diagnosis and the simulated spindle bearing: generated windows whose defect frequencies are known."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.apps.maintenance.diagnosis import EnvelopeDiagnoser
from shopfloor.apps.maintenance.service import decode_window
from shopfloor.apps.maintenance.signal import SignalError
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.machines import CncParams
from shopfloor.sim.vibration import (
    SPINDLE_BEARING,
    VibrationExtension,
    VibrationParams,
    bearing_window,
    defect_hz,
    encode_window,
)

P = VibrationParams()
BAND = (P.resonance_hz - 2400.0, P.resonance_hz + 2400.0)
RATED = 12_000.0


@pytest.fixture(scope="module")
def diagnoser() -> EnvelopeDiagnoser:
    return EnvelopeDiagnoser(SPINDLE_BEARING, BAND)


def test_the_window_strikes_at_the_geometry_s_defect_frequency(diagnoser: EnvelopeDiagnoser) -> None:
    rng = np.random.default_rng(0)
    for rpm in (6000.0, 9000.0):  # an outer-race defect: the strongest envelope line is BPFO
        x = bearing_window(rng, "outer", 0.5**3, rpm, RATED, P)
        assert x.dtype == np.float32 and x.size == P.samples
        freqs, spec = diagnoser.envelope_spectrum(x.astype(np.float64), P.fs)
        usable = (freqs > 50) & (freqs < 3000)
        strongest = freqs[usable][np.argmax(spec[usable])]
        assert strongest == pytest.approx(defect_hz("outer", rpm, SPINDLE_BEARING), rel=0.01)
    # An inner-race defect turns with the shaft: BPFI with sidebands at +-1x shaft speed, and 1x itself.
    x = bearing_window(rng, "inner", 0.5**3, 12000.0, RATED, P)
    freqs, spec = diagnoser.envelope_spectrum(x.astype(np.float64), P.fs)
    floor = np.median(spec[(freqs > 50) & (freqs < 6000)])
    bpfi = defect_hz("inner", 12000.0, SPINDLE_BEARING)
    for f0 in (200.0, bpfi - 200.0, bpfi, bpfi + 200.0):
        near = (freqs > f0 - 10) & (freqs < f0 + 10)
        assert spec[near].max() > 10 * floor, f0


@pytest.mark.parametrize("fault", ["inner", "outer", "ball"])
@pytest.mark.parametrize("rpm", [6000.0, 12000.0])
def test_a_developed_defect_is_named_with_confidence(diagnoser: EnvelopeDiagnoser, fault: str, rpm: float) -> None:
    rng = np.random.default_rng(hash((fault, rpm)) % 2**32)
    for _ in range(5):
        d = diagnoser.diagnose(bearing_window(rng, fault, 0.5**3, rpm, RATED, P).astype(np.float64), P.fs, rpm)
        assert d.fault == fault and d.confidence > 0.9, d
        assert sum(d.probabilities.values()) == pytest.approx(1.0)


def test_a_sound_bearing_is_normal(diagnoser: EnvelopeDiagnoser) -> None:
    rng = np.random.default_rng(3)
    for rpm in (3000.0, 8000.0, 12000.0):
        for fault in ("inner", "outer", "ball"):
            d = diagnoser.diagnose(bearing_window(rng, fault, 0.0, rpm, RATED, P).astype(np.float64), P.fs, rpm)
            assert d.fault == "normal" and d.defect_db < 10.0, d


def test_windows_it_cannot_read_are_refused(diagnoser: EnvelopeDiagnoser) -> None:
    good = bearing_window(np.random.default_rng(0), "outer", 0.1, 9000.0, RATED, P).astype(np.float64)
    with pytest.raises(SignalError, match="at least"):
        diagnoser.diagnose(good[:100], P.fs, 9000.0)
    bad = good.copy()
    bad[10] = np.nan
    with pytest.raises(SignalError, match="NaN"):
        diagnoser.diagnose(bad, P.fs, 9000.0)
    with pytest.raises(SignalError, match="shaft speed"):
        diagnoser.diagnose(good, P.fs, 0.0)
    with pytest.raises(SignalError, match="do not fit"):  # at 60,000 rpm the lines pass the Nyquist frequency
        diagnoser.diagnose(good, P.fs, 60_000.0)
    with pytest.raises(SignalError, match="band"):  # a band above Nyquist at 12 kHz sampling
        diagnoser.diagnose(good, 12_000.0, 9000.0)


def test_the_wire_format_round_trips() -> None:
    x = bearing_window(np.random.default_rng(1), "ball", 0.2, 7000.0, RATED, P)
    w = decode_window(encode_window("site/area/line/cell/cnc1", 1_700_000_000_123, P.fs, 7000.0, x))
    assert (w.equipment, w.ts_ns, w.fs, w.rpm) == ("site/area/line/cell/cnc1", 1_700_000_000_123_000_000, P.fs, 7000.0)
    np.testing.assert_array_equal(w.samples, x.astype(np.float64))


def test_each_bearing_life_draws_its_fault_type_and_the_plant_gets_the_health_equipment() -> None:
    cnc = CncParams(bearing_life_h=0.5, bearing_repair_s=600.0)
    ext = VibrationExtension(7, cncs=(cnc,))
    factory = VirtualFactory(seed=7, start_ns=0, cncs=(cnc,), extensions=[ext])
    config = factory.plant_config()
    assert config.maintenance is not None
    machine = config.maintenance.machines[0]
    assert machine.health.endswith("cell1/cnc1-health") and machine.failure_level_mm_s == cnc.vib_wear_mm_s
    rules = {r.name for r in config.alarms.rules}
    assert {"cnc1-bearing-rul", "cnc1-bearing-health"} <= rules
    factory.advance(6 * 3600)  # several bearing lives of half an hour
    lives = ext._bearings["cnc1"].log
    assert len(lives) >= 3 and {f for _, f in lives} <= {"inner", "outer", "ball"}
    again = VibrationExtension(7, cncs=(cnc,))
    VirtualFactory(seed=7, start_ns=0, cncs=(cnc,), extensions=[again]).advance(6 * 3600)
    assert again._bearings["cnc1"].log == lives  # the same seed, the same faults
