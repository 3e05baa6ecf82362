"""Drive sessions: an operator's console drives a vehicle over a WebSocket, the vehicle's firmware keeps it safe.

``/api/ws/drive/{vehicle}`` (operator role when auth is on; one driver per vehicle at a time):

* console -> platform (JSON text): ``{"type": "hb", "t": <console ms>}`` heartbeats while the operator
  holds a drive button, ``{"type": "drive", "speed": <m/s>, "id": <n>}`` set-points (0 stops).
* platform -> console: JSON text messages ``hello`` (the vehicle's limits), ``echo`` (a heartbeat came
  back from the vehicle: the console's ``t`` and the vehicle's state, from which the console measures
  round-trip time and jitter), ``command`` (the vehicle took or refused a set-point, and why),
  ``state``/``status`` (drive state, speed, position), ``refused`` (the platform's checks refused a
  set-point); binary messages are camera frames (JPEG).

Everything the console sends reaches the vehicle as Sparkplug B DCMD through ``DriveLink``, whose single
writer thread publishes in order (the event loop never waits on MQTT). The platform adds to each
heartbeat the vehicle's newest echo time and how long it waited here, so the vehicle measures the link's
round trip on its own clock (an NTP-style exchange, no clock sync needed). The deadman itself is the
vehicle's: the platform only relays, so a platform crash or a cut link stops the vehicle the same way.
Drive set-points go through the command service's checks (role, range, interlocks, audit) when the
plant's ``control:`` section declares the vehicle's drive command (``drive.vehicles[].command``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import paho.mqtt.client as mqtt
from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect

from shopfloor.auth.deps import Viewer, principal_of
from shopfloor.auth.store import Principal, Role
from shopfloor.connectors.mqtt.sparkplug import DataType
from shopfloor.connectors.mqtt.sparkplug import sparkplug_b_pb2 as pb
from shopfloor.control.drive_config import DriveConfig, VehicleDrive
from shopfloor.core.errors import NotReady, UnknownTag
from shopfloor.services import service_client

if TYPE_CHECKING:
    from shopfloor.control.service import CommandService
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)

# DCMD metric names, the vehicle firmware's side of the protocol (shopfloor.sim.vehicle)
HB_SEQ, HB_CONSOLE, HB_ECHO, HB_HELD = "Heartbeat/Seq", "Heartbeat/Console", "Heartbeat/Echo", "Heartbeat/Held"
DRIVE_SPEED, DRIVE_ID, CAMERA_LEASE = "Drive/Speed", "Drive/Id", "Camera/Lease"
CAMERA_LEASE_MS = 3000


class DriveRefused(Exception):
    """A drive session or set-point the platform will not pass on; the message says which rule refused."""


class DriveAuthorizer(Protocol):
    """The checks a drive session and each set-point pass before anything goes out."""

    def authorize_drive(self, principal: Principal, vehicle: VehicleDrive, speed: float) -> None:
        """Raise DriveRefused naming the rule (role, range, interlock); record the attempt in the audit log."""

    def record_stop(self, principal: Principal, vehicle: VehicleDrive) -> None:
        """Record a stop that was sent (stops are never checked: stopping is always allowed)."""


class RangeAuthorizer:
    """The checks for a vehicle without a control command type: operator role and the vehicle's speed range."""

    def authorize_drive(self, principal: Principal, vehicle: VehicleDrive, speed: float) -> None:
        if not principal.has(Role.OPERATOR):
            raise DriveRefused(f"role: needs operator; {principal.name} is {principal.role.value}")
        if not abs(speed) <= vehicle.max_speed:
            raise DriveRefused(f"range: {speed} m/s outside +-{vehicle.max_speed} m/s")

    def record_stop(self, principal: Principal, vehicle: VehicleDrive) -> None:
        """Nothing to record without a command service."""


