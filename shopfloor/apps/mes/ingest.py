"""The MES recorder: plant events from MQTT (and ``POST /api/mes/events``) into the production record.

``MesService`` is the platform service ``mes`` (switched on by the ``mes:`` section of plant.yaml).
It owns the one ``Mes`` of the platform (one database, one writer: the read API uses it too),
adds the configured master data at start, subscribes to the events topic with QoS 1 on a
persistent session and acknowledges a message only after each of its events is recorded or
dead-lettered, so nothing acknowledged is lost. Delivery is at least once; ``Recorder`` makes it
exactly once in the record: an event that is already there (same kind, time, machine, item and
key fields) is counted as a duplicate and skipped.

Bad input never stops it: malformed JSON, an unknown kind, a missing field, an unknown machine,
serial, lot, product or work order each go to the dead letters with a sentence naming the problem,
and are counted in ``/health`` (``services.mes``). A failing database (locked, disk full) is not
the event's fault: the message is retried with backoff, unacknowledged, until it can be written.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as mqtt
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from shopfloor.apps.mes.chain import canonical_payload
from shopfloor.apps.mes.config import MesConfig
from shopfloor.apps.mes.errors import MesError
from shopfloor.apps.mes.events import (
    Inspection,
    Logon,
    MaterialLoad,
    MesEvent,
    OrderStatusEvent,
    Packed,
    Produced,
    Rejected,
    Scrap,
    StateEvent,
    WorkOrderEvent,
    parse_event,
    split_message,
)
from shopfloor.apps.mes.models import (
    Equipment,
    Item,
    ItemKind,
    Material,
    Operation,
    OrderStatus,
    Product,
    Routing,
    WorkOrder,
)
from shopfloor.apps.mes.service import Mes
from shopfloor.core.errors import NotReady
from shopfloor.services import service_client

if TYPE_CHECKING:
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)
SOURCE = "mes"  # dead letters of the recorder carry this source
API_TOPIC = "POST /api/mes/events"


# --------------------------------------------------------------------------- recording one event


class Recorder:
    """Records validated events through a ``Mes``; ``record`` returns False for a duplicate, raises Rejected."""

    def __init__(self, mes: Mes, known_equipment: Callable[[str], bool] | None = None) -> None:
        self.mes = mes
        self.known_equipment = known_equipment

    def record(self, ev: MesEvent) -> bool:
        try:
            return self._record(ev)
        except MesError as exc:  # NotFound included: unknown serial, lot, product, work order
            raise Rejected(f"{ev.kind}: {exc}") from None
        except IntegrityError as exc:
            raise Rejected(f"{ev.kind}: the database refused it ({exc.orig})") from None

    def _record(self, ev: MesEvent) -> bool:
        mes, ts = self.mes, ev.ts_ns
        if isinstance(ev, Produced | Scrap):
            return self._produced(ev)
        if isinstance(ev, MaterialLoad):
            eq = self._equipment(ev.equipment)
            found = self._item(ev.lot)
            if found is None:
                if ev.material is None or ev.quantity is None:
                    raise Rejected(f"material_load: no lot {ev.lot!r}; give 'material' and 'quantity' to create it")
                mes.create_lot(ev.lot, ts, ev.lot_quantity or ev.quantity, material=ev.material)
                found = self._item(ev.lot)
                assert found is not None
            elif self._exists(eq, ts, "material_load", lambda r: r.item_id == found[0]):
                return False
            mes.material_load(ev.equipment, ev.lot, ts, ev.quantity)
            return True
        if isinstance(ev, WorkOrderEvent):
            return self._work_order(ev)
        if isinstance(ev, OrderStatusEvent):
            return self._order_status(ev)
        if isinstance(ev, StateEvent):
            eq = self._equipment(ev.equipment)
            if self._exists(eq, ts, "state", lambda r: r.payload == _state_payload(ev.state, ev.reason)):
                return False
            mes.machine_state(ev.equipment, ts, ev.state, ev.reason)
            return True
        if isinstance(ev, Logon):
            eq = self._equipment(ev.equipment)
            if self._exists(eq, ts, ev.kind, lambda r: r.operator == ev.operator):
                return False
            (mes.logon if ev.kind == "logon" else mes.logoff)(ev.equipment, ev.operator, ts)
            return True
        if isinstance(ev, Inspection):
            return self._inspection(ev)
        return self._packed(ev)

    def _produced(self, ev: Produced | Scrap) -> bool:
        mes, ts = self.mes, ev.ts_ns
        eq = self._equipment(ev.equipment)
        found = self._item(ev.serial)
        if found is not None:
            with mes.engine.connect() as conn:
                before = conn.execute(text(
                    "SELECT ts_ns, equipment_id FROM mes_event WHERE item_id = :i AND kind = 'produced' LIMIT 1"
                ), {"i": found[0]}).first()
            if before is not None:
                if int(before[0]) == ts and before[1] == eq:
                    return False
                raise Rejected(f"{ev.kind}: {ev.serial!r} was produced already, at another time or machine")
        if ev.work_order is not None:
            order_product = self._order_product(ev.work_order)
            if ev.product is not None and ev.product != order_product:
                raise Rejected(f"{ev.kind}: work order {ev.work_order!r} makes {order_product!r}, not {ev.product!r}")
        elif found is None:
            if ev.product is None:
                raise Rejected(f"{ev.kind}: a new serial needs 'work_order' or 'product'")
            mes.create_serial(ev.serial, ts, ev.product)
        inputs = [(i.code, i.quantity) for i in ev.inputs] if ev.inputs is not None else None
        good = isinstance(ev, Produced) and ev.quality == "good"
        reason = ev.reason if isinstance(ev, Scrap) else None
        mes.produce(ev.serial, ev.equipment, ts, inputs=inputs, good=good, work_order=ev.work_order,
                    parameters=ev.parameters, reason=reason)
        return True

    def _work_order(self, ev: WorkOrderEvent) -> bool:
        with Session(self.mes.engine) as s:
            row = s.execute(select(Product.code, WorkOrder.quantity).join(Product, Product.id == WorkOrder.product_id)
                            .where(WorkOrder.number == ev.number)).first()
        if row is not None:
            if row[0] == ev.product and float(row[1]) == ev.quantity:
                return False
            raise Rejected(f"work_order: {ev.number!r} exists already, for {row[1]:g} x {row[0]!r}")
        self.mes.create_work_order(
            ev.number, ev.product, ev.quantity,
            planned_start_ns=ev.release_ms * 1_000_000 if ev.release_ms is not None else None,
            planned_end_ns=ev.due_ms * 1_000_000 if ev.due_ms is not None else None,
        )
        return True

    def _order_status(self, ev: OrderStatusEvent) -> bool:
        status = OrderStatus(ev.status)
        with Session(self.mes.engine) as s, s.begin():
            row = s.execute(select(WorkOrder.id, WorkOrder.status).where(WorkOrder.number == ev.number)).first()
            if row is None:
                raise Rejected(f"order_status: no work order {ev.number!r}")
            order_id = row[0]
            if row[1] == status:
                return False
            s.execute(update(WorkOrder).where(WorkOrder.id == order_id).values(status=status))
            if status in (OrderStatus.DONE, OrderStatus.CANCELLED):
                s.execute(update(Operation).where(Operation.work_order_id == order_id, Operation.ended_ns.is_(None))
                          .values(status=status, ended_ns=ev.ts_ns))
        return True

    def _inspection(self, ev: Inspection) -> bool:
        found = self._item(ev.serial)
        if found is None:
            raise Rejected(f"inspection: no serial or lot {ev.serial!r} (produce it first)")
        if ev.equipment is not None:
            self._equipment(ev.equipment)
        with self.mes.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT payload FROM mes_event WHERE item_id = :i AND ts_ns = :t AND kind = 'inspection'"
            ), {"i": found[0], "t": ev.ts_ns}).all()
        if any(orjson.loads(r[0]).get("characteristic") == ev.characteristic for r in rows):
            return False
        self.mes.inspect(ev.serial, ev.ts_ns, ev.characteristic, ev.value, lower=ev.lower, upper=ev.upper,
                         equipment=ev.equipment, unit=ev.unit, supersedes=ev.supersedes)
        return True

    def _packed(self, ev: Packed) -> bool:
        if ev.equipment is not None:
            self._equipment(ev.equipment)
        found = self._item(ev.lot)
        if found is not None:
            with self.mes.engine.connect() as conn:
                dup = conn.execute(text(
                    "SELECT 1 FROM mes_event WHERE item_id = :i AND ts_ns = :t AND kind = 'packed' LIMIT 1"
                ), {"i": found[0], "t": ev.ts_ns}).first()
            if dup is not None:
                return False
        missing = [c for c in ev.serials if self._item(c) is None]
        if missing:
            raise Rejected(f"packed: no serial {', '.join(repr(c) for c in missing[:5])}"
                           f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}")
        if found is None:
            if ev.product is None:
                raise Rejected(f"packed: no lot {ev.lot!r}; give 'product' to create it")
            self.mes.create_lot(ev.lot, ev.ts_ns, float(len(ev.serials)), product=ev.product)
        self.mes.pack(ev.lot, ev.serials, ev.ts_ns, equipment=ev.equipment)
        return True

    # ------------------------------------------------------------------ lookups

    def _equipment(self, path: str) -> int:
        if self.known_equipment is not None and not self.known_equipment(path):
            raise Rejected(f"unknown equipment {path!r}: not in the plant's asset model")
        return self.mes.log.equipment_id(path)

    def _item(self, code: str) -> tuple[int, ItemKind] | None:
        with self.mes.engine.connect() as conn:
            row = conn.execute(select(Item.id, Item.kind).where(Item.code == code)).first()
        return (int(row[0]), ItemKind(row[1])) if row is not None else None

    def _order_product(self, number: str) -> str:
        with self.mes.engine.connect() as conn:
            code = conn.execute(select(Product.code).join(WorkOrder, WorkOrder.product_id == Product.id)
                                .where(WorkOrder.number == number)).scalar()
        if code is None:
            raise Rejected(f"no work order {number!r} (send its work_order event first)")
        return str(code)

    def _exists(self, equipment_id: int, ts_ns: int, kind: str, same: Callable[[Any], bool]) -> bool:
        """Is an event of this kind at this machine and time, with the same key fields, recorded already?"""
        with self.mes.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT item_id, operator, payload FROM mes_event WHERE equipment_id = :e AND ts_ns = :t AND kind = :k"
            ), {"e": equipment_id, "t": ts_ns, "k": kind}).all()
        return any(same(r) for r in rows)


def _state_payload(state: str, reason: str | None) -> str:
    return canonical_payload({"state": state, "reason": reason})  # as Mes.machine_state stores it


# --------------------------------------------------------------------------- master data


def ensure_master_data(mes: Mes, config: MesConfig) -> dict[str, int]:
    """Add the configured products, materials and routings that the database lacks; a routing whose steps
    changed gets a new version (work orders made before keep theirs). Returns what was added, by kind."""
    added: Counter[str] = Counter()
    with Session(mes.engine) as s:
        products = set(s.scalars(select(Product.code)))
        materials = set(s.scalars(select(Material.code)))
    for p in config.products:
        if p.code not in products:
            mes.add_product(p.code, p.name, unit=p.unit, gtin=p.gtin)
            added["products"] += 1
    for m in config.materials:
        if m.code not in materials:
            mes.add_material(m.code, m.name, unit=m.unit, gtin=m.gtin)
            added["materials"] += 1
    for r in config.routings:
        wanted = [(st.name, st.equipment, float(st.pri_s)) for st in r.steps]
        with Session(mes.engine) as s:
            newest = s.scalars(select(Routing).join(Product, Product.id == Routing.product_id)
                               .where(Product.code == r.product).order_by(Routing.version.desc()).limit(1)).first()
            have = None
            if newest is not None:
                paths = dict(s.execute(select(Equipment.id, Equipment.path)).tuples().all())
                have = [(st.name, paths[st.equipment_id], float(st.planned_run_time_s)) for st in newest.steps]
            version = newest.version + 1 if newest is not None else 1
        if have != wanted:
            mes.add_routing(r.product, wanted, version=version)
            added["routings"] += 1
    return dict(added)


# --------------------------------------------------------------------------- the platform service


@dataclass
class Outcome:
    """What became of one message (or POST body)."""

    recorded: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Message:
    payload: bytes
    mid: int
    qos: int


class MesService:
    """The platform service ``mes``: the MES recorder (see the module docstring)."""

    name = "mes"

    def __init__(self, config: MesConfig, *, max_inbox: int = 10_000, retry_max_s: float = 10.0) -> None:
        self.config = config
        self.mes: Mes | None = None
        self.recorder: Recorder | None = None
        self._platform: Platform | None = None
        self._client: mqtt.Client | None = None
        self._inbox: queue.Queue[_Message] = queue.Queue(maxsize=max_inbox)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()  # one writer: the MQTT worker and the API take turns
        self._retry_max_s = retry_max_s
        self.counts: Counter[str] = Counter()  # messages, recorded, duplicates, rejected, retries
        self.by_kind: Counter[str] = Counter()
        self.last_event_ms: int | None = None
        self.last_error: str | None = None
        self.master_data_added: dict[str, int] = {}
        self._last_seal = time.monotonic()

    # ------------------------------------------------------------------ lifecycle

    def start(self, platform: Platform) -> None:

        self._platform = platform
        nodes = {n.path for n in platform.model.root.walk()}
        for r in self.config.routings:
            for st in r.steps:
                if st.equipment not in nodes:
                    raise ValueError(f"mes.routings: {r.product} step {st.name!r} runs on {st.equipment!r}, "
                                     f"which is not in the plant's asset model")
        self.mes = Mes.open(platform.data_dir, url=self.config.url or os.environ.get("SHOPFLOOR_MES_URL"))
        self.master_data_added = ensure_master_data(self.mes, self.config)
        self.recorder = Recorder(self.mes, nodes.__contains__)
        client, host, port = service_client(platform, self.config.client_id, clean_session=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="mes-recorder", daemon=True)
        self._worker.start()
        try:
            client.connect_async(host, port, keepalive=30)
            client.loop_start()
        except OSError as exc:
            raise NotReady(f"MES recorder: cannot reach MQTT broker {platform.broker_url}: {exc}") from exc
        if not self._connected.wait(15.0):
            raise NotReady(f"MES recorder: no connection to MQTT broker {platform.broker_url} within 15 s")

    def stop(self) -> None:
        """Record what has arrived (acks go out), disconnect, seal the tail and close the database."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(30)
            self._worker = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self.mes is not None:
            with self._lock:
                self.mes.close()
            self.mes = None
        self._connected.clear()

    def health(self) -> dict[str, object]:
        return {
            "state": "connected" if self._connected.is_set() else "disconnected",
            "topic": self.config.topic,
            "messages": self.counts["messages"],
            "recorded": self.counts["recorded"],
            "duplicates": self.counts["duplicates"],
            "rejected": self.counts["rejected"],
            "retries": self.counts["retries"],
            "queued": self._inbox.qsize(),
            "by_kind": dict(self.by_kind),
            "last_event_ms": self.last_event_ms,
            "last_error": self.last_error,
            "master_data_added": self.master_data_added,
        }

    # ------------------------------------------------------------------ input

    def submit(self, payload: bytes, *, topic: str = API_TOPIC) -> Outcome:
        """Record one message's events now (the API's path); rejected events are dead-lettered too."""
        return self._handle(payload, topic)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MES recorder: the broker refused the connection: %s", reason)
            return
        client.subscribe(self.config.topic, qos=1)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("MES recorder: disconnected from the broker: %s", reason)
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        item = _Message(bytes(msg.payload), msg.mid, msg.qos)
        while not self._stop.is_set():  # a full inbox blocks paho's thread: the broker keeps the rest
            try:
                self._inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        while True:
            try:
                m = self._inbox.get(timeout=0.5)
            except queue.Empty:
                if self._stop.is_set():
                    return
                self._seal_if_due()
                continue
            delay = 0.2
            retry = False
            while True:
                try:
                    self._handle(m.payload, self.config.topic, retry=retry)
                    break
                except SQLAlchemyError as exc:  # the database, not the event: retry, unacknowledged
                    self.counts["retries"] += 1
                    self.last_error = f"database: {exc}"
                    log.warning("MES recorder: cannot write (%s); retrying in %.1f s", exc, delay)
                    if self._stop.wait(delay):
                        return  # not acknowledged: the broker delivers it again after the restart
                    delay = min(delay * 2, self._retry_max_s)
                    retry = True
            client = self._client
            if client is not None and m.qos > 0:
                client.ack(m.mid, m.qos)
            self._seal_if_due()

    def _seal_if_due(self) -> None:
        if time.monotonic() - self._last_seal < self.config.seal_every_s or self.mes is None:
            return
        with self._lock:
            self.mes.log.seal()
        self._last_seal = time.monotonic()

    def _handle(self, payload: bytes, topic: str, *, retry: bool = False) -> Outcome:
        out = Outcome()
        recorder = self.recorder
        if recorder is None:
            raise NotReady("the MES recorder is not running")
        if not retry:
            self.counts["messages"] += 1
        try:
            raws = split_message(payload)
        except Rejected as exc:
            self._dead(topic, str(exc), payload, out, None)
            return out
        n = len(raws)
        with self._lock:
            for i, raw in enumerate(raws):
                where = f"event {i + 1} of {n}: " if n > 1 else ""
                try:
                    ev = parse_event(raw)
                    fresh = recorder.record(ev)
                except Rejected as exc:
                    self._dead(topic, where + str(exc), orjson.dumps(raw), out, i)
                    continue
                except SQLAlchemyError as exc:
                    if not isinstance(exc, IntegrityError):
                        raise  # the database, not the event: the caller retries
                    self._dead(topic, f"{where}the database refused it ({exc.orig})", orjson.dumps(raw), out, i)
                    continue
                except Exception as exc:  # a bug must not stop the recorder: the event is kept for inspection
                    log.exception("MES recorder: cannot record %r", raw)
                    self._dead(topic, f"{where}recorder error: {exc!r}", orjson.dumps(raw), out, i)
                    continue
                if fresh:
                    out.recorded += 1
                    self.counts["recorded"] += 1
                    self.by_kind[ev.kind] += 1
                else:
                    out.duplicates += 1
                    self.counts["duplicates"] += 1
                self.last_event_ms = ev.ts_ms
        return out

    def _dead(self, topic: str, reason: str, payload: bytes, out: Outcome, index: int | None) -> None:
        self.counts["rejected"] += 1
        self.last_error = reason
        out.rejected.append({"index": index, "reason": reason})
        if self._platform is not None:
            self._platform.dead_letters.add(SOURCE, topic, reason, payload)
        log.info("MES event rejected: %s", reason)


def running_mes(platform: Platform) -> Mes | None:
    """The recorder's Mes when the platform runs the ``mes`` service (the read API shares it), else None."""
    try:
        service = platform.service(MesService.name)
    except KeyError:
        return None
    return service.mes if isinstance(service, MesService) else None


def events_of(payloads: Iterable[dict[str, Any]]) -> bytes:
    """A message of several events (JSON array), as the contract has it."""
    return orjson.dumps(list(payloads))
