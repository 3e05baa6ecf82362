"""MQTT ingest: subscribe, decode Sparkplug B and the JSON format, map to tags, hand to the writer.

Threads: paho's network thread only appends raw messages to a bounded inbox (a
full inbox blocks it, so backpressure reaches the broker, which queues). One
worker thread drains the inbox in chunks, decodes each payload into columns,
maps metrics to tag ids with lookup arrays, and submits one batch per chunk to
the historian writer. QoS 1 messages are acknowledged (paho manual ack) only
after the writer has committed their samples, or after their dead letter is
stored: a crash before that leaves them with the broker, which sends them again.
The session is persistent (clean_session false), so the broker also keeps what
arrives while the platform is down.

With a ``host_id`` the platform is a Sparkplug primary host application: after subscribing it
publishes ``spBv1.0/STATE/<host_id>`` online (retained; its will says offline), so edge nodes
that name it send only while someone is there to receive (see sparkplug/state.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlparse

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.config.schema import JsonSource, SparkplugSource
from shopfloor.connectors.mqtt.jsonfmt import decode_json
from shopfloor.connectors.mqtt.sparkplug import (
    SparkplugTopic,
    decode_payload,
    encode_rebirth_request,
    encode_state,
    parse_topic,
    state_topic,
)
from shopfloor.connectors.mqtt.sparkplug_host import DeviceKey, SparkplugHost
from shopfloor.core.deadletters import DeadLetterStore
from shopfloor.core.errors import DecodeError, NotReady
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.net import no_delay
from shopfloor.core.samples import SampleBatch
from shopfloor.historian.writer import HistorianWriter

log = logging.getLogger(__name__)

SOURCE = "mqtt"


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """mqtt://host:port -> (host, port, tls)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parsed.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:1883, got {url!r}")
    tls = parsed.scheme in ("mqtts", "ssl")
    return parsed.hostname, parsed.port or (8883 if tls else 1883), tls


