"""Link loss to stop: cut the vehicle's link while it drives and time the deadman, in device time.

The rig is the real chain: the simulated loco (``VehicleDevice``, its firmware on its own thread)
connects to the broker through a ``FaultProxy`` (the radio link: delay, jitter, loss, cut); the
platform's side is a ``DriveLink`` straight to the broker with a console thread that sends heartbeats
every period, as the drive page does while a button is held. Each trial drives, cuts the link at a
random moment, and reads the trip and standstill times from the loco's firmware log. Cut time and
device time are the same monotonic clock (one process), so nothing needs synchronising.

Used by the tests (tests/control/test_drive_link.py) and by benchmarks/control.py.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from shopfloor.connectors.mqtt.sparkplug import DataType
from shopfloor.control.drive import DRIVE_ID, DRIVE_SPEED, DriveLink, Echo, heartbeat_metrics
from shopfloor.control.drive_config import VehicleDrive
from shopfloor.services import broker_client
from shopfloor.sim.extension import Broker
from shopfloor.sim.vehicle import LocoSpec, VehicleDevice
from shopfloor.testing.faultproxy import FaultProxy, LinkFaults
from shopfloor.testing.waiting import wait_for

if TYPE_CHECKING:
    from rich.table import Table

# Short settings so that a trial takes about a second (the demo's loco uses 600 ms / 300 ms).
TEST_SPEC = LocoSpec(heartbeat_timeout_s=0.3, latency_budget_s=0.25, accel=1.0, safe_decel=2.5,
                     start_position_m=240.0)
TEST_HEARTBEAT_S = 0.1


@dataclass(frozen=True, slots=True)
class StopTrial:
    """One cut: seconds from the cut to the trip and to standstill (device time), the speed and the reason."""

    trip_s: float
    standstill_s: float
    speed: float
    reason: str


class TrippedBeforeCut(AssertionError):
    """The loco stopped on its own before the cut (a busy machine made a round trip over budget): no trial."""


class Console:
    """The operator console's heartbeats, on a thread, and what the vehicle says back."""

    def __init__(self, link: DriveLink, vehicle: VehicleDrive, period_s: float) -> None:
        self.link, self.vehicle, self.period_s = link, vehicle, period_s
        self.echo = Echo()
        self.echoes = 0
        self.replies: list[dict[str, Any]] = []
        self.rtts_ms: list[float] = []
        self._seq = time.time_ns() // 1000
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="drive-console", daemon=True)
        link.listen(vehicle.name, self._on_link)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.link.listen(self.vehicle.name, None)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self._seq += 1
            self.link.send(self.vehicle, heartbeat_metrics(self._seq, time.monotonic() * 1000, self.echo))
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _on_link(self, kind: str, payload: bytes) -> None:
        if kind != "link":
            return
        message = json.loads(payload)
        with self._lock:
            if message.get("type") == "echo":
                self.echo = Echo(int(message["device_us"]), time.monotonic())
                self.echoes += 1
                if message.get("console") is not None:
                    self.rtts_ms.append(time.monotonic() * 1000 - float(message["console"]))
            elif message.get("type") == "command":
                self.replies.append(message)

    def drive(self, speed: float, command_id: int, timeout: float = 10.0) -> dict[str, Any]:
        """Send a set-point and return the vehicle's reply."""
        self.link.send(self.vehicle, [(DRIVE_SPEED, DataType.Double, speed), (DRIVE_ID, DataType.Int64, command_id)])

        def reply() -> dict[str, Any]:
            with self._lock:
                return next((r for r in self.replies if r.get("id") == command_id), {})

        return wait_for(reply, timeout, 0.01)


