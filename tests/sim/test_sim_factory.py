"""VirtualFactory: determinism, plausibility, the fault model, the plant config and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shopfloor.config import parse_plant_config
from shopfloor.config.schema import JsonSource, SparkplugSource
from shopfloor.core.model import AssetModel
from shopfloor.sim import DOWN, IDLE, RUNNING, SETUP, VirtualFactory
from shopfloor.sim.factory import Frame
from shopfloor.sim.machines import (
    REASON_BEARING,
    REASON_BREAKDOWN,
    REASON_NONE,
    REASON_STARVED,
    REASON_TOOL_CHANGE,
)

START = 1_700_000_000_000_000_000
CNCS = ("cnc1", "cnc2", "cnc3")


def run(factory: VirtualFactory, steps: int) -> dict[str, np.ndarray]:
    """Every device's values over ``steps`` steps: device -> (steps, signals)."""
    rows: dict[str, list[np.ndarray]] = {d.name: [] for d in factory.devices}
    for _ in range(steps):
        frame = factory.step()
        for name, values in (*frame.sparkplug.items(), *frame.json.items()):
            rows[name].append(values)
    return {name: np.array(r) for name, r in rows.items()}


def col(factory: VirtualFactory, device: str, signal: str) -> int:
    d = next(d for d in factory.devices if d.name == device)
    return [s.name for s in d.signals].index(signal)


@pytest.fixture(scope="module")
def three_days() -> tuple[VirtualFactory, dict[str, np.ndarray]]:
    """Three simulated days in 20 s steps, as fast as possible."""
    f = VirtualFactory(seed=7, start_ns=START, step_s=20.0)
    return f, run(f, 3 * 4320)


@pytest.fixture(scope="module")
def two_hours() -> tuple[VirtualFactory, dict[str, np.ndarray]]:
    """Two simulated hours in the default 1 s steps."""
    f = VirtualFactory(seed=11, start_ns=START)
    return f, run(f, 7200)


def frames_equal(a: Frame, b: Frame) -> bool:
    return (
        a.ts_ns == b.ts_ns
        and a.sparkplug.keys() == b.sparkplug.keys()
        and a.json.keys() == b.json.keys()
        and all(np.array_equal(a.sparkplug[k], b.sparkplug[k], equal_nan=True) for k in a.sparkplug)
        and all(np.array_equal(a.json[k], b.json[k], equal_nan=True) for k in a.json)
    )


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_frames() -> None:
    a, b = VirtualFactory(seed=5, start_ns=START), VirtualFactory(seed=5, start_ns=START)
    for _ in range(1500):
        assert frames_equal(a.step(), b.step())


def test_different_seeds_differ() -> None:
    a, b = run(VirtualFactory(seed=1, start_ns=START), 50), run(VirtualFactory(seed=2, start_ns=START), 50)
    assert not np.array_equal(a["cnc1"], b["cnc1"])
    assert not np.array_equal(a["meter-robot1"], b["meter-robot1"])


def test_values_do_not_depend_on_the_start_time_or_wall_clock() -> None:
    a, b = VirtualFactory(seed=3, start_ns=START), VirtualFactory(seed=3)  # b starts at the wall clock
    for _ in range(500):
        fa, fb = a.step(), b.step()
        assert fb.ts_ns - fa.ts_ns == b.start_ns - START
        assert all(np.array_equal(fa.sparkplug[k], fb.sparkplug[k], equal_nan=True) for k in fa.sparkplug)
        assert all(np.array_equal(fa.json[k], fb.json[k], equal_nan=True) for k in fa.json)


def test_advance_is_stepping_without_frames() -> None:
    a, b = VirtualFactory(seed=4, start_ns=START), VirtualFactory(seed=4, start_ns=START)
    a.advance(700)
    for _ in range(700):
        b.step()
    assert a.now_ns == b.now_ns == START + 700 * 10**9
    assert frames_equal(a.step(), b.step())


def test_frames_are_independent_copies() -> None:
    f = VirtualFactory(seed=1, start_ns=START)
    first = f.step()
    kept = first.sparkplug["cnc1"].copy()
    first.sparkplug["cnc1"][:] = -1.0
    f.step()
    second = VirtualFactory(seed=1, start_ns=START).step()
    assert np.array_equal(second.sparkplug["cnc1"], kept)


def test_time_advances_in_fixed_steps() -> None:
    f = VirtualFactory(seed=1, start_ns=START, step_s=0.5)
    assert f.now_ns == START
    assert [f.step().ts_ns for _ in range(3)] == [START + 500_000_000 * k for k in (1, 2, 3)]
    assert f.step().ts_ms == (START + 2_000_000_000) // 1_000_000
    with pytest.raises(ValueError):
        VirtualFactory(step_s=0)


# ------------------------------------------------------------------ plant config


