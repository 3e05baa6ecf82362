"""The production model, as typed SQLAlchemy 2 tables.

Master data (products, routings, materials, equipment), orders (work orders and their
operations), traceable items (lots and serials, one table with a discriminator) and the
event record. Two tables carry the traceability load and are shaped for it:

* ``mes_event``: one row per plant event, hash-chained (``hash`` = SHA-256 over the previous
  hash and the row's canonical encoding, see ``chain.py``). Indexed by (item, time) for a
  trace and by (equipment, time) for "who and what was on this machine then".
* ``mes_genealogy_edge``: one row per "input went into output", keyed (output, input) and
  indexed (input, output), so a backward trace walks the primary key and a forward trace the
  index, each step one index probe (recursive CTE in ``genealogy.py``). On SQLite the table is
  WITHOUT ROWID: the primary key *is* the table, so the backward walk reads no second structure.
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    BigInteger,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite's INTEGER PRIMARY KEY is the rowid alias only when spelled INTEGER; PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class EventKind(enum.StrEnum):
    """What happened. Stored as its value (short text with a CHECK constraint)."""

    PRODUCED = "produced"  # a lot or serial came out of an operation, from its inputs (genealogy edges)
    COUNT = "count"  # unserialised parts counted good/scrap on a machine
    STATE = "state"  # machine state change (running, idle, down, setup) with its reason
    LOGON = "logon"  # operator logged on at a machine
    LOGOFF = "logoff"
    MATERIAL_LOAD = "material_load"  # a material lot was loaded at a machine
    INSPECTION = "inspection"  # an inspection result of an item
    PACKED = "packed"  # items packed into a lot (e.g. finished goods pallet): genealogy edges


class ItemKind(enum.StrEnum):
    LOT = "lot"
    SERIAL = "serial"


class OrderStatus(enum.StrEnum):
    PLANNED = "planned"
    RELEASED = "released"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=16)


class Equipment(Base):
    """A machine or line by its asset path (the historian's tags live under it)."""

    __tablename__ = "mes_equipment"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(String(400), unique=True)


class Product(Base):
    __tablename__ = "mes_product"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(16), default="pcs")
    gtin: Mapped[str | None] = mapped_column(String(14), default=None, doc="GS1 GTIN, for EPCIS Digital Link ids.")


class Material(Base):
    __tablename__ = "mes_material"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(16), default="kg")
    gtin: Mapped[str | None] = mapped_column(String(14), default=None)


class Routing(Base):
    """How a product is made: ordered steps, each on a machine with its planned run time per item (PRI)."""

    __tablename__ = "mes_routing"
    __table_args__ = (UniqueConstraint("product_id", "version"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("mes_product.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(200), default="")
    steps: Mapped[list[RoutingStep]] = relationship(order_by="RoutingStep.seq", cascade="all, delete-orphan")


class RoutingStep(Base):
    __tablename__ = "mes_routing_step"
    __table_args__ = (UniqueConstraint("routing_id", "seq"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    routing_id: Mapped[int] = mapped_column(ForeignKey("mes_routing.id"))
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes_equipment.id"))
    planned_run_time_s: Mapped[float] = mapped_column(Float, doc="ISO 22400 PRI: planned run time per item, s.")


class WorkOrder(Base):
    __tablename__ = "mes_work_order"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("mes_product.id"))
    routing_id: Mapped[int | None] = mapped_column(ForeignKey("mes_routing.id"), default=None)
    quantity: Mapped[float] = mapped_column(Float, doc="Planned quantity (ISO 22400 POQ).")
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "mes_order_status"), default=OrderStatus.PLANNED)
    planned_start_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    planned_end_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    operations: Mapped[list[Operation]] = relationship(order_by="Operation.seq", cascade="all, delete-orphan")


class Operation(Base):
    """One step of a work order on one machine; its counts are updated as events arrive."""

    __tablename__ = "mes_operation"
    __table_args__ = (UniqueConstraint("work_order_id", "seq"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("mes_work_order.id"))
    seq: Mapped[int] = mapped_column(Integer)
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes_equipment.id"))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "mes_op_status"), default=OrderStatus.PLANNED)
    good_quantity: Mapped[float] = mapped_column(Float, default=0.0)
    scrap_quantity: Mapped[float] = mapped_column(Float, default=0.0)
    started_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    ended_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Item(Base):
    """A traceable unit: a lot (a quantity of a material or product) or a serial (one part).

    One table for both, so that genealogy edges join any item to any item.
    """

    __tablename__ = "mes_item"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind, "mes_item_kind"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("mes_product.id"), default=None)
    material_id: Mapped[int | None] = mapped_column(ForeignKey("mes_material.id"), default=None)
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("mes_work_order.id"), default=None)
    quantity: Mapped[float] = mapped_column(Float, default=1.0)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    __mapper_args__ = {"polymorphic_on": "kind"}  # noqa: RUF012 (SQLAlchemy reads it)


class Lot(Item):
    __mapper_args__ = {"polymorphic_identity": ItemKind.LOT}  # noqa: RUF012 (SQLAlchemy reads it)


class Serial(Item):
    __mapper_args__ = {"polymorphic_identity": ItemKind.SERIAL}  # noqa: RUF012 (SQLAlchemy reads it)


class Event(Base):
    """A plant event in the tamper-evident record; ``seq`` is its place in the hash chain (1, 2, ...)."""

    __tablename__ = "mes_event"
    __table_args__ = (
        Index("ix_mes_event_item_ts", "item_id", "ts_ns"),
        Index("ix_mes_event_equipment_ts", "equipment_id", "ts_ns"),
    )
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, "mes_event_kind"))
    item_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    equipment_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    operator: Mapped[str | None] = mapped_column(String(64), default=None)
    work_order_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    operation_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    payload: Mapped[str] = mapped_column(Text, default="{}", doc="Canonical JSON (sorted keys, compact).")
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class GenealogyEdge(Base):
    """``input`` went into ``output`` (quantity ``quantity``) at event ``event_seq``."""

    __tablename__ = "mes_genealogy_edge"
    __table_args__ = (
        Index("ix_mes_genealogy_input_output", "input_id", "output_id"),
        {"sqlite_with_rowid": False},
    )
    output_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    input_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_seq: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[float] = mapped_column(Float, default=1.0)


class Checkpoint(Base):
    """A signed Merkle root over the hashes of events first_seq..last_seq (one block)."""

    __tablename__ = "mes_checkpoint"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    merkle_root: Mapped[bytes] = mapped_column(LargeBinary(32))
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32), doc="Chain hash of event last_seq.")
    signed_ns: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(16), doc="First 8 bytes (hex) of SHA-256 of the public key.")
    fingerprints: Mapped[bytes] = mapped_column(
        LargeBinary, doc="First 4 bytes of each event's chain hash, in order: names the first altered event."
    )
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