class DriveRig:
    """Loco behind a fault proxy, drive link and console (see the module docstring). A context manager."""

    def __init__(self, broker_host: str, broker_port: int, spec: LocoSpec = TEST_SPEC,
                 heartbeat_s: float = TEST_HEARTBEAT_S, *, seed: int = 1, camera_fps: float = 5.0) -> None:
        self.spec = spec
        self.proxy = FaultProxy(broker_host, broker_port, seed=seed)
        self.device = VehicleDevice("loco1", "mine", spec=spec, camera_fps=camera_fps)
        self.vehicle = VehicleDrive(
            name="loco1", equipment="plant/mine/haulage/loco1", group="mine", node="loco1-plc", device="loco1",
            heartbeat_ms=round(heartbeat_s * 1000), timeout_ms=round(spec.heartbeat_timeout_s * 1000),
            latency_budget_ms=round(spec.latency_budget_s * 1000), max_speed=spec.max_speed,
            jog_speed=min(0.5, spec.max_speed))
        client = broker_client(f"drive-rig-{time.time_ns()}", max_reconnect_s=DriveLink.RECONNECT_MAX_S)
        self.link = DriveLink(client, broker_host, broker_port, [self.vehicle])
        self.console = Console(self.link, self.vehicle, heartbeat_s)
        self._rng = random.Random(seed)
        self._next_id = 0

    def __enter__(self) -> DriveRig:
        self.proxy.start()
        try:
            self.link.start()
            self.device.start(Broker("127.0.0.1", self.proxy.port))
            self.console.start()
            wait_for(lambda: self.console.echoes >= 3, 60.0, 0.02)  # the first DDATA compiles numba code
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.console.stop()
        self.device.stop()
        self.link.stop()
        self.proxy.stop()

    def drive(self, speed: float) -> dict[str, Any]:
        self._next_id += 1
        return self.console.drive(speed, self._next_id)

    def reconnect(self) -> None:
        """After a cut: close every proxied connection, forward again, wait for echoes to flow."""
        self.proxy.cut(close=True)
        self.proxy.restore()
        seen = self.console.echoes
        wait_for(lambda: self.console.echoes >= seen + 3, 60.0, 0.02)

    def cut_while_driving(self, speed: float, drive_s: tuple[float, float] = (0.3, 0.6)) -> StopTrial:
        """Drive at ``speed`` (a fresh command), cut the link after a random time, wait for standstill."""
        budget_ms = self.spec.latency_budget_s * 1000
        wait_for(lambda: self.device.snapshot()["rtt_ms"] < budget_ms * 0.8, 60.0, 0.02)  # the link has settled
        reply = self.drive(speed)
        if not reply["accepted"]:
            raise AssertionError(f"the loco refused to drive: {reply['reason']}")
        wait_for(lambda: abs(self.device.snapshot()["speed"]) > 0.05, 10.0, 0.01)
        time.sleep(self._rng.uniform(*drive_s))  # a random phase against the heartbeats
        trips_before = self.device.snapshot()["trips"]
        if self.device.snapshot()["state"] != "driving":
            raise TrippedBeforeCut(f"the loco stopped before the cut: {self.device.snapshot()}")
        cut_at = self.proxy.cut()
        def stopped() -> dict[str, Any]:
            s = self.device.snapshot()
            return s if s["trips"] > trips_before and s["trip_log"][-1][3] is not None else {}

        at, reason, v, standstill = wait_for(stopped, 10.0, 0.01)["trip_log"][-1]
        return StopTrial(trip_s=at - cut_at, standstill_s=standstill - cut_at, speed=v, reason=reason)


def link_loss_to_stop(broker_host: str, broker_port: int, trials: int, faults: LinkFaults | None = None, *,
                      speed: float = 1.0, spec: LocoSpec = TEST_SPEC, heartbeat_s: float = TEST_HEARTBEAT_S,
                      seed: int = 1) -> list[StopTrial]:
    """``trials`` cuts under ``faults`` (alternating direction, so the loco stays on its track)."""
    out: list[StopTrial] = []
    with DriveRig(broker_host, broker_port, spec, heartbeat_s, seed=seed) as rig:
        rig.proxy.set_faults(faults or LinkFaults())
        for i in range(trials):
            for attempt in range(3):  # a trip before the cut is no trial: start it again (at most twice)
                if i or attempt:
                    rig.reconnect()
                try:
                    out.append(rig.cut_while_driving(speed if i % 2 == 0 else -speed))
                    break
                except TrippedBeforeCut:
                    if attempt == 2:
                        raise
    return out


def summary(trials: list[StopTrial], bound_s: float) -> dict[str, float]:
    """p50/p99/max of trip and standstill times (ms), and how many of each were within ``bound_s``."""
    trip = np.array([t.trip_s for t in trials]) * 1000
    stand = np.array([t.standstill_s for t in trials]) * 1000
    return {
        "n": len(trials), "trip_p50_ms": float(np.percentile(trip, 50)), "trip_p99_ms": float(np.percentile(trip, 99)),
        "trip_max_ms": float(trip.max()), "standstill_p50_ms": float(np.percentile(stand, 50)),
        "standstill_p99_ms": float(np.percentile(stand, 99)), "standstill_max_ms": float(stand.max()),
        "trips_within_bound": int((trip <= bound_s * 1000).sum()),
        "standstill_within_bound": int((stand <= bound_s * 1000).sum()),
    }


# The link conditions of the benchmark: delay and jitter each way, loss as TCP retransmission stalls.
CONDITIONS: dict[str, LinkFaults] = {
    "clean": LinkFaults(),
    "delay 30 +-20 ms": LinkFaults(delay_s=0.03, jitter_s=0.02),
    "loss 5 % (50 ms stalls)": LinkFaults(delay_s=0.01, loss=0.05, retransmit_s=0.05),
    "delay 30 +-20 ms, loss 5 %": LinkFaults(delay_s=0.03, jitter_s=0.02, loss=0.05, retransmit_s=0.05),
}