class MqttIngest:
    """The MQTT connector of the platform."""

    def __init__(
        self,
        broker_url: str,
        model: AssetModel,
        tag_index: TagIndex,
        writer: HistorianWriter,
        dead_letters: DeadLetterStore,
        *,
        client_id: str = "shopfloor-ingest",
        qos: int = 1,
        sparkplug_groups: list[str] | None = None,
        json_prefix: str = "shopfloor/json",
        host_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        max_inbox: int = 20_000,
        chunk_messages: int = 5_000,
        coalesce_s: float = 0.002,
    ) -> None:
        self.host, self.port, self.tls = parse_broker_url(broker_url)
        self.broker_url = broker_url
        self.writer = writer
        self.dead_letters = dead_letters
        self.qos = qos
        self.json_prefix = json_prefix.rstrip("/")
        self.max_inbox = max_inbox
        self.chunk_messages = chunk_messages
        self._sp_tags: dict[DeviceKey, dict[str, int]] = {}
        self._json_tags: dict[str, dict[str, int]] = {}
        for tag in model.tags:
            tag_id = tag_index.id_of(tag.path)
            if isinstance(tag.source, SparkplugSource):
                key = (tag.source.group, tag.source.node, tag.source.device)
                self._sp_tags.setdefault(key, {})[tag.address] = tag_id
            elif isinstance(tag.source, JsonSource):
                self._json_tags.setdefault(tag.source.device, {})[tag.address] = tag_id
        groups = sparkplug_groups if sparkplug_groups is not None else sorted({k[0] for k in self._sp_tags})
        self.subscriptions = [f"spBv1.0/{g}/#" for g in groups] + [f"{self.json_prefix}/+"]
        self.host_app = SparkplugHost(self._sparkplug_tag, self._publish)
        self.coalesce_s = coalesce_s
        self._inbox: deque[_Message] = deque()  # appended by paho's thread, drained by the worker
        self._has_data = threading.Event()
        self._has_space = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._connected = threading.Event()
        self.counts: Counter[str] = Counter()
        self.last_message_ns = 0
        self.connected_since_ns: int | None = None
        self.disconnects = 0
        self._topics: dict[str, tuple[str, object] | None] = {}

        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, manual_ack=True
        )
        if username:
            self.client.username_pw_set(username, password)
        if self.tls:
            self.client.tls_set()
        no_delay(self.client)  # PUBACKs and the host's commands are small packets: no Nagle wait
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 10)
        self._state_topic = state_topic(host_id) if host_id else None
        self._state_ms = time.time_ns() // 1_000_000  # one timestamp for the birth and the will (Sparkplug 3.0)
        if self._state_topic is not None:
            self.client.will_set(self._state_topic, encode_state(False, self._state_ms), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        # Compile (or load from cache) the Sparkplug decoder now, not on the first message.
        decode_payload(encode_rebirth_request(0))
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        self._worker.start()
        try:
            self.client.connect_async(self.host, self.port, keepalive=30)
            self.client.loop_start()
        except OSError as exc:
            raise NotReady(f"cannot reach MQTT broker {self.broker_url}: {exc}") from exc
        if not self._connected.wait(timeout):
            self.stop()
            raise NotReady(f"no connection to MQTT broker {self.broker_url} within {timeout} s")

    def stop(self) -> None:
        """Process what has arrived, let the writer commit it (acks go out), then disconnect."""
        self._stop.set()
        self._has_data.set()
        self._has_space.set()
        if self._worker is not None:
            self._worker.join(30)
            self._worker = None
        self.writer.flush()
        if self._state_topic is not None and self._connected.is_set():
            # A clean DISCONNECT discards the will: say offline ourselves, and wait briefly for the PUBACK.
            info = self.client.publish(self._state_topic, encode_state(False, self._state_ms), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- paho's thread ---------------------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT broker %s refused the connection: %s", self.broker_url, reason)
            return
        client.subscribe([(t, self.qos) for t in self.subscriptions])
        if self._state_topic is not None:  # after SUBSCRIBE: the broker handles a connection's packets in order
            client.publish(self._state_topic, encode_state(True, self._state_ms), qos=1, retain=True)
        self.connected_since_ns = time.time_ns()
        self._connected.set()
        log.info("connected to MQTT broker %s, subscribed to %s", self.broker_url, self.subscriptions)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            self.disconnects += 1
            log.warning("disconnected from MQTT broker %s: %s", self.broker_url, reason)
        self._connected.clear()
        self.connected_since_ns = None

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        # Called for every message on paho's thread: no lock and no wake-up unless needed.
        item = _Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time_ns())
        if len(self._inbox) >= self.max_inbox:
            self._has_space.clear()
            while len(self._inbox) >= self.max_inbox and not self._stop.is_set():
                self._has_space.wait(0.1)  # blocks the network thread: the broker queues for us
        self._inbox.append(item)
        if not self._has_data.is_set():
            self._has_data.set()

    def _publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=0)

    # --- the worker ------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            if not self._inbox:
                if self._stop.is_set():
                    return
                self._has_data.wait(0.05)
            self._has_data.clear()
            if 0 < len(self._inbox) < self.chunk_messages and not self._stop.is_set():
                time.sleep(self.coalesce_s)  # let a burst gather: fewer, larger commits
            n = min(len(self._inbox), self.chunk_messages)
            chunk = [self._inbox.popleft() for _ in range(n)]
            if len(self._inbox) < self.max_inbox:
                self._has_space.set()
            if chunk:
                try:
                    self._process(chunk)
                except Exception:  # a bug must not stop ingest; the chunk stays unacknowledged
                    log.exception("ingest of %d messages failed", len(chunk))
                    self.counts["internal errors"] += 1

    def _process(self, chunk: list[_Message]) -> None:
        batches: list[SampleBatch] = []
        to_ack: list[tuple[int, int]] = []
        sent: list[int] = []
        for m in chunk:
            self.counts["messages"] += 1
            self.last_message_ns = m.received_ns
            route = self._route(m.topic)
            if route is None:
                self._dead(m, f"topic {m.topic!r} is not a Sparkplug B or JSON-format topic")
                continue
            kind, info = route
            if kind == "invalid":
                self._dead(m, f"bad topic: {info}")
                continue
            try:
                if kind == "sparkplug":
                    assert isinstance(info, SparkplugTopic)
                    result = self.host_app.handle(info, m.payload, m.received_ns, m)
                    if result.held:
                        continue
                    released = result.released
                    if self.host_app.orphans:
                        released = [*released, *self.host_app.orphans]
                        self.host_app.orphans.clear()
                    for token, held_batch, held_problem in released:
                        held = cast(_Message, token)
                        if held_problem:
                            self.dead_letters.add(SOURCE, held.topic, held_problem, held.payload, held.received_ns)
                        if held_batch is not None:
                            batches.append(held_batch)
                            to_ack.append((held.mid, held.qos))
                        else:
                            self._ack(held.mid, held.qos)
                    batch, problem = result.batch, result.problem
                    if batch is not None and result.sent_ms:
                        sent.append(result.sent_ms * 1_000_000)
                else:
                    batch, problem = self._json(str(info), m)
            except DecodeError as exc:
                self._dead(m, f"decode error: {exc}")
                continue
            if problem:
                self.dead_letters.add(SOURCE, m.topic, problem, m.payload, m.received_ns)
            if batch is not None and len(batch):
                batches.append(batch)
                to_ack.append((m.mid, m.qos))
                self.counts["samples"] += len(batch)
            else:
                self._ack(m.mid, m.qos)
        if batches:
            merged = SampleBatch.concat(batches)
            self.writer.submit(merged, self._acker(to_ack), np.array(sent, np.int64) if sent else None)
        else:
            for mid, qos in to_ack:
                self._ack(mid, qos)

    def _route(self, topic: str) -> tuple[str, object] | None:
        if topic in self._topics:
            return self._topics[topic]
        route: tuple[str, object] | None = None
        if topic.startswith("spBv1.0/"):
            try:
                parsed = parse_topic(topic)
                route = ("sparkplug", parsed) if parsed is not None else None
            except DecodeError as exc:
                route = ("invalid", str(exc))
        elif topic.startswith(self.json_prefix + "/"):
            device = topic[len(self.json_prefix) + 1 :]
            route = ("json", device) if device and "/" not in device else None
        if len(self._topics) < 100_000:
            self._topics[topic] = route
        return route

    def _json(self, device: str, m: _Message) -> tuple[SampleBatch | None, str | None]:
        samples = decode_json(m.payload, m.received_ns)
        tags = self._json_tags.get(device)
        if tags is None:
            return None, f"unknown JSON device {device!r}"
        ids = np.fromiter((tags.get(k, -1) for k in samples.keys), np.int32, len(samples.keys))
        problems = list(samples.problems)
        unknown = sorted({k for k, i in zip(samples.keys, ids, strict=True) if i < 0})
        if unknown:
            problems.append(f"unknown key(s) {unknown} for device {device!r}")
        keep = ids >= 0
        batch = SampleBatch(ids[keep], samples.ts_ns[keep], samples.value[keep], samples.quality[keep])
        return (batch if len(batch) else None), ("; ".join(problems) if problems else None)

    def _sparkplug_tag(self, key: DeviceKey, name: str) -> int | None:
        return self._sp_tags.get(key, {}).get(name)

    def _dead(self, m: _Message, reason: str) -> None:
        self.counts["dead letters"] += 1
        self.dead_letters.add(SOURCE, m.topic, reason, m.payload, m.received_ns)
        self._ack(m.mid, m.qos)

    def _ack(self, mid: int, qos: int) -> None:
        if qos > 0:
            self.client.ack(mid, qos)

    def _acker(self, acks: list[tuple[int, int]]) -> Callable[[], None]:
        def ack_all() -> None:
            for mid, qos in acks:
                self._ack(mid, qos)

        return ack_all

    # --- health ----------------------------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        return {
            "name": SOURCE,
            "broker": self.broker_url,
            "connected": self.connected,
            "connected_since_ns": self.connected_since_ns,
            "disconnects": self.disconnects,
            "subscriptions": self.subscriptions,
            "inbox": len(self._inbox),
            "last_message_ns": self.last_message_ns or None,
            "counts": dict(self.counts),
            "sparkplug": {
                "messages_by_type": dict(self.host_app.counts),
                "nodes": [
                    {
                        "group": n.group, "node": n.node, "online": n.online, "bdseq": n.bdseq,
                        "births": n.births, "deaths": n.deaths, "seq_gaps": n.seq_gaps,
                        "rebirth_requests": n.rebirth_requests, "messages": n.messages,
                        "last_seen_ns": n.last_seen_ns or None, "held": len(n.held),
                    }
                    for n in self.host_app.nodes.values()
                ],
                "unmapped_metrics": dict(self.host_app.unmapped),
            },
        }
