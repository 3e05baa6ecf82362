"""Platform services and factory extensions: the two plug-in points the scenario apps use.

A service starts after the platform's core and stops before it, writes derived tags that reach
the historian, and shows in /health; a bad derived path is refused. A factory extension adds its
equipment to the plant, sees every step of the line and is started and stopped by the publisher.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from shopfloor.config import parse_plant_config
from shopfloor.core.errors import UnknownTag
from shopfloor.platform import Platform
from shopfloor.sim.extension import Broker
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.publisher import FactoryPublisher
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

PLANT = """\
site:
  name: plant
  areas:
    - name: area1
      lines:
        - name: line1
          equipment:
            - name: pump
              source: {protocol: json, device: pump}
              tags:
                - {name: speed, unit: rpm}
            - name: pump-health
              source: {protocol: derived, app: counter}
              tags:
                - {name: health_index}
                - {name: rul, unit: h}
"""
HEALTH = "plant/area1/line1/pump-health/health_index"
RUL = "plant/area1/line1/pump-health/rul"


class CountingService:
    """Writes two derived tags at start and records the order of its calls."""

    name = "counter"

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.platform: Platform | None = None

    def start(self, platform: Platform) -> None:
        self.calls.append("start")
        assert platform.writer is not None  # the core is up before any service
        self.platform = platform
        now = time.time_ns()
        platform.write([HEALTH, RUL, HEALTH], [now - 1000, now, now], [0.9, 120.0, 0.8])

    def stop(self) -> None:
        assert self.platform is not None and self.platform._writer is not None  # stopped before the core
        self.calls.append("stop")

    def health(self) -> dict[str, object]:
        return {"calls": len(self.calls)}


def test_a_service_writes_derived_tags_between_the_core_start_and_stop(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    calls: list[str] = []
    config = parse_plant_config(PLANT)
    platform = Platform(config, data_dir=tmp_path, broker_url=mosquitto.url, services=[CountingService(calls)])
    platform.start()
    try:
        assert calls == ["start"]
        assert platform.service("counter").health() == {"calls": 1}
        with pytest.raises(KeyError, match="nope"):
            platform.service("nope")
        health: Any = platform.health()
        assert health["services"] == {"counter": {"calls": 1}}
        with pytest.raises(UnknownTag):
            platform.write(["plant/area1/line1/pump-health/nope"], [time.time_ns()], [1.0])
        ids = [platform.tag_index.id_of(p) for p in (HEALTH, RUL)]

        def stored() -> dict[int, list[float]]:
            return {i: sorted(platform.historian.raw(i, 0, time.time_ns() + 1).value.tolist()) for i in ids}

        wait_for(lambda: sum(map(len, stored().values())) == 3, timeout=10)
        assert stored() == {ids[0]: [0.8, 0.9], ids[1]: [120.0]}
    finally:
        platform.stop()
    assert calls == ["start", "stop"]


def test_service_names_are_unique(tmp_path: Path) -> None:
    config = parse_plant_config(PLANT)
    with pytest.raises(ValueError, match="unique"):
        Platform(config, data_dir=tmp_path, services=[CountingService([]), CountingService([])])


def test_derived_tags_of_one_app_may_share_names_across_equipment() -> None:
    text = PLANT + """\
            - name: fan-health
              source: {protocol: derived, app: counter}
              tags:
                - {name: health_index}
"""
    config = parse_plant_config(text)
    assert config.site.areas[0].lines[0].equipment[2].tags[0].name == "health_index"


class RecordingExtension:
    name = "recorder"

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.events: list[str] = []

    def extend_plant(self, plant: dict[str, Any]) -> None:
        line = plant["site"]["areas"][0]["lines"][0]
        line.setdefault("equipment", []).append(
            {"name": "gauge1", "source": {"protocol": "derived", "app": "recorder"}, "tags": [{"name": "level"}]}
        )

    def on_step(self, factory: VirtualFactory) -> None:
        self.steps.append(factory.now_ns)

    def start(self, broker: Broker) -> None:
        self.events.append(f"start {broker.host}:{broker.port}")

    def stop(self) -> None:
        self.events.append("stop")


def test_an_extension_adds_equipment_and_sees_every_step(mosquitto: Mosquitto) -> None:
    ext = RecordingExtension()
    factory = VirtualFactory(seed=3, start_ns=0, extensions=[ext])
    paths = {t.path for t in Platform(factory.plant_config()).model.tags}
    assert any(p.endswith("/gauge1/level") for p in paths)
    publisher = FactoryPublisher(factory, mosquitto.host, mosquitto.port, speed=0)
    publisher.run_for(5)
    publisher.stop()
    assert ext.events == [f"start {mosquitto.host}:{mosquitto.port}", "stop"]
    assert ext.steps == [k * factory.step_ns for k in range(1, 7)]  # the births' step, then five