def stop_section(broker_host: str, broker_port: int, trials: int, speed: float = 0.2) -> list[dict[str, Any]]:
    """The benchmark's link-loss-to-stop rows, one per link condition (``trials`` cuts each)."""
    bound = TEST_SPEC.heartbeat_timeout_s + TEST_HEARTBEAT_S
    rows = []
    for i, (name, faults) in enumerate(CONDITIONS.items()):
        result = link_loss_to_stop(broker_host, broker_port, trials, faults, speed=speed, seed=i + 1)
        reasons = sorted({t.reason for t in result})
        rows.append({"condition": name, "speed_m_s": speed, "bound_ms": bound * 1000, "reasons": reasons,
                     **summary(result, bound)})
    return rows


def stop_benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], Table]:
    """The link-loss-to-stop section of benchmarks/control.py: a Mosquitto of its own, ``--drive-trials`` cuts per
    link condition; returns the rows and a table."""
    from rich.table import Table

    from shopfloor.testing.mosquitto import Mosquitto

    trials = int(getattr(args, "drive_trials", 20))
    with Mosquitto() as broker:
        rows = stop_section("127.0.0.1", broker.port, trials)
    bound = rows[0]["bound_ms"]
    every = all(r["standstill_within_bound"] == r["n"] and r["trips_within_bound"] == r["n"] for r in rows)
    table = Table(
        title=f"Link loss to stop ({trials} cuts per link; deadman timeout {TEST_SPEC.heartbeat_timeout_s * 1000:.0f} "
              f"ms, heartbeat {TEST_HEARTBEAT_S * 1000:.0f} ms, loco at {rows[0]['speed_m_s']} m/s)",
        caption=f"ms from the cut to the trip and to standstill (device clock); bound = timeout + one heartbeat "
                f"period = {bound:.0f} ms: {'met every time' if every else 'NOT met every time'}")
    for col in ("link", "trip p50", "trip p99", "trip max", "standstill p50", "standstill p99", "standstill max",
                "within bound"):
        table.add_column(col, justify="left" if col == "link" else "right")
    for r in rows:
        table.add_row(r["condition"], f"{r['trip_p50_ms']:.0f}", f"{r['trip_p99_ms']:.0f}", f"{r['trip_max_ms']:.0f}",
                      f"{r['standstill_p50_ms']:.0f}", f"{r['standstill_p99_ms']:.0f}",
                      f"{r['standstill_max_ms']:.0f}", f"{r['standstill_within_bound']}/{r['n']}")
    return {"bound_ms": bound, "timeout_ms": TEST_SPEC.heartbeat_timeout_s * 1000,
            "heartbeat_ms": TEST_HEARTBEAT_S * 1000, "every_time": every, "links": rows}, table


def print_stop_section(rows: list[dict[str, Any]]) -> None:
    """The rows as a table, and whether every trip was within timeout + one heartbeat period."""
    print(f"Link loss to stop: deadman timeout {TEST_SPEC.heartbeat_timeout_s * 1000:.0f} ms, heartbeat every "
          f"{TEST_HEARTBEAT_S * 1000:.0f} ms, round-trip budget {TEST_SPEC.latency_budget_s * 1000:.0f} ms; "
          f"the loco drives at {rows[0]['speed_m_s']} m/s, safe deceleration {TEST_SPEC.safe_decel} m/s^2; "
          "times from the cut to the trip and to standstill, device clock")
    head = f"{'link':<28}{'n':>4}{'trip p50':>10}{'p99':>8}{'max':>8}{'stand p50':>11}{'p99':>8}{'max':>8}  within"
    print(head)
    for r in rows:
        print(f"{r['condition']:<28}{r['n']:>4}{r['trip_p50_ms']:>10.0f}{r['trip_p99_ms']:>8.0f}{r['trip_max_ms']:>8.0f}"
              f"{r['standstill_p50_ms']:>11.0f}{r['standstill_p99_ms']:>8.0f}{r['standstill_max_ms']:>8.0f}  "
              f"{r['standstill_within_bound']}/{r['n']} at standstill")
    every = all(r["standstill_within_bound"] == r["n"] and r["trips_within_bound"] == r["n"] for r in rows)
    print(f"target: standstill within timeout + one heartbeat period ({rows[0]['bound_ms']:.0f} ms) every time: "
          f"{'met' if every else 'NOT met'}")


__all__ = [
    "CONDITIONS",
    "TEST_HEARTBEAT_S",
    "TEST_SPEC",
    "Console",
    "DriveRig",
    "StopTrial",
    "TrippedBeforeCut",
    "link_loss_to_stop",
    "print_stop_section",
    "stop_benchmark",
    "stop_section",
    "summary",
]
