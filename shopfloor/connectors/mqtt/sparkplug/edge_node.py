"""A Sparkplug B edge node over paho-mqtt: births, data by alias, deaths, rebirth on request.

Used by the virtual factory (and later the edge gateway) to publish like a real Sparkplug
device would, so the ingest side is exercised against the real session rules:

* NDEATH is the MQTT will, carrying the session's bdSeq (0, 1, ... wrapping at 256, one per
  MQTT session). paho reads the will when it sends CONNECT, so after each successful connect the
  node re-arms the will with the *next* bdSeq; paho's automatic reconnect then carries it, and
  the NBIRTH of that session is published with the bdSeq its CONNECT carried.
* seq (0..255, wrapping) is shared by NBIRTH/DBIRTH/NDATA/DDATA/DDEATH; NBIRTH resets it to 0.
* Births carry the last published value of every metric (never published: null). Data
  published while offline is not queued: it only updates those last values, so the births of
  the next session carry it.
* An NCMD 'Node Control/Rebirth' = true republishes NBIRTH and all DBIRTHs (same bdSeq).

Threading: publish_* run on the caller's thread, commands and (re)connects on paho's loop
thread; one lock orders seq, last values and publishing, and data is gated until the births of
the current session are out. Limitation: with qos > 0, paho re-sends data that was in flight
when a connection dropped after the new session's births, with its old seq; use qos 0 (the
specification's choice for data) where that matters.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.core.errors import DecodeError, NotReady
from shopfloor.core.net import no_delay

from .codec import (
    DecodedPayload,
    MetricSpec,
    decode_payload,
    encode_birth,
    encode_data,
    encode_death,
    is_rebirth_request,
)
from .datatypes import NUMERIC_TYPES
from .topic import SparkplugTopic, parse_topic

log = logging.getLogger(__name__)

CommandHandler = Callable[[str | None, DecodedPayload], None]


class _Metrics:
    """The metrics of the node or of one device: specs, wire columns and last published values."""

    __slots__ = ("aliases", "datatypes", "last", "specs")

    def __init__(self, specs: Sequence[MetricSpec]) -> None:
        self.specs = tuple(specs)
        self.aliases = np.array([s.alias for s in self.specs], dtype=np.uint64)
        self.datatypes = np.array([int(s.datatype) for s in self.specs], dtype=np.uint32)
        self.last = np.full(len(self.specs), np.nan, dtype=np.float64)

    def birth_values(self) -> list[float | None]:
        return [None if np.isnan(v) else float(v) for v in self.last.tolist()]


def _check_specs(specs: Sequence[MetricSpec], owner: str, taken: set[int]) -> Sequence[MetricSpec]:
    """Reject what the node cannot publish: duplicate names, non-numeric types, reused aliases."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: duplicate metric names")
    odd = [s.name for s in specs if s.datatype not in NUMERIC_TYPES]
    if odd:
        raise ValueError(f"{owner}: EdgeNode publishes numeric and Boolean metrics only, not {odd}")
    aliases = [s.alias for s in specs]
    if len(set(aliases)) != len(aliases) or taken.intersection(aliases):
        raise ValueError(f"{owner}: metric aliases must be unique across the edge node and all its devices")
    return specs


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EdgeNode:
    """A Sparkplug B edge node with devices, publishing numeric and Boolean metrics by alias."""

    def __init__(
        self,
        host: str,
        port: int,
        group: str,
        node: str,
        *,
        client_id: str | None = None,
        qos: int = 0,
        username: str | None = None,
        password: str | None = None,
        node_metrics: Sequence[MetricSpec] = (),
        on_command: CommandHandler | None = None,
        keepalive: int = 60,
        reconnect_delay: int = 1,
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        self._host, self._port, self._qos, self._keepalive = host, port, qos, keepalive
        self._group, self._node = group, node
        self._on_command = on_command
        self._ndeath_topic = SparkplugTopic(group, "NDEATH", node).text
        self._nbirth_topic = SparkplugTopic(group, "NBIRTH", node).text
        self._ndata_topic = SparkplugTopic(group, "NDATA", node).text
        self._ncmd_topic = SparkplugTopic(group, "NCMD", node).text
        self._dcmd_filter = f"spBv1.0/{group}/DCMD/{node}/+"
        self._lock = threading.RLock()
        self._node_metrics = _Metrics(_check_specs(node_metrics, "node", set()))
        self._devices: dict[str, _Metrics] = {}
        self._seq = 0
        self._bdseq = 0  # bdSeq of the current (or last) MQTT session
        self._will_bdseq = 0  # bdSeq the next CONNECT carries in its will
        self._births = 0
        self._online = False  # connected and births published: data may flow
        self._started = False
        self._stopping = False
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._credentials = (username, password)
        self._client_id = client_id or f"shopfloor-{group}-{node}"
        self._reconnect_delay = reconnect_delay
        self._client = self._new_client()
        self._client_used = False

    def _new_client(self) -> mqtt.Client:
        """A paho client per start(): paho leaks its wake-up socket pair when loop_start() runs twice."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        username, password = self._credentials
        if username is not None:
            client.username_pw_set(username, password)
        client.reconnect_delay_set(self._reconnect_delay, max(30, self._reconnect_delay))
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        return no_delay(client)  # a command's report goes out at once

    # ------------------------------------------------------------------ configuration

    def add_device(self, device: str, metrics: Sequence[MetricSpec]) -> None:
        """Declare a device and its metrics; if the node is already online its DBIRTH goes out now."""
        SparkplugTopic(self._group, "DBIRTH", self._node, device)  # validates the id
        with self._lock:
            if device in self._devices:
                raise ValueError(f"device {device!r} already added")
            taken = {int(a) for m in (self._node_metrics, *self._devices.values()) for a in m.aliases}
            self._devices[device] = _Metrics(_check_specs(metrics, f"device {device!r}", taken))
            if self._online:
                self._publish_device_birth(device, self._devices[device], _now_ms())

    @property
    def births(self) -> int:
        """How many NBIRTHs this node has published (rebirths and reconnects included)."""
        with self._lock:
            return self._births

    @property
    def bdseq(self) -> int:
        """The bdSeq of the current MQTT session (the one in its NBIRTH and NDEATH)."""
        with self._lock:
            return self._bdseq

    @property
    def online(self) -> bool:
        """Whether data is flowing: connected and this session's births published."""
        with self._lock:
            return self._online

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> None:
        """Connect (NDEATH as the will), subscribe to commands, publish NBIRTH and DBIRTHs.

        Raises NotReady if the broker does not accept the connection within ``timeout``.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("EdgeNode already started")
            self._started = True
            if self._client_used:
                self._client = self._new_client()
            self._client_used = True
            self._client.will_set(self._ndeath_topic, encode_death(self._will_bdseq), qos=1, retain=False)
        deadline = time.monotonic() + timeout
        backoff = 0.05
        with contextlib.suppress(RuntimeError):  # paho refuses it in some states after a failed attempt
            self._client.connect_timeout = min(5.0, max(0.1, timeout))
        while True:  # the first connection here, so a missing broker is reported promptly; paho reconnects later
            try:
                self._client.connect(self._host, self._port, keepalive=self._keepalive)
                break
            except OSError as exc:
                self._connect_error = str(exc)
                if time.monotonic() + backoff >= deadline:
                    self._fail_start(timeout)
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
        self._client.loop_start()
        if not self._connected.wait(max(0.0, deadline - time.monotonic())):
            self.stop()  # the CONNACK may land just now: stop() then also publishes the deaths
            self._fail_start(timeout)

    def _fail_start(self, timeout: float) -> NoReturn:
        """Reset to not started (start() may be retried) and raise NotReady."""
        with self._lock:
            self._started = self._stopping = False
        reason = f": {self._connect_error}" if self._connect_error else ""
        raise NotReady(f"MQTT broker {self._host}:{self._port} did not accept the connection in {timeout}s{reason}")

    def stop(self) -> None:
        """Publish DDEATHs and NDEATH (a clean DISCONNECT discards the will), then disconnect. Idempotent."""
        with self._lock:
            if not self._started or self._stopping:
                return
            self._stopping = True
            info = None
            if self._online:
                now = _now_ms()
                for device in self._devices:
                    topic = SparkplugTopic(self._group, "DDEATH", self._node, device).text
                    self._client.publish(topic, encode_data(now, self._next_seq(), [], [], []), qos=self._qos)
                info = self._client.publish(self._ndeath_topic, encode_death(self._bdseq), qos=1)
            self._online = False
        if info is not None:
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):  # connection already gone: the broker sends the will
                log.warning("NDEATH of %s/%s not acknowledged before disconnect", self._group, self._node)
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:  # start() may open a new session (with the next bdSeq)
            self._started = self._stopping = False
            self._connected.clear()

    # ------------------------------------------------------------------ data

    def publish_node_data(self, timestamp_ms: int, values: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Publish NDATA: values aligned with node_metrics, NaN = null, mask = which ones (report by exception)."""
        self._publish_data(self._ndata_topic, self._node_metrics, timestamp_ms, values, mask)

    def publish_device_data(
        self, device: str, timestamp_ms: int, values: npt.ArrayLike, mask: npt.ArrayLike | None = None
    ) -> None:
        """Publish DDATA: values aligned with the device's metrics, NaN = null, mask = which ones."""
        try:
            metrics = self._devices[device]
        except KeyError:
            raise ValueError(f"unknown device {device!r}; add_device() it first") from None
        topic = SparkplugTopic(self._group, "DDATA", self._node, device).text
        self._publish_data(topic, metrics, timestamp_ms, values, mask)

    def _publish_data(
        self, topic: str, metrics: _Metrics, timestamp_ms: int, values: npt.ArrayLike, mask: npt.ArrayLike | None
    ) -> None:
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape != metrics.last.shape:
            raise ValueError(f"expected {metrics.last.shape[0]} values, got shape {vals.shape}")
        if mask is None:
            aliases, datatypes, sent = metrics.aliases, metrics.datatypes, vals
        else:
            sel = np.asarray(mask, dtype=np.bool_)
            if sel.shape != vals.shape:
                raise ValueError(f"mask shape {sel.shape} differs from values shape {vals.shape}")
            aliases, datatypes, sent = metrics.aliases[sel], metrics.datatypes[sel], vals[sel]
        with self._lock:
            if mask is None:
                metrics.last[:] = vals
            else:
                metrics.last[sel] = sent
            if not self._online or len(sent) == 0:
                return
            payload = encode_data(timestamp_ms, self._next_seq(), aliases, datatypes, sent)
            self._client.publish(topic, payload, qos=self._qos)

    # ------------------------------------------------------------------ births (lock held)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def _publish_births(self) -> None:
        now = _now_ms()
        self._seq = 0
        nm = self._node_metrics
        payload = encode_birth(now, 0, nm.specs, nm.birth_values(), bdseq=self._bdseq)
        self._client.publish(self._nbirth_topic, payload, qos=self._qos)
        self._births += 1
        for device, metrics in self._devices.items():
            self._publish_device_birth(device, metrics, now)

    def _publish_device_birth(self, device: str, metrics: _Metrics, now: int) -> None:
        topic = SparkplugTopic(self._group, "DBIRTH", self._node, device).text
        payload = encode_birth(now, self._next_seq(), metrics.specs, metrics.birth_values())
        self._client.publish(topic, payload, qos=self._qos)

    # ------------------------------------------------------------------ paho callbacks (loop thread)

    def _handle_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            log.warning("edge node %s/%s: connection refused: %s", self._group, self._node, reason)
            return
        with self._lock:
            if self._stopping:
                return
            self._bdseq = self._will_bdseq  # the bdSeq this session's CONNECT carried
            client.subscribe([(self._ncmd_topic, 1), (self._dcmd_filter, 1)])
            self._publish_births()
            self._online = True
            # paho sends the will with each CONNECT: arm the next session's NDEATH now
            self._will_bdseq = (self._bdseq + 1) % 256
            client.will_set(self._ndeath_topic, encode_death(self._will_bdseq), qos=1, retain=False)
        self._connected.set()

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: Any, properties: Any
    ) -> None:
        with self._lock:
            self._online = False
        if not self._stopping:
            log.warning("edge node %s/%s lost its connection (%s); paho reconnects", self._group, self._node, reason)

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = parse_topic(message.topic)
            if topic is None:
                return
            decoded = decode_payload(message.payload)
        except DecodeError as exc:
            log.warning("edge node %s/%s: ignoring command on %s: %s", self._group, self._node, message.topic, exc)
            return
        if topic.message_type == "NCMD" and is_rebirth_request(decoded):
            with self._lock:
                if self._online:
                    self._publish_births()
            return
        if self._on_command is not None:
            try:
                self._on_command(topic.device, decoded)
            except Exception:  # a faulty handler must not kill paho's loop thread
                log.exception("edge node %s/%s: on_command failed for %s", self._group, self._node, message.topic)
