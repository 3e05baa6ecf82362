"""ISO 22400-2 time elements and KPIs, as pure functions over NumPy arrays.

Names follow ISO 22400-2:2014 (and the OPC UA Machinery annex that maps machine states onto it):

* POT  planned operation time (the shift)        PDT  planned down time (breaks, planned maintenance)
* PBT  planned busy time = POT - PDT             APT  actual production time (machine running)
* ADET actual unit delay time (waiting, starved) ADOT actual unit down time (failures)
* AUST actual unit setup time                    PRI  planned run time per item (ideal cycle time)
* GQ good quantity, SQ scrap quantity, PQ produced quantity = GQ + SQ

KPIs: availability = APT / PBT; effectiveness = PRI x PQ / APT; quality ratio = GQ / PQ;
OEE index = availability x effectiveness x quality ratio; scrap ratio = SQ / PQ; technical
efficiency = APT / (APT + ADET); setup ratio = AUST / APT; MTTR = ADOT / failures; MTBF =
APT / failures. A KPI whose denominator is zero is NaN (unknown), never 0 or 1.

Machine states arrive as step series (time of each change, code); every function here takes
such arrays, so the same code serves the historian layer and the hand-computed tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
NS = 1_000_000_000

# Which ISO 22400 time element each machine state counts towards (the virtual factory's codes).
ELEMENT_OF_STATE: Mapping[int, str] = {0: "APT", 1: "ADET", 2: "ADOT", 3: "AUST"}
RUNNING = 0
DOWN = 2


@dataclass(frozen=True, slots=True)
class Intervals:
    """Half-open intervals [start, end) in ns, each with a state code and a reason code (-1: none)."""

    start: I64
    end: I64
    code: I64
    reason: I64

    def __len__(self) -> int:
        return len(self.start)

    @property
    def seconds(self) -> F64:
        return (self.end - self.start) / NS


@dataclass(frozen=True, slots=True)
class TimeElements:
    """Seconds of each ISO 22400 time element in a period (planned downtime already taken out of the actuals)."""

    POT: float
    PDT: float
    APT: float
    ADET: float
    ADOT: float
    AUST: float
    unknown: float = 0.0  # no state known (before the first sample)

    @property
    def PBT(self) -> float:
        return self.POT - self.PDT

    def __add__(self, other: TimeElements) -> TimeElements:
        return TimeElements(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[float, ...]:
        return (self.POT, self.PDT, self.APT, self.ADET, self.ADOT, self.AUST, self.unknown)


@dataclass(frozen=True, slots=True)
class Kpis:
    availability: float
    effectiveness: float
    quality_ratio: float
    oee_index: float
    scrap_ratio: float
    technical_efficiency: float
    setup_ratio: float
    actual_cycle_time_s: float  # APT / PQ
    mttr_s: float
    mtbf_s: float

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else v) for k, v in (
            ("availability", self.availability), ("effectiveness", self.effectiveness),
            ("quality_ratio", self.quality_ratio), ("oee_index", self.oee_index), ("scrap_ratio", self.scrap_ratio),
            ("technical_efficiency", self.technical_efficiency), ("setup_ratio", self.setup_ratio),
            ("actual_cycle_time_s", self.actual_cycle_time_s), ("mttr_s", self.mttr_s), ("mtbf_s", self.mtbf_s),
        )}


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def kpis(t: TimeElements, good: float, scrap: float, pri_s: float, failures: int = 0) -> Kpis:
    """ISO 22400-2 KPIs of one work unit (or of a group, from summed elements and PRI-weighted output)."""
    pq = good + scrap
    availability = ratio(t.APT, t.PBT)
    effectiveness = ratio(pri_s * pq, t.APT)
    quality = ratio(good, pq)
    return Kpis(
        availability=availability,
        effectiveness=effectiveness,
        quality_ratio=quality,
        oee_index=availability * effectiveness * quality,
        scrap_ratio=ratio(scrap, pq),
        technical_efficiency=ratio(t.APT, t.APT + t.ADET),
        setup_ratio=ratio(t.AUST, t.APT),
        actual_cycle_time_s=ratio(t.APT, pq),
        mttr_s=ratio(t.ADOT, failures),
        mtbf_s=ratio(t.APT, failures),
    )


def step_align(*series: tuple[npt.ArrayLike, npt.ArrayLike]) -> tuple[I64, list[I64]]:
    """Several step series (ts, value) on their union of change times, each forward-filled (-1 before its first)."""
    arrays = [(np.asarray(ts, np.int64), np.asarray(v)) for ts, v in series]
    ts_all = np.unique(np.concatenate([a for a, _ in arrays])) if arrays else np.empty(0, np.int64)
    out = []
    for ts, v in arrays:
        order = np.argsort(ts, kind="stable")
        ts, v = ts[order], v[order]
        idx = np.searchsorted(ts, ts_all, side="right") - 1
        filled = np.where(idx >= 0, v[np.maximum(idx, 0)] if len(v) else -1, -1)
        out.append(np.nan_to_num(filled.astype(np.float64), nan=-1).astype(np.int64))
    return ts_all, out


def intervals(
    ts: npt.ArrayLike, code: npt.ArrayLike, start_ns: int, end_ns: int, reason: npt.ArrayLike | None = None
) -> Intervals:
    """The step series cut to [start, end): one interval per run of equal (code, reason).

    A sample at or before start gives the state at start; before the first sample the code is -1
    (unknown). Samples must be sorted by time.
    """
    ts_a = np.asarray(ts, np.int64)
    code_a = np.asarray(code, np.int64)
    reason_a = np.full(len(ts_a), -1, np.int64) if reason is None else np.asarray(reason, np.int64)
    if end_ns <= start_ns:
        e = np.empty(0, np.int64)
        return Intervals(e, e, e, e)
    if len(ts_a) and np.any(np.diff(ts_a) < 0):
        raise ValueError("state samples must be sorted by time")
    first = int(np.searchsorted(ts_a, start_ns, side="right")) - 1  # the sample in force at start
    keep = slice(max(first, 0), int(np.searchsorted(ts_a, end_ns, side="left")))
    t, c, r = ts_a[keep], code_a[keep], reason_a[keep]
    if first < 0:  # nothing known at start
        t = np.concatenate([[start_ns], t])
        c = np.concatenate([[-1], c])
        r = np.concatenate([[-1], r])
    t = np.maximum(t, start_ns)
    change = np.ones(len(t), bool)
    change[1:] = (c[1:] != c[:-1]) | (r[1:] != r[:-1])
    starts = t[change]
    ends = np.append(starts[1:], end_ns)
    nonempty = ends > starts
    return Intervals(starts[nonempty], ends[nonempty], c[change][nonempty], r[change][nonempty])


def merge_windows(windows: Iterable[tuple[int, int]], start_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """Planned windows clipped to [start, end), sorted and merged where they overlap."""
    out: list[tuple[int, int]] = []
    for a, b in sorted((max(a, start_ns), min(b, end_ns)) for a, b in windows):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def overlap_ns(iv_start: I64, iv_end: I64, windows: Sequence[tuple[int, int]]) -> I64:
    """How much of each interval lies inside the (merged) windows: a difference of the windows' cumulative time."""
    if not windows:
        return np.zeros(len(iv_start), np.int64)
    xs = np.array([x for w in windows for x in w], np.float64)
    lengths = np.array([b - a for a, b in windows], np.float64)
    ys = np.repeat(np.concatenate([[0.0], np.cumsum(lengths)]), 2)[1:-1]
    last = float(ys[-1])
    done = np.interp(iv_end.astype(np.float64), xs, ys, left=0.0, right=last)
    before = np.interp(iv_start.astype(np.float64), xs, ys, left=0.0, right=last)
    out: I64 = np.rint(done - before).astype(np.int64)
    return out


