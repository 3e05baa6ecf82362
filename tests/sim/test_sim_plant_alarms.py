"""The virtual factory's alarm rules: valid for both layouts, and raised by the factory's own physics.

The demo (seed 1) starts with the press's oil cold: its expression rule must rise within the first minute and clear
once the oil is warm, and a plant in good health must raise nothing else in that time (no nuisance alarms).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shopfloor.alarms.config import LimitRule
from shopfloor.alarms.engine import AlarmEngine
from shopfloor.config import parse_plant_config
from shopfloor.core.bus import SampleBus
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.fieldmap import FieldDevice
from shopfloor.sim.machines import Device

START = 1_700_000_000_000_000_000


def demo_factory(seed: int = 1) -> VirtualFactory:
    """The layout of `shopfloor demo`: robot over OPC UA, press over Modbus."""
    return VirtualFactory(seed=seed, start_ns=START, opcua_endpoint="opc.tcp://127.0.0.1:4840/x/", modbus_port=1)


def test_every_machine_has_rules_and_both_layouts_validate() -> None:
    demo = demo_factory().plant_config()
    names = {r.name for r in demo.alarms.rules}
    for machine in ("cnc1", "cnc2", "cnc3", "conveyor1", "robot1", "press1"):
        assert f"{machine}-down" in names
    assert {"cnc1-bearing-temp", "cnc1-vibration", "cnc1-tool-wear", "cnc1-power-mismatch", "press1-oil-cold",
            "press1-hydraulic-pressure", "press1-oil-sensor-stuck", "meter-cnc1-frozen"} <= names
    assert {r.type for r in demo.alarms.rules} == {"limit", "state", "stuck", "expression"}
    pressure = next(r for r in demo.alarms.rules if r.name == "press1-hydraulic-pressure")
    assert isinstance(pressure, LimitRule) and pressure.levels() == {"HH": 205, "LL": 8}

    mqtt_only = VirtualFactory(seed=1)  # `shopfloor sim --print-config`: no press, robot on Sparkplug
    config = parse_plant_config(mqtt_only.plant_yaml(), "sim.yaml")
    assert config == mqtt_only.plant_config()
    assert not any(r.name.startswith("press1") for r in config.alarms.rules)
    assert "robot1-down" in {r.name for r in config.alarms.rules}


def test_the_demo_raises_its_first_alarm_within_a_minute_and_nothing_else(tmp_path: Path) -> None:
    factory = demo_factory()
    config = factory.plant_config()
    model = AssetModel.from_config(config)
    index = TagIndex(model, {t.path: i for i, t in enumerate(model.tags)})
    equipment = {n.name: n.path for n in model.root.walk() if n.level == "equipment"}
    devices: list[Device | FieldDevice] = [*factory.sparkplug_devices, *factory.json_devices, *factory.field_devices]
    ids = {d.name: np.array([index.id_of(f"{equipment[d.name]}/{s.name}") for s in d.signals]) for d in devices}
    engine = AlarmEngine(config.alarms, model, index, SampleBus(), tmp_path)
    engine.open()
    events: list[dict[str, Any]] = []
    engine.listen(events.append)
    try:
        for step in range(8 * 60):
            frame = factory.step()
            tags, values = [], []
            for by_device in (frame.sparkplug, frame.json, frame.opcua, frame.modbus):
                for name, v in by_device.items():
                    tags.append(ids[name])
                    values.append(v)
            tag, value = np.concatenate(tags), np.concatenate(values)
            quality = np.where(np.isnan(value), int(Quality.BAD), int(Quality.GOOD))
            engine.process(SampleBatch.of(tag, np.full(len(tag), frame.ts_ns, np.int64), value, quality))
            if step % 5 == 0:
                engine.tick()
    finally:
        engine.stop()
    seen = [(e["alarm_id"], e["event"], (e["ts_ns"] - START) / 1e9) for e in events]
    assert [(a, e) for a, e, _ in seen] == [("press1-oil-cold", "activated"), ("press1-oil-cold", "cleared")], seen
    assert 30 <= seen[0][2] <= 60  # the 30 s on-delay after the first samples
    assert 5 * 60 <= seen[1][2] <= 8 * 60  # the oil warms from 34 °C past 38 °C, plus the 30 s off-delay
    assert events[0]["value"] is not None and events[0]["value"] < 38
