"""The uplink: a Sparkplug B edge node session to the platform's broker, fed from the disk buffer.

One thread owns one paho client per connection and drives its network loop itself
(``client.loop``), so publishing, acknowledgements, commands and reconnects happen in one
order, with no lock between them. Per connection:

1. CONNECT with NDEATH (carrying this session's bdSeq) as the will; bdSeq grows by one per
   CONNECT and is kept in the buffer file, so it keeps growing across restarts.
2. NBIRTH (seq 0: bdSeq, Node Control/Rebirth, the link metrics), then a DBIRTH per device
   that has been read, with the last value of each metric and its own timestamp.
3. Forward the buffer from its oldest row: DDATA/NDATA messages of at most
   ``samples_per_message`` metrics, QoS 1, at most ``max_inflight`` unacknowledged. Rows that
   were on disk before this session's births are the backlog: their metrics carry
   ``is_historical``. A row is deleted once every message carrying it has its PUBACK.
4. On a lost connection, forget what was in flight (the rows are still on disk) and
   reconnect with capped exponential backoff on a new client, so paho never re-sends old
   messages with an old seq; the next session re-sends every unacknowledged row, in order.
   The historian is idempotent on (tag, timestamp): a message whose PUBACK was lost and is
   sent again makes no duplicate.

With ``primary_host`` set, step 2 waits until the host's retained ``spBv1.0/STATE/<id>`` says
online, and the session ends (NDEATH, disconnect, reconnect, wait again) when it says offline:
a broker that restarted without persistence has forgotten the platform's subscription, and
data sent before the platform is back would be acknowledged and deleted here, then lost.

An NCMD 'Node Control/Rebirth' republishes the births. Link quality (up, outages, outage
seconds, PUBLISH-to-PUBACK round trip) is measured here and sampled by the gateway.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.connectors.mqtt.ingest import parse_broker_url
from shopfloor.connectors.mqtt.sparkplug import (
    SparkplugTopic,
    decode_payload,
    decode_state,
    encode_death,
    is_rebirth_request,
    state_topic,
)
from shopfloor.core.errors import DecodeError
from shopfloor.core.samples import SampleBatch
from shopfloor.edge.buffer import DiskBuffer
from shopfloor.edge.catalog import NODE, Metric, MetricCatalog
from shopfloor.edge.config import EdgeConfig
from shopfloor.edge.payloads import encode_birth, encode_samples, warm_up

log = logging.getLogger(__name__)

LinkValues = Callable[[], dict[str, float]]  # the link metrics' current values, by name, for the NBIRTH


@dataclass
class _Chunk:
    """Buffer rows sent together; deletable when all their messages are acknowledged."""

    rows: list[int]
    samples: int
    pending: int = 0


class LinkStats:
    """Link state as the gateway reports it; the round trips are shared with the gateway's thread (a lock)."""

    def __init__(self) -> None:
        self.up = False
        self.outages = 0
        self.down_since: float | None = time.monotonic()  # down from the start until a first session
        self.connected_since_ns: int | None = None
        self.last_error: str | None = None
        self._rtts: list[float] = []  # seconds, since the last take_rtt_ms()
        self._recent: deque[float] = deque(maxlen=200)
        self._lock = threading.Lock()

    def outage_s(self) -> float:
        down = self.down_since
        return 0.0 if down is None else time.monotonic() - down

    def add_rtt(self, seconds: float) -> None:
        with self._lock:
            self._rtts.append(seconds)
            self._recent.append(seconds)

    def take_rtt_ms(self) -> float:
        """Median round trip since the previous call, in ms; NaN when nothing was acknowledged."""
        with self._lock:
            rtts, self._rtts = self._rtts, []
        return statistics.median(rtts) * 1000.0 if rtts else float("nan")

    def recent_rtt_ms(self) -> float | None:
        """Median of the last 200 round trips, in ms."""
        with self._lock:
            recent = list(self._recent)
        return statistics.median(recent) * 1000.0 if recent else None


