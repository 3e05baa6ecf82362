"""OEE from historian tags: the hand-computed shift of test_mes_kpi, written as samples into DuckDB."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from test_mes_kpi import BREAK, END, REASONS, START, STATE_TS, STATES, t

from shopfloor.apps.mes.errors import MesError, NotFound
from shopfloor.apps.mes.oee import OeeSource
from shopfloor.core.samples import SampleBatch
from shopfloor.historian.duckdb_store import DuckDBHistorian

LINE = "plant/area/line1"
CNC1, CNC2 = f"{LINE}/cell1/cnc1", f"{LINE}/cell2/cnc2"
LABELS = {1: "starved", 2: "breakdown", 3: "bearing failure", 4: "tool change"}


@pytest.fixture
def historian(tmp_path: Path) -> Iterator[DuckDBHistorian]:
    h = DuckDBHistorian(tmp_path / "h.duckdb")
    paths = [f"{m}/{n}" for m in (CNC1, CNC2) for n in ("state", "stop_reason", "parts_good", "parts_scrap")]
    paths += [f"{LINE}/cell1/meter-cnc1/energy"]
    ids = h.ensure_tags(paths)

    def put(path: str, ts: list[int], values: list[float]) -> None:
        h.write(SampleBatch.of(np.full(len(ts), ids[path]), ts, values))

    # cnc1: the hand-computed shift. cnc2: runs all shift but for one 2 h breakdown, 300 good, no scrap tag data.
    put(f"{CNC1}/state", STATE_TS, STATES)
    put(f"{CNC1}/stop_reason", STATE_TS, REASONS)
    put(f"{CNC1}/parts_good", [t("05:59"), t("09:00"), t("13:59")], [1000, 1200, 1480])
    put(f"{CNC1}/parts_scrap", [t("05:59"), t("13:59")], [50, 70])
    put(f"{LINE}/cell1/meter-cnc1/energy", [t("05:59"), t("10:00"), t("13:59")], [5000.0, 5100.0, 5246.0])
    put(f"{CNC2}/state", [t("05:00"), t("08:00"), t("10:00")], [0, 2, 0])
    put(f"{CNC2}/stop_reason", [t("05:00"), t("08:00"), t("10:00")], [0, 2, 0])
    put(f"{CNC2}/parts_good", [t("05:00"), t("13:00")], [0, 300])
    yield h
    h.close()


def source(h: DuckDBHistorian, **kw: object) -> OeeSource:
    return OeeSource(h, h.tag_ids(), reason_labels=LABELS, **kw)  # type: ignore[arg-type]


def test_parts_rejected_at_a_later_inspection_move_from_good_to_scrap(historian: DuckDBHistorian) -> None:
    asked: list[tuple[tuple[str, ...], int, int]] = []

    def rejects(paths: Sequence[str], start_ns: int, end_ns: int) -> dict[str, int]:
        asked.append((tuple(paths), start_ns, end_ns))
        return {CNC1: 30}

    r = source(historian, rejects=rejects).machine(CNC1, START, END, 45.0, [BREAK])
    assert asked == [((CNC1,), START, END)]
    assert (r.good, r.scrap, r.rejected) == (450, 50, 30)  # 480 good and 20 scrap by the counters
    assert r.kpis.quality_ratio == pytest.approx(0.9)
    assert r.kpis.oee_index == pytest.approx(0.8 * 0.9 / 0.96)  # quality was 480 / 500 = 0.96
    assert r.as_dict()["rejected_at_inspection"] == 30
    asked_line: list[tuple[str, ...]] = []

    def line_rejects(paths: Sequence[str], start_ns: int, end_ns: int) -> dict[str, int]:
        asked_line.append(tuple(paths))
        return {p: 400 for p in paths}

    line = source(historian, rejects=line_rejects).line([CNC1, CNC2], START, END, {CNC1: 45.0, CNC2: 60.0}, [BREAK])
    assert asked_line == [(CNC1, CNC2)]   # one question to the record for the whole line
    # never more than a machine counted good (the counters and the record can disagree at a period's edges)
    assert [m.rejected for m in line.machines] == [400, 300]
    assert line.as_dict()["rejected_at_inspection"] == 700


def test_machine_matches_the_hand_computed_shift(historian: DuckDBHistorian) -> None:
    r = source(historian, emission_factor_kg_per_kwh=0.4).machine(CNC1, START, END, 45.0, [BREAK])
    assert (r.time.APT, r.time.ADOT, r.time.ADET, r.time.AUST, r.time.PBT) == (24_600, 1200, 600, 600, 27_000)
    assert (r.good, r.scrap) == (480, 20)
    assert r.kpis.oee_index == pytest.approx(0.8)
    assert r.energy_kwh == pytest.approx(246.0)
    assert r.energy_per_good_part_kwh == pytest.approx(0.5125)
    assert r.co2e_per_good_part_kg == pytest.approx(0.205)
    d = r.as_dict()
    assert [(p["reason"], p["seconds"], p["planned"]) for p in d["pareto"]] == [
        ("breakdown", 1200, False), ("starved", 600, False), ("tool change", 600, True)
    ]
    assert [s["reason"] for s in d["stops"]] == ["breakdown", "starved", "tool change"]


def test_no_emission_factor_means_no_co2e(historian: DuckDBHistorian) -> None:
    r = source(historian).machine(CNC1, START, END, 45.0, [BREAK])
    assert r.co2e_per_good_part_kg is None
    assert r.energy_per_good_part_kwh == pytest.approx(0.5125)


def test_line_sums_machines_and_names_the_bottleneck(historian: DuckDBHistorian) -> None:
    line = source(historian).line([CNC1, CNC2], START, END, {CNC1: 45.0, CNC2: 60.0}, [BREAK], demand=540)
    cnc2 = line.machines[1]
    # cnc2: down 08:00-10:00 (7200 s), running otherwise: APT 28,800 - 7200 - 1800 (break) = 19,800
    assert (cnc2.time.APT, cnc2.time.ADOT, cnc2.good, cnc2.scrap) == (19_800, 7200, 300, 0)
    assert line.time.APT == 24_600 + 19_800
    assert line.kpis.availability == pytest.approx((24_600 + 19_800) / 54_000)
    assert line.kpis.effectiveness == pytest.approx((45 * 500 + 60 * 300) / (24_600 + 19_800))
    assert line.kpis.quality_ratio == pytest.approx(780 / 800)
    # active (not waiting) share: cnc1 (24,600 + 600 + 1200) / 27,000 = 0.978, cnc2 27,000 / 27,000 = 1
    assert line.bottleneck == CNC2
    assert line.takt_time_s == pytest.approx(27_000 / 540)
    assert line.as_dict()["pareto"][0]["reason"] == "breakdown"


def test_by_shift(historian: DuckDBHistorian) -> None:
    got = source(historian).by_shift([CNC1], t("06:00"), t("22:00"), {CNC1: 45.0})
    assert [s.name for s, _ in got] == ["2026-01-01 A", "2026-01-01 B"]
    assert got[0][1].machines[0].good == 480


def test_bad_input_is_named(historian: DuckDBHistorian) -> None:
    src = source(historian)
    with pytest.raises(NotFound, match="no tag"):
        src.machine(f"{LINE}/cell9/cnc9", START, END, 45.0)
    with pytest.raises(MesError, match="PRI"):
        src.machine(CNC1, START, END, 0.0)
    with pytest.raises(MesError, match="end after"):
        src.machine(CNC1, END, START, 45.0)
    with pytest.raises(MesError, match="no planned run time"):
        src.line([CNC1, CNC2], START, END, {CNC1: 45.0})
