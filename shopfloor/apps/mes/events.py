"""The MES event contract: what a line controller (or the virtual factory) sends to ``shopfloor/mes/events``.

A message is one JSON object or an array of them; each has ``kind`` and ``ts_ms`` (epoch ms, UTC)
and the fields of its kind (docs/mes.md lists them with examples). Each event of a message is
validated on its own, so one bad event is dead-lettered and the others are recorded. Unknown
fields are ignored (senders may add their own), missing or mistyped ones are errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

Code = Annotated[str, Field(min_length=1, max_length=80)]
Path = Annotated[str, Field(min_length=1, max_length=400)]
Ms = Annotated[int, Field(gt=0, lt=10**14, description="Epoch milliseconds, UTC.")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    ts_ms: Ms

    @property
    def ts_ns(self) -> int:
        return self.ts_ms * 1_000_000


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    quantity: float = Field(default=1.0, gt=0)


class Produced(_Event):
    """A part (serial) or lot came off a machine. Without ``inputs`` its input is the lot last loaded there."""

    kind: Literal["produced"]
    serial: Code
    equipment: Path
    product: Code | None = None
    work_order: Code | None = None
    quality: Literal["good", "scrap"] = "good"
    inputs: list[InputRef] | None = None
    parameters: dict[str, float] | None = None


class Scrap(_Event):
    """A part that came off a machine as scrap: ``produced`` with quality scrap, for controllers that say so."""

    kind: Literal["scrap"]
    serial: Code
    equipment: Path
    product: Code | None = None
    work_order: Code | None = None
    reason: str | None = None
    inputs: list[InputRef] | None = None
    parameters: dict[str, float] | None = None


class MaterialLoad(_Event):
    """A material lot loaded at a machine; a new lot code needs ``material`` and ``quantity`` to create it."""

    kind: Literal["material_load"]
    equipment: Path
    lot: Code
    material: Code | None = None
    quantity: float | None = Field(default=None, gt=0)
    lot_quantity: float | None = Field(default=None, gt=0, description="Size of a new lot (default: quantity).")


class WorkOrderEvent(_Event):
    """A work order released to the line (operations from the product's newest routing)."""

    kind: Literal["work_order"]
    number: Code
    product: Code
    quantity: float = Field(gt=0)
    due_ms: Ms | None = None
    release_ms: Ms | None = None


class OrderStatusEvent(_Event):
    kind: Literal["order_status"]
    number: Code
    status: Literal["released", "running", "done", "cancelled"]


class StateEvent(_Event):
    kind: Literal["state"]
    equipment: Path
    state: Literal["running", "idle", "down", "setup"]
    reason: str | None = None


class Logon(_Event):
    kind: Literal["logon", "logoff"]
    equipment: Path
    operator: Annotated[str, Field(min_length=1, max_length=64)]


class Inspection(_Event):
    """An inspection result of a serial or lot; it passes when lower <= value <= upper."""

    kind: Literal["inspection"]
    serial: Code
    characteristic: Annotated[str, Field(min_length=1, max_length=80)]
    value: float
    lower: float | None = None
    upper: float | None = None
    unit: str = ""
    equipment: Path | None = None
    supersedes: str | None = Field(
        default=None, min_length=1, max_length=80,
        description="A characteristic whose earlier results this one replaces (a person's review of an "
                    "automatic check).")


class Packed(_Event):
    """Serials packed into a (finished goods) lot, created with the product if new."""

    kind: Literal["packed"]
    lot: Code
    serials: list[Code] = Field(min_length=1, max_length=10_000)
    product: Code | None = None
    equipment: Path | None = None


MesEvent = Annotated[
    Produced | Scrap | MaterialLoad | WorkOrderEvent | OrderStatusEvent | StateEvent | Logon | Inspection | Packed,
    Field(discriminator="kind"),
]
KINDS = ("produced", "scrap", "material_load", "work_order", "order_status", "state", "logon", "logoff",
         "inspection", "packed")
_adapter: TypeAdapter[MesEvent] = TypeAdapter(MesEvent)


class Rejected(Exception):
    """An event (or message) that cannot be recorded; the message says why, for the dead letters."""


def split_message(payload: bytes) -> list[Any]:
    """The raw events of a message: a JSON object or a non-empty array of objects (Rejected otherwise)."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"not JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise Rejected("an empty array: no events")
    return items


def parse_event(raw: Any) -> MesEvent:
    """One validated event; Rejected names the kind and every field that was wrong."""
    if not isinstance(raw, dict):
        raise Rejected(f"an event must be a JSON object, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind is None:
        raise Rejected(f"an event needs 'kind' (one of {', '.join(KINDS)})")
    if kind not in KINDS:
        raise Rejected(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'event'}: {e['msg']}" for e in exc.errors()
        )
        raise Rejected(f"{kind} event: {problems}") from None