def test_plant_config_describes_everything_published() -> None:
    f = VirtualFactory(seed=1, group="g1", node="n1")
    model = AssetModel.from_config(f.plant_config())
    by_source = {(t.source, t.address): t for t in model.tags}
    frame = f.step()
    for device in f.sparkplug_devices:
        source = SparkplugSource(protocol="sparkplug", group="g1", node="n1", device=device.name)
        assert len(frame.sparkplug[device.name]) == len(device.signals)
        for s in device.signals:
            tag = by_source[(source, s.name)]
            assert (tag.unit, tag.data_type, tag.range) == (s.unit, s.type, s.range)
    for device in f.json_devices:
        json_source = JsonSource(protocol="json", device=device.name)
        assert len(frame.json[device.name]) == len(device.signals)
        for s in device.signals:
            assert (json_source, s.name) in by_source
    assert len(model.tags) == sum(len(d.signals) for d in f.devices)
    paths = {t.path for t in model.tags}
    assert "virtual-factory/machining/line1/cell1/cnc1/spindle_speed" in paths
    assert "virtual-factory/machining/line1/conveyor1/belt_speed" in paths
    assert "virtual-factory/machining/line1/cell4/robot1/torque_j2" in paths
    assert "virtual-factory/machining/line1/cell1/meter-cnc1/energy" in paths
    assert f.plant_config().mqtt.json_prefix == "shopfloor/json"


def test_plant_yaml_round_trips() -> None:
    f = VirtualFactory(seed=9, json_prefix="plant/json")
    text = f.plant_yaml()
    assert text.startswith("# plant.yaml")
    assert parse_plant_config(text, "sim.yaml") == f.plant_config()


def test_state_enums_use_the_shared_codes() -> None:
    model = AssetModel.from_config(VirtualFactory().plant_config())
    states = [t.states for t in model.tags if t.name == "state"]
    assert len(states) == 5
    assert all(s == {RUNNING: "running", IDLE: "idle", DOWN: "down", SETUP: "setup"} for s in states)


# ------------------------------------------------------------------ plausibility


@pytest.mark.parametrize("fixture", ["two_hours", "three_days"])
def test_values_stay_in_their_engineering_ranges(fixture: str, request: pytest.FixtureRequest) -> None:
    f, data = request.getfixturevalue(fixture)
    for device in f.devices:
        values = data[device.name]
        for j, s in enumerate(device.signals):
            v = values[:, j]
            if device.kind != "energy_meter" or s.name == "energy":
                assert not np.isnan(v).any(), (device.name, s.name)
            v = v[~np.isnan(v)]
            if s.range is not None:
                assert v.min() >= s.range[0] and v.max() <= s.range[1], (device.name, s.name)
            if s.type != "float64":
                assert np.array_equal(v, np.round(v)), (device.name, s.name)
            if s.states is not None:
                assert set(np.unique(v).astype(int)) <= set(s.states), (device.name, s.name)


@pytest.mark.parametrize("fixture", ["two_hours", "three_days"])
def test_counters_are_monotonic(fixture: str, request: pytest.FixtureRequest) -> None:
    f, data = request.getfixturevalue(fixture)
    for device, signal in [
        *((c, s) for c in CNCS for s in ("parts_good", "parts_scrap")),
        ("robot1", "cycle_count"),
        *((m.name, "energy") for m in f.json_devices),
    ]:
        v = data[device][:, col(f, device, signal)]
        assert (np.diff(v) >= 0).all(), (device, signal)
    assert all(data[c][-1, col(f, c, "parts_good")] > 0 for c in CNCS)


def test_stop_reasons_match_states(three_days: tuple[VirtualFactory, dict[str, np.ndarray]]) -> None:
    _, data = three_days
    allowed = {
        RUNNING: {REASON_NONE},
        IDLE: {REASON_STARVED},
        DOWN: {REASON_BREAKDOWN, REASON_BEARING},
        SETUP: {REASON_TOOL_CHANGE},
    }
    for c in CNCS:
        state, reason = data[c][:, 0].astype(int), data[c][:, 1].astype(int)
        for st, reasons in allowed.items():
            assert set(np.unique(reason[state == st])) <= reasons
        # every kind of stop happens in three days
        assert {IDLE, DOWN, SETUP} <= set(np.unique(state))
        assert 0.6 < np.mean(state == RUNNING) < 0.98


def test_production_rates_follow_cycle_times(two_hours: tuple[VirtualFactory, dict[str, np.ndarray]]) -> None:
    f, data = two_hours
    for c, machine in zip(CNCS, f.cncs, strict=True):
        v = data[c]
        made = v[-1, col(f, c, "parts_good")] + v[-1, col(f, c, "parts_scrap")]
        running_s = np.sum(v[:, 0] == RUNNING) * f.step_s
        assert made == pytest.approx(running_s / machine.p.cycle_time_s, abs=3)
        cycles = v[:, col(f, c, "cycle_time")]
        assert np.all(np.abs(cycles / machine.p.cycle_time_s - 1) < 0.15)


