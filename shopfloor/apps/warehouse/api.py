"""HTTP API of the warehouse: locations, stock, moves, orders, transport tasks, vehicles, the map, slotting.

Reads need a viewer; creating inbound/outbound orders and closing cells to traffic need an operator.
Everything goes through the running ``warehouse`` platform service (503 when the plant has no
``warehouse:`` section). Refused operations answer 422 with the inventory's sentence (404 for an
unknown location, material or lot).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from shopfloor.api.deps import PlatformDep, running_service
from shopfloor.apps.warehouse.inventory.models import TaskStatus
from shopfloor.apps.warehouse.inventory.stock import Inventory, NotFound, StockError
from shopfloor.apps.warehouse.mapf.grid import GridError
from shopfloor.apps.warehouse.service import WarehouseService
from shopfloor.auth.deps import require_role
from shopfloor.auth.store import Principal, Role

router = APIRouter(prefix="/api/warehouse", tags=["warehouse"], dependencies=[Depends(require_role(Role.VIEWER))])
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]


def get_service(platform: PlatformDep) -> WarehouseService:
    service = running_service(platform, "warehouse", WarehouseService, "warehouse")
    if service.inventory is None:
        raise HTTPException(503, "the warehouse service is not running")
    return service


ServiceDep = Annotated[WarehouseService, Depends(get_service)]


def _inventory(service: WarehouseService) -> Inventory:
    assert service.inventory is not None
    return service.inventory


def _refused(exc: StockError) -> HTTPException:
    return HTTPException(404 if isinstance(exc, NotFound) else 422, str(exc))


class OrderIn(BaseModel):
    """An inbound order receives a lot at a dock and puts it away; an outbound order picks to a dock and ships."""

    kind: Literal["inbound", "outbound"]
    number: str = Field(min_length=1, max_length=64)
    material: str = Field(min_length=1, max_length=64)
    quantity: float = Field(gt=0)
    dock: str
    lot: str | None = Field(default=None, description="Inbound: the lot received (required).")
    to_location: str | None = Field(default=None, description="Inbound: where to put it away (default: chosen).")


class BlockIn(BaseModel):
    cells: list[tuple[int, int]] = Field(description="(x, y) cells closed to traffic; [] opens them all again.")


@router.get("/locations")
def locations(service: ServiceDep) -> list[dict[str, Any]]:
    """Racks, bins, docks and line-side buffers with their cells, stock totals, limits and what is on its way."""
    return _inventory(service).locations()


@router.get("/stock")
def stock(service: ServiceDep, location: str | None = None, material: str | None = None,
          lot: str | None = None) -> list[dict[str, Any]]:
    """Stock by location, material and lot (filters combine); vehicles carrying a load show as ``AGV:<serial>``."""
    return _inventory(service).stock(location=location, material=material, lot=lot)


@router.get("/moves")
def moves(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=5000)] = 100, material: str | None = None,
          location: str | None = None) -> list[dict[str, Any]]:
    """The move ledger, newest first, each with its reason."""
    return _inventory(service).moves(limit=limit, material=material, location=location)


@router.get("/orders")
def orders(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return _inventory(service).orders(limit)


@router.post("/orders", status_code=201)
def create_order(body: OrderIn, service: ServiceDep, who: Operator) -> dict[str, Any]:
    inv = _inventory(service)
    try:
        if body.kind == "inbound":
            if not body.lot:
                raise StockError("an inbound order needs the lot received")
            out = inv.create_inbound(body.number, body.material, body.lot, body.quantity, body.dock,
                                     to_location=body.to_location, user=who.name)
        else:
            out = inv.create_outbound(body.number, body.material, body.quantity, body.dock, user=who.name)
    except StockError as exc:
        raise _refused(exc) from None
    service.tasks_added()
    return out


@router.get("/tasks")
def tasks(service: ServiceDep, status: Annotated[list[TaskStatus] | None, Query()] = None,
          limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[dict[str, Any]]:
    """Transport tasks, oldest first (``status`` repeatable: open, assigned, carrying, done, failed)."""
    return [t.as_dict() for t in _inventory(service).tasks(status, limit)]


@router.get("/vehicles")
def vehicles(service: ServiceDep) -> dict[str, Any]:
    """Every vehicle: position (cells), battery, state, load, task, current leg and the path ahead."""
    return service.snapshot()


@router.get("/map")
def warehouse_map(service: ServiceDep) -> dict[str, Any]:
    """The grid (rows, '.' free), cell size, locations and the vehicles' homes, for drawing the map."""
    cfg = service.config
    return {"map_id": cfg.map_id, "rows": cfg.map, "width": len(cfg.map[0]), "height": len(cfg.map),
            "cell_size_m": cfg.cell_size_m, "locations": _inventory(service).locations(),
            "homes": {v.serial: list(v.home) for v in cfg.vehicles}}


@router.get("/live")
def live(service: ServiceDep) -> dict[str, Any]:
    """What the dashboard redraws every second: vehicles, stock per location, active tasks."""
    inv = _inventory(service)
    active = inv.tasks((TaskStatus.OPEN, TaskStatus.ASSIGNED, TaskStatus.CARRYING))
    return {**service.snapshot(), "locations": inv.locations(), "tasks": [t.as_dict() for t in active]}


@router.get("/slotting")
def slotting(service: ServiceDep) -> list[dict[str, Any]]:
    """ABC class by picks out of storage, and the storage place nearest a dock each material should have."""
    try:
        return service.slotting()
    except StockError as exc:
        raise _refused(exc) from None


@router.put("/blocked")
def blocked(body: BlockIn, service: ServiceDep, who: Operator) -> dict[str, Any]:
    """Close cells to traffic (an obstacle on the floor): the fleet plans around them from its next step."""
    try:
        service.block([(int(x), int(y)) for x, y in body.cells])
    except GridError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"blocked": [list(c) for c in body.cells], "by": who.name}
