"""OEE on the virtual factory's own tags: its frames written straight into a DuckDB historian."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopfloor.apps.mes.oee import OeeSource
from shopfloor.core.model import AssetModel
from shopfloor.core.samples import SampleBatch
from shopfloor.historian.duckdb_store import DuckDBHistorian
from shopfloor.sim.factory import VirtualFactory

S = 1_000_000_000
LINE = "virtual-factory/machining/line1"
CNCS = [f"{LINE}/cell{i}/cnc{i}" for i in (1, 2, 3)]
CYCLE_S = {CNCS[0]: 48.0, CNCS[1]: 60.0, CNCS[2]: 75.0}  # the factory's cycle times (docs/simulator.md)


def test_oee_of_the_virtual_factory(tmp_path: Path) -> None:
    factory = VirtualFactory(seed=3, start_ns=1_767_225_600 * S, step_s=10.0)
    model = AssetModel.from_config(factory.plant_config())
    historian = DuckDBHistorian(tmp_path / "h.duckdb")
    ids = historian.ensure_tags([t.path for t in model.tags])
    path_of = {n.name: n.path for n in model.root.walk() if n.level == "equipment"}
    tag_ids = {d.name: np.array([ids[f"{path_of[d.name]}/{s.name}"] for s in d.signals]) for d in factory.devices}
    tid, ts, val = [], [], []
    for _ in range(4 * 360):  # four simulated hours
        frame = factory.step()
        for device, values in (frame.sparkplug | frame.json).items():
            tid.append(tag_ids[device])
            ts.append(np.full(len(values), frame.ts_ns))
            val.append(values)
    v = np.concatenate(val)
    historian.write(SampleBatch.of(np.concatenate(tid), np.concatenate(ts), v, np.where(np.isnan(v), 0, 192)))
    reasons = next(t.states for t in model.tags if t.name == "stop_reason")
    src = OeeSource(historian, historian.tag_ids(), reason_labels=reasons, emission_factor_kg_per_kwh=0.35)
    start, end = factory.start_ns + 3600 * S, factory.start_ns + 4 * 3600 * S
    line = src.line(CNCS, start, end, CYCLE_S)
    for m in line.machines:
        t = m.time
        assert t.unknown == 0
        assert sum((t.APT, t.ADET, t.ADOT, t.AUST)) == pytest.approx(t.PBT)
        assert m.good > 0
        # PRI is the factory's own cycle time, so effectiveness is ~1 (cycle jitter of 2 %, partial cycles)
        assert 0.9 < m.kpis.effectiveness < 1.1
        assert 0.0 < m.kpis.availability <= 1.0 and 0.85 < m.kpis.quality_ratio <= 1.0
        assert m.energy_kwh is not None and m.energy_kwh > 0 and m.co2e_per_good_part_kg is not None
    assert line.bottleneck in CNCS
    assert line.kpis.oee_index == pytest.approx(
        line.kpis.availability * line.kpis.effectiveness * line.kpis.quality_ratio
    )
    historian.close()
