"""A small plant with a press, and an alarm engine over it that tests feed batch by batch (no thread, no broker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shopfloor.alarms.engine import AlarmEngine
from shopfloor.config import PlantConfig, parse_plant_config
from shopfloor.core.bus import SampleBus
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import SampleBatch

PLANT = """\
site:
  name: plant
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: press
              source: {protocol: json, device: press}
              tags:
                - {name: force, unit: kN}
                - {name: speed, unit: rpm}
                - {name: guard_closed, type: bool}
                - {name: temp, unit: C}
                - {name: state, type: enum, states: {0: running, 1: idle, 2: down, 3: maintenance}}
            - name: pump
              source: {protocol: json, device: pump}
              tags:
                - {name: pressure, unit: bar}
"""
PRESS = "plant/a/l/press"
PUMP = "plant/a/l/pump"
T0 = 1_763_800_000_000_000_000  # ns, a fixed past instant: the engine's clock follows the samples


def plant_config(alarms_yaml: str) -> PlantConfig:
    return parse_plant_config(PLANT + alarms_yaml, "plant.yaml")


class Harness:
    """An opened engine plus helpers to feed samples at seconds after T0."""

    def __init__(self, alarms_yaml: str, data_dir: Path) -> None:
        self.config = plant_config(alarms_yaml)
        self.model = AssetModel.from_config(self.config)
        self.index = TagIndex(self.model, {t.path: i for i, t in enumerate(self.model.tags)})
        self.data_dir = data_dir
        self.engine = self._open()

    def _open(self) -> AlarmEngine:
        engine = AlarmEngine(self.config.alarms, self.model, self.index, SampleBus(), self.data_dir)
        engine.open()
        return engine

    def restart(self) -> None:
        self.engine.stop()
        self.engine = self._open()

    def batch(self, rows: list[tuple[str, float, float]]) -> SampleBatch:
        """Rows of (tag path, seconds after T0, value)."""
        return SampleBatch.of(
            [self.index.id_of(p) for p, _, _ in rows], [T0 + int(s * 1e9) for _, s, _ in rows], [v for _, _, v in rows]
        )

    def feed(self, tag: str, series: list[tuple[float, float]]) -> None:
        self.engine.process(self.batch([(tag, s, v) for s, v in series]))

    def state(self, alarm_id: str) -> str:
        return str(self.engine.alarm(alarm_id)["state"])

    def events(self, alarm_id: str) -> list[str]:
        return [e.event for e in reversed(self.engine.store.journal(alarm_id=alarm_id, limit=1000))]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def make(alarms_yaml: str) -> Harness:
        h = Harness(alarms_yaml, tmp_path / f"data{len(made)}")
        made.append(h)
        return h

    yield make
    for h in made:
        h.engine.stop()


@pytest.fixture
def config_of() -> Callable[[str], PlantConfig]:
    """The test plant with this alarms section (raises ConfigError like a file would)."""
    return plant_config
