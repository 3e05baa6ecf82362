"""What the dashboard shows about a piece of equipment, derived from the asset model and the historian.

The plant.yaml does not say which tag is a machine's state or which ones count
parts, so the roles come from the tags' types, in the order the plant.yaml lists
them: the state is the enum tag named ``state`` (else the first enum whose labels
include ``running``), counters are the integer tags (monotonic counts of parts,
cycles, strokes), and the key values are the first measurements (float tags).

Staleness is judged per equipment, not per tag: sources report by exception
(Sparkplug, OPC UA subscriptions), so one unchanged tag says nothing while its
device keeps talking; an equipment that has sent nothing for ``stale_after`` is.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopfloor.core.model import AssetModel, AssetNode, Tag
from shopfloor.edge.config import LINK_METRICS

INTEGER_TYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
FLOAT_TYPES = frozenset({"float32", "float64"})
KEY_VALUES = 4  # measurements shown on an equipment's card

# Tags that describe the quality of a radio or network link (edge gateways, wireless sensors).
LINK_TAG = re.compile(r"(^|_)(rssi|snr|link_quality|signal_strength|signal_quality|lqi|packet_loss)($|_)", re.I)
LINK_UNITS = frozenset({"dBm", "dB"})
# An edge gateway's uplink metrics (shopfloor edge) are link tags too: LINK_METRICS.


@dataclass(frozen=True, slots=True)
class EquipmentRoles:
    """Which of an equipment's tags play which part on the dashboard."""

    node: AssetNode
    parent: str
    state: Tag | None
    key: tuple[Tag, ...]
    counters: tuple[Tag, ...]
    tags: tuple[Tag, ...]


def state_tag(tags: tuple[Tag, ...]) -> Tag | None:
    """The machine state: the enum called 'state', else the first enum with a 'running' label."""
    enums = [t for t in tags if t.data_type == "enum" and t.states]
    named = next((t for t in enums if t.name == "state"), None)
    if named is not None:
        return named
    return next((t for t in enums if t.states and "running" in {s.lower() for s in t.states.values()}), None)


def equipment_roles(model: AssetModel) -> list[EquipmentRoles]:
    """Every equipment of the plant in tree order, with its state, key and counter tags."""
    out: list[EquipmentRoles] = []

    def walk(node: AssetNode, parent: str) -> None:
        if node.level == "equipment":
            tags = tuple(model.by_path[p] for p in node.tags)
            out.append(EquipmentRoles(
                node=node, parent=parent, state=state_tag(tags),
                key=tuple(t for t in tags if t.data_type in FLOAT_TYPES)[:KEY_VALUES],
                counters=tuple(t for t in tags if t.data_type in INTEGER_TYPES),
                tags=tags,
            ))
            return
        for child in node.children:
            walk(child, node.path)

    walk(model.root, "")
    return out


def is_link_tag(tag: Tag) -> bool:
    """A tag that measures link quality (RSSI, SNR, link quality, packet loss, an edge gateway's link
    metrics), by name or unit."""
    return bool(LINK_TAG.search(tag.name)) or tag.unit in LINK_UNITS or tag.name in LINK_METRICS


def counter_increase(
    ts_ns: npt.NDArray[np.int64], values: npt.NDArray[np.float64], since_ns: int
) -> float | None:
    """How much a counter rose after since_ns: the sum of its positive steps, so a reset (a restarted
    device counting from zero again) loses nothing and adds nothing. ``ts_ns`` may start before since_ns:
    the last sample before it is the baseline of the first step. None without two samples."""
    ok = ~np.isnan(values)
    ts, v = ts_ns[ok], values[ok]
    if len(v) < 2:
        return None
    steps = np.diff(v)
    inside = ts[1:] >= since_ns
    if not inside.any():
        return 0.0
    return float(np.clip(steps[inside], 0, None).sum())


def last_change_ns(ts_ns: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> int | None:
    """When the value last took its current value (None if it never changed in these samples); NaN (no
    usable value) counts as a value of its own, so a machine back from an outage is 'running since' then."""
    if len(values) < 2:
        return None
    a, b = values[1:], values[:-1]
    changed = np.flatnonzero((a != b) & ~(np.isnan(a) & np.isnan(b)))
    return int(ts_ns[changed[-1] + 1]) if len(changed) else None


def state_segments(
    ts_ns: npt.NDArray[np.int64], values: npt.NDArray[np.float64], since_ns: int
) -> tuple[list[int], list[float | None]]:
    """The state's changes from since_ns on: start times (ms) and values, the first clipped to since_ns
    when the state then was already known. Repeated samples of the same state collapse into one."""
    if len(ts_ns) == 0:
        return [], []
    before = np.flatnonzero(ts_ns < since_ns)
    start = int(before[-1]) if len(before) else 0
    ts, v = ts_ns[start:], values[start:]
    keep = np.ones(len(v), bool)
    same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
    keep[1:] = ~same
    t_out = np.maximum(ts[keep], since_ns) // 1_000_000
    return t_out.tolist(), [None if x != x else float(x) for x in v[keep].tolist()]


class IngestMeter:
    """Samples the writer's committed-row counter, so the dashboard can show rows per second over time.

    A reading is kept at most once a second, for ``keep_s``. ``run`` reads the counter every second on a
    daemon thread from the first time the dashboard asks until the counter goes away (the platform
    stopped), so the data health page opens with the last minutes already there.
    """

    def __init__(self, keep_s: float = 900.0) -> None:
        self.keep_ns = int(keep_s * 1e9)
        self._points: deque[tuple[int, int]] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run(self, read: Callable[[], int | None], every_s: float = 1.0) -> None:
        """Observe read() every every_s seconds on a daemon thread until it returns None (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, args=(read, every_s), name="ingest-meter", daemon=True)
            self._thread.start()

    def _loop(self, read: Callable[[], int | None], every_s: float) -> None:
        while True:
            try:
                value = read()
            except Exception:  # the platform is stopping: its writer is gone
                value = None
            if value is None:
                return
            self.observe(value)
            time.sleep(every_s)

    def observe(self, rows_committed: int, now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            points = self._points
            if points and rows_committed < points[-1][1]:  # a new writer counts from zero: start over
                points.clear()
            if points and now - points[-1][0] < 1_000_000_000:
                return
            points.append((now, rows_committed))
            while points and now - points[0][0] > self.keep_ns:
                points.popleft()

    def series(self) -> tuple[list[int], list[float]]:
        """Rows per second between consecutive readings: end times (ms) and rates."""
        with self._lock:
            points = list(self._points)
        t = [b[0] // 1_000_000 for b in points[1:]]
        rate = [(b[1] - a[1]) / ((b[0] - a[0]) / 1e9) for a, b in itertools.pairwise(points)]
        return t, rate

    def rate(self, over_s: float = 10.0) -> float | None:
        """Rows per second over about the last over_s seconds (None before two readings)."""
        with self._lock:
            points = list(self._points)
        if len(points) < 2:
            return None
        last = points[-1]
        first = next((p for p in points if last[0] - p[0] <= over_s * 1e9 and p is not last), points[-2])
        return (last[1] - first[1]) / ((last[0] - first[0]) / 1e9)
