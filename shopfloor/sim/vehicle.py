"""A remotely driven underground ore locomotive: physics, deadman firmware, Sparkplug B device, camera.

Why a locomotive rather than a gantry crane: its motion is one axis (a track with ends), so the
physics that matters for remote driving, acceleration and braking limits, stopping distance and end
stops, stays small and checkable, and an underground loco is where remote driving with a camera
over a radio link is common (the operator sits on the surface).

Layers, each usable alone:

* ``Locomotive``: the firmware and physics, a pure state machine driven by ``advance(now)`` with the
  device clock passed in. Its deadman watchdog behaves like a hardware timer: the trip happens at
  exactly ``last heartbeat + timeout`` in device time, however late the host thread runs, and the
  physics is integrated piecewise around it (drive until the trip, safe braking after).
* ``VehicleDevice``: runs a ``Locomotive`` on its own thread against a broker, as the loco's PLC
  would: a Sparkplug B device of its own edge node (DBIRTH/DDATA, commands as DCMD), heartbeat
  echoes and command replies as JSON on ``{prefix}/{vehicle}/link``, camera frames (JPEG) on
  ``{prefix}/{vehicle}/camera`` while a drive session holds a camera lease, nothing otherwise.
* ``LocomotiveExtension``: the factory extension that adds it to the demo plant.

The command protocol (DCMD metrics by name) and the link messages are described in docs/drive.md.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.connectors.mqtt.sparkplug import DataType, EdgeNode, MetricSpec
from shopfloor.connectors.mqtt.sparkplug.codec import DecodedPayload
from shopfloor.core.errors import NotReady
from shopfloor.sim.extension import Broker

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "shopfloor/vehicles"

# DCMD metric names (the platform's drive session sends them, docs/drive.md)
HB_SEQ = "Heartbeat/Seq"  # Int64, increasing per console session
HB_CONSOLE = "Heartbeat/Console"  # Int64, the console's send time (ms, opaque to the device), echoed back
HB_ECHO = "Heartbeat/Echo"  # Int64, device time (us) of the newest echo the platform received, 0 if none
HB_HELD = "Heartbeat/Held"  # Int64, us that echo waited at the platform before this heartbeat left
DRIVE_SPEED = "Drive/Speed"  # Double, m/s set-point, signed (+ towards the far end); 0 is a normal stop
DRIVE_ID = "Drive/Id"  # Int64, command id, echoed in the reply
CAMERA_LEASE = "Camera/Lease"  # Int64, ms: stream camera frames for this long


class DriveState(IntEnum):
    STOPPED = 0
    DRIVING = 1
    SAFE_STOP = 2


class TripReason(IntEnum):
    NONE = 0
    HEARTBEAT_TIMEOUT = 1
    LATENCY = 2
    UPLINK = 3


class Brake(IntEnum):
    RELEASED = 0
    SERVICE = 1
    SAFE = 2


STATE_LABELS = {0: "stopped", 1: "driving", 2: "safe_stop"}
TRIP_LABELS = {0: "none", 1: "heartbeat_timeout", 2: "latency_over_budget", 3: "uplink_lost"}
BRAKE_LABELS = {0: "released", 1: "service", 2: "safe"}


@dataclass(frozen=True, slots=True)
class LocoSpec:
    """Physics and firmware settings. Defaults: a 10 t battery loco on a 480 m haulage drift."""

    track_length_m: float = 480.0
    max_speed: float = 3.5  # m/s (12.6 km/h)
    accel: float = 0.5  # m/s^2, traction limit
    service_decel: float = 0.8  # m/s^2, normal braking and the end-of-track protection
    safe_decel: float = 1.6  # m/s^2, the deadman's (emergency) braking
    end_margin_m: float = 1.0  # stops this far before the buffer stops at the track ends
    heartbeat_timeout_s: float = 0.6  # deadman: no heartbeat for longer than this while driving -> safe stop
    latency_budget_s: float = 0.3  # deadman: a link round trip above this while driving -> safe stop
    start_position_m: float = 20.0
    chutes_m: tuple[float, ...] = (150.0, 330.0)  # ore chutes (loading points), shown by the camera
    substep_s: float = 0.01  # physics integration step

    def __post_init__(self) -> None:
        for name in ("track_length_m", "max_speed", "accel", "service_decel", "safe_decel",
                     "heartbeat_timeout_s", "latency_budget_s", "substep_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.start_position_m <= self.track_length_m:
            raise ValueError("start_position_m must lie on the track")


@dataclass(slots=True)
class Trip:
    """One deadman trip: when (device time, s), why, at what speed, and when the loco stood still."""

    at: float
    reason: TripReason
    speed: float
    standstill_at: float | None = None


@dataclass(slots=True)
class Locomotive:
    """Firmware and physics (see the module docstring). Not thread-safe: the owner locks."""

    spec: LocoSpec
    t: float  # device time of the state, s
    position: float = 0.0
    speed: float = 0.0
    commanded: float = 0.0
    state: DriveState = DriveState.STOPPED
    brake: Brake = Brake.SERVICE
    trips: int = 0
    trip_reason: TripReason = TripReason.NONE
    refused: int = 0
    stale_heartbeats: int = 0
    last_heartbeat: float | None = None  # device time of the newest heartbeat
    last_seq: int = -1
    rtt_s: float = math.nan  # newest link round trip measured from a heartbeat
    echo_confirmed: float = -math.inf  # device time of the newest echo the platform said it received
    armed_at: float = -math.inf  # when the watchdog was last armed (a drive command taken)
    trip_log: list[Trip] = field(default_factory=list)

    @classmethod
    def create(cls, spec: LocoSpec, now: float) -> Locomotive:
        return cls(spec=spec, t=now, position=spec.start_position_m)

    # ------------------------------------------------------------------ inputs

    def heartbeat(self, now: float, seq: int, echo_us: int = 0, held_us: int = 0) -> bool:
        """A heartbeat arrived; False (and counted) if it is older than one already seen."""
        self.advance(now)
        if seq <= self.last_seq:
            self.stale_heartbeats += 1
            return False
        self.last_seq = seq
        self.last_heartbeat = now
        if echo_us > 0:
            self.echo_confirmed = max(self.echo_confirmed, echo_us / 1e6)
            self.rtt_s = max(0.0, now - echo_us / 1e6 - held_us / 1e6)
            if self.rtt_s > self.spec.latency_budget_s and self._watchdog_armed():
                self._trip(now, TripReason.LATENCY)
        return True

    def command_speed(self, now: float, speed: float) -> str | None:
        """A drive set-point (m/s, signed); returns why it was refused, None if taken."""
        self.advance(now)
        refusal = self._refusal(now, speed)
        if refusal is not None:
            self.refused += 1
            return refusal
        if speed != 0.0 and not self._watchdog_armed():
            self.armed_at = now
        self.commanded = speed
        if speed != 0.0:
            self.state = DriveState.DRIVING
            self.trip_reason = TripReason.NONE
        return None

    def _refusal(self, now: float, speed: float) -> str | None:
        spec = self.spec
        if not math.isfinite(speed) or abs(speed) > spec.max_speed:
            return f"speed {speed} m/s outside +-{spec.max_speed} m/s"
        if speed == 0.0:
            return None  # stopping is always allowed
        if self.last_heartbeat is None or now - self.last_heartbeat > spec.heartbeat_timeout_s:
            return "no fresh heartbeat from the console"
        if self.state == DriveState.SAFE_STOP and self.trip_log and self.last_heartbeat <= self.trip_log[-1].at:
            return "safe stop: needs a heartbeat after the trip, then a new drive command"
        if self.rtt_s > spec.latency_budget_s:
            budget = spec.latency_budget_s * 1000
            return f"link round trip {self.rtt_s * 1000:.0f} ms over the budget of {budget:.0f} ms"
        return None

    # ------------------------------------------------------------------ time

    def _watchdog_armed(self) -> bool:
        """The deadman watches while the loco is driven (a set-point other than 0); a normal stop needs no link."""
        return self.state == DriveState.DRIVING and self.commanded != 0.0

    def advance(self, now: float) -> None:
        """Run physics and the watchdog up to device time ``now`` (event-exact at the trip)."""
        spec = self.spec
        while self.t < now:
            if self._watchdog_armed() and self.last_heartbeat is not None:
                heard = self.last_heartbeat + spec.heartbeat_timeout_s
                # the uplink: echoes must reach the platform (or the operator drives blind); a backstop, as the
                # console stops its heartbeats when echoes stop, so it allows twice the timeout plus the budget
                seen = max(self.echo_confirmed, self.armed_at) + 2 * spec.heartbeat_timeout_s + spec.latency_budget_s
                deadline = max(min(heard, seen), self.t)
                if deadline <= now:
                    self._integrate(deadline)
                    self._trip(deadline, TripReason.HEARTBEAT_TIMEOUT if heard <= seen else TripReason.UPLINK)
                    continue
            self._integrate(now)

    def _trip(self, at: float, reason: TripReason) -> None:
        self.state = DriveState.SAFE_STOP
        self.brake = Brake.SAFE
        self.commanded = 0.0
        self.trips += 1
        self.trip_reason = reason
        trip = Trip(at=at, reason=reason, speed=self.speed)
        if self.speed == 0.0:
            trip.standstill_at = at
        self.trip_log.append(trip)
        log.warning("deadman: safe stop (%s) at %.2f m, %.2f m/s", TRIP_LABELS[reason], self.position, self.speed)

    def _integrate(self, end: float) -> None:
        spec = self.spec
        if self.speed == 0.0 and self.commanded == 0.0:
            self.t = end
            if self.state == DriveState.DRIVING:
                self.state = DriveState.STOPPED
            if self.state != DriveState.SAFE_STOP:
                self.brake = Brake.SERVICE
            return
        while self.t < end:
            dt = min(spec.substep_s, end - self.t)
            v0 = self.speed
            if self.state == DriveState.SAFE_STOP:
                target, rate = 0.0, spec.safe_decel
            else:
                target = self._protected(self.commanded)
                speeding_up = abs(target) > abs(v0) and (target * v0 >= 0)
                rate = spec.accel if speeding_up else spec.service_decel
                self.brake = Brake.RELEASED if speeding_up or target == v0 else Brake.SERVICE
            step = rate * dt
            v1 = target if abs(target - v0) <= step else v0 + math.copysign(step, target - v0)
            if v0 != 0.0 and (v1 == 0.0 or v1 * v0 < 0) and target * v0 <= 0:
                # comes to a standstill inside this step: exact time, no overshoot through zero
                t_stop = self.t + abs(v0) / rate
                self.position += v0 * (t_stop - self.t) / 2
                self.speed = 0.0
                self.t = min(t_stop, end)
                self._standstill(t_stop)
                if self.commanded == 0.0:
                    self.t = end
                    return
                continue
            self.position += (v0 + v1) / 2 * dt
            self.speed = v1
            self.t += dt
            if self.position <= 0.0 or self.position >= spec.track_length_m:  # the buffer stop (not reached normally)
                self.position = min(max(self.position, 0.0), spec.track_length_m)
                self.speed = 0.0
                self._standstill(self.t)

    def _standstill(self, at: float) -> None:
        if self.trip_log and self.trip_log[-1].standstill_at is None:
            self.trip_log[-1].standstill_at = at
        if self.state == DriveState.DRIVING and self.commanded == 0.0:
            self.state = DriveState.STOPPED
        if self.state != DriveState.SAFE_STOP:
            self.brake = Brake.SERVICE

    def _protected(self, commanded: float) -> float:
        """The set-point limited so that the loco can stop before the track end ahead at service braking."""
        spec = self.spec
        if commanded > 0:
            room = spec.track_length_m - spec.end_margin_m - self.position
        elif commanded < 0:
            room = self.position - spec.end_margin_m
        else:
            return 0.0
        limit = math.sqrt(2 * spec.service_decel * max(room, 0.0))
        return math.copysign(min(abs(commanded), limit), commanded)

    def values(self) -> list[float]:
        """The DDATA values, in the order of ``VEHICLE_METRICS``."""
        return [
            round(self.position, 3), round(self.speed, 3), self.commanded, float(self.brake), float(self.state),
            float(self.trips), float(self.trip_reason), round(self.rtt_s * 1000, 1) if self.rtt_s == self.rtt_s
            else math.nan, float(self.refused),
        ]


VEHICLE_SIGNALS: tuple[tuple[str, str, str, str, dict[int, str] | None], ...] = (
    # name, unit, type, description, states
    ("position", "m", "float64", "Position along the track from its near end", None),
    ("speed", "m/s", "float64", "Speed, + towards the far end", None),
    ("commanded_speed", "m/s", "float64", "Drive set-point in force", None),
    ("brake", "", "enum", "Brake applied", BRAKE_LABELS),
    ("drive_state", "", "enum", "stopped, driving, or safe stop (deadman)", STATE_LABELS),
    ("deadman_trips", "", "int64", "Safe stops by the deadman watchdog since power-on", None),
    ("trip_reason", "", "enum", "Why the last safe stop happened", TRIP_LABELS),
    ("link_rtt", "ms", "float64", "Link round trip as the loco measured it from the last heartbeat", None),
    ("refused_commands", "", "int64", "Drive commands the firmware refused", None),
)
_SP_TYPES = {"float64": DataType.Double, "int64": DataType.Int64, "enum": DataType.Int32}
VEHICLE_METRICS = [MetricSpec(n, _SP_TYPES[t], i + 1) for i, (n, _u, t, _d, _s) in enumerate(VEHICLE_SIGNALS)]


def _metric(decoded: DecodedPayload, names: dict[str, int], name: str) -> float | None:
    i = names.get(name)
    if i is None:
        return None
    v = float(decoded.value[i])
    return None if v != v else v


class VehicleDevice:
    """A ``Locomotive`` on its own thread against a broker (see the module docstring)."""

    def __init__(
        self,
        name: str = "loco1",
        group: str = "mine",
        node: str | None = None,
        spec: LocoSpec | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        camera_fps: float = 5.0,
        tick_s: float = 0.02,
        data_period_s: float = 0.25,
        idle_data_period_s: float = 2.0,
    ) -> None:
        self.name, self.group, self.node = name, group, node or f"{name}-plc"
        self.spec = spec or LocoSpec()
        self.link_topic = f"{prefix}/{name}/link"
        self.camera_topic = f"{prefix}/{name}/camera"
        self.camera_fps = camera_fps
        self.tick_s, self.data_period_s, self.idle_data_period_s = tick_s, data_period_s, idle_data_period_s
        self.refresh_s = 10.0  # every value at least this often, so that interlocks on them never go stale
        self._lock = threading.Lock()
        self.loco = Locomotive.create(self.spec, time.monotonic())
        self._camera_until = 0.0
        self._edge: EdgeNode | None = None
        self._link: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.frames_sent = 0
        self.echoes_sent = 0
        self._renderer: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, broker: Broker, timeout: float = 10.0) -> None:
        """Connect both clients (the PLC's Sparkplug node and the link/camera client), start the thread."""
        link = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shopfloor-{self.node}-link")
        if broker.username is not None:
            link.username_pw_set(broker.username, broker.password)
        link.reconnect_delay_set(1, 5)
        connected = threading.Event()
        link.on_connect = lambda c, u, f, r, p: connected.set() if not r.is_failure else None
        link.connect_async(broker.host, broker.port, keepalive=30)
        link.loop_start()
        self._link = link
        edge = EdgeNode(broker.host, broker.port, self.group, self.node, username=broker.username,
                        password=broker.password, on_command=self._on_command, keepalive=30)
        edge.add_device(self.name, VEHICLE_METRICS)
        edge.publish_device_data(self.name, _now_ms(), self.loco.values())
        self._edge = edge
        try:
            edge.start(timeout)
            if not connected.wait(timeout):
                raise NotReady(f"MQTT broker {broker.host}:{broker.port} did not accept the vehicle's link client")
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._run, name=f"vehicle-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, publish the deaths, disconnect. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._edge is not None:
            self._edge.stop()
            self._edge = None
        if self._link is not None:
            self._link.disconnect()
            self._link.loop_stop()
            self._link = None

    def snapshot(self) -> dict[str, Any]:
        """The loco's state now (device time advanced to now), for tests and benchmarks."""
        with self._lock:
            loco = self.loco
            loco.advance(time.monotonic())
            return {
                "t": loco.t, "position": loco.position, "speed": loco.speed, "commanded": loco.commanded,
                "state": STATE_LABELS[loco.state], "trips": loco.trips, "trip_reason": TRIP_LABELS[loco.trip_reason],
                "rtt_ms": loco.rtt_s * 1000, "refused": loco.refused, "last_heartbeat": loco.last_heartbeat,
                "trip_log": [(tr.at, TRIP_LABELS[tr.reason], tr.speed, tr.standstill_at) for tr in loco.trip_log],
            }

    # ------------------------------------------------------------------ commands (paho's thread)

    def _on_command(self, device: str | None, decoded: DecodedPayload) -> None:
        if device != self.name or decoded.names is None:
            return
        names = {n: i for i, n in enumerate(decoded.names) if n is not None}
        now = time.monotonic()
        reply: dict[str, Any] | None = None
        with self._lock:
            loco = self.loco
            seq = _metric(decoded, names, HB_SEQ)
            if seq is not None:
                echo = _metric(decoded, names, HB_ECHO) or 0.0
                held = _metric(decoded, names, HB_HELD) or 0.0
                if loco.heartbeat(now, int(seq), int(echo), int(held)):
                    reply = {"type": "echo", "seq": int(seq), "console": _metric(decoded, names, HB_CONSOLE),
                             "device_us": int(now * 1e6)}
            lease = _metric(decoded, names, CAMERA_LEASE)
            if lease is not None:
                self._camera_until = now + max(0.0, min(lease, 60_000.0)) / 1000
            speed = _metric(decoded, names, DRIVE_SPEED)
            command: dict[str, Any] | None = None
            if speed is not None:
                refusal = loco.command_speed(now, speed)
                command_id = _metric(decoded, names, DRIVE_ID)
                command = {"type": "command", "id": None if command_id is None else int(command_id),
                           "setpoint": speed, "accepted": refusal is None, "reason": refusal}
            status = self._status_locked()
        if reply is not None:
            self._publish_link({**reply, **status})
            self.echoes_sent += 1
        if command is not None:
            self._publish_link({**command, **status})
        self._wake.set()

    def _status_locked(self) -> dict[str, Any]:
        loco = self.loco
        return {"state": STATE_LABELS[loco.state], "trip_reason": TRIP_LABELS[loco.trip_reason],
                "speed": round(loco.speed, 3), "position": round(loco.position, 2),
                "rtt_ms": None if loco.rtt_s != loco.rtt_s else round(loco.rtt_s * 1000, 1), "trips": loco.trips}

    def _publish_link(self, message: dict[str, Any]) -> None:
        link = self._link
        if link is not None:
            link.publish(self.link_topic, json.dumps(message, separators=(",", ":")), qos=0)

    # ------------------------------------------------------------------ the PLC's cycle

    def _run(self) -> None:
        last_data = 0.0
        last_frame = 0.0
        last_values: list[float] | None = None
        last_state: tuple[Any, ...] | None = None
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                with self._lock:
                    loco = self.loco
                    loco.advance(now)
                    values = loco.values()
                    moving = loco.speed != 0.0 or loco.commanded != 0.0
                    state = (loco.state, loco.trips, loco.refused)
                    camera = now < self._camera_until
                    status = self._status_locked() if state != last_state else None
                    view = (loco.position, loco.speed, loco.commanded, loco.state) if camera else None
                    frame_status = self._status_locked() if camera else None
                period = self.data_period_s if moving or camera else self.idle_data_period_s
                changed = values != last_values and (now - last_data >= period or state != last_state)
                if self._edge is not None and (changed or now - last_data >= self.refresh_s):
                    self._edge.publish_device_data(self.name, _now_ms(), values)
                    last_values, last_data = values, now
                if status is not None and last_state is not None:
                    self._publish_link({"type": "state", **status})
                last_state = state
                if view is not None and now - last_frame >= 1.0 / self.camera_fps:
                    last_frame = now
                    self._send_frame(*view)
                    self._publish_link({"type": "status", **(frame_status or {})})  # the console's gauges
                busy = moving or camera
                self._wake.wait(self.tick_s if busy else 0.2)
                self._wake.clear()
        except Exception:
            log.exception("vehicle %s: the PLC thread stopped", self.name)

    def _send_frame(self, position: float, speed: float, commanded: float, state: DriveState) -> None:
        if self._renderer is None:
            from shopfloor.sim.vehicle_camera import TunnelCamera

            self._renderer = TunnelCamera(self.spec.track_length_m, self.spec.chutes_m)
        jpeg: bytes = self._renderer.render(position, speed, commanded, STATE_LABELS[state])
        link = self._link
        if link is not None:
            link.publish(self.camera_topic, jpeg, qos=0)
            self.frames_sent += 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------- the factory extension

MINE_AREA = "mine"
HAULAGE_LINE = "haulage"


class LocomotiveExtension:
    """The demo's ore locomotive: equipment, tags, drive config and alarm rule, and the device itself."""

    name = "locomotive"

    def __init__(self, vehicle: str = "loco1", group: str = "mine", spec: LocoSpec | None = None,
                 prefix: str = DEFAULT_PREFIX) -> None:
        self.vehicle, self.group, self.prefix = vehicle, group, prefix
        self.spec = spec or LocoSpec()
        self.device: VehicleDevice | None = None

    @property
    def equipment_path(self) -> str:
        return f"{MINE_AREA}/{HAULAGE_LINE}/{self.vehicle}"

    def equipment(self) -> dict[str, Any]:
        """The plant.yaml equipment entry of the loco."""
        spec = self.spec
        ranges: dict[str, list[float]] = {
            "position": [0.0, spec.track_length_m], "speed": [-spec.max_speed, spec.max_speed],
            "commanded_speed": [-spec.max_speed, spec.max_speed], "link_rtt": [0.0, 5000.0],
        }
        tags = []
        for name, unit, typ, description, states in VEHICLE_SIGNALS:
            tag: dict[str, Any] = {"name": name, "description": description, "type": typ}
            if unit:
                tag["unit"] = unit
            if name in ranges:
                tag["range"] = ranges[name]
            if states is not None:
                tag["states"] = dict(states)
            tags.append(tag)
        return {
            "name": self.vehicle, "type": "locomotive",
            "description": f"Battery ore locomotive on a {spec.track_length_m:.0f} m haulage drift, driven remotely",
            "source": {"protocol": "sparkplug", "group": self.group, "node": f"{self.vehicle}-plc",
                       "device": self.vehicle},
            "tags": tags,
        }

    def extend_plant(self, plant: dict[str, Any]) -> None:
        site = plant["site"]
        area = next((a for a in site["areas"] if a["name"] == MINE_AREA), None)
        if area is None:
            area = {"name": MINE_AREA, "description": "Underground mine, level -500 m", "lines": []}
            site["areas"].append(area)
        area["lines"].append({"name": HAULAGE_LINE, "description": "Ore haulage drift from the chutes to the shaft",
                              "equipment": [self.equipment()]})
        path = f"{site['name']}/{self.equipment_path}"
        plant.setdefault("alarms", {}).setdefault("rules", []).append(
            {"name": f"{self.vehicle}-safe-stop", "type": "state", "tag": f"{path}/drive_state",
             "states": ["safe_stop"], "priority": "high",
             "message": "Locomotive in safe stop: the deadman lost the operator console's heartbeats or the link "
                        "was too slow"})
        command = f"{self.vehicle}-drive"
        plant.setdefault("control", {}).setdefault("commands", []).append({
            "name": command, "equipment": path, "kind": "drive",
            "description": "Drive set-point of the ore locomotive (hold-to-drive on the Drive page)",
            "send": {"protocol": "sparkplug", "metric": "Drive/Speed", "datatype": "Double"},
            "value": {"type": "float", "min": -self.spec.max_speed, "max": self.spec.max_speed, "unit": "m/s"},
            "role": "operator",
            "interlocks": [{"name": "standstill-after-safe-stop", "expression": "drive_state != 2 or speed == 0"}],
            "answer": {"tag": "commanded_speed"},
        })
        from shopfloor.control.drive_config import drive_section

        plant["drive"] = drive_section(plant.get("drive"), self.vehicle, path, self.spec, self.prefix, self.group,
                                       command)

    def on_step(self, factory: VirtualFactory) -> None:
        """Nothing per line step: the loco runs on its own PLC cycle (much faster than the line's 1 s)."""

    def start(self, broker: Broker) -> None:
        if self.device is None:
            device = VehicleDevice(self.vehicle, self.group, spec=self.spec, prefix=self.prefix)
            device.start(broker)
            self.device = device

    def stop(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            device.stop()


__all__ = [
    "VEHICLE_METRICS",
    "Brake",
    "DriveState",
    "LocoSpec",
    "Locomotive",
    "LocomotiveExtension",
    "TripReason",
    "VehicleDevice",
]