class CommandServiceAuthorizer:
    """The command service's checks (role, range, interlocks) and its audit log, for the vehicle's drive command."""

    def __init__(self, service: CommandService) -> None:
        self.service = service

    def authorize_drive(self, principal: Principal, vehicle: VehicleDrive, speed: float) -> None:
        assert vehicle.command is not None
        decision = self.service.authorize(principal, vehicle.command, speed)
        if not decision.allowed:
            raise DriveRefused(decision.reason)

    def record_stop(self, principal: Principal, vehicle: VehicleDrive) -> None:
        from shopfloor.control.audit import AuditEntry

        assert vehicle.command is not None
        self.service.audit.append(AuditEntry(
            ts_ns=time.time_ns(), user=principal.name, role=principal.role.value, command=vehicle.command,
            kind="drive", equipment=vehicle.equipment, protocol="sparkplug", value=0.0, value_text="0 m/s",
            step="drive-session", decision="executed", rule=None, reason="stop: sent at once, always allowed",
        ))


def encode_dcmd(timestamp_ms: int, metrics: list[tuple[str, DataType, float]]) -> bytes:
    """A DCMD payload with metrics by name (Int64 and Double only)."""
    payload = pb.Payload(timestamp=timestamp_ms)
    for name, datatype, value in metrics:
        m = payload.metrics.add(name=name, datatype=int(datatype), timestamp=timestamp_ms)
        if datatype == DataType.Double:
            m.double_value = float(value)
        elif datatype == DataType.Int64:
            m.long_value = round(value) & 0xFFFFFFFFFFFFFFFF
        else:
            raise ValueError(f"drive commands carry Int64 and Double metrics, not {datatype.name}")
    data: bytes = payload.SerializeToString()
    return data


Listener = Callable[[str, bytes], None]  # (kind "link" | "camera", payload), called on paho's thread


