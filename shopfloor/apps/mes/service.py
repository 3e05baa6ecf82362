"""The MES facade: master data, work orders, items and plant events by their codes and paths.

Everything a caller (API, CLI, a connector, the virtual factory) does goes through here; bad
input (unknown code, wrong item kind, negative quantity) raises ``MesError`` with a sentence
that names what was wrong, and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from shopfloor.apps.mes.chain import SiteKey
from shopfloor.apps.mes.db import open_database
from shopfloor.apps.mes.errors import MesError, NotFound
from shopfloor.apps.mes.models import (
    Equipment,
    EventKind,
    Item,
    ItemKind,
    Material,
    Operation,
    OrderStatus,
    Product,
    Routing,
    RoutingStep,
    WorkOrder,
)
from shopfloor.apps.mes.record import DEFAULT_BLOCK_SIZE, EventLog, NewEvent

DB_FILE = "mes.sqlite"
KEY_FILE = "site-ed25519.pem"


class Mes:
    """One site's production record."""

    def __init__(self, engine: Engine, key: SiteKey, *, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.engine = engine
        self.key = key
        self.log = EventLog(engine, key, block_size=block_size)

    @classmethod
    def open(
        cls, data_dir: str | Path, *, url: str | None = None, key_path: str | Path | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> Mes:
        """The MES of a data directory: SQLite ``mes.sqlite`` there (or the database at url), key beside it."""
        data_dir = Path(data_dir)
        engine = open_database(url or data_dir / DB_FILE)
        key = SiteKey.load_or_create(key_path or data_dir / KEY_FILE)
        return cls(engine, key, block_size=block_size)

    def close(self) -> None:
        self.log.seal()
        self.engine.dispose()

    # ------------------------------------------------------------------ master data

    def add_product(self, code: str, name: str = "", *, unit: str = "pcs", gtin: str | None = None) -> int:
        _check_gtin(gtin)
        with Session(self.engine) as s, s.begin():
            product = Product(code=code, name=name, unit=unit, gtin=gtin)
            s.add(product)
            s.flush()
            return product.id

    def add_material(self, code: str, name: str = "", *, unit: str = "kg", gtin: str | None = None) -> int:
        _check_gtin(gtin)
        with Session(self.engine) as s, s.begin():
            material = Material(code=code, name=name, unit=unit, gtin=gtin)
            s.add(material)
            s.flush()
            return material.id

    def add_routing(self, product: str, steps: Sequence[tuple[str, str, float]], *, version: int = 1) -> int:
        """Steps are (name, machine path, planned run time per item in s)."""
        for name, _path, pri in steps:
            if not pri > 0 or not math.isfinite(pri):
                raise MesError(f"step {name!r}: the planned run time per item must be a positive number of seconds")
        with Session(self.engine) as s, s.begin():
            routing = Routing(product_id=self._product_id(s, product), version=version, name=f"{product} v{version}")
            routing.steps = [
                RoutingStep(seq=i + 1, name=name, equipment_id=self.log.equipment_id(path), planned_run_time_s=pri)
                for i, (name, path, pri) in enumerate(steps)
            ]
            s.add(routing)
            s.flush()
            return routing.id

    def planned_run_time(self, equipment_path: str) -> float | None:
        """ISO 22400 PRI of a machine: its routing steps' planned run time per item (the smallest, if several)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(RoutingStep.planned_run_time_s).join(Equipment, Equipment.id == RoutingStep.equipment_id)
                .where(Equipment.path == equipment_path).order_by(RoutingStep.planned_run_time_s).limit(1)
            ).scalar()
        return float(value) if value is not None else None

    # ------------------------------------------------------------------ orders and items

    def create_work_order(
        self, number: str, product: str, quantity: float, *, planned_start_ns: int | None = None,
        planned_end_ns: int | None = None,
    ) -> int:
        """A work order with one operation per step of the product's newest routing."""
        if not quantity > 0:
            raise MesError("a work order's quantity must be positive")
        with Session(self.engine) as s, s.begin():
            product_id = self._product_id(s, product)
            routing = s.scalars(
                select(Routing).where(Routing.product_id == product_id).order_by(Routing.version.desc()).limit(1)
            ).first()
            order = WorkOrder(
                number=number, product_id=product_id, routing_id=routing.id if routing else None, quantity=quantity,
                status=OrderStatus.RELEASED, planned_start_ns=planned_start_ns, planned_end_ns=planned_end_ns,
            )
            if routing is not None:
                order.operations = [Operation(seq=st.seq, equipment_id=st.equipment_id) for st in routing.steps]
            s.add(order)
            s.flush()
            return order.id

    def create_lot(
        self, code: str, ts_ns: int, quantity: float, *, material: str | None = None, product: str | None = None,
        work_order: str | None = None,
    ) -> int:
        if (material is None) == (product is None):
            raise MesError(f"lot {code!r}: give exactly one of material or product")
        if not quantity > 0:
            raise MesError(f"lot {code!r}: the quantity must be positive")
        return self._create_item(code, ItemKind.LOT, ts_ns, quantity, material, product, work_order)

    def create_serial(self, code: str, ts_ns: int, product: str, *, work_order: str | None = None) -> int:
        return self._create_item(code, ItemKind.SERIAL, ts_ns, 1.0, None, product, work_order)

    def _create_item(
        self, code: str, kind: ItemKind, ts_ns: int, quantity: float, material: str | None, product: str | None,
        work_order: str | None,
    ) -> int:
        with Session(self.engine) as s, s.begin():
            if s.scalar(select(Item.id).where(Item.code == code)) is not None:
                raise MesError(f"a lot or serial {code!r} exists already")
            item = Item(
                code=code, kind=kind, quantity=quantity, created_ns=ts_ns,
                product_id=self._product_id(s, product) if product else None,
                material_id=self._material_id(s, material) if material else None,
                work_order_id=self._order_id(s, work_order) if work_order else None,
            )
            s.add(item)
            s.flush()
            return item.id

    # ------------------------------------------------------------------ plant events

    def logon(self, equipment: str, operator: str, ts_ns: int) -> int:
        return self._append(NewEvent(ts_ns, EventKind.LOGON, equipment_id=self.log.equipment_id(equipment),
                                     operator=operator))

    def logoff(self, equipment: str, operator: str, ts_ns: int) -> int:
        return self._append(NewEvent(ts_ns, EventKind.LOGOFF, equipment_id=self.log.equipment_id(equipment),
                                     operator=operator))

    def machine_state(self, equipment: str, ts_ns: int, state: str, reason: str | None = None) -> int:
        return self._append(NewEvent(ts_ns, EventKind.STATE, equipment_id=self.log.equipment_id(equipment),
                                     payload={"state": state, "reason": reason}))

    def material_load(self, equipment: str, lot: str, ts_ns: int, quantity: float | None = None) -> int:
        eq = self.log.equipment_id(equipment)
        lot_id, kind = self._item(lot)
        if kind != ItemKind.LOT:
            raise MesError(f"{lot!r} is a serial: only lots are loaded as material")
        return self._append(NewEvent(ts_ns, EventKind.MATERIAL_LOAD, item_id=lot_id, equipment_id=eq,
                                     operator=self.operator_at(eq), payload={"quantity": quantity}))

    def count(self, equipment: str, ts_ns: int, good: int, scrap: int = 0, *, work_order: str | None = None) -> int:
        """Unserialised parts counted on a machine."""
        if good < 0 or scrap < 0:
            raise MesError("good and scrap counts cannot be negative")
        eq = self.log.equipment_id(equipment)
        order_id, op_id = self._order_operation(work_order, eq)
        with self.engine.begin() as conn:
            if op_id is not None:
                self._add_quantities(conn, op_id, good, scrap, ts_ns)
            return self.log.append([NewEvent(
                ts_ns, EventKind.COUNT, equipment_id=eq, operator=self.operator_at(eq), work_order_id=order_id,
                operation_id=op_id, payload={"good": good, "scrap": scrap},
            )], conn)[0]

    def produce(
        self, code: str, equipment: str, ts_ns: int, *, inputs: Sequence[tuple[str, float]] | None = None,
        good: bool = True, work_order: str | None = None, parameters: dict[str, float] | None = None,
        reason: str | None = None,
    ) -> int:
        """An item made on a machine from inputs (codes and quantities); without inputs, from the lot last
        loaded at that machine. Creates a serial of the work order's product if the code is new. ``reason``:
        why a scrap part is scrap (kept in the payload only when given)."""
        eq = self.log.equipment_id(equipment)
        order_id, op_id = self._order_operation(work_order, eq)
        if self._find_item(code) is None:
            if work_order is None:
                raise NotFound(f"no lot or serial {code!r} (give a work order to create it as a serial)")
            self.create_serial(code, ts_ns, self._order_product(work_order), work_order=work_order)
        item_id, _kind = self._item(code)
        if inputs is None:
            loaded = self._last_loaded_lot(eq)
            input_ids = [(loaded, 1.0)] if loaded is not None else []
        else:
            input_ids = [(self._item(c)[0], float(q)) for c, q in inputs]
        if any(i == item_id for i, _ in input_ids):
            raise MesError(f"{code!r} cannot be an input of itself")
        payload: dict[str, Any] = {"quality": "good" if good else "scrap", "parameters": parameters or {}}
        if reason is not None:
            payload["reason"] = reason
        with self.engine.begin() as conn:
            if op_id is not None:
                self._add_quantities(conn, op_id, 1 if good else 0, 0 if good else 1, ts_ns)
            return self.log.append([NewEvent(
                ts_ns, EventKind.PRODUCED, item_id=item_id, equipment_id=eq, operator=self.operator_at(eq),
                work_order_id=order_id, operation_id=op_id,
                payload=payload,
                inputs=tuple(input_ids),
            )], conn)[0]

    def inspect(
        self, code: str, ts_ns: int, characteristic: str, value: float, *, lower: float | None = None,
        upper: float | None = None, equipment: str | None = None, unit: str = "", supersedes: str | None = None,
    ) -> int:
        """An inspection result; it passes when lower <= value <= upper (each bound optional). ``supersedes``
        names a characteristic whose earlier results this one replaces (a review of an automatic check)."""
        if not math.isfinite(value):
            raise MesError(f"inspection of {code!r}: the value must be a finite number")
        item_id, _ = self._item(code)
        passed = (lower is None or value >= lower) and (upper is None or value <= upper)
        eq = self.log.equipment_id(equipment) if equipment else None
        payload: dict[str, Any] = {"characteristic": characteristic, "value": value, "lower": lower,
                                   "upper": upper, "unit": unit, "passed": passed}
        if supersedes is not None:
            payload["supersedes"] = supersedes
        return self._append(NewEvent(
            ts_ns, EventKind.INSPECTION, item_id=item_id, equipment_id=eq,
            operator=self.operator_at(eq) if eq is not None else None, payload=payload,
        ))

    def pack(self, lot: str, items: Sequence[str], ts_ns: int, *, equipment: str | None = None) -> int:
        """Items packed into a (finished goods) lot."""
        lot_id, kind = self._item(lot)
        if kind != ItemKind.LOT:
            raise MesError(f"{lot!r} is a serial: items are packed into a lot")
        if not items:
            raise MesError("nothing to pack")
        eq = self.log.equipment_id(equipment) if equipment else None
        return self._append(NewEvent(
            ts_ns, EventKind.PACKED, item_id=lot_id, equipment_id=eq, inputs=tuple((self._item(c)[0], 1.0)
                                                                                   for c in items),
        ))

    def operator_at(self, equipment_id: int) -> str | None:
        """Who is logged on at a machine now (the last log-on not followed by a log-off)."""
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT kind, operator FROM mes_event WHERE equipment_id = :e AND kind IN ('logon', 'logoff') "
                "ORDER BY ts_ns DESC, seq DESC LIMIT 1"
            ), {"e": equipment_id}).first()
        return str(row[1]) if row is not None and row[0] == "logon" else None

    # ------------------------------------------------------------------ helpers

    def _append(self, event: NewEvent) -> int:
        return self.log.append([event])[0]

    def _last_loaded_lot(self, equipment_id: int) -> int | None:
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT item_id FROM mes_event WHERE equipment_id = :e AND kind = 'material_load' "
                "ORDER BY ts_ns DESC, seq DESC LIMIT 1"
            ), {"e": equipment_id}).first()
        return int(row[0]) if row is not None else None

    def _find_item(self, code: str) -> tuple[int, ItemKind] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Item.id, Item.kind).where(Item.code == code)).first()
        return (int(row[0]), ItemKind(row[1])) if row is not None else None

    def _item(self, code: str) -> tuple[int, ItemKind]:
        found = self._find_item(code)
        if found is None:
            raise NotFound(f"no lot or serial {code!r}")
        return found

    def _order_operation(self, number: str | None, equipment_id: int) -> tuple[int | None, int | None]:
        if number is None:
            return None, None
        with Session(self.engine) as s:
            order_id = self._order_id(s, number)
            op = s.scalar(select(Operation.id).where(
                Operation.work_order_id == order_id, Operation.equipment_id == equipment_id
            ).order_by(Operation.seq).limit(1))
        return order_id, op

    def _order_product(self, number: str) -> str:
        with Session(self.engine) as s:
            code = s.scalar(select(Product.code).join(WorkOrder, WorkOrder.product_id == Product.id)
                            .where(WorkOrder.number == number))
        if code is None:
            raise NotFound(f"no work order {number!r}")
        return code

    @staticmethod
    def _add_quantities(conn: Any, op_id: int, good: int, scrap: int, ts_ns: int) -> None:
        conn.execute(update(Operation).where(Operation.id == op_id).values(
            good_quantity=Operation.good_quantity + good, scrap_quantity=Operation.scrap_quantity + scrap,
            status=OrderStatus.RUNNING,
        ))
        conn.execute(update(Operation).where(Operation.id == op_id, Operation.started_ns.is_(None))
                     .values(started_ns=ts_ns))

    @staticmethod
    def _product_id(s: Session, code: str) -> int:
        found = s.scalar(select(Product.id).where(Product.code == code))
        if found is None:
            raise NotFound(f"no product {code!r}")
        return found

    @staticmethod
    def _material_id(s: Session, code: str) -> int:
        found = s.scalar(select(Material.id).where(Material.code == code))
        if found is None:
            raise NotFound(f"no material {code!r}")
        return found

    @staticmethod
    def _order_id(s: Session, number: str) -> int:
        found = s.scalar(select(WorkOrder.id).where(WorkOrder.number == number))
        if found is None:
            raise NotFound(f"no work order {number!r}")
        return found


def _check_gtin(gtin: str | None) -> None:
    """A GTIN-8/12/13/14 with a valid GS1 check digit (EPCIS ids are built from it)."""
    if gtin is None:
        return
    if not gtin.isdigit() or len(gtin) not in (8, 12, 13, 14):
        raise MesError(f"GTIN {gtin!r} must be 8, 12, 13 or 14 digits")
    digits = [int(c) for c in gtin.zfill(14)]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits[:-1]))
    if (10 - total % 10) % 10 != digits[-1]:
        raise MesError(f"GTIN {gtin!r} has a wrong check digit")