class Uplink:
    """Forwards the buffer to the broker as a Sparkplug B edge node; see the module docstring."""

    def __init__(self, config: EdgeConfig, buffer: DiskBuffer, catalog: MetricCatalog, link_values: LinkValues) -> None:
        self.config = config
        self.buffer = buffer
        self.catalog = catalog
        self._link_values = link_values
        cfg = config.mqtt
        self.host, self.port, _ = parse_broker_url(cfg.broker)
        group, node = config.gateway.group, config.gateway.node
        self._topic_ndeath = SparkplugTopic(group, "NDEATH", node).text
        self._topic_nbirth = SparkplugTopic(group, "NBIRTH", node).text
        self._topic_ndata = SparkplugTopic(group, "NDATA", node).text
        self._topic_ncmd = SparkplugTopic(group, "NCMD", node).text
        self._topic_state = state_topic(cfg.primary_host) if cfg.primary_host else None
        self.devices: list[str] = [NODE, *(d.name for d in config.devices)]
        self._topics = [self._topic_ndata] + [SparkplugTopic(group, "DDATA", node, d).text for d in self.devices[1:]]
        self._birth_topics = [self._topic_nbirth] + [
            SparkplugTopic(group, "DBIRTH", node, d).text for d in self.devices[1:]
        ]
        size = len(catalog.configured)
        self._device_of = np.full(size, -1, np.int16)
        self._datatype_of = np.zeros(size, np.uint32)
        self._metrics_of: list[list[Metric]] = [[] for _ in self.devices]
        index = {d: i for i, d in enumerate(self.devices)}
        for m in catalog.metrics:
            self._device_of[m.id] = index[m.device]
            self._datatype_of[m.id] = int(m.datatype)
            self._metrics_of[index[m.device]].append(m)
        self.link = LinkStats()
        self._stop = threading.Event()
        self._drain_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._bdseq = buffer.meta_get("bdseq", -1)
        self._seq = 0
        # per-connection state (reset by _session)
        self._connack: bool | None = None
        self._lost = False
        self._acks: deque[tuple[int, float]] = deque()
        self._rebirth = False
        self._host_online: bool | None = None  # the primary host's last STATE on this connection
        self._inflight: dict[int, tuple[_Chunk, float]] = {}
        self._born: set[int] = set()
        # counters
        self.sessions = 0
        self.births = 0
        self.messages = 0
        self.samples_sent = 0
        self.samples_acked = 0
        self.orphaned = 0
        self.command_errors = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edge-uplink", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 0.0) -> None:
        """Forward what is on disk for up to ``drain_s`` (if connected), publish NDEATH, disconnect."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(drain_s + self.config.mqtt.connect_timeout_s + 10)
            self._thread = None

    def _run(self) -> None:
        warm_up()  # before the first session: a cold encoder would stall the first messages for seconds
        cfg = self.config.mqtt
        backoff = cfg.reconnect_min_s
        while not self._stop.is_set():
            client = self._connect()
            if client is None:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, cfg.reconnect_max_s)
                continue
            backoff = cfg.reconnect_min_s
            try:
                self._session(client)
            except Exception as exc:  # a bug must not end forwarding: drop the connection, start over
                log.exception("uplink session failed")
                self.link.last_error = f"internal error: {exc}"
            finally:
                self._close(client)

    # ------------------------------------------------------------------ connection

    def _connect(self) -> mqtt.Client | None:
        cfg = self.config.mqtt
        self._bdseq = (self._bdseq + 1) % 256
        self.buffer.meta_set("bdseq", self._bdseq)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        client.max_inflight_messages_set(cfg.max_inflight)
        client.max_queued_messages_set(0)
        client.will_set(self._topic_ndeath, encode_death(self._bdseq), qos=1)
        client.connect_timeout = cfg.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._connack, self._lost = None, False
        try:
            client.connect(self.host, self.port, keepalive=cfg.keepalive_s)
            deadline = time.monotonic() + cfg.connect_timeout_s
            while self._connack is None and not self._lost and time.monotonic() < deadline:
                client.loop(0.05)
        except (OSError, ValueError) as exc:
            self._failed(f"cannot connect to {cfg.broker}: {exc}")
            self._close(client)
            return None
        if not self._connack:
            self._failed(self.link.last_error if self._connack is False else f"no CONNACK from {cfg.broker}")
            self._close(client)
            return None
        return client

    def _failed(self, error: str | None) -> None:
        if self.link.last_error != error:
            log.warning("uplink: %s", error)
        self.link.last_error = error

    def _close(self, client: mqtt.Client) -> None:
        """End a connection for good; the client is not used again (paho would resend its old messages)."""
        try:
            client.disconnect()
            client.loop(0.01)
        except (OSError, ValueError):
            pass
        client.reinitialise()  # closes paho's wake-up socket pair, which disconnect() leaves open
        if self.link.up:
            self.link.up = False
            self.link.outages += 1
            self.link.down_since = time.monotonic()
            self.link.connected_since_ns = None
            log.warning("uplink to %s down (outage %d); buffering on disk", self.config.mqtt.broker,
                        self.link.outages)

    # paho callbacks: all run inside client.loop() on this thread
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack = not reason.is_failure
        if reason.is_failure:
            self.link.last_error = f"broker refused the connection: {reason}"

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._lost = True

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.append((mid, time.monotonic()))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic == self._topic_state:
                self._host_online = decode_state(bytes(msg.payload))[0]
            elif msg.topic == self._topic_ncmd and is_rebirth_request(decode_payload(msg.payload)):
                self._rebirth = True
        except DecodeError as exc:
            self.command_errors += 1
            log.warning("uplink: undecodable command on %s: %s", msg.topic, exc)

    # ------------------------------------------------------------------ one session

    def _session(self, client: mqtt.Client) -> None:
        cfg = self.config.mqtt
        self._inflight.clear()
        self._acks.clear()
        self._born.clear()
        self._rebirth = False
        client.subscribe(self._topic_ncmd, qos=1)
        if not self._wait_for_host(client):
            return
        historical_until = self.buffer.last_id  # rows up to here were read before this session: backlog
        if self.link.down_since is not None:
            log.info("uplink to %s up (bdSeq %d) after %.1f s; backlog %d samples", cfg.broker, self._bdseq,
                     self.link.outage_s(), self.buffer.stats().samples)
        self.link.up, self.link.down_since, self.link.last_error = True, None, None  # the NBIRTH says so
        self.link.connected_since_ns = time.time_ns()
        self._publish_births(client)
        self.sessions += 1
        cursor = 0
        while not self._lost:
            client.loop(0.02)
            self._take_acks()
            if self._lost:
                break
            if self._host_online is False:
                log.warning("uplink: primary host %s went offline; ending the session", self.config.mqtt.primary_host)
                self._goodbye(client)
                self.link.last_error = "primary host offline"
                return
            if self._rebirth:
                self._rebirth = False
                log.info("uplink: rebirth requested by a host application")
                self._born.clear()
                self._publish_births(client)
            while len(self._inflight) < cfg.max_inflight and cursor < self.buffer.last_id and not self._lost:
                cursor = self._send_next(client, cursor, historical_until)
            if self._stop.is_set() and (
                time.monotonic() >= self._drain_deadline
                or (not self._inflight and cursor >= self.buffer.last_id)
            ):
                self._goodbye(client)
                return

    def _wait_for_host(self, client: mqtt.Client) -> bool:
        """With a primary host configured: subscribe to its STATE and wait until it says online.

        The retained STATE arrives right after SUBSCRIBE. Until the host is online nothing is
        published (the buffer keeps filling); False if the connection drops or the gateway stops first.
        """
        if self._topic_state is None:
            return True
        self._host_online = None
        client.subscribe(self._topic_state, qos=1)
        waiting_since = time.monotonic()
        while not self._lost and not self._stop.is_set():
            client.loop(0.05)
            if self._host_online:
                return True
            if time.monotonic() - waiting_since > 1.0 and self.link.last_error != "waiting for the primary host":
                self._failed("waiting for the primary host")
        return False

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def _publish(self, client: mqtt.Client, topic: str, payload: bytes) -> int | None:
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost = True
            return None
        self.messages += 1
        return info.mid

    def _publish_births(self, client: mqtt.Client) -> None:
        now_ns = time.time_ns()
        self._seq = 0
        node = self._metrics_of[0]
        ts, values, quality = self.catalog.last([m.id for m in node])
        fresh = self._link_values()
        for i, m in enumerate(node):
            if m.name in fresh and not np.isnan(fresh[m.name]):
                ts[i], values[i], quality[i] = now_ns, fresh[m.name], 192
        payload = encode_birth(now_ns // 1_000_000, 0, node, ts, values, quality, bdseq=self._bdseq)
        self._publish(client, self._topic_nbirth, payload)
        self.births += 1
        self._born.add(0)
        for device in range(1, len(self.devices)):
            ts, _, _ = self.catalog.last([m.id for m in self._metrics_of[device]])
            if ts.max(initial=0) > 0:  # a device never read is born with its first data
                self._publish_device_birth(client, device)

    def _publish_device_birth(self, client: mqtt.Client, device: int, first: SampleBatch | None = None) -> None:
        """DBIRTH with each metric's last value; ``first``, the data about to follow, fills in what is not known yet."""
        metrics = self._metrics_of[device]
        ids = [m.id for m in metrics]
        ts, values, quality = self.catalog.last(ids)
        if first is not None and (ts == 0).any():
            newest = first.last_per_tag()
            where = {int(t): i for i, t in enumerate(newest.tag_id.tolist())}
            for i, metric_id in enumerate(ids):
                j = where.get(metric_id)
                if ts[i] == 0 and j is not None:
                    ts[i], values[i], quality[i] = newest.ts[j], newest.value[j], newest.quality[j]
        payload = encode_birth(time.time_ns() // 1_000_000, self._next_seq(), metrics, ts, values, quality)
        self._publish(client, self._birth_topics[device], payload)
        self._born.add(device)

    def _send_next(self, client: mqtt.Client, cursor: int, historical_until: int) -> int:
        """Publish the next rows after ``cursor``; return the new cursor."""
        cfg = self.config.mqtt
        last_id = self.buffer.last_id
        rows = self.buffer.read(cursor, cfg.samples_per_message * 4)
        if cursor < historical_until:  # never mix backlog and live rows in one message
            rows = [r for r in rows if r[0] <= historical_until] or rows
        if not rows:
            return last_id  # the rows up to there were dropped (buffer full) before they could be sent
        chunk = _Chunk([r[0] for r in rows], 0)
        historical = rows[-1][0] <= historical_until
        batch = SampleBatch.concat([r[1] for r in rows])
        known = self.catalog.known(batch.tag_id)
        if not known.all():
            self.orphaned += int((~known).sum())
            batch = batch.take(known)
        chunk.samples = len(batch)
        devices = self._device_of[batch.tag_id]
        now_ms = time.time_ns() // 1_000_000
        sent: list[tuple[int, int]] = []
        for device in _in_order_of_appearance(devices):
            part = batch.take(devices == device)
            if device not in self._born:
                self._publish_device_birth(client, device, part)
            for start in range(0, len(part), cfg.samples_per_message):
                piece = part.take(np.arange(start, min(start + cfg.samples_per_message, len(part))))
                payload = encode_samples(
                    now_ms, self._next_seq(), piece.tag_id.astype(np.uint64), self._datatype_of[piece.tag_id],
                    piece.ts, piece.value, piece.quality, historical=historical,
                )
                mid = self._publish(client, self._topics[device], payload)
                if mid is None:
                    return rows[-1][0]  # the session is over; the next one resends from the oldest row
                sent.append((mid, len(piece)))
        chunk.pending = len(sent)
        if not sent:
            self.buffer.delete(chunk.rows)  # nothing of it is forwarded (orphans only)
        t = time.monotonic()
        for mid, _ in sent:
            self._inflight[mid] = (chunk, t)
        self.samples_sent += chunk.samples
        return rows[-1][0]

    def _take_acks(self) -> None:
        while self._acks:
            mid, t_ack = self._acks.popleft()
            entry = self._inflight.pop(mid, None)
            if entry is None:  # a birth, a death or a command subscription
                continue
            chunk, t_sent = entry
            self.link.add_rtt(t_ack - t_sent)
            chunk.pending -= 1
            if chunk.pending == 0:
                self.buffer.delete(chunk.rows)
                self.samples_acked += chunk.samples

    def _goodbye(self, client: mqtt.Client) -> None:
        """NDEATH (a clean DISCONNECT discards the will, so it is sent by hand) and wait briefly for its PUBACK."""
        mid = self._publish(client, self._topic_ndeath, encode_death(self._bdseq))
        deadline = time.monotonic() + 2.0
        while mid is not None and not self._lost and time.monotonic() < deadline:
            client.loop(0.02)
            if any(m == mid for m, _ in self._acks):
                break
        self._take_acks()
        self.link.up = False  # a clean stop, not an outage
        self.link.down_since = time.monotonic()

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, object]:
        link = self.link
        rtt = link.recent_rtt_ms()
        return {
            "broker": self.config.mqtt.broker,
            "client_id": self.config.client_id,
            "up": link.up,
            "connected_since_ns": link.connected_since_ns,
            "outages": link.outages,
            "outage_s": round(link.outage_s(), 3),
            "rtt_ms_recent_median": None if rtt is None else round(rtt, 3),
            "bdseq": self._bdseq,
            "sessions": self.sessions,
            "births": self.births,
            "messages_published": self.messages,
            "samples_sent": self.samples_sent,
            "samples_acknowledged": self.samples_acked,
            "in_flight_messages": len(self._inflight),
            "orphaned_samples": self.orphaned,
            "command_errors": self.command_errors,
            "last_error": link.last_error,
        }


def _in_order_of_appearance(values: npt.NDArray[np.int16]) -> list[int]:
    uniq, first = np.unique(values, return_index=True)
    return [int(u) for u in uniq[np.argsort(first)]]