class DriveLink:
    """The platform's MQTT client for driving: one writer thread for DCMD, subscriptions to link and camera."""

    RECONNECT_MAX_S = 5  # the longest wait between reconnect tries: an operator is waiting to drive

    def __init__(self, client: mqtt.Client, host: str, port: int, vehicles: list[VehicleDrive]) -> None:
        """``client``: not yet connected, built with ``max_reconnect_s=RECONNECT_MAX_S``
        (``shopfloor.services.service_client`` in a platform, ``broker_client`` outside one)."""
        self.host, self.port = host, port
        self.vehicles = {v.name: v for v in vehicles}
        self._topics: dict[str, tuple[str, str]] = {}
        for v in vehicles:
            self._topics[f"{v.prefix}/{v.name}/link"] = (v.name, "link")
            self._topics[f"{v.prefix}/{v.name}/camera"] = (v.name, "camera")
        self._listeners: dict[str, Listener] = {}
        self._queue: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._client = client
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._writer: threading.Thread | None = None
        self.sent = 0
        self.received = 0

    def start(self, timeout: float = 10.0) -> None:
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self._client.loop_stop()
            raise NotReady(f"MQTT broker {self.host}:{self.port} did not accept the drive link")
        self._writer = threading.Thread(target=self._write, name="drive-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(5)
            self._writer = None
        self._client.disconnect()
        self._client.loop_stop()

    def listen(self, vehicle: str, listener: Listener | None) -> None:
        """Route the vehicle's link messages and camera frames to ``listener`` (None: nobody)."""
        if listener is None:
            self._listeners.pop(vehicle, None)
        else:
            self._listeners[vehicle] = listener

    def send(self, vehicle: VehicleDrive, metrics: list[tuple[str, DataType, float]]) -> None:
        """Queue a DCMD to the vehicle; returns at once (the writer thread publishes, in order)."""
        topic = f"spBv1.0/{vehicle.group}/DCMD/{vehicle.node}/{vehicle.device}"
        self._queue.put((topic, encode_dcmd(time.time_ns() // 1_000_000, metrics)))

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            topic, payload = item
            self._client.publish(topic, payload, qos=0)  # stale commands are worse than lost ones: no resend
            self.sent += 1

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("drive link refused by the broker: %s", reason)
            return
        client.subscribe([(t, 0) for t in self._topics])
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        route = self._topics.get(message.topic)
        if route is None:
            return
        self.received += 1
        listener = self._listeners.get(route[0])
        if listener is not None:
            try:
                listener(route[1], bytes(message.payload))
            except Exception:
                log.exception("drive link: a listener failed")


@dataclass
class Echo:
    """The newest heartbeat echo from a vehicle: its device time and when it arrived here."""

    device_us: int = 0
    received: float = 0.0  # time.monotonic() here


def heartbeat_metrics(seq: int, console_ms: float, echo: Echo) -> list[tuple[str, DataType, float]]:
    """A heartbeat's DCMD metrics: the vehicle measures the round trip from the echo time and the time held here."""
    held_us = round((time.monotonic() - echo.received) * 1e6) if echo.device_us else 0
    return [(HB_SEQ, DataType.Int64, seq), (HB_CONSOLE, DataType.Int64, console_ms),
            (HB_ECHO, DataType.Int64, echo.device_us), (HB_HELD, DataType.Int64, held_us)]


class DriveSession:
    """One operator driving one vehicle: relays heartbeats and set-points, collects echoes and frames."""

    def __init__(self, service: DriveService, vehicle: VehicleDrive, principal: Principal,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.service, self.vehicle, self.principal, self.loop = service, vehicle, principal, loop
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)
        self.frame: bytes | None = None
        self.frame_ready = asyncio.Event()
        self._echo = Echo()
        self.heartbeats = 0
        self.dropped = 0
        self._epoch = 0  # counts stops: a set-point checked while a stop went out is not sent
        self._setpoints: asyncio.Queue[tuple[int, float, int]] = asyncio.Queue()

    # paho's thread -> the session's loop
    def on_link(self, kind: str, payload: bytes) -> None:
        if kind == "camera":
            self.loop.call_soon_threadsafe(self._put_frame, payload)
            return
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "echo" and isinstance(message.get("device_us"), int):
            self._echo = Echo(message["device_us"], time.monotonic())
        self.loop.call_soon_threadsafe(self.put_message, message)

    def _put_frame(self, frame: bytes) -> None:
        self.frame = frame
        self.frame_ready.set()

    def put_message(self, message: dict[str, Any]) -> None:
        try:
            self.messages.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1

    def heartbeat(self, console_ms: float) -> None:
        self.service.link_send(self.vehicle, heartbeat_metrics(self.service.next_seq(self.vehicle.name), console_ms,
                                                               self._echo))
        self.heartbeats += 1

    def request(self, speed: float, command_id: int) -> None:
        """A set-point from the console (on the loop). A stop goes out at once; others wait for their checks."""
        if speed == 0.0:
            self._epoch += 1
            self._send_setpoint(0.0, command_id)
        self._setpoints.put_nowait((self._epoch, speed, command_id))

    async def check_setpoints(self) -> None:
        """The session's checker: set-points in order, each checked in a worker thread (the command service
        reads tags and writes its audit log), so heartbeats never wait behind a check."""
        authorizer = self.service.authorizer(self.vehicle)
        while True:
            epoch, speed, command_id = await self._setpoints.get()
            if speed == 0.0:
                await asyncio.to_thread(authorizer.record_stop, self.principal, self.vehicle)
                continue
            try:
                await asyncio.to_thread(authorizer.authorize_drive, self.principal, self.vehicle, speed)
            except DriveRefused as refused:
                self.service.setpoints_refused += 1
                self.put_message({"type": "refused", "id": command_id, "setpoint": speed, "reason": str(refused)})
                continue
            if epoch != self._epoch:
                self.put_message({"type": "refused", "id": command_id, "setpoint": speed,
                                   "reason": "superseded: a stop was sent while it was checked"})
                continue
            self._send_setpoint(speed, command_id)

    def _send_setpoint(self, speed: float, command_id: int) -> None:
        self.service.link_send(self.vehicle, [(DRIVE_SPEED, DataType.Double, speed), (DRIVE_ID, DataType.Int64,
                                                                                       command_id)])

    def camera_lease(self) -> None:
        self.service.link_send(self.vehicle, [(CAMERA_LEASE, DataType.Int64, CAMERA_LEASE_MS)])

    def stop(self) -> None:
        """A normal stop (always allowed) when the console goes away."""
        self.service.link_send(self.vehicle, [(DRIVE_SPEED, DataType.Double, 0.0), (DRIVE_ID, DataType.Int64, 0)])


class DriveService:
    """The platform service ``drive``: the link, the sessions (one per vehicle), counters for /health."""

    name = "drive"

    def __init__(self, config: DriveConfig, authorizer: DriveAuthorizer | None = None) -> None:
        self.config = config
        self._authorizer = authorizer
        self.link: DriveLink | None = None
        self._platform: Platform | None = None
        self._sessions: dict[str, DriveSession] = {}
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()
        self.sessions_opened = 0
        self.sessions_refused = 0
        self.setpoints_refused = 0

    def authorizer(self, vehicle: VehicleDrive) -> DriveAuthorizer:
        """The command service's checks when the vehicle names its drive command, else role and range alone."""
        if self._authorizer is not None:
            return self._authorizer
        if vehicle.command is None:
            return RangeAuthorizer()
        from shopfloor.control.service import CommandService

        try:
            service = self._platform.service("control") if self._platform is not None else None
        except KeyError:
            service = None
        if not isinstance(service, CommandService):
            raise DriveRefused(f"{vehicle.name}'s drive command {vehicle.command!r} needs the command service "
                               "(control: in plant.yaml)")
        return CommandServiceAuthorizer(service)

    def start(self, platform: Platform) -> None:
        self._platform = platform
        client, host, port = service_client(platform, f"shopfloor-drive-{platform.config.mqtt.host_id}",
                                            max_reconnect_s=DriveLink.RECONNECT_MAX_S)
        self.link = DriveLink(client, host, port, self.config.vehicles)
        self.link.start()

    def stop(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.stop()

    def health(self) -> dict[str, object]:
        link = self.link
        return {
            "vehicles": [v.name for v in self.config.vehicles], "sessions": sorted(self._sessions),
            "sessions_opened": self.sessions_opened, "sessions_refused": self.sessions_refused,
            "setpoints_refused": self.setpoints_refused,
            "dcmd_sent": link.sent if link else 0, "messages_received": link.received if link else 0,
        }

    def next_seq(self, vehicle: str) -> int:
        """Heartbeat numbers increase across sessions and restarts (microseconds of the wall clock, at least)."""
        with self._lock:
            seq = max(self._seq.get(vehicle, 0) + 1, time.time_ns() // 1000)
            self._seq[vehicle] = seq
            return seq

    def link_send(self, vehicle: VehicleDrive, metrics: list[tuple[str, DataType, float]]) -> None:
        if self.link is None:
            raise DriveRefused("the drive service is not running")
        self.link.send(vehicle, metrics)

    def open(self, vehicle_name: str, principal: Principal, loop: asyncio.AbstractEventLoop) -> DriveSession:
        """A session for the vehicle, or DriveRefused (unknown vehicle, role, someone else driving it)."""
        vehicle = self.config.vehicle(vehicle_name)
        with self._lock:
            try:
                if vehicle is None:
                    raise DriveRefused(f"unknown vehicle {vehicle_name!r}")
                if not principal.has(Role.OPERATOR):
                    raise DriveRefused(f"role: driving needs operator; {principal.name} is {principal.role.value}")
                other = self._sessions.get(vehicle.name)
                if other is not None:
                    raise DriveRefused(f"{vehicle.name} is being driven by {other.principal.name}")
                if self.link is None:
                    raise DriveRefused("the drive service is not running")
            except DriveRefused:
                self.sessions_refused += 1
                raise
            session = DriveSession(self, vehicle, principal, loop)
            self._sessions[vehicle.name] = session
            self.sessions_opened += 1
        self.link.listen(vehicle.name, session.on_link)
        return session

    def driver(self, vehicle: str) -> str | None:
        """Who drives the vehicle now, if anyone."""
        session = self._sessions.get(vehicle)
        return session.principal.name if session is not None else None

    def close(self, session: DriveSession) -> None:
        with self._lock:
            if self._sessions.get(session.vehicle.name) is not session:
                return
            del self._sessions[session.vehicle.name]
        if self.link is not None:
            self.link.listen(session.vehicle.name, None)
            with contextlib.suppress(DriveRefused):
                session.stop()


# --------------------------------------------------------------------------------------------------------------- API

router = APIRouter(tags=["drive"])


@router.get("/api/drive/vehicles")
def vehicles(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """The remotely driven vehicles, their limits and who drives each now (for the Drive page)."""
    platform = request.app.state.platform
    try:
        service = platform.service("drive")
    except KeyError:
        return []
    if not isinstance(service, DriveService):
        return []
    out = []
    for v in service.config.vehicles:
        try:
            position = platform.model.tag(f"{v.equipment}/position")
            track = position.range[1] if position.range is not None else None
        except UnknownTag:
            track = None
        out.append({**v.model_dump(), "driver": service.driver(v.name), "track_m": track})
    return out


def _service(websocket: WebSocket) -> DriveService | None:
    platform = websocket.app.state.platform
    try:
        service = platform.service("drive")
    except KeyError:
        return None
    return service if isinstance(service, DriveService) else None


@router.websocket("/api/ws/drive/{vehicle}")
async def drive_socket(websocket: WebSocket, vehicle: str) -> None:
    """Drive a vehicle (see the module docstring for the messages)."""
    service = _service(websocket)
    try:
        principal = principal_of(websocket, allow_query=True)
        if service is None:
            raise DriveRefused("no vehicles are configured for remote driving (drive: in plant.yaml)")
        config = service.config.vehicle(vehicle)
        if config is not None:  # the command service's checks for a stop (0): role and interlocks, audited
            try:
                await asyncio.to_thread(service.authorizer(config).authorize_drive, principal, config, 0.0)
            except DriveRefused:
                service.sessions_refused += 1
                raise
        session = service.open(vehicle, principal, asyncio.get_running_loop())
    except (HTTPException, DriveRefused) as refused:
        reason = refused.detail if isinstance(refused, HTTPException) else str(refused)
        await websocket.accept()
        await websocket.close(code=1008, reason=str(reason)[:120])
        return
    await websocket.accept()
    v = session.vehicle
    try:
        await websocket.send_text(json.dumps({
            "type": "hello", "vehicle": v.name, "equipment": v.equipment, "max_speed": v.max_speed,
            "jog_speed": v.jog_speed, "heartbeat_ms": v.heartbeat_ms, "timeout_ms": v.timeout_ms,
            "latency_budget_ms": v.latency_budget_ms, "driver": principal.name,
        }))
        session.camera_lease()
        tasks = [asyncio.create_task(_receive(websocket, session)), asyncio.create_task(_forward(websocket, session)),
                 asyncio.create_task(session.check_setpoints())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        service.close(session)


async def _receive(websocket: WebSocket, session: DriveSession) -> None:
    """The console's heartbeats and set-points, relayed as they come (nothing here waits on MQTT)."""
    while True:
        text = await websocket.receive_text()
        try:
            message = json.loads(text)
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "hb":
                session.heartbeat(float(message.get("t", 0.0)))
            elif kind == "drive":
                speed = float(message["speed"])
                if not math.isfinite(speed):
                    raise ValueError(f"speed must be a finite number, got {speed}")
                session.request(speed, int(message.get("id", 0)))
            else:  # replies go through the session's queue: one task sends on the socket
                session.put_message({"type": "error", "reason": f"unknown message type {kind!r}"})
        except (ValueError, KeyError, TypeError) as exc:
            session.put_message({"type": "error", "reason": f"bad message: {exc}"})


async def _forward(websocket: WebSocket, session: DriveSession) -> None:
    """The vehicle's echoes, replies and camera frames to the console; renews the camera lease."""
    lease_every = CAMERA_LEASE_MS / 3000
    next_lease = time.monotonic() + lease_every
    while True:
        get = asyncio.create_task(session.messages.get())
        frame = asyncio.create_task(session.frame_ready.wait())
        done, pending = await asyncio.wait({get, frame}, timeout=lease_every, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if get in done:
            await websocket.send_text(json.dumps(get.result()))
            while not session.messages.empty():
                await websocket.send_text(json.dumps(session.messages.get_nowait()))
        if frame in done and session.frame is not None:
            session.frame_ready.clear()
            await websocket.send_bytes(session.frame)
        if time.monotonic() >= next_lease:
            session.camera_lease()
            next_lease = time.monotonic() + lease_every


__all__ = [
    "DriveAuthorizer",
    "DriveLink",
    "DriveRefused",
    "DriveService",
    "DriveSession",
    "Echo",
    "RangeAuthorizer",
    "encode_dcmd",
    "heartbeat_metrics",
    "router",
]
