"""OEE and lean KPIs from the historian: machine states, part counters and energy meters.

For a machine at asset path ``P`` the tags are found by name, as the virtual factory and the
plant.yaml convention name them: ``P/state`` (enum: running, idle, down, setup), ``P/stop_reason``
(enum, optional), ``P/parts_good`` and ``P/parts_scrap`` (monotonic counters) and the energy
register ``<parent>/meter-<name>/energy`` (kWh, optional). Everything is read with
``Historian.raw`` over the period plus a look-back (for the state and counter values in force at
its start), then handed to the pure functions of ``kpi.py``.

Line KPIs sum the machines' time elements and quantities (ISO 22400 aggregates a work centre
from its work units this way): availability = sum APT / sum PBT, effectiveness = sum(PRI x PQ)
/ sum APT, quality ratio = sum GQ / sum PQ. That fits the virtual factory's line, whose CNCs work
in parallel; the bottleneck is named by the active period method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopfloor.apps.mes import kpi
from shopfloor.apps.mes.errors import MesError, NotFound
from shopfloor.historian.base import Historian

NS = kpi.NS
DEFAULT_LOOKBACK_NS = 3600 * NS  # the sim re-sends every metric each minute; an hour finds the value in force
DEFAULT_PLANNED_REASONS = ("tool change",)  # forced by tool life, scheduled by tool management: a planned stop
# (machine paths, start_ns, end_ns) -> parts each machine counted good in the period that inspection rejected
Rejects = Callable[[Sequence[str], int, int], Mapping[str, int]]


def _nan_none(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


@dataclass(frozen=True)
class MachineReport:
    machine: str
    start_ns: int
    end_ns: int
    pri_s: float
    time: kpi.TimeElements
    good: float
    scrap: float
    failures: int
    kpis: kpi.Kpis
    stops: kpi.Intervals
    stop_labels: list[str]
    pareto: list[kpi.ParetoRow]
    energy_kwh: float | None
    emission_factor: float | None
    rejected: float = 0.0  # of ``scrap``: parts the machine counted good that a later inspection rejected

    @property
    def active_ratio(self) -> float:
        return kpi.active_ratio(self.time)

    @property
    def energy_per_good_part_kwh(self) -> float | None:
        return None if self.energy_kwh is None else _nan_none(kpi.ratio(self.energy_kwh, self.good))

    @property
    def co2e_per_good_part_kg(self) -> float | None:
        per_part = self.energy_per_good_part_kwh
        return None if per_part is None or self.emission_factor is None else per_part * self.emission_factor

    def as_dict(self) -> dict[str, Any]:
        t = self.time
        planned = {r.reason for r in self.pareto if r.planned}
        return {
            "machine": self.machine, "start_ns": self.start_ns, "end_ns": self.end_ns,
            "time_s": {"POT": t.POT, "PDT": t.PDT, "PBT": t.PBT, "APT": t.APT, "ADET": t.ADET, "ADOT": t.ADOT,
                       "AUST": t.AUST, "unknown": t.unknown},
            "PRI_s": self.pri_s, "GQ": self.good, "SQ": self.scrap, "PQ": self.good + self.scrap,
            "rejected_at_inspection": self.rejected,
            "failures": self.failures, **self.kpis.as_dict(), "active_ratio": _nan_none(self.active_ratio),
            "energy_kwh": self.energy_kwh, "energy_per_good_part_kwh": self.energy_per_good_part_kwh,
            "co2e_per_good_part_kg": self.co2e_per_good_part_kg, "emission_factor_kg_per_kwh": self.emission_factor,
            "stops": [
                {"start_ns": int(a), "end_ns": int(b), "seconds": (int(b) - int(a)) / NS, "reason": label,
                 "planned": label in planned}
                for a, b, label in zip(self.stops.start.tolist(), self.stops.end.tolist(), self.stop_labels,
                                       strict=True)
            ],
            "pareto": [_row(r) for r in self.pareto],
        }


def _row(r: kpi.ParetoRow) -> dict[str, Any]:
    return {"reason": r.reason, "seconds": r.seconds, "stops": r.stops, "share": _nan_none(r.share),
            "cumulative_share": _nan_none(r.cumulative_share), "planned": r.planned}


@dataclass(frozen=True)
class LineReport:
    machines: list[MachineReport]
    start_ns: int
    end_ns: int
    time: kpi.TimeElements
    kpis: kpi.Kpis
    bottleneck: str | None
    demand: float | None

    @property
    def takt_time_s(self) -> float | None:
        if self.demand is None or not self.machines:
            return None
        return _nan_none(kpi.takt_time_s(self.machines[0].time.PBT, self.demand))

    def as_dict(self) -> dict[str, Any]:
        good = sum(m.good for m in self.machines)
        energy = [m.energy_kwh for m in self.machines if m.energy_kwh is not None]
        labels = [label for m in self.machines for label in m.stop_labels]
        seconds = np.concatenate([m.stops.seconds for m in self.machines]) if self.machines else np.empty(0)
        planned = {r.reason for m in self.machines for r in m.pareto if r.planned}
        return {
            "start_ns": self.start_ns, "end_ns": self.end_ns, **self.kpis.as_dict(),
            "GQ": good, "SQ": sum(m.scrap for m in self.machines),
            "rejected_at_inspection": sum(m.rejected for m in self.machines), "bottleneck": self.bottleneck,
            "takt_time_s": self.takt_time_s, "demand": self.demand,
            "energy_kwh": sum(energy) if energy else None,
            "energy_per_good_part_kwh": _nan_none(kpi.ratio(sum(energy), good)) if energy else None,
            "pareto": [_row(r) for r in kpi.pareto(labels, seconds, planned)],
            "machines": [m.as_dict() for m in self.machines],
        }


class OeeSource:
    """Computes machine, line and shift KPIs from a historian's tags.

    With ``rejects`` (e.g. the MES record's inspections, ``rejects.rejected_by_machine``), parts a machine
    counted good but a later inspection rejected move from its good quantity to its scrap.
    """

    def __init__(
        self, historian: Historian, tag_ids: Mapping[str, int], *, reason_labels: Mapping[int, str] | None = None,
        planned_reasons: Iterable[str] = DEFAULT_PLANNED_REASONS, emission_factor_kg_per_kwh: float | None = None,
        lookback_ns: int = DEFAULT_LOOKBACK_NS, element_of_state: Mapping[int, str] = kpi.ELEMENT_OF_STATE,
        rejects: Rejects | None = None,
    ) -> None:
        if emission_factor_kg_per_kwh is not None and not (emission_factor_kg_per_kwh >= 0):
            raise MesError("the emission factor must be a number of kg CO2e per kWh, 0 or more")
        self.historian = historian
        self.tag_ids = tag_ids
        self.reason_labels = dict(reason_labels or {})
        self.planned_reasons = tuple(planned_reasons)
        self.emission_factor = emission_factor_kg_per_kwh
        self.lookback_ns = lookback_ns
        self.element_of_state = element_of_state
        self.rejects = rejects

    def _tag(self, path: str, required: bool = True) -> int | None:
        tag_id = self.tag_ids.get(path)
        if tag_id is None and required:
            raise NotFound(f"no tag {path!r}: is the machine path right?")
        return tag_id

    def _series(self, tag_id: int, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        raw = self.historian.raw(tag_id, start_ns - self.lookback_ns, end_ns)
        return raw.ts, raw.value

    def machine(
        self, path: str, start_ns: int, end_ns: int, pri_s: float, planned: Iterable[tuple[int, int]] = (),
        rejects: Mapping[str, int] | None = None,
    ) -> MachineReport:
        """One machine's report; ``rejects`` is a line's answer from the rejects callback, asked once for all."""
        if end_ns <= start_ns:
            raise MesError("the period must end after it starts")
        if not (pri_s > 0):
            raise MesError(f"{path}: the planned run time per item (PRI) must be positive seconds")
        planned = list(planned)
        state_id = self._tag(f"{path}/state")
        assert state_id is not None
        ts, state = self._series(state_id, start_ns, end_ns)
        ok = ~np.isnan(state)
        ts, state = ts[ok], state[ok].astype(np.int64)
        reason_id = self._tag(f"{path}/stop_reason", required=False)
        if reason_id is not None:
            rts, reason = self._series(reason_id, start_ns, end_ns)
            ok = ~np.isnan(reason)
            ts, (state, reasons) = kpi.step_align((ts, state), (rts[ok], reason[ok].astype(np.int64)))
            iv = kpi.intervals(ts, state, start_ns, end_ns, reasons)
        else:
            iv = kpi.intervals(ts, state, start_ns, end_ns)
        time = kpi.time_elements(iv, start_ns, end_ns, planned, self.element_of_state)
        good = self._increase(f"{path}/parts_good", start_ns, end_ns, required=True)
        scrap = self._increase(f"{path}/parts_scrap", start_ns, end_ns, required=False)
        # never more than the machine counted good: its counters and the record may disagree at the edges
        if rejects is None and self.rejects is not None:
            rejects = self.rejects([path], start_ns, end_ns)
        rejected = float(min((rejects or {}).get(path, 0), good))
        good, scrap = good - rejected, scrap + rejected
        parent, _, name = path.rpartition("/")
        energy_id = self._tag(f"{parent}/meter-{name}/energy", required=False)
        energy = None
        if energy_id is not None:
            ets, evals = self._series(energy_id, start_ns, end_ns)
            energy = kpi.counter_increase(ets, evals, start_ns, end_ns)
        stops = kpi.stops(iv)
        windows = kpi.merge_windows(planned, start_ns, end_ns)
        net = (stops.end - stops.start) - kpi.overlap_ns(stops.start, stops.end, windows)
        counted = net > 0  # a stop wholly inside planned downtime is planned downtime, not a loss
        stops = kpi.Intervals(stops.start[counted], stops.end[counted], stops.code[counted], stops.reason[counted])
        labels = [self._label(int(c), int(r)) for c, r in zip(stops.code.tolist(), stops.reason.tolist(), strict=True)]
        fails = kpi.failures(stops)
        return MachineReport(
            machine=path, start_ns=start_ns, end_ns=end_ns, pri_s=pri_s, time=time, good=good, scrap=scrap,
            failures=fails, kpis=kpi.kpis(time, good, scrap, pri_s, fails), stops=stops, stop_labels=labels,
            pareto=kpi.pareto(labels, net[counted] / NS, self.planned_reasons), energy_kwh=energy,
            emission_factor=self.emission_factor, rejected=rejected,
        )

    def _increase(self, path: str, start_ns: int, end_ns: int, required: bool) -> float:
        tag_id = self._tag(path, required)
        if tag_id is None:
            return 0.0
        ts, values = self._series(tag_id, start_ns, end_ns)
        return kpi.counter_increase(ts, values, start_ns, end_ns)

    def _label(self, state: int, reason: int) -> str:
        if reason > 0 and reason in self.reason_labels:
            return self.reason_labels[reason]
        if reason > 0:
            return f"reason {reason}"
        return {"ADET": "waiting", "ADOT": "down", "AUST": "setup"}.get(self.element_of_state.get(state, ""),
                                                                        f"state {state}")

    def line(
        self, paths: Sequence[str], start_ns: int, end_ns: int, pri_s: Mapping[str, float],
        planned: Iterable[tuple[int, int]] = (), demand: float | None = None,
    ) -> LineReport:
        if not paths:
            raise MesError("a line needs at least one machine")
        missing = [p for p in paths if p not in pri_s]
        if missing:
            raise MesError(f"no planned run time per item (PRI) for {', '.join(missing)}")
        planned = list(planned)
        rejects = self.rejects(list(paths), start_ns, end_ns) if self.rejects is not None else None
        machines = [self.machine(p, start_ns, end_ns, pri_s[p], planned, rejects) for p in paths]
        total = machines[0].time
        for m in machines[1:]:
            total = total + m.time
        pq = sum(m.good + m.scrap for m in machines)
        weighted_pri = sum(m.pri_s * (m.good + m.scrap) for m in machines) / pq if pq > 0 else 1.0
        good = sum(m.good for m in machines)
        scrap = sum(m.scrap for m in machines)
        k = kpi.kpis(total, good, scrap, weighted_pri, sum(m.failures for m in machines))
        neck = kpi.bottleneck({m.machine: m.active_ratio for m in machines})
        return LineReport(machines, start_ns, end_ns, total, k, neck, demand)

    def by_shift(
        self, paths: Sequence[str], start_ns: int, end_ns: int, pri_s: Mapping[str, float], *,
        starts_h: Sequence[float] = (6, 14, 22), utc_offset_h: float = 0.0, planned: Iterable[tuple[int, int]] = (),
    ) -> list[tuple[kpi.Shift, LineReport]]:
        planned = list(planned)
        return [
            (s, self.line(paths, s.start_ns, s.end_ns, pri_s, planned))
            for s in kpi.shifts(start_ns, end_ns, starts_h, utc_offset_h)
        ]
