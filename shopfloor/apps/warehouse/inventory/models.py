"""The warehouse tables (SQLAlchemy 2), all prefixed ``wh_``; materials and lots are the MES's own rows.

* ``wh_location``: racks, bins, docks and line-side buffers with the grid cell a vehicle serves them
  from; a vehicle is a location too (kind ``vehicle``) while it carries a load, so stock is never
  "in the air".
* ``wh_stock``: quantity per (location, material, lot); a CHECK keeps it >= 0 in the database itself.
* ``wh_move``: the append-only ledger (triggers refuse UPDATE and DELETE on SQLite); every change of
  ``wh_stock`` is one move with its reason, so stock = sum of moves.
* ``wh_order``: inbound (receive at a dock, put away), outbound (pick to a dock, ship) and
  replenishment (rack to line-side buffer) orders, one material each.
* ``wh_task``: a transport task: one load from a location to another, done by one vehicle.
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, CheckConstraint, Enum, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shopfloor.apps.mes.models import Base, BigId  # one metadata: the foreign keys reach the MES tables


class LocationKind(enum.StrEnum):
    RACK = "rack"
    BIN = "bin"
    DOCK = "dock"
    LINE_SIDE = "line_side"
    VEHICLE = "vehicle"


class OrderKind(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    REPLENISHMENT = "replenishment"


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    FAILED = "failed"


class TaskStatus(enum.StrEnum):
    OPEN = "open"  # waiting for a vehicle
    ASSIGNED = "assigned"  # a vehicle drives to the pickup
    CARRYING = "carrying"  # picked: the load is on the vehicle
    DONE = "done"  # dropped at the destination
    FAILED = "failed"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=16)


class Location(Base):
    __tablename__ = "wh_location"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[LocationKind] = mapped_column(_enum(LocationKind, "wh_location_kind"))
    x: Mapped[int | None] = mapped_column(Integer, default=None)
    y: Mapped[int | None] = mapped_column(Integer, default=None)
    equipment: Mapped[str | None] = mapped_column(String(400), default=None)
    material_id: Mapped[int | None] = mapped_column(ForeignKey("mes_material.id"), default=None)
    min_qty: Mapped[float | None] = mapped_column(Float, default=None)
    max_qty: Mapped[float | None] = mapped_column(Float, default=None)


class Stock(Base):
    __tablename__ = "wh_stock"
    __table_args__ = (
        UniqueConstraint("location_id", "material_id", "lot_id"),
        CheckConstraint("quantity >= 0", name="ck_wh_stock_nonnegative"),
        Index("ix_wh_stock_material", "material_id", "location_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("wh_location.id"))
    material_id: Mapped[int] = mapped_column(ForeignKey("mes_material.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("mes_item.id"))
    quantity: Mapped[float] = mapped_column(Float)
    since_ns: Mapped[int] = mapped_column(BigInteger, doc="When this lot first arrived here (FIFO order).")


class Move(Base):
    __tablename__ = "wh_move"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_wh_move_positive"),
        Index("ix_wh_move_ts", "ts_ns"),
        Index("ix_wh_move_material_ts", "material_id", "ts_ns"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    material_id: Mapped[int] = mapped_column(ForeignKey("mes_material.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("mes_item.id"))
    quantity: Mapped[float] = mapped_column(Float)
    from_location_id: Mapped[int | None] = mapped_column(ForeignKey("wh_location.id"), default=None)
    to_location_id: Mapped[int | None] = mapped_column(ForeignKey("wh_location.id"), default=None)
    reason: Mapped[str] = mapped_column(String(400))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("wh_order.id"), default=None)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("wh_task.id"), default=None)
    user: Mapped[str | None] = mapped_column(String(64), default=None)


class Order(Base):
    __tablename__ = "wh_order"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[OrderKind] = mapped_column(_enum(OrderKind, "wh_order_kind"))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "wh_order_status"), default=OrderStatus.OPEN)
    material_id: Mapped[int] = mapped_column(ForeignKey("mes_material.id"))
    quantity: Mapped[float] = mapped_column(Float)
    location_id: Mapped[int | None] = mapped_column(
        ForeignKey("wh_location.id"), default=None, doc="Inbound: the dock; outbound: the dock; replenishment: buffer."
    )
    created_ns: Mapped[int] = mapped_column(BigInteger)
    done_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    user: Mapped[str | None] = mapped_column(String(64), default=None)


class Task(Base):
    __tablename__ = "wh_task"
    __table_args__ = (Index("ix_wh_task_status", "status"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("wh_order.id"), default=None)
    material_id: Mapped[int] = mapped_column(ForeignKey("mes_material.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("mes_item.id"))
    quantity: Mapped[float] = mapped_column(Float)
    from_location_id: Mapped[int] = mapped_column(ForeignKey("wh_location.id"))
    to_location_id: Mapped[int] = mapped_column(ForeignKey("wh_location.id"))
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus, "wh_task_status"), default=TaskStatus.OPEN)
    vehicle: Mapped[str | None] = mapped_column(String(64), default=None)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    done_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(String(400), default=None)