def time_elements(
    iv: Intervals, start_ns: int, end_ns: int, planned: Iterable[tuple[int, int]] = (),
    element_of_state: Mapping[int, str] = ELEMENT_OF_STATE,
) -> TimeElements:
    """Time elements of a period from its state intervals; time inside planned windows counts as PDT only."""
    windows = merge_windows(planned, start_ns, end_ns)
    pdt_ns = sum(b - a for a, b in windows)
    net = (iv.end - iv.start) - overlap_ns(iv.start, iv.end, windows)
    totals = {"APT": 0, "ADET": 0, "ADOT": 0, "AUST": 0, "unknown": 0}
    for code in np.unique(iv.code).tolist():
        element = element_of_state.get(int(code), "unknown")
        totals[element] += int(net[iv.code == code].sum())
    return TimeElements(
        POT=(end_ns - start_ns) / NS, PDT=pdt_ns / NS, APT=totals["APT"] / NS, ADET=totals["ADET"] / NS,
        ADOT=totals["ADOT"] / NS, AUST=totals["AUST"] / NS, unknown=totals["unknown"] / NS,
    )


def stops(iv: Intervals, running: int = RUNNING) -> Intervals:
    """The intervals in which the machine was not running (its state known)."""
    mask = (iv.code != running) & (iv.code >= 0)
    return Intervals(iv.start[mask], iv.end[mask], iv.code[mask], iv.reason[mask])


