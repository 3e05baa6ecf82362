"""ISO 22400 KPIs against shifts computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from shopfloor.apps.mes import kpi

S = kpi.NS


def t(hhmm: str, day: int = 1) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(datetime(2026, 1, day, h, m, tzinfo=UTC).timestamp()) * S


RUN, IDLE, DOWN, SETUP = 0, 1, 2, 3
NONE, STARVED, BREAKDOWN, TOOL = 0, 1, 2, 4
# The hand-computed shift: 06:00-14:00 (POT 28,800 s), a break 10:00-10:30 (PDT 1,800 s, PBT 27,000 s).
STATE_TS = [t("05:59"), t("07:00"), t("07:20"), t("09:50"), t("10:10"), t("12:00"), t("12:10")]
STATES = [RUN, DOWN, RUN, IDLE, RUN, SETUP, RUN]
REASONS = [NONE, BREAKDOWN, NONE, STARVED, NONE, TOOL, NONE]
START, END, BREAK = t("06:00"), t("14:00"), (t("10:00"), t("10:30"))


def hand_shift() -> kpi.TimeElements:
    iv = kpi.intervals(STATE_TS, STATES, START, END, REASONS)
    return kpi.time_elements(iv, START, END, [BREAK])


def test_time_elements_of_the_hand_computed_shift() -> None:
    te = hand_shift()
    # running 06:00-07:00 3600 + 07:20-09:50 9000 + 10:10-12:00 6600 less 1200 in the break + 12:10-14:00 6600
    assert te.APT == 3600 + 9000 + 5400 + 6600 == 24_600
    assert te.ADOT == 1200  # breakdown 07:00-07:20
    assert te.ADET == 600  # starved 09:50-10:00 (10:00-10:10 lies in the break: planned downtime)
    assert te.AUST == 600  # tool change 12:00-12:10
    assert (te.POT, te.PDT, te.PBT) == (28_800, 1800, 27_000)
    assert te.APT + te.ADOT + te.ADET + te.AUST == te.PBT
    assert te.unknown == 0


def test_kpis_of_the_hand_computed_shift() -> None:
    te = hand_shift()
    k = kpi.kpis(te, good=480, scrap=20, pri_s=45.0, failures=1)
    assert k.availability == pytest.approx(24_600 / 27_000)  # 0.9111
    assert k.effectiveness == pytest.approx(45 * 500 / 24_600)  # 0.9146
    assert k.quality_ratio == pytest.approx(0.96)
    assert k.oee_index == pytest.approx(0.8)  # 22,500 / 27,000 x 0.96
    assert k.scrap_ratio == pytest.approx(0.04)
    assert k.technical_efficiency == pytest.approx(24_600 / 25_200)
    assert k.setup_ratio == pytest.approx(600 / 24_600)
    assert k.actual_cycle_time_s == pytest.approx(49.2)
    assert (k.mttr_s, k.mtbf_s) == (1200, 24_600)


def test_zero_denominators_are_unknown_not_zero() -> None:
    idle = kpi.TimeElements(POT=3600, PDT=3600, APT=0, ADET=0, ADOT=0, AUST=0)
    k = kpi.kpis(idle, good=0, scrap=0, pri_s=30)
    assert math.isnan(k.availability) and math.isnan(k.effectiveness) and math.isnan(k.quality_ratio)
    assert k.as_dict()["oee_index"] is None


def test_stops_and_pareto() -> None:
    iv = kpi.intervals(STATE_TS, STATES, START, END, REASONS)
    stops = kpi.stops(iv)
    assert stops.code.tolist() == [DOWN, IDLE, SETUP]
    assert stops.seconds.tolist() == [1200, 1200, 600]  # raw durations (the idle stop crosses the break)
    net = stops.seconds - kpi.overlap_ns(stops.start, stops.end, kpi.merge_windows([BREAK], START, END)) / S
    assert net.tolist() == [1200, 600, 600]
    rows = kpi.pareto(["breakdown", "starved", "tool change"], net, planned_reasons=["tool change"])
    assert [(r.reason, r.seconds, r.share, r.cumulative_share, r.planned) for r in rows] == [
        ("breakdown", 1200, 0.5, 0.5, False),
        ("starved", 600, 0.25, 0.75, False),  # ties sort by name
        ("tool change", 600, 0.25, 1.0, True),
    ]
    assert kpi.failures(stops) == 1


def test_pareto_sums_repeated_reasons() -> None:
    rows = kpi.pareto(["a", "b", "a", "c"], [10, 50, 30, 10])
    assert [(r.reason, r.seconds, r.stops) for r in rows] == [("b", 50, 1), ("a", 40, 2), ("c", 10, 1)]
    assert rows[-1].cumulative_share == pytest.approx(1.0)


def test_state_unknown_before_the_first_sample() -> None:
    iv = kpi.intervals([t("07:00")], [RUN], START, t("08:00"))
    te = kpi.time_elements(iv, START, t("08:00"))
    assert (te.unknown, te.APT) == (3600, 3600)


def test_counter_increase_with_baseline_reset_and_bad_readings() -> None:
    ts = [t("05:59"), t("08:00"), t("09:00"), t("09:01"), t("12:00"), t("14:00")]
    # 1000 at the start, 1100, a reset to 0 then 20, 200 (NaN skipped); the 14:00 sample is outside [06:00, 14:00)
    values = [1000, 1100, 0, 20, np.nan, 200]
    assert kpi.counter_increase(ts, values, START, END) == 100 + 0 + 20
    assert kpi.counter_increase(ts, values, START, t("14:01")) == 100 + 0 + 20 + 180
    assert kpi.counter_increase([], [], START, END) == 0.0
    # An energy register that comes back at another value (a restarted simulator, a replaced meter) adds nothing.
    assert kpi.counter_increase(ts[:4], [5000.0, 5100.0, 3000.0, 3050.0], START, END) == 100 + 50


def test_energy_and_co2e_per_good_part() -> None:
    energy = kpi.counter_increase([t("05:59"), t("13:59")], [5000.0, 5246.0], START, END)
    per_part = kpi.ratio(energy, 480)
    assert per_part == pytest.approx(246 / 480)  # 0.5125 kWh
    assert per_part * 0.4 == pytest.approx(0.205)  # kg CO2e at 0.4 kg/kWh


def test_takt_time_and_bottleneck() -> None:
    assert kpi.takt_time_s(27_000, 540) == 50.0
    te = hand_shift()
    assert kpi.active_ratio(te) == pytest.approx((24_600 + 600 + 1200) / 27_000)
    assert kpi.bottleneck({"cnc1": 0.71, "cnc2": 0.93, "cnc3": 0.88}) == "cnc2"
    assert kpi.bottleneck({"cnc1": math.nan}) is None


def test_shift_calendar() -> None:
    got = kpi.shifts(t("05:00"), t("15:00"))
    assert [(s.name, s.start_ns, s.end_ns) for s in got] == [
        ("2025-12-31 C", t("05:00"), t("06:00")),
        ("2026-01-01 A", t("06:00"), t("14:00")),
        ("2026-01-01 B", t("14:00"), t("15:00")),
    ]
    local = kpi.shifts(t("05:00"), t("06:00"), starts_h=(6, 18), utc_offset_h=1.0)  # 06:00-07:00 local
    assert [s.name for s in local] == ["2026-01-01 A"]
    with pytest.raises(ValueError):
        kpi.shifts(0, 1, starts_h=(14, 6))


def test_step_align_forward_fills() -> None:
    ts, (a, b) = kpi.step_align(([10, 30], [0, 2]), ([20], [4]))
    assert ts.tolist() == [10, 20, 30]
    assert a.tolist() == [0, 0, 2]
    assert b.tolist() == [-1, 4, 4]


def test_unsorted_states_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        kpi.intervals([2, 1], [0, 1], 0, 10)