def test_physics_relations(two_hours: tuple[VirtualFactory, dict[str, np.ndarray]]) -> None:
    f, data = two_hours
    for c, machine in zip(CNCS, f.cncs, strict=True):
        v = data[c]
        speed, load, power = v[:, 2], v[:, 3], v[:, 4]
        # spindle power ~ rated power x speed ratio x load
        expected = machine.p.spindle_power_kw * speed / machine.p.rated_speed_rpm * load / 100
        assert np.allclose(power, expected, atol=0.06 * expected.max())
        # a stopped spindle neither loads nor vibrates much
        assert (load[speed == 0] == 0).all()
        # bearing temperature lags: no jumps within a second
        assert np.abs(np.diff(v[:, col(f, c, "bearing_temp")])).max() < 1.0
        # the meter reads the whole machine: spindle plus auxiliaries
        meter = data[f"meter-{c}"][:, 0]
        ok = ~np.isnan(meter)
        assert np.all(meter[ok] >= power[ok] * 0.97)
        assert np.all(meter[ok] <= power[ok] * 1.03 + machine.p.aux_power_kw * 1.05)
    # a belt that stands draws no current; the robot cycles with the parts made
    conv = data["conveyor1"]
    assert (conv[conv[:, 1] == 0, 2] == 0).all()
    parts = sum(data[c][-1, 7] + data[c][-1, 8] for c in CNCS)
    cycles = data["robot1"][-1, 1]
    assert parts - f.robot.p.max_queue <= cycles <= parts
    # energy registers integrate the power (kWh over the run ~ mean kW x hours)
    for m in f.json_devices:
        e = data[m.name][:, 1]
        mean_kw = np.nanmean(data[m.name][:, 0])
        assert e[-1] - e[0] == pytest.approx(mean_kw * (len(e) - 1) / 3600, rel=0.05)


def test_a_down_conveyor_starves_the_cncs() -> None:
    from shopfloor.sim import ConveyorParams

    f = VirtualFactory(seed=2, start_ns=START, step_s=5.0, conveyor=ConveyorParams(breakdown_mtbf_h=0.5))
    data = run(f, 4 * 720)
    conveyor_down = data["conveyor1"][:, 0] == DOWN
    assert conveyor_down.sum() > 10
    for c in CNCS:
        assert not (data[c][conveyor_down, 0] == RUNNING).any()
        assert (data[c][conveyor_down, 1] == REASON_STARVED).mean() > 0.8


# ------------------------------------------------------------------ fault model


def test_bearing_wear_leads_to_a_fault_with_warning_and_repair(
    three_days: tuple[VirtualFactory, dict[str, np.ndarray]],
) -> None:
    f, data = three_days
    failures = 0
    hour = round(3600 / f.step_s)
    for c in CNCS:
        v = data[c]
        reason, vib, temp, health = v[:, 1], v[:, 5], v[:, 6], v[:, 11]
        starts = np.flatnonzero((reason[1:] == REASON_BEARING) & (reason[:-1] != REASON_BEARING)) + 1
        for k in starts:
            if k < hour or k + 12 * hour > len(v):
                continue
            failures += 1
            healthy = (health > 80) & (v[:, 2] > 0)
            assert vib[k - hour : k].max() > 3 * np.median(vib[healthy])  # vibration rises before the failure
            assert temp[k - hour : k].max() > np.median(temp[healthy]) + 10  # and so does the temperature
            assert health[k] == 0
            down = np.flatnonzero(reason[k:] != REASON_BEARING)[0]
            assert 3600 <= down * f.step_s <= 8 * 3600  # hours of repair
            assert health[k + down] > 99  # a new bearing
    assert failures >= 1


def test_tool_wear_raises_scrap_and_forces_tool_changes(
    three_days: tuple[VirtualFactory, dict[str, np.ndarray]],
) -> None:
    f, data = three_days
    for c in CNCS:
        v = data[c]
        tool = v[:, col(f, c, "tool_wear")]
        scrap = np.diff(v[:, col(f, c, "parts_scrap")])
        good = np.diff(v[:, col(f, c, "parts_good")])
        changes = np.flatnonzero((v[1:, 1] == REASON_TOOL_CHANGE) & (v[:-1, 1] != REASON_TOOL_CHANGE)) + 1
        assert len(changes) >= 5
        assert all(tool[k] >= 99.9 for k in changes)
        worn, fresh = tool[1:] > 80, tool[1:] < 50
        rate_worn = scrap[worn].sum() / (scrap[worn].sum() + good[worn].sum())
        rate_fresh = scrap[fresh].sum() / (scrap[fresh].sum() + good[fresh].sum())
        assert rate_worn > 2 * rate_fresh


# ------------------------------------------------------------------ speed


def test_runs_much_faster_than_real_time() -> None:
    f = VirtualFactory(seed=1)
    t0 = time.perf_counter()
    for _ in range(3000):
        f.step()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"3000 steps took {elapsed:.2f} s"
