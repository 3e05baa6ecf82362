"""Machine models on their own: state machines, physics and the helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopfloor.sim import DOWN, IDLE, RUNNING, SETUP, CncParams, MeterParams, RobotParams
from shopfloor.sim.machines import (
    CNC_SIGNALS,
    REASON_BEARING,
    REASON_NONE,
    REASON_STARVED,
    REASON_TOOL_CHANGE,
    Cnc,
    EnergyMeter,
    Noise,
    Quantizer,
    Robot,
    Signal,
    lag,
    machine_rng,
    per_step,
)

QUIET = {"breakdown_mtbf_h": 1e9, "starvation_mtbf_h": 1e9}  # no random stops
COL = {s.name: i for i, s in enumerate(CNC_SIGNALS)}


def run_cnc(cnc: Cnc, steps: int, feed_ok: bool = True) -> np.ndarray:
    return np.array([cnc.step(feed_ok) for _ in range(steps)])


def test_helpers() -> None:
    assert per_step(1.0, 3600.0) == pytest.approx(1 - math.exp(-1))
    assert per_step(1.0, 1.0) == pytest.approx(1 / 3600, rel=1e-3)
    assert lag(10.0, 10.0) == pytest.approx(1 - math.exp(-1))
    q = Quantizer(
        [Signal("a", "", range=(0.0, 10.0), decimals=1), Signal("b", "", decimals=0), Signal("c", "", decimals=2)]
    )
    out = q([3.14159, -0.4, math.nan])
    assert out[0] == 3.1 and out[1] == 0.0 and math.copysign(1, out[1]) == 1 and math.isnan(out[2])
    assert q([12.0, 2.5, 1.005])[0] == 10.0


def test_noise_streams_depend_on_seed_and_name_only() -> None:
    a = Noise(machine_rng(1, "cnc1"), 3, 2)
    b = Noise(machine_rng(1, "cnc1"), 3, 2)
    c = Noise(machine_rng(1, "cnc2"), 3, 2)
    za = [a.next() for _ in range(1100)]  # across block boundaries
    assert za == [b.next() for _ in range(1100)]
    assert za[0] != c.next()
    assert all(len(z) == 3 and len(u) == 2 for z, u in za)


def test_tool_wear_forces_a_tool_change_then_a_new_tool() -> None:
    p = CncParams(cycle_time_s=10.0, tool_life_parts=5.0, tool_change_s=120.0, bearing_life_h=1e6, **QUIET)
    v = run_cnc(Cnc("cnc1", p, seed=1, dt=1.0), 400)
    state, reason, tool = v[:, 0], v[:, 1], v[:, COL["tool_wear"]]
    setup = np.flatnonzero(state == SETUP)
    assert len(setup) > 0 and (reason[setup] == REASON_TOOL_CHANGE).all()
    first = setup[0]
    assert tool[first] == 100.0
    end = first + np.flatnonzero(state[first:] != SETUP)[0]
    assert 120 <= end - first <= 120 * 1.5
    assert state[end] == RUNNING and tool[end] == 0.0
    assert (v[first:end, COL["spindle_speed"]][10:] == 0).all()  # the spindle runs down, no cutting


def test_worn_bearing_fails_after_rising_vibration() -> None:
    p = CncParams(bearing_life_h=0.5, bearing_repair_s=600.0, tool_life_parts=1e9, **QUIET)
    v = run_cnc(Cnc("cnc1", p, seed=3, dt=1.0), 4 * 3600)
    state, reason = v[:, 0], v[:, 1]
    down = np.flatnonzero((state == DOWN) & (reason == REASON_BEARING))
    assert len(down) > 0
    k = down[0]
    vib, health = v[:, COL["vibration"]], v[:, COL["bearing_health"]]
    assert health[k] == 0.0
    assert vib[k - 600 : k].max() > 5.0 > vib[:600].max()
    assert v[k - 60 : k, COL["bearing_temp"]].mean() > v[:60, COL["bearing_temp"]].mean() + 10
    back = k + np.flatnonzero(state[k:] == RUNNING)[0]
    assert health[back] == 100.0 and reason[back] == REASON_NONE


def test_starved_machine_idles_and_resumes() -> None:
    cnc = Cnc("cnc2", CncParams(**QUIET), seed=2, dt=1.0)
    running = run_cnc(cnc, 300)
    starved = run_cnc(cnc, 300, feed_ok=False)
    resumed = run_cnc(cnc, 300)
    assert (running[:, 0] == RUNNING).all()
    assert (starved[:, 0] == IDLE).all() and (starved[:, 1] == REASON_STARVED).all()
    assert np.ptp(starved[:, COL["parts_good"]] + starved[:, COL["parts_scrap"]]) == 0
    assert (starved[10:, COL["spindle_speed"]] == 0).all()
    assert (resumed[:, 0] == RUNNING).all()
    assert resumed[-1, COL["parts_good"]] > starved[-1, COL["parts_good"]]


def test_robot_cycles_with_the_parts() -> None:
    robot = Robot("robot1", RobotParams(breakdown_mtbf_h=1e9, cycle_time_s=10.0), seed=1, dt=1.0)
    idle = np.array([robot.step(0.0) for _ in range(20)])
    assert (idle[:, 0] == IDLE).all() and (idle[:, 1] == 0).all()
    assert np.allclose(idle[:, 3], 150.0, atol=10)  # holding J2 against gravity
    busy = np.array([robot.step(3.0 if i == 0 else 0.0) for i in range(60)])
    assert busy[-1, 1] == 3
    assert (busy[:25, 0] == RUNNING).all() and busy[-1, 0] == IDLE
    assert np.ptp(busy[:25, 2]) > 150  # J1 swings through the move


def test_energy_meter_integrates_power() -> None:
    meter = EnergyMeter("meter-x", MeterParams(rated_kw=20.0, glitch_mtbf_h=1e9), seed=1, dt=1.0)
    e0 = meter.energy
    light = [meter.step(1.0, 400.0) for _ in range(1800)]
    heavy = [meter.step(19.0, 400.0) for _ in range(1800)]
    assert meter.energy - e0 == pytest.approx((1.0 + 19.0) * 0.5)
    assert np.mean([r[3] for r in light]) < 0.5 < 0.9 < np.mean([r[3] for r in heavy])
    assert np.mean([r[2] for r in heavy]) < np.mean([r[2] for r in light])  # voltage drop under load
    assert np.mean([r[0] for r in heavy]) == pytest.approx(19.0, rel=0.01)