def failures(iv: Intervals, down: int = DOWN) -> int:
    """Failure events (ISO 22400 FE): how many times the machine went down."""
    return int(np.count_nonzero(iv.code == down))


@dataclass(frozen=True, slots=True)
class ParetoRow:
    reason: str
    seconds: float
    stops: int
    share: float
    cumulative_share: float
    planned: bool


def pareto(
    labels: Sequence[str], seconds: npt.ArrayLike, planned_reasons: Iterable[str] = ()
) -> list[ParetoRow]:
    """Downtime by reason, largest first, with each reason's share and the running (cumulative) share."""
    secs = np.asarray(seconds, np.float64)
    if len(labels) != len(secs):
        raise ValueError("one label per stop")
    planned = set(planned_reasons)
    totals: dict[str, list[float]] = {}
    for label, s in zip(labels, secs.tolist(), strict=True):
        entry = totals.setdefault(label, [0.0, 0])
        entry[0] += s
        entry[1] += 1
    total = float(secs.sum())
    rows = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))
    out, running = [], 0.0
    for label, (s, n) in rows:
        running += s
        out.append(ParetoRow(label, s, int(n), ratio(s, total), ratio(running, total), label in planned))
    return out


def counter_increase(ts: npt.ArrayLike, values: npt.ArrayLike, start_ns: int, end_ns: int) -> float:
    """How much a monotonic counter (parts, kWh) rose in [start, end).

    The last sample at or before start is the baseline (without one, the first sample in the
    period is). A drop is a reset: the value after it is a new baseline, so a register that comes
    back at another value (a replaced meter, a restarted machine or simulator) adds nothing, at
    the cost of what a counter reset to zero rose before its first reading. NaN samples (bad
    readings) are skipped.
    """
    ts_a = np.asarray(ts, np.int64)
    v = np.asarray(values, np.float64)
    ok = ~np.isnan(v)
    ts_a, v = ts_a[ok], v[ok]
    first = max(int(np.searchsorted(ts_a, start_ns, side="right")) - 1, 0)
    last = int(np.searchsorted(ts_a, end_ns, side="left"))
    window = v[first:last]
    if len(window) < 2:
        return 0.0
    d = np.diff(window)
    return float(d[d > 0].sum())


def takt_time_s(available_s: float, demand: float) -> float:
    """Takt time: available production time divided by the customer demand in that time."""
    return ratio(available_s, demand)


def active_ratio(t: TimeElements) -> float:
    """Share of planned busy time a machine was active (not waiting): the active period method's measure."""
    return ratio(t.APT + t.AUST + t.ADOT, t.PBT)


def bottleneck(active: Mapping[str, float]) -> str | None:
    """The machine active the largest share of its time (Roser's active period method); None without data."""
    known = {k: v for k, v in active.items() if not math.isnan(v)}
    return max(known, key=lambda k: (known[k], k)) if known else None


@dataclass(frozen=True, slots=True)
class Shift:
    name: str
    start_ns: int
    end_ns: int


def shifts(
    start_ns: int, end_ns: int, starts_h: Sequence[float] = (6, 14, 22), utc_offset_h: float = 0.0
) -> list[Shift]:
    """The shifts overlapping [start, end), cut to it; named by local date and letter (A = first shift of the day).

    A shift runs from its start to the next one's; the last of the day to the first of the next day.
    """
    if not starts_h or sorted(starts_h) != list(starts_h) or starts_h[0] < 0 or starts_h[-1] >= 24:
        raise ValueError("shift starts must be increasing hours in [0, 24)")
    offset = timedelta(hours=utc_offset_h)
    local_start = datetime.fromtimestamp(start_ns / NS, UTC) + offset
    day = datetime(local_start.year, local_start.month, local_start.day, tzinfo=UTC) - timedelta(days=1)
    out: list[Shift] = []
    while True:
        for i, h in enumerate(starts_h):
            a = day + timedelta(hours=h)
            b = day + timedelta(hours=starts_h[i + 1]) if i + 1 < len(starts_h) else (
                day + timedelta(days=1, hours=starts_h[0]))
            a_ns = int((a - offset).timestamp()) * NS
            b_ns = int((b - offset).timestamp()) * NS
            if a_ns >= end_ns:
                return out
            if b_ns > start_ns:
                out.append(Shift(f"{day:%Y-%m-%d} {chr(65 + i)}", max(a_ns, start_ns), min(b_ns, end_ns)))
        day += timedelta(days=1)
