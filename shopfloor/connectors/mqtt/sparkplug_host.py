"""The Sparkplug B host application: births, aliases, sequence numbers, deaths.

It turns decoded payloads into SampleBatches of tag ids, keeping per edge node
the state that the protocol needs: bdSeq of the current session, the expected
sequence number, and per node/device an alias -> tag id lookup array built from
the birth certificates, so that data messages are mapped with one NumPy gather.

Rules (Sparkplug 3.0, host application):
- NBIRTH starts a session (seq 0); DBIRTH defines a device's metrics and aliases.
- A sequence gap, an unknown alias or data from a node without a birth triggers a
  rebirth request (NCMD 'Node Control/Rebirth'), rate-limited per node.
- Data from a node without a birth is held (bounded) until the birth arrives, so a
  platform restart in the middle of a session loses nothing.
- NDEATH (with the session's bdSeq) and DDEATH mark the tags bad-quality (NaN).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shopfloor.connectors.mqtt.sparkplug import (
    DataType,
    DecodedPayload,
    SparkplugTopic,
    decode_payload,
    encode_rebirth_request,
)
from shopfloor.core.samples import Quality, SampleBatch

UNKNOWN = -1  # alias not defined by the birth: needs a rebirth
UNMAPPED = -2  # metric born but not configured as a tag: counted and dropped

DeviceKey = tuple[str, str, str | None]

# Datatypes whose values a float64 sample holds: Int8..UInt64, Float, Double, Boolean, DateTime.
NUMERIC_DATATYPES = frozenset(range(1, 12)) | {13}  # (group, node, device or None for the node itself)


@dataclass
class _Metrics:
    """Alias and name lookups of one node or device, from its last birth."""

    lut: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))
    by_name: dict[str, int] = field(default_factory=dict)
    tag_ids: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))


@dataclass
class NodeState:
    group: str
    node: str
    online: bool = False
    bdseq: int | None = None
    seq: int | None = None
    births: int = 0
    deaths: int = 0
    seq_gaps: int = 0
    rebirth_requests: int = 0
    last_rebirth_request: float = 0.0
    last_seen_ns: int = 0
    messages: int = 0
    held: deque[tuple[SparkplugTopic, bytes, int, object]] = field(default_factory=deque)


@dataclass
class HostResult:
    """What one message produced: samples, and problems to dead-letter (the message's bytes go with them)."""

    batch: SampleBatch | None = None
    problem: str | None = None
    held: bool = False
    released: list[tuple[object, SampleBatch | None, str | None]] = field(default_factory=list)
    sent_ms: int | None = None  # the payload's timestamp: when the edge node sent it


class SparkplugHost:
    """Maps Sparkplug messages to samples of configured tags."""

    def __init__(
        self,
        tag_of: Callable[[DeviceKey, str], int | None],
        publish: Callable[[str, bytes], None],
        *,
        rebirth_interval_s: float = 5.0,
        max_held: int = 1000,
    ) -> None:
        """tag_of(device key, metric name) -> tag id or None; publish(topic, payload) sends NCMDs."""
        self._tag_of = tag_of
        self._publish = publish
        self.rebirth_interval_s = rebirth_interval_s
        self.max_held = max_held
        self.nodes: dict[tuple[str, str], NodeState] = {}
        self._metrics: dict[DeviceKey, _Metrics] = {}
        self.unmapped: Counter[str] = Counter()
        self.orphans: list[tuple[object, SampleBatch | None, str | None]] = []  # held, then dropped: dead letters
        self.counts: Counter[str] = Counter()

    def node_state(self, group: str, node: str) -> NodeState:
        key = (group, node)
        state = self.nodes.get(key)
        if state is None:
            state = self.nodes[key] = NodeState(group, node)
        return state

    def handle(self, topic: SparkplugTopic, payload: bytes, received_ns: int, token: object = None) -> HostResult:
        """Process one message. ``token`` travels with held messages so the caller can ack them on release."""
        mtype = topic.message_type
        self.counts[mtype] += 1
        if mtype in ("NCMD", "DCMD", "STATE"):
            return HostResult()
        decoded = decode_payload(payload)  # DecodeError propagates: the caller dead-letters the message
        result = self._dispatch(topic, decoded, payload, received_ns, token)
        result.sent_ms = decoded.timestamp
        return result

    def _dispatch(
        self, topic: SparkplugTopic, decoded: DecodedPayload, payload: bytes, received_ns: int, token: object
    ) -> HostResult:
        mtype = topic.message_type
        node = self.node_state(topic.group, topic.node)
        node.last_seen_ns = received_ns
        node.messages += 1
        if mtype == "NDEATH":
            return HostResult(batch=self._death(node, decoded, received_ns))
        if mtype == "NBIRTH":
            result = self._birth(node, topic, decoded, received_ns, new_session=True)
            result.released = self._release(node, None)
            return result
        if not node.online:
            self.request_rebirth(node, "data before birth")
            if len(node.held) >= self.max_held:
                return HostResult(problem=f"no birth from node {topic.group}/{topic.node}; held-message limit reached")
            node.held.append((topic, payload, received_ns, token))
            return HostResult(held=True)
        return self._in_session(node, topic, decoded, received_ns)

    def _in_session(
        self, node: NodeState, topic: SparkplugTopic, decoded: DecodedPayload, received_ns: int
    ) -> HostResult:
        self._check_seq(node, decoded)
        if topic.message_type == "DBIRTH":
            result = self._birth(node, topic, decoded, received_ns, new_session=False)
            result.released = self._release(node, topic.device)
            return result
        if topic.message_type == "DDEATH":
            return HostResult(batch=self._device_death(topic, received_ns))
        key: DeviceKey = (topic.group, topic.node, topic.device)
        metrics = self._metrics.get(key)
        if metrics is None:
            self.request_rebirth(node, f"data from unborn device {topic.device}")
            return HostResult(problem=f"{topic.message_type} from {_where(topic)} before its birth")
        return self._map(node, key, metrics, decoded, received_ns)

    def _check_seq(self, node: NodeState, decoded: DecodedPayload) -> None:
        if decoded.seq is None:
            return
        if node.seq is not None and decoded.seq != (node.seq + 1) % 256:
            node.seq_gaps += 1
            self.request_rebirth(node, f"sequence gap: expected {(node.seq + 1) % 256}, got {decoded.seq}")
        node.seq = decoded.seq

    def _birth(
        self, node: NodeState, topic: SparkplugTopic, decoded: DecodedPayload, received_ns: int, new_session: bool
    ) -> HostResult:
        key: DeviceKey = (topic.group, topic.node, topic.device)
        names = decoded.names or [None] * len(decoded.alias)
        if new_session:
            node.online = True
            node.births += 1
            node.seq = decoded.seq if decoded.seq is not None else 0
            node.bdseq = None
            for name, value in zip(names, decoded.value, strict=True):
                if name == "bdSeq" and not np.isnan(value):
                    node.bdseq = int(value)
            for k in [k for k in self._metrics if k[0] == topic.group and k[1] == topic.node]:
                del self._metrics[k]
        aliases = decoded.alias
        size = int(aliases.max()) + 1 if len(aliases) and aliases.max() >= 0 else 0
        lut = np.full(size, UNKNOWN, np.int32)
        by_name: dict[str, int] = {}
        ids = np.full(len(names), UNMAPPED, np.int32)
        wrong_type: list[str] = []
        for i, name in enumerate(names):
            if name is None:
                continue
            tag_id = self._tag_of(key, name)
            if tag_id is None:
                if not _is_protocol_metric(name):
                    self.unmapped[f"{_where(topic)}/{name}"] += 1
                tag_id = UNMAPPED
            elif int(decoded.datatype[i]) not in NUMERIC_DATATYPES:
                wrong_type.append(f"{name} ({_type_name(int(decoded.datatype[i]))})")
                self.unmapped[f"{_where(topic)}/{name}"] += 1
                tag_id = UNMAPPED  # a numeric tag cannot store it: refused, reported, not stored as NaN
            ids[i] = tag_id
            by_name[name] = tag_id
            if aliases[i] >= 0:
                lut[aliases[i]] = tag_id
        self._metrics[key] = _Metrics(lut, by_name, np.unique(ids[ids >= 0]))
        keep = ids >= 0
        batch = _batch(ids[keep], decoded, keep, received_ns)
        problem = None
        if wrong_type:
            problem = f"{_where(topic)}: non-numeric metric(s) mapped to numeric tags: {', '.join(wrong_type)}"
        return HostResult(batch=batch, problem=problem)

    def _map(
        self, node: NodeState, key: DeviceKey, metrics: _Metrics, decoded: DecodedPayload, received_ns: int
    ) -> HostResult:
        alias = decoded.alias
        lut = metrics.lut
        if decoded.names is None and len(alias) and alias.min() >= 0 and alias.max() < len(lut):
            ids = lut[alias]  # the common case: one gather
            if ids.min() >= 0:
                return HostResult(batch=_batch(ids, decoded, None, received_ns))
            if not (ids == UNKNOWN).any():  # only unmapped metrics besides mapped ones
                keep = ids >= 0
                return HostResult(batch=_batch(ids[keep], decoded, keep, received_ns))
        ids = np.full(len(alias), UNKNOWN, np.int32)
        in_lut = (alias >= 0) & (alias < len(metrics.lut))
        ids[in_lut] = metrics.lut[alias[in_lut]]
        if decoded.names is not None:
            for i, name in enumerate(decoded.names):
                if name is not None and alias[i] < 0:
                    ids[i] = metrics.by_name.get(name, UNKNOWN)
        problem = None
        unknown = ids == UNKNOWN
        if unknown.any():
            bad = sorted({int(a) for a in alias[unknown] if a >= 0})
            named = [n for n, u in zip(decoded.names or [], unknown, strict=False) if u and n]
            problem = f"unknown metric(s) for {key[0]}/{key[1]}/{key[2] or ''}: aliases {bad} names {named}"
            self.request_rebirth(node, "unknown alias")
        keep = ids >= 0
        return HostResult(batch=_batch(ids[keep], decoded, keep, received_ns), problem=problem)

    def _death(self, node: NodeState, decoded: DecodedPayload, received_ns: int) -> SampleBatch | None:
        bdseq = None
        for name, value in zip(decoded.names or [], decoded.value, strict=False):
            if name == "bdSeq" and not np.isnan(value):
                bdseq = int(value)
        if node.bdseq is not None and bdseq is not None and bdseq != node.bdseq:
            self.counts["stale NDEATH"] += 1
            return None  # the death of an older session: the node has reborn since
        node.online = False
        node.deaths += 1
        node.seq = None
        self.orphans.extend(self._drop_held(node, f"node {node.group}/{node.node} died before these were born"))
        keys = [k for k in self._metrics if k[0] == node.group and k[1] == node.node]
        ids = [self._metrics.pop(k).tag_ids for k in keys]
        return _stale(np.concatenate(ids) if ids else np.empty(0, np.int32), received_ns)

    def _device_death(self, topic: SparkplugTopic, received_ns: int) -> SampleBatch | None:
        metrics = self._metrics.pop((topic.group, topic.node, topic.device), None)
        return _stale(metrics.tag_ids, received_ns) if metrics is not None else None

    def _release(self, node: NodeState, device: str | None) -> list[tuple[object, SampleBatch | None, str | None]]:
        """Replay what was held for the node (device None) or one device, now that it is born.

        Held messages predate this session, so their sequence numbers are not checked.
        """
        out: list[tuple[object, SampleBatch | None, str | None]] = []
        keep: deque[tuple[SparkplugTopic, bytes, int, object]] = deque()
        for topic, payload, received_ns, token in node.held:
            if topic.device != device or topic.message_type in ("NBIRTH", "DBIRTH"):
                keep.append((topic, payload, received_ns, token))
                continue
            key: DeviceKey = (topic.group, topic.node, topic.device)
            decoded = decode_payload(payload)  # it decoded once already
            if topic.message_type == "DDEATH":
                out.append((token, self._device_death(topic, received_ns), None))
                continue
            result = self._map(node, key, self._metrics[key], decoded, received_ns)
            out.append((token, result.batch, result.problem))
        node.held = keep
        return out

    def _drop_held(self, node: NodeState, reason: str) -> list[tuple[object, SampleBatch | None, str | None]]:
        out: list[tuple[object, SampleBatch | None, str | None]] = [(t[3], None, reason) for t in node.held]
        node.held.clear()
        return out

    def request_rebirth(self, node: NodeState, reason: str) -> bool:
        now = time.monotonic()
        if now - node.last_rebirth_request < self.rebirth_interval_s:
            return False
        node.last_rebirth_request = now
        node.rebirth_requests += 1
        self._publish(f"spBv1.0/{node.group}/NCMD/{node.node}", encode_rebirth_request(int(time.time() * 1000)))
        return True


def _type_name(code: int) -> str:
    try:
        return DataType(code).name
    except ValueError:
        return f"datatype {code}"


def _where(topic: SparkplugTopic) -> str:
    return f"{topic.group}/{topic.node}" + (f"/{topic.device}" if topic.device else "")


def _is_protocol_metric(name: str) -> bool:
    return name == "bdSeq" or name.startswith(("Node Control/", "Device Control/", "Properties/"))


def _batch(
    tag_ids: npt.NDArray[np.int32], decoded: DecodedPayload, keep: npt.NDArray[np.bool_] | None, received_ns: int
) -> SampleBatch | None:
    """Samples of the kept metrics (keep None: all); a metric without any timestamp takes the receive time."""
    if len(tag_ids) == 0:
        return None
    ts_ms, value, quality = decoded.timestamp_ms, decoded.value, decoded.quality
    if keep is not None:
        ts_ms, value, quality = ts_ms[keep], value[keep], quality[keep]
    ts = ts_ms * 1_000_000
    if ts_ms.min() <= 0:
        ts[ts_ms <= 0] = received_ns
    return SampleBatch(tag_ids, ts, value, quality)


def _stale(tag_ids: npt.NDArray[np.int32], ts_ns: int) -> SampleBatch | None:
    if len(tag_ids) == 0:
        return None
    n = len(tag_ids)
    return SampleBatch(tag_ids, np.full(n, ts_ns, np.int64), np.full(n, np.nan), np.full(n, Quality.BAD, np.uint8))
