"""Publish a VirtualFactory to an MQTT broker, as a real line would.

* The machines (CNCs, conveyor, robot) are devices of one Sparkplug B edge node
  (group/node of the factory), published through ``EdgeNode``: NBIRTH and DBIRTHs
  on connect, DDATA by alias each step, DDEATH and NDEATH on stop.
* The energy meters publish the plain JSON format, one message per meter per step
  on ``{json_prefix}/{device}``: ``{"ts": <epoch ms>, "values": {"active_power": 12.3, ...}}``
  with every key each time and null for a bad reading.

The births carry real values: ``start()`` (or the first ``run_for``) takes one step
before connecting and hands its values to the edge node, so the births are that
step (it counts as published, and the meters publish it too).

Report by exception (Sparkplug DDATA only): a metric goes out when it changed by
more than ``deadband`` x its engineering range span since it was last sent (any
change for tags without a range, such as counters and states; values are already
rounded to their resolution, so "unchanged" is exact), and every metric goes out
every ``refresh_every`` steps. ``deadband=None`` sends every metric every step.

Field servers: given ``field`` (a started ``FieldServers``), every step, the births'
included, is also handed to the factory's OPC UA and Modbus TCP servers. The
publisher neither starts nor stops them: they serve whoever connects, whether or
not the MQTT side is up, so their owner (e.g. ``shopfloor demo``) runs them.

Pacing: step k is published ``k * step_s / speed`` wall seconds after the start
(speed 0 or inf: as fast as possible). When publishing falls more than a second
behind, the schedule is moved rather than bursting to catch up.
``cap_at_wall_clock`` never lets sim time pass the wall clock: with a start time in
the past and speed 0 the factory backfills history, then carries on in real time.
Without it, speed > 1 publishes timestamps in the future.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.connectors.mqtt.jsonfmt import encode_json
from shopfloor.connectors.mqtt.sparkplug import DataType, EdgeNode, MetricSpec
from shopfloor.core.errors import NotReady
from shopfloor.sim.extension import Broker, FactoryExtension
from shopfloor.sim.factory import Frame, VirtualFactory
from shopfloor.sim.machines import F64, Device

if TYPE_CHECKING:  # the servers import asyncua and pymodbus: only when used
    from shopfloor.sim.field_servers import FieldServers

log = logging.getLogger(__name__)

SPARKPLUG_TYPES = {"float64": DataType.Double, "int64": DataType.Int64, "enum": DataType.Int32}


def metric_specs(devices: tuple[Device, ...]) -> dict[str, list[MetricSpec]]:
    """Sparkplug metric specs per device, aliases unique across the edge node (1, 2, ...)."""
    out: dict[str, list[MetricSpec]] = {}
    alias = 1
    for d in devices:
        specs = []
        for s in d.signals:
            specs.append(MetricSpec(s.name, SPARKPLUG_TYPES[s.type], alias))
            alias += 1
        out[d.name] = specs
    return out


def json_payload(ts_ms: int, keys: list[str], values: F64) -> bytes:
    """The plain JSON format of one meter reading; NaN becomes null."""
    vals: list[float | bool | None] = [None if v != v else v for v in values.tolist()]
    return encode_json(dict(zip(keys, vals, strict=True)), ts_ms)


class _Exceptions:
    """Report-by-exception state of one device: last values sent and deadbands."""

    def __init__(self, device: Device, deadband: float) -> None:
        self.deadband = np.array([deadband * (s.range[1] - s.range[0]) if s.range else 0.0 for s in device.signals])
        self.last = np.full(len(device.signals), np.nan)

    def mask(self, values: F64) -> npt.NDArray[np.bool_]:
        """Which values to send, remembered as sent."""
        last = self.last
        same = (np.abs(values - last) <= self.deadband) | (np.isnan(values) & np.isnan(last))
        send: npt.NDArray[np.bool_] = ~same
        last[send] = values[send]
        return send


class FactoryPublisher:
    """Runs a VirtualFactory against an MQTT broker (see the module docstring)."""

    def __init__(
        self,
        factory: VirtualFactory,
        host: str,
        port: int,
        *,
        speed: float = 1.0,
        qos: int = 0,
        username: str | None = None,
        password: str | None = None,
        deadband: float | None = 0.0,
        refresh_every: int = 60,
        cap_at_wall_clock: bool = False,
        connect_timeout: float = 10.0,
        field: FieldServers | None = None,
    ) -> None:
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 or inf: as fast as possible), got {speed}")
        if deadband is not None and deadband < 0:
            raise ValueError(f"deadband must be >= 0 or None, got {deadband}")
        self.factory = factory
        self.host, self.port, self.qos = host, port, qos
        self.speed = speed
        self.refresh_every = refresh_every
        self.cap_at_wall_clock = cap_at_wall_clock
        self.connect_timeout = connect_timeout
        self.field = field
        self._broker = Broker(host, port, username, password)
        self._extensions_started: list[FactoryExtension] = []
        self._interval = 0.0 if speed == 0 or math.isinf(speed) else factory.step_s / speed
        self._specs = metric_specs(factory.sparkplug_devices)
        self._edge = EdgeNode(host, port, factory.group, factory.node, qos=qos, username=username, password=password)
        for name, specs in self._specs.items():
            self._edge.add_device(name, specs)
        self._exceptions = (
            None if deadband is None else {d.name: _Exceptions(d, deadband) for d in factory.sparkplug_devices}
        )
        self._json_topics = {d.name: f"{factory.json_prefix}/{d.name}" for d in factory.json_devices}
        self._json_keys = {d.name: [s.name for s in d.signals] for d in factory.json_devices}
        self._json = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"shopfloor-sim-{factory.group}-{factory.node}-meters"
        )
        if username is not None:
            self._json.username_pw_set(username, password)
        self._json.on_connect = self._on_json_connect
        self._json_connected = threading.Event()
        self._last_json: mqtt.MQTTMessageInfo | None = None

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._stopped = False
        self._steps = 0
        self._t0 = 0.0
        self._k = 0
        self.error: BaseException | None = None  # what ended the background thread, if anything did

    # ------------------------------------------------------------------ public

    @property
    def steps_published(self) -> int:
        """Steps published so far, the one in the births included."""
        return self._steps

    def start(self) -> None:
        """Connect, publish births, and step and publish in a background thread until stop()."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("FactoryPublisher already started")
            self._connect()
            self._thread = threading.Thread(target=self._run, name="shopfloor-sim-publisher", daemon=True)
            self._thread.start()

    def run_for(self, steps: int) -> None:
        """Publish ``steps`` steps on this thread, as fast as ``speed`` allows (connecting first if need be)."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the background thread is publishing; run_for() is for a publisher not start()ed")
            self._connect()
            self._rebase()
            for _ in range(steps):
                if not self._pace():
                    break
                self._publish(self.factory.step())
            self._flush_json()

    def stop(self) -> None:
        """Stop the thread, publish DDEATHs and NDEATH, disconnect. Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._connected:
                self._edge.stop()
                self._flush_json()
                self._json.disconnect()
                self._json.loop_stop()
            self._stop_extensions()

    def _stop_extensions(self) -> None:
        while self._extensions_started:
            ext = self._extensions_started.pop()
            try:
                ext.stop()
            except Exception:
                log.exception("sim extension %s failed to stop", ext.name)

    def _start_extensions(self) -> None:
        for ext in self.factory.extensions:
            self._extensions_started.append(ext)
            ext.start(self._broker)

    # ------------------------------------------------------------------ internals

    def _on_json_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            self._json_connected.set()

    def _connect(self) -> None:
        """Once: one step for the births, connect both clients, publish the births and that step's meters."""
        if self._stopped:
            raise RuntimeError("FactoryPublisher was stopped")
        if self._connected:
            return
        self._wait_for_wall_clock()
        self._start_extensions()  # before the first step, so that they see every step
        frame = self.factory.step()
        if self.field is not None:
            self.field.update(frame)
        for name, values in frame.sparkplug.items():  # offline: the edge node keeps them for the births
            self._edge.publish_device_data(name, frame.ts_ms, values)
            if self._exceptions is not None:
                self._exceptions[name].last[:] = values
        self._json.connect_async(self.host, self.port)
        self._json.loop_start()
        try:
            if not self._json_connected.wait(self.connect_timeout):
                raise NotReady(f"MQTT broker {self.host}:{self.port} did not accept the connection")
            self._edge.start(self.connect_timeout)
        except BaseException:
            self._json.disconnect()
            self._json.loop_stop()
            raise
        self._connected = True
        self._publish_json(frame)
        self._steps = 1

    def _run(self) -> None:
        self._rebase()
        try:
            while self._pace():
                self._publish(self.factory.step())
        except Exception as exc:  # keep the reason; the thread must not die silently
            self.error = exc
            log.exception("virtual factory publisher stopped")

    def _publish(self, frame: Frame) -> None:
        ts = frame.ts_ms
        edge = self._edge
        if self.field is not None:
            self.field.update(frame)
        full = self._exceptions is None or (self.refresh_every > 0 and self._steps % self.refresh_every == 0)
        for name, values in frame.sparkplug.items():
            if full:
                edge.publish_device_data(name, ts, values)
                if self._exceptions is not None:
                    self._exceptions[name].last[:] = values
            else:
                assert self._exceptions is not None
                mask = self._exceptions[name].mask(values)
                if mask.any():
                    edge.publish_device_data(name, ts, values, mask)
        self._publish_json(frame)
        self._steps += 1

    def _publish_json(self, frame: Frame) -> None:
        ts = frame.ts_ms
        for name, values in frame.json.items():
            payload = json_payload(ts, self._json_keys[name], values)
            self._last_json = self._json.publish(self._json_topics[name], payload, qos=self.qos)

    def _flush_json(self) -> None:
        """Wait until the last meter message has left (qos 0: written to the socket)."""
        info = self._last_json
        if info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS:
            with contextlib.suppress(RuntimeError, ValueError):  # connection lost meanwhile
                info.wait_for_publish(timeout=5.0)

    def _rebase(self) -> None:
        self._t0 = time.monotonic()
        self._k = 0

    def _pace(self) -> bool:
        """Wait until the next step is due; False if stop() was called."""
        delay = 0.0
        if self._interval > 0:
            self._k += 1
            delay = self._t0 + self._k * self._interval - time.monotonic()
            if delay < -1.0:  # too far behind: move the schedule instead of bursting
                self._t0 = time.monotonic() - self._k * self._interval
                delay = 0.0
        if self.cap_at_wall_clock:
            delay = max(delay, self._ahead_s())
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def _ahead_s(self) -> float:
        """How far the next step's sim time is ahead of the wall clock, in seconds."""
        return (self.factory.now_ns + self.factory.step_ns - time.time_ns()) / 1e9

    def _wait_for_wall_clock(self) -> None:
        if self.cap_at_wall_clock and (ahead := self._ahead_s()) > 0:
            self._stop.wait(ahead)
