"""The inventory facade: receive, move, consume and ship stock by lot; orders and transport tasks.

Every change of stock is one append-only move with its reason, written in the same transaction as the
stock rows it changes, so stock always equals the sum of the moves. A move that would take more than is
there (or reserved for a transport task) raises ``StockError`` naming the location, material, lot and
quantities, and nothing is written; the database's CHECK (quantity >= 0) backs this up.

Writes are serialised by one lock per process (the service thread and the API threads share it):
SQLite has one writer anyway, and the check-then-update of a stock row must not interleave.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from shopfloor.apps.mes.models import Item, ItemKind, Material
from shopfloor.apps.warehouse.config import WarehouseConfig
from shopfloor.apps.warehouse.inventory.models import (
    Location,
    LocationKind,
    Move,
    Order,
    OrderKind,
    OrderStatus,
    Stock,
    Task,
    TaskStatus,
)
from shopfloor.core.errors import ShopfloorError

EPS = 1e-9
STORAGE = (LocationKind.RACK, LocationKind.BIN)
RESERVING = (TaskStatus.OPEN, TaskStatus.ASSIGNED)  # tasks whose load is still at the pickup
INCOMING = (TaskStatus.OPEN, TaskStatus.ASSIGNED, TaskStatus.CARRYING)


class StockError(ShopfloorError):
    """A stock operation that cannot be done (not enough stock, unknown location or lot, bad quantity)."""


class NotFound(StockError):
    """An unknown location, material, lot, order or task."""


@dataclass(frozen=True)
class TaskView:
    """A transport task with its codes and cells, as the fleet and the API see it."""

    id: int
    status: TaskStatus
    material: str
    lot: str
    quantity: float
    from_location: str
    to_location: str
    from_cell: tuple[int, int]
    to_cell: tuple[int, int]
    vehicle: str | None
    order: str | None
    created_ns: int
    done_ns: int | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value, "from_cell": list(self.from_cell),
                "to_cell": list(self.to_cell)}


def _check_qty(quantity: float) -> float:
    if not (isinstance(quantity, int | float) and math.isfinite(quantity) and quantity > 0):
        raise StockError(f"the quantity must be a positive number, got {quantity!r}")
    return float(quantity)


class Inventory:
    """The warehouse's stock, moves, orders and tasks in the (MES) database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ master data

    def sync(self, config: WarehouseConfig, ts_ns: int | None = None) -> None:
        """Create the config's materials and locations (updating cells and limits), and receive the initial
        stock once, into a warehouse that has never had a move."""
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            for code in config.materials:
                self._material(s, code, create=True)
            for loc in config.locations:
                row = s.scalar(select(Location).where(Location.code == loc.code))
                if row is None:
                    row = Location(code=loc.code)
                    s.add(row)
                row.kind = LocationKind(loc.kind)
                row.x, row.y = loc.cell
                row.equipment = loc.equipment
                row.material_id = self._material(s, loc.material, create=True) if loc.material else None
                row.min_qty, row.max_qty = loc.min, loc.max
            s.flush()
            if config.initial_stock and s.scalar(select(func.count()).select_from(Move)) == 0:
                for st in config.initial_stock:
                    material_id = self._material(s, st.material, create=True)
                    lot_id = self._lot(s, st.lot, material_id, ts, st.quantity)
                    self._apply(s, ts, material_id, lot_id, st.quantity, None, self._location(s, st.location).id,
                                "initial stock")

    def add_location(self, code: str, kind: str, cell: tuple[int, int] | None = None) -> int:
        with self._lock, Session(self.engine) as s, s.begin():
            if s.scalar(select(Location.id).where(Location.code == code)) is not None:
                raise StockError(f"location {code!r} exists already")
            loc = Location(code=code, kind=LocationKind(kind), x=cell[0] if cell else None,
                           y=cell[1] if cell else None)
            s.add(loc)
            s.flush()
            return loc.id

    # ------------------------------------------------------------------ stock operations

    def receive(self, location: str, material: str, lot: str, quantity: float, reason: str, *,
                user: str | None = None, ts_ns: int | None = None) -> int:
        """Goods arrive at ``location`` (a new lot is created in the MES item table); returns the move id."""
        qty = _check_qty(quantity)
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            material_id = self._material(s, material, create=True)
            lot_id = self._lot(s, lot, material_id, ts, qty)
            return self._apply(s, ts, material_id, lot_id, qty, None, self._location(s, location).id, reason,
                               user=user)

    def move(self, material: str, lot: str, quantity: float, from_location: str, to_location: str, reason: str, *,
             user: str | None = None, ts_ns: int | None = None) -> int:
        """Move stock between two locations (a manual relocation); returns the move id."""
        qty = _check_qty(quantity)
        if from_location == to_location:
            raise StockError(f"a move from {from_location} to itself does nothing")
        with self._lock, Session(self.engine) as s, s.begin():
            material_id = self._material(s, material)
            src = self._location(s, from_location)
            lot_id = self._lot_id(s, lot)
            self._check_available(s, src, material_id, lot_id, qty, material, lot)
            return self._apply(s, ts_ns or time.time_ns(), material_id, lot_id, qty, src.id,
                               self._location(s, to_location).id, reason, user=user)

    def consume(self, location: str, material: str, quantity: float, reason: str, *, lot: str | None = None,
                ts_ns: int | None = None) -> list[int]:
        """Production takes stock from a (line-side) location: the named lot, or the oldest lots first (FIFO).

        Refuses (StockError, nothing written) if the location holds less than ``quantity``.
        """
        qty = _check_qty(quantity)
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            material_id = self._material(s, material)
            loc = self._location(s, location)
            rows = s.scalars(select(Stock).where(Stock.location_id == loc.id, Stock.material_id == material_id,
                                                 Stock.quantity > EPS).order_by(Stock.since_ns, Stock.id)).all()
            if lot is not None:
                lot_id = self._lot_id(s, lot)
                rows = [r for r in rows if r.lot_id == lot_id]
            have = sum(r.quantity for r in rows)
            if have + EPS < qty:
                what = f"lot {lot} of {material}" if lot else material
                raise StockError(f"cannot take {qty:g} of {what} from {location}: it holds {have:g}")
            moves = []
            for r in rows:
                take = min(r.quantity, qty)
                if take <= EPS:
                    break
                moves.append(self._apply(s, ts, material_id, r.lot_id, take, loc.id, None, reason))
                qty -= take
            return moves

    # ------------------------------------------------------------------ queries

    def stock(self, *, location: str | None = None, material: str | None = None, lot: str | None = None,
              include_empty: bool = False) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            q = (select(Stock, Location.code, Location.kind, Material.code, Item.code)
                 .join(Location, Location.id == Stock.location_id).join(Material, Material.id == Stock.material_id)
                 .join(Item, Item.id == Stock.lot_id).order_by(Location.code, Material.code, Stock.since_ns))
            if location is not None:
                q = q.where(Location.code == location)
            if material is not None:
                q = q.where(Material.code == material)
            if lot is not None:
                q = q.where(Item.code == lot)
            if not include_empty:
                q = q.where(Stock.quantity > EPS)
            return [{"location": lc, "kind": lk.value, "material": mc, "lot": ic, "quantity": st.quantity,
                     "since_ns": st.since_ns} for st, lc, lk, mc, ic in s.execute(q)]

    def quantity(self, location: str, material: str, lot: str | None = None) -> float:
        return float(sum(r["quantity"] for r in self.stock(location=location, material=material, lot=lot)))

    def moves(self, *, limit: int = 100, material: str | None = None, location: str | None = None,
              since_id: int = 0) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            frm = Location.__table__.alias("frm")
            to = Location.__table__.alias("to")
            q = (select(Move, Material.code, Item.code, frm.c.code, to.c.code)
                 .join(Material, Material.id == Move.material_id).join(Item, Item.id == Move.lot_id)
                 .outerjoin(frm, frm.c.id == Move.from_location_id).outerjoin(to, to.c.id == Move.to_location_id)
                 .where(Move.id > since_id).order_by(Move.id.desc()).limit(limit))
            if material is not None:
                q = q.where(Material.code == material)
            if location is not None:
                q = q.where((frm.c.code == location) | (to.c.code == location))
            return [{"id": m.id, "ts_ns": m.ts_ns, "material": mc, "lot": lc, "quantity": m.quantity,
                     "from": fc, "to": tc, "reason": m.reason, "task": m.task_id, "order": m.order_id, "user": m.user}
                    for m, mc, lc, fc, tc in s.execute(q)]

    def locations(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.execute(select(Location, Material.code).outerjoin(Material, Material.id == Location.material_id)
                             .where(Location.kind != LocationKind.VEHICLE).order_by(Location.code)).all()
            totals = dict(s.execute(select(Stock.location_id, func.sum(Stock.quantity)).group_by(Stock.location_id))
                          .all())
            incoming = dict(s.execute(select(Task.to_location_id, func.sum(Task.quantity))
                                      .where(Task.status.in_(INCOMING)).group_by(Task.to_location_id)).all())
        out = []
        for loc, material in rows:
            qty = float(totals.get(loc.id) or 0.0)
            out.append({"code": loc.code, "kind": loc.kind.value, "cell": [loc.x, loc.y], "equipment": loc.equipment,
                        "material": material, "min": loc.min_qty, "max": loc.max_qty, "quantity": qty,
                        "incoming": float(incoming.get(loc.id) or 0.0),
                        "low": loc.min_qty is not None and qty < loc.min_qty})
        return out

    def line_side_of(self, equipment: str) -> list[str]:
        """The line-side buffers that feed the machine at ``equipment``."""
        with Session(self.engine) as s:
            return list(s.scalars(select(Location.code).where(
                Location.kind == LocationKind.LINE_SIDE, Location.equipment == equipment).order_by(Location.code)))

    def line_side_for(self, equipment: str, material: str) -> str | None:
        """The line-side buffer that feeds ``material`` to the machine at ``equipment``, if there is one."""
        with Session(self.engine) as s:
            return s.scalar(select(Location.code).join(Material, Material.id == Location.material_id).where(
                Location.kind == LocationKind.LINE_SIDE, Location.equipment == equipment, Material.code == material))

    # ------------------------------------------------------------------ orders

    def create_inbound(self, number: str, material: str, lot: str, quantity: float, dock: str, *,
                       to_location: str | None = None, user: str | None = None,
                       ts_ns: int | None = None) -> dict[str, Any]:
        """Receive a lot at a dock and create the task that puts it away (to ``to_location`` or a rack that holds
        the material already, else an empty rack)."""
        qty = _check_qty(quantity)
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            self._new_order_number(s, number)
            dock_loc = self._location(s, dock)
            if dock_loc.kind is not LocationKind.DOCK:
                raise StockError(f"{dock} is a {dock_loc.kind.value}, not a dock")
            material_id = self._material(s, material, create=True)
            target = self._location(s, to_location) if to_location else self._putaway_rack(s, material_id)
            if target.kind not in STORAGE:
                raise StockError(f"put-away goes to a rack or bin; {target.code} is a {target.kind.value}")
            lot_id = self._lot(s, lot, material_id, ts, qty)
            order = Order(number=number, kind=OrderKind.INBOUND, material_id=material_id, quantity=qty,
                          location_id=dock_loc.id, created_ns=ts, user=user)
            s.add(order)
            s.flush()
            self._apply(s, ts, material_id, lot_id, qty, None, dock_loc.id, f"inbound order {number}: received",
                        order_id=order.id, user=user)
            task = Task(order_id=order.id, material_id=material_id, lot_id=lot_id, quantity=qty,
                        from_location_id=dock_loc.id, to_location_id=target.id, created_ns=ts)
            s.add(task)
            s.flush()
            return {"order": number, "tasks": [task.id]}

    def create_outbound(self, number: str, material: str, quantity: float, dock: str, *, user: str | None = None,
                        ts_ns: int | None = None) -> dict[str, Any]:
        """Pick ``quantity`` of a material from storage, oldest lots first, to a dock, where it is shipped."""
        qty = _check_qty(quantity)
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            self._new_order_number(s, number)
            dock_loc = self._location(s, dock)
            if dock_loc.kind is not LocationKind.DOCK:
                raise StockError(f"{dock} is a {dock_loc.kind.value}, not a dock")
            material_id = self._material(s, material)
            picks = self._fifo_picks(s, material_id, qty, STORAGE)
            if picks is None:
                raise StockError(f"outbound order {number}: storage holds less than {qty:g} of {material} "
                                 "not already reserved")
            order = Order(number=number, kind=OrderKind.OUTBOUND, material_id=material_id, quantity=qty,
                          location_id=dock_loc.id, created_ns=ts, user=user)
            s.add(order)
            s.flush()
            tasks = [Task(order_id=order.id, material_id=material_id, lot_id=lot_id, quantity=q,
                          from_location_id=loc_id, to_location_id=dock_loc.id, created_ns=ts)
                     for loc_id, lot_id, q in picks]
            s.add_all(tasks)
            s.flush()
            return {"order": number, "tasks": [t.id for t in tasks]}

    def replenish(self, buffer: str, ts_ns: int | None = None, *, demand: float | None = None) -> list[int]:
        """If a line-side buffer's stock plus what is on its way is below its minimum, order it up to its maximum
        from storage (oldest lots first; as much as storage has). Returns the new task ids.

        ``demand``: what a work order just released at the buffer's machine will need; the buffer is then
        filled when it holds less than that (capped at its maximum), before consumption reaches the minimum.
        """
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            loc = self._location(s, buffer)
            if loc.kind is not LocationKind.LINE_SIDE or loc.material_id is None or loc.min_qty is None:
                raise StockError(f"{buffer} is not a line-side buffer with a material and limits")
            on_hand = s.scalar(select(func.coalesce(func.sum(Stock.quantity), 0.0)).where(
                Stock.location_id == loc.id, Stock.material_id == loc.material_id)) or 0.0
            incoming = s.scalar(select(func.coalesce(func.sum(Task.quantity), 0.0)).where(
                Task.to_location_id == loc.id, Task.status.in_(INCOMING))) or 0.0
            level = loc.min_qty if demand is None else max(loc.min_qty, min(float(loc.max_qty or 0.0), demand))
            if on_hand + incoming >= level - EPS:
                return []
            need = float(loc.max_qty or loc.min_qty) - on_hand - incoming
            picks = self._fifo_picks(s, loc.material_id, need, STORAGE, partial=True) or []
            if not picks:
                return []
            n = s.scalar(select(func.count()).select_from(Order).where(Order.kind == OrderKind.REPLENISHMENT)) or 0
            order = Order(number=f"REP-{n + 1:06d}", kind=OrderKind.REPLENISHMENT, material_id=loc.material_id,
                          quantity=sum(q for _, _, q in picks), location_id=loc.id, created_ns=ts)
            s.add(order)
            s.flush()
            tasks = [Task(order_id=order.id, material_id=loc.material_id, lot_id=lot_id, quantity=q,
                          from_location_id=src, to_location_id=loc.id, created_ns=ts) for src, lot_id, q in picks]
            s.add_all(tasks)
            s.flush()
            return [t.id for t in tasks]

    def line_side_buffers(self) -> list[str]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Location.code).where(Location.kind == LocationKind.LINE_SIDE)
                                  .order_by(Location.code)))

    def orders(self, limit: int = 100) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.execute(select(Order, Material.code, Location.code)
                             .join(Material, Material.id == Order.material_id)
                             .outerjoin(Location, Location.id == Order.location_id)
                             .order_by(Order.id.desc()).limit(limit)).all()
            return [{"number": o.number, "kind": o.kind.value, "status": o.status.value, "material": m,
                     "quantity": o.quantity, "location": lc, "created_ns": o.created_ns, "done_ns": o.done_ns,
                     "user": o.user} for o, m, lc in rows]

    # ------------------------------------------------------------------ transport tasks

    def tasks(self, statuses: Sequence[TaskStatus] | None = None, limit: int = 200,
              task_id: int | None = None) -> list[TaskView]:
        with Session(self.engine) as s:
            frm = Location.__table__.alias("frm")
            to = Location.__table__.alias("to")
            q = (select(Task, Material.code, Item.code, frm.c.code, frm.c.x, frm.c.y, to.c.code, to.c.x, to.c.y,
                        Order.number)
                 .join(Material, Material.id == Task.material_id).join(Item, Item.id == Task.lot_id)
                 .join(frm, frm.c.id == Task.from_location_id).join(to, to.c.id == Task.to_location_id)
                 .outerjoin(Order, Order.id == Task.order_id).order_by(Task.id.desc()).limit(limit))
            if statuses is not None:
                q = q.where(Task.status.in_(list(statuses)))
            if task_id is not None:
                q = q.where(Task.id == task_id)
            return [TaskView(t.id, t.status, mc, lc, t.quantity, fc, tc, (fx, fy), (tx, ty), t.vehicle, on,
                             t.created_ns, t.done_ns, t.error)
                    for t, mc, lc, fc, fx, fy, tc, tx, ty, on in s.execute(q)][::-1]

    def task(self, task_id: int) -> TaskView:
        found = self.tasks(task_id=task_id)
        if not found:
            raise NotFound(f"no transport task {task_id}")
        return found[0]

    def assign(self, task_id: int, vehicle: str) -> None:
        def change(t: Task) -> None:
            t.vehicle, t.status = vehicle, TaskStatus.ASSIGNED
        self._task_update(task_id, (TaskStatus.OPEN,), change)

    def unassign(self, task_id: int) -> None:
        """The vehicle gave the task up before picking (it stopped): the task waits for another."""
        def change(t: Task) -> None:
            t.vehicle, t.status = None, TaskStatus.OPEN
        self._task_update(task_id, (TaskStatus.ASSIGNED,), change)

    def pick(self, task_id: int, ts_ns: int | None = None) -> int:
        """The vehicle picked the load: stock moves from the pickup location onto the vehicle."""
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            t = self._task_row(s, task_id, (TaskStatus.ASSIGNED,))
            src = s.get(Location, t.from_location_id)
            assert src is not None and t.vehicle is not None
            row = self._stock_row(s, src.id, t.material_id, t.lot_id)
            have = row.quantity if row is not None else 0.0
            if have + EPS < t.quantity:
                raise StockError(f"task {task_id}: {src.code} holds {have:g} of the lot, "
                                 f"the task carries {t.quantity:g}")
            veh = self._vehicle_location(s, t.vehicle)
            t.status = TaskStatus.CARRYING
            return self._apply(s, ts, t.material_id, t.lot_id, t.quantity, src.id, veh.id,
                               f"task {task_id}: picked by {t.vehicle}", task_id=task_id, order_id=t.order_id)

    def drop(self, task_id: int, ts_ns: int | None = None) -> int:
        """The vehicle dropped the load: stock moves onto the destination; the order completes with its last task
        (an outbound order's goods are then shipped from the dock)."""
        ts = ts_ns if ts_ns is not None else time.time_ns()
        with self._lock, Session(self.engine) as s, s.begin():
            t = self._task_row(s, task_id, (TaskStatus.CARRYING,))
            assert t.vehicle is not None
            veh = self._vehicle_location(s, t.vehicle)
            move = self._apply(s, ts, t.material_id, t.lot_id, t.quantity, veh.id, t.to_location_id,
                               f"task {task_id}: dropped by {t.vehicle}", task_id=task_id, order_id=t.order_id)
            t.status = TaskStatus.DONE
            t.done_ns = ts
            if t.order_id is not None:
                order = s.get(Order, t.order_id)
                assert order is not None
                left = s.scalar(select(func.count()).select_from(Task).where(
                    Task.order_id == order.id, Task.status.not_in((TaskStatus.DONE, TaskStatus.FAILED))))
                if left == 0:
                    order.status = OrderStatus.DONE
                    order.done_ns = ts
                    if order.kind is OrderKind.OUTBOUND:
                        for task in s.scalars(select(Task).where(Task.order_id == order.id,
                                                                 Task.status == TaskStatus.DONE)):
                            self._apply(s, ts, task.material_id, task.lot_id, task.quantity, task.to_location_id,
                                        None, f"outbound order {order.number}: shipped", order_id=order.id)
            return move

    def fail(self, task_id: int, error: str) -> None:
        """A task that cannot be done; a load already on the vehicle stays there (visible as the vehicle's stock)."""
        def set_failed(t: Task) -> None:
            t.status = TaskStatus.FAILED
            t.error = error[:400]
            t.done_ns = time.time_ns()
            if t.order_id is not None:
                order = self._session_of(t).get(Order, t.order_id)
                if order is not None:
                    order.status = OrderStatus.FAILED
        self._task_update(task_id, (TaskStatus.OPEN, TaskStatus.ASSIGNED, TaskStatus.CARRYING), set_failed)

    # ------------------------------------------------------------------ pick frequency (slotting)

    def pick_counts(self, since_ns: int = 0) -> dict[str, tuple[int, list[tuple[str, float, int, int]]]]:
        """Per material: picks out of storage since ``since_ns``, and where it is stored now
        (location, quantity, x, y)."""
        with Session(self.engine) as s:
            storage_ids = select(Location.id).where(Location.kind.in_(STORAGE))
            picks = dict(s.execute(select(Material.code, func.count(Move.id))
                                   .join(Material, Material.id == Move.material_id)
                                   .where(Move.from_location_id.in_(storage_ids), Move.ts_ns >= since_ns)
                                   .group_by(Material.code)).all())
            stored: dict[str, list[tuple[str, float, int, int]]] = {}
            for mc, lc, qty, x, y in s.execute(
                select(Material.code, Location.code, func.sum(Stock.quantity), Location.x, Location.y)
                .join(Material, Material.id == Stock.material_id).join(Location, Location.id == Stock.location_id)
                .where(Location.kind.in_(STORAGE), Stock.quantity > EPS)
                .group_by(Material.code, Location.code, Location.x, Location.y)
            ):
                stored.setdefault(mc, []).append((lc, float(qty), int(x or 0), int(y or 0)))
        return {m: (int(picks.get(m, 0)), stored.get(m, [])) for m in sorted(set(picks) | set(stored))}

    def storage_locations(self) -> list[tuple[str, int, int, float]]:
        """Every rack and bin: (code, x, y, quantity stored)."""
        with Session(self.engine) as s:
            totals = dict(s.execute(select(Stock.location_id, func.sum(Stock.quantity)).group_by(Stock.location_id))
                          .all())
            return [(loc.code, int(loc.x or 0), int(loc.y or 0), float(totals.get(loc.id) or 0.0))
                    for loc in s.scalars(select(Location).where(Location.kind.in_(STORAGE)).order_by(Location.code))]

    def dock_cells(self) -> list[tuple[int, int]]:
        with Session(self.engine) as s:
            return [(int(loc.x or 0), int(loc.y or 0))
                    for loc in s.scalars(select(Location).where(Location.kind == LocationKind.DOCK))]

    # ------------------------------------------------------------------ internals

    def _apply(self, s: Session, ts: int, material_id: int, lot_id: int, qty: float, from_id: int | None,
               to_id: int | None, reason: str, *, task_id: int | None = None, order_id: int | None = None,
               user: str | None = None) -> int:
        if not reason:
            raise StockError("every move needs a reason")
        if from_id is not None:
            row = self._stock_row(s, from_id, material_id, lot_id)
            if row is None or row.quantity + EPS < qty:
                loc = s.get(Location, from_id)
                raise StockError(f"{loc.code if loc else from_id} holds {row.quantity if row else 0:g} of the lot, "
                                 f"cannot take {qty:g}")
            row.quantity = max(0.0, row.quantity - qty)
        if to_id is not None:
            row = self._stock_row(s, to_id, material_id, lot_id)
            if row is None:
                s.add(Stock(location_id=to_id, material_id=material_id, lot_id=lot_id, quantity=qty, since_ns=ts))
            else:
                if row.quantity <= EPS:
                    row.since_ns = ts
                row.quantity += qty
        move = Move(ts_ns=ts, material_id=material_id, lot_id=lot_id, quantity=qty, from_location_id=from_id,
                    to_location_id=to_id, reason=reason[:400], task_id=task_id, order_id=order_id, user=user)
        s.add(move)
        s.flush()
        return move.id

    def _stock_row(self, s: Session, location_id: int, material_id: int, lot_id: int) -> Stock | None:
        return s.scalar(select(Stock).where(Stock.location_id == location_id, Stock.material_id == material_id,
                                            Stock.lot_id == lot_id))

    def _reserved(self, s: Session, location_id: int, lot_id: int) -> float:
        return float(s.scalar(select(func.coalesce(func.sum(Task.quantity), 0.0)).where(
            Task.from_location_id == location_id, Task.lot_id == lot_id, Task.status.in_(RESERVING))) or 0.0)

    def _check_available(self, s: Session, loc: Location, material_id: int, lot_id: int, qty: float,
                         material: str, lot: str) -> None:
        row = self._stock_row(s, loc.id, material_id, lot_id)
        have = row.quantity if row is not None else 0.0
        reserved = self._reserved(s, loc.id, lot_id)
        if have - reserved + EPS < qty:
            extra = f" ({reserved:g} reserved for transport tasks)" if reserved else ""
            raise StockError(f"cannot take {qty:g} of lot {lot} ({material}) from {loc.code}: it holds {have:g}{extra}")

    def _fifo_picks(self, s: Session, material_id: int, qty: float, kinds: Sequence[LocationKind], *,
                    partial: bool = False) -> list[tuple[int, int, float]] | None:
        rows = s.execute(select(Stock.location_id, Stock.lot_id, Stock.quantity)
                         .join(Location, Location.id == Stock.location_id)
                         .where(Stock.material_id == material_id, Location.kind.in_(list(kinds)), Stock.quantity > EPS)
                         .order_by(Stock.since_ns, Stock.id)).all()
        picks: list[tuple[int, int, float]] = []
        left = qty
        for loc_id, lot_id, have in rows:
            free = have - self._reserved(s, loc_id, lot_id)
            take = min(free, left)
            if take > EPS:
                picks.append((loc_id, lot_id, take))
                left -= take
            if left <= EPS:
                return picks
        return picks if partial else None

    def _putaway_rack(self, s: Session, material_id: int) -> Location:
        same = s.scalar(select(Location).join(Stock, Stock.location_id == Location.id)
                        .where(Location.kind.in_(STORAGE), Stock.material_id == material_id, Stock.quantity > EPS)
                        .order_by(Location.code).limit(1))
        if same is not None:
            return same
        used = select(Stock.location_id).where(Stock.quantity > EPS)
        empty = s.scalar(select(Location).where(Location.kind.in_(STORAGE), Location.id.not_in(used))
                         .order_by(Location.code).limit(1))
        if empty is None:
            raise StockError("no rack holds this material and none is empty: give the put-away location")
        return empty

    def _vehicle_location(self, s: Session, vehicle: str) -> Location:
        code = f"AGV:{vehicle}"
        loc = s.scalar(select(Location).where(Location.code == code))
        if loc is None:
            loc = Location(code=code, kind=LocationKind.VEHICLE)
            s.add(loc)
            s.flush()
        return loc

    def _new_order_number(self, s: Session, number: str) -> None:
        if not number or len(number) > 64:
            raise StockError("an order number is 1 to 64 characters")
        if s.scalar(select(Order.id).where(Order.number == number)) is not None:
            raise StockError(f"order {number} exists already")

    def _location(self, s: Session, code: str) -> Location:
        loc = s.scalar(select(Location).where(Location.code == code))
        if loc is None:
            raise NotFound(f"no location {code!r}")
        return loc

    def _material(self, s: Session, code: str, *, create: bool = False) -> int:
        material_id = s.scalar(select(Material.id).where(Material.code == code))
        if material_id is None:
            if not create:
                raise NotFound(f"no material {code!r}")
            material = Material(code=code, name=code, unit="pcs")
            s.add(material)
            s.flush()
            material_id = material.id
        return int(material_id)

    def _lot_id(self, s: Session, code: str) -> int:
        lot_id = s.scalar(select(Item.id).where(Item.code == code, Item.kind == ItemKind.LOT))
        if lot_id is None:
            raise NotFound(f"no lot {code!r}")
        return int(lot_id)

    def _lot(self, s: Session, code: str, material_id: int, ts: int, qty: float) -> int:
        """The lot's id, created in the MES item table if new; a lot of another material is refused."""
        if not code:
            raise StockError("stock is kept by lot: give a lot code")
        item = s.scalar(select(Item).where(Item.code == code))
        if item is None:
            item = Item(code=code, kind=ItemKind.LOT, material_id=material_id, quantity=qty, created_ns=ts)
            s.add(item)
            s.flush()
        elif item.kind is not ItemKind.LOT or item.material_id != material_id:
            raise StockError(f"{code} is not a lot of this material")
        return int(item.id)

    def _task_row(self, s: Session, task_id: int, allowed: Sequence[TaskStatus]) -> Task:
        t = s.get(Task, task_id)
        if t is None:
            raise NotFound(f"no transport task {task_id}")
        if t.status not in allowed:
            raise StockError(f"task {task_id} is {t.status.value}, expected {' or '.join(a.value for a in allowed)}")
        return t

    def _task_update(self, task_id: int, allowed: Sequence[TaskStatus], change: Callable[[Task], object]) -> None:
        with self._lock, Session(self.engine) as s, s.begin():
            change(self._task_row(s, task_id, allowed))

    @staticmethod
    def _session_of(obj: object) -> Session:
        session = Session.object_session(obj)
        assert session is not None
        return session
