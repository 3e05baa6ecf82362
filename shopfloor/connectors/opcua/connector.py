"""OPC UA field connector: one subscription per server, supervised by the connector itself.

Notifications are buffered column-wise and flushed as one SampleBatch every
``flush_interval`` seconds or ``flush_size`` notifications, never one batch per
notification. asyncua's own auto-reconnect is off: the connector notices a loss
(asyncua's keepalive / server-state probe fires ``connection_lost_callback``, or
the subscription reports a Bad status), marks every point BAD once, and
reconnects with capped exponential backoff, re-creating the subscription.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.common.ua_utils import data_type_to_variant_type, get_base_data_type
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from shopfloor.config.schema import OpcUaPoint, OpcUaSource
from shopfloor.connectors.base import Emit
from shopfloor.connectors.opcua._client import (
    OpcUaError,
    check_status,
    close_client,
    datetime_to_ns,
    describe,
    make_client,
    parse_node_id,
    status_name,
    translate_error,
)
from shopfloor.core.errors import NotReady
from shopfloor.core.samples import Quality, SampleBatch

log = logging.getLogger(__name__)

# Base data types (ns=0) whose values are numbers: Boolean..Double, Number/Integer/UInteger, Enumeration.
_NUMERIC_BASES = frozenset([*range(1, 12), 26, 27, 28, 29])
_CHUNK = 500  # nodes per Read / CreateMonitoredItems request, below common server limits
_INT_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}


@dataclass(frozen=True, slots=True)
class _Point:
    tag_id: int
    address: str
    node_id: ua.NodeId | None  # None: the address does not parse
    sampling_interval_ms: float
    deadband: float | None
    deadband_type: str


def coerce(value: object, vtype: ua.VariantType, what: str) -> ua.Variant:
    """A Variant of exactly ``vtype``, so an Int16 node gets an Int16; refuse lossy conversions."""
    if not isinstance(value, bool | int | float):
        raise OpcUaError(f"{what}: {type(value).__name__} is not a number or boolean")
    if vtype == ua.VariantType.Boolean:
        return ua.Variant(bool(value), vtype)
    if vtype in (ua.VariantType.Float, ua.VariantType.Double):
        return ua.Variant(float(value), vtype)
    if vtype in _INT_RANGES:
        if isinstance(value, float) and not value.is_integer():
            raise OpcUaError(f"{what}: {value} is not an integer, the node is {vtype.name}")
        number = int(value)
        low, high = _INT_RANGES[vtype]
        if not low <= number <= high:
            raise OpcUaError(f"{what}: {number} is out of range for {vtype.name}")
        return ua.Variant(number, vtype)
    raise OpcUaError(f"{what}: cannot write a number to a node of type {vtype.name}")


def _as_float(value: object) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    return math.nan


async def _base_type(client: Client, data_type: ua.NodeId) -> int | None:
    """The ns=0 base data type id of ``data_type`` (walks HasSubtype), or None for odd types."""
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int) and data_type.Identifier < 30:
        return data_type.Identifier
    try:
        base: Node = await get_base_data_type(client.get_node(data_type))
    except UaError:
        return None
    identifier = base.nodeid.Identifier
    return identifier if isinstance(identifier, int) else None


class OpcUaConnector:
    """Subscribes to the points of one OPC UA server and emits their changes as sample batches."""

    def __init__(
        self,
        name: str,
        source: OpcUaSource,
        points: Sequence[tuple[int, str, OpcUaPoint | None]],
        *,
        clock: Callable[[], int] = time.time_ns,
        flush_interval: float = 0.1,
        flush_size: int = 5000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        watchdog_interval: float = 1.0,
        request_timeout: float = 4.0,
        stable_after: float = 10.0,
    ) -> None:
        self.name = name
        self.source = source
        self._clock = clock
        self._flush_interval = flush_interval
        self._flush_size = flush_size
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._watchdog_interval = watchdog_interval
        self._request_timeout = request_timeout
        self._stable_after = stable_after
        self._points: list[_Point] = []
        self._bad_addresses: dict[str, str] = {}
        for tag_id, address, settings in points:
            settings = settings or OpcUaPoint()
            try:
                node_id: ua.NodeId | None = parse_node_id(address)
            except ValueError as exc:
                node_id = None
                self._bad_addresses[address] = str(exc)
            sampling = settings.sampling_interval_ms
            self._points.append(_Point(
                tag_id, address, node_id,
                source.sampling_interval_ms if sampling is None else sampling,
                settings.deadband, settings.deadband_type,
            ))
        self._all_tags = np.array([p.tag_id for p in self._points], dtype=np.int32)
        self._handles: dict[int, int] = {}  # client handle → tag id
        self._client: Client | None = None
        self._subscription: Subscription | None = None
        self._lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._emit_lock = asyncio.Lock()
        self._buf_tag: list[int] = []
        self._buf_ts: list[int] = []
        self._buf_value: list[float] = []
        self._buf_quality: list[int] = []
        self._vtypes: dict[str, ua.VariantType] = {}
        self._arg_types: dict[str, list[ua.VariantType | None]] = {}
        # health
        self._state = "idle"
        self._connected = False
        self._subscribed = 0
        self._failed: dict[str, str] = dict(self._bad_addresses)
        self._notifications = 0
        self._reconnects = 0
        self._last_data_ns: int | None = None
        self._last_error: str | None = None

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        return {
            "name": self.name,
            "protocol": "opcua",
            "endpoint": self.source.endpoint,
            "connected": self._connected,
            "state": self._state,
            "security_policy": self.source.security_policy,
            "subscribed": self._subscribed,
            "failed_nodes": dict(self._failed),
            "notifications": self._notifications,
            "reconnects": self._reconnects,
            "last_data_ns": self._last_data_ns,
            "last_error": self._last_error,
        }

    # -- supervision ------------------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        """Connect, subscribe and pump samples; on loss mark all points BAD once and reconnect with backoff."""
        delay = self._backoff_initial
        outage = False  # logged a loss or a failed first connect, and not yet the recovery
        try:
            while True:
                self._state = "reconnecting" if outage else "connecting"
                try:
                    client = await self._open()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._last_error = f"connect: {describe(exc)}"
                    if not outage:
                        outage = True
                        log.warning("%s: cannot connect to %s (%r); retrying with backoff",
                                    self.name, self.source.endpoint, exc)
                    else:
                        log.debug("%s: reconnect to %s failed: %r", self.name, self.source.endpoint, exc)
                    self._state = "backoff"
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
                    continue
                if outage:
                    log.info("%s: connected to %s again, %d nodes subscribed",
                             self.name, self.source.endpoint, self._subscribed)
                    outage = False
                connected_at = time.monotonic()
                try:
                    await self._pump(emit)
                finally:
                    self._connected = False
                    self._state = "disconnected"
                    self._client = None
                    self._subscribed = 0
                    self._subscription = None
                    await close_client(client, self._request_timeout)
                # The link is gone: one BAD batch, one log line, then back to connecting.
                self._reconnects += 1
                self._last_error = f"connection lost: {self._lost_reason}"
                outage = True
                log.warning("%s: connection to %s lost (%s); reconnecting",
                            self.name, self.source.endpoint, self._lost_reason)
                await self._flush(emit)
                now = self._clock()
                await emit(SampleBatch.of(self._all_tags, np.full(len(self._all_tags), now, np.int64),
                                          np.full(len(self._all_tags), math.nan), Quality.BAD))
                # A link that stayed up a while starts the backoff afresh; a flapping one keeps backing off.
                if time.monotonic() - connected_at >= self._stable_after:
                    delay = self._backoff_initial
                self._state = "backoff"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
        finally:
            self._state = "stopped"
            self._connected = False

    async def _open(self) -> Client:
        """A connected client with the subscription created; closed again if anything fails."""
        lost = asyncio.Event()
        self._lost = lost
        self._lost_reason = ""
        client = await make_client(self.source, timeout=self._request_timeout,
                                   watchdog_interval=self._watchdog_interval)

        async def on_lost(exc: Exception) -> None:
            self._lost_reason = self._lost_reason or repr(exc)
            lost.set()

        client.connection_lost_callback = on_lost
        try:
            await client.connect()
            await self._subscribe(client)
        except BaseException:
            await close_client(client, self._request_timeout)
            raise
        self._client = client
        self._connected = True
        self._state = "connected"
        return client

    async def _subscribe(self, client: Client) -> None:
        """Check the nodes' data types, then one subscription with a monitored item per numeric node."""
        failed = dict(self._bad_addresses)
        candidates = [(p, p.node_id) for p in self._points if p.node_id is not None]
        results: list[ua.DataValue] = []
        for start in range(0, len(candidates), _CHUNK):
            chunk = candidates[start:start + _CHUNK]
            results += await client.read_attributes([client.get_node(nid) for _, nid in chunk], AttributeIds.DataType)
        bases: dict[ua.NodeId, int | None] = {}
        good: list[tuple[int, _Point]] = []
        for index, ((point, _), dv) in enumerate(zip(candidates, results, strict=True)):
            code = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
            if (code >> 30) & 0b11:
                failed[point.address] = status_name(code)
                continue
            data_type = dv.Value.Value if dv.Value is not None else None
            if not isinstance(data_type, ua.NodeId):
                failed[point.address] = "no data type"
                continue
            if data_type not in bases:
                bases[data_type] = await _base_type(client, data_type)
            base = bases[data_type]
            if base not in _NUMERIC_BASES:
                failed[point.address] = f"non-numeric data type {data_type.to_string()}"
                continue
            good.append((index + 1, point))

        subscription: Subscription = await client.create_subscription(
            self.source.publishing_interval_ms, handler=None, queue_maxsize=100_000)
        requests = [self._item_request(handle, point) for handle, point in good]
        created: list[int | ua.StatusCode] = []
        for start in range(0, len(requests), _CHUNK):
            created += await subscription.create_monitored_items(requests[start:start + _CHUNK])
        self._handles = {}
        for (handle, point), result in zip(good, created, strict=True):
            if isinstance(result, ua.StatusCode):
                failed[point.address] = status_name(int(result.value))
            else:
                self._handles[handle] = point.tag_id
        if failed != self._failed:
            for address in failed.keys() - self._failed.keys():
                log.warning("%s: node %s not subscribed: %s", self.name, address, failed[address])
        self._failed = failed
        self._subscribed = len(self._handles)
        self._subscription = subscription

    def _item_request(self, handle: int, point: _Point) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = point.sampling_interval_ms
        params.QueueSize = 0
        params.DiscardOldest = True
        if point.deadband is not None and point.deadband > 0:
            flt = ua.DataChangeFilter()
            flt.Trigger = ua.DataChangeTrigger.StatusValue
            flt.DeadbandType = (ua.DeadbandType.Percent if point.deadband_type == "percent"
                                else ua.DeadbandType.Absolute)
            flt.DeadbandValue = point.deadband
            params.Filter = flt
        item = ua.ReadValueId()
        item.NodeId = point.node_id
        item.AttributeId = AttributeIds.Value
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = item
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        return request

    async def _pump(self, emit: Emit) -> None:
        """Collect notifications and flush them on a timer until the link is lost."""
        lost, subscription = self._lost, self._subscription
        assert lost is not None and subscription is not None
        tasks = [
            asyncio.create_task(self._consume(subscription, emit, lost), name=f"{self.name}-consume"),
            asyncio.create_task(self._flush_loop(emit), name=f"{self.name}-flush"),
            asyncio.create_task(lost.wait(), name=f"{self.name}-lost"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        if not self._lost_reason:
            self._lost_reason = "subscription closed"

    async def _consume(self, subscription: Subscription, emit: Emit, lost: asyncio.Event) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                self._collect(event)
                if len(self._buf_tag) >= self._flush_size:
                    await self._flush(emit)
            elif isinstance(event, StatusChangeEvent):
                code = int(event.notification.Status.value)
                if (code >> 31) & 1:
                    self._lost_reason = self._lost_reason or f"subscription status {status_name(code)}"
                    lost.set()

    def _collect(self, event: DataChangeEvent) -> None:
        """Append one notification to the column buffers (no per-notification batch)."""
        notification = event.data.monitored_item
        tag_id = self._handles.get(int(notification.ClientHandle))
        if tag_id is None:
            return
        dv: ua.DataValue = notification.Value
        now = self._clock()
        code = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
        stamp = dv.SourceTimestamp or dv.ServerTimestamp
        self._buf_tag.append(tag_id)
        self._buf_ts.append(datetime_to_ns(stamp) if stamp is not None else now)
        value = _as_float(event.value)
        quality = Quality.from_opcua_status(code)
        if math.isnan(value) and event.value is not None:
            quality = Quality.BAD  # the data type was numeric at subscribe time, but this value is not
        self._buf_value.append(value)
        self._buf_quality.append(int(quality))
        self._notifications += 1
        self._last_data_ns = now

    async def _flush_loop(self, emit: Emit) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self._flush(emit)

    async def _flush(self, emit: Emit) -> None:
        """Emit what is buffered as one batch; the lock keeps batches in order."""
        async with self._emit_lock:
            if not self._buf_tag:
                return
            batch = SampleBatch.of(self._buf_tag, self._buf_ts, self._buf_value, self._buf_quality)
            self._buf_tag, self._buf_ts, self._buf_value, self._buf_quality = [], [], [], []
            await emit(batch)

    # -- remote control ---------------------------------------------------------------------------

    def _require_client(self, what: str) -> Client:
        client = self._client
        if client is None or not self._connected:
            raise NotReady(f"{self.name}: {what}: not connected to {self.source.endpoint}")
        return client

    async def write(self, node_id: str, value: float | int | bool) -> None:
        """Write ``value`` as the node's own VariantType (read once, then cached)."""
        what = f"write {node_id}"
        client = self._require_client(what)
        try:
            node = client.get_node(parse_node_id(node_id))
        except ValueError as exc:
            raise OpcUaError(str(exc)) from exc
        try:
            vtype = self._vtypes.get(node_id)
            if vtype is None:
                vtype = await node.read_data_type_as_variant_type()
                self._vtypes[node_id] = vtype
            variant = coerce(value, vtype, what)
            await node.write_attribute(AttributeIds.Value, ua.DataValue(variant))
        except (TimeoutError, UaError, OSError) as exc:
            raise translate_error(exc, what) from exc

    async def call(self, object_id: str, method_id: str, *args: object) -> list[object]:
        """Call a method; arguments take the types the method declares (InputArguments), when it does."""
        what = f"call {method_id} on {object_id}"
        client = self._require_client(what)
        try:
            object_nid, method_nid = parse_node_id(object_id), parse_node_id(method_id)
        except ValueError as exc:
            raise OpcUaError(str(exc)) from exc
        try:
            types = self._arg_types.get(method_id)
            if types is None:
                types = await self._input_types(client, method_nid)
                self._arg_types[method_id] = types
            variants = [
                arg if isinstance(arg, ua.Variant)
                else coerce(arg, t, what) if t is not None and isinstance(arg, bool | int | float)
                else ua.Variant(arg)
                for arg, t in zip(args, [*types, *[None] * len(args)], strict=False)
            ]
            request = ua.CallMethodRequest()
            request.ObjectId = object_nid
            request.MethodId = method_nid
            request.InputArguments = variants
            result: ua.CallMethodResult = (await client.uaclient.call([request]))[0]
        except (TimeoutError, UaError, OSError) as exc:
            raise translate_error(exc, what) from exc
        check_status(result.StatusCode, what)
        return [variant.Value for variant in result.OutputArguments or []]

    async def _input_types(self, client: Client, method: ua.NodeId) -> list[ua.VariantType | None]:
        """VariantTypes of the method's declared input arguments; [] when it declares none."""
        try:
            prop = await client.get_node(method).get_child("0:InputArguments")
            arguments: Any = await prop.read_value()
        except UaStatusCodeError:
            return []
        types: list[ua.VariantType | None] = []
        for argument in arguments or []:
            try:
                types.append(await data_type_to_variant_type(client.get_node(argument.DataType)))
            except (UaError, ValueError):
                types.append(None)
        return types
