"""The maintenance API: machines' bearing condition and the maintenance work orders.

``GET /api/maintenance/machines``: each watched machine's health index, RUL with its interval, fault class
and confidence (viewer). ``GET /api/maintenance/work-orders`` (``status``: open, acknowledged, closed;
open lists acknowledged ones too) and ``GET .../{id}`` (viewer); ``POST .../{id}/ack`` and
``POST .../{id}/close`` (engineer). 503 while the platform starts or stops, 404 when it runs no
maintenance service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException

from shopfloor.api.deps import PlatformDep, running_service
from shopfloor.apps.maintenance.service import MaintenanceService
from shopfloor.apps.maintenance.workorders import UnknownWorkOrder, WorkOrderClosed, WorkOrderStore
from shopfloor.auth.deps import Engineer, Viewer

router = APIRouter(prefix="/api/maintenance", tags=["maintenance"])


def get_service(platform: PlatformDep) -> MaintenanceService:
    return running_service(platform, "maintenance", MaintenanceService, "maintenance")


ServiceDep = Annotated[MaintenanceService, Depends(get_service)]
Note = Annotated[str, Body(embed=True, max_length=2000)]


def _store(service: MaintenanceService) -> WorkOrderStore:
    if service.store is None:
        raise HTTPException(503, "the maintenance service is not running")
    return service.store


@router.get("/machines")
def machines(service: ServiceDep, who: Viewer) -> dict[str, Any]:
    """Every watched machine's condition now, and which diagnosis model runs."""
    return {"model": service.model_info, "machines": service.machine_views()}


@router.get("/work-orders")
def work_orders(
    service: ServiceDep, who: Viewer, status: Literal["open", "acknowledged", "closed"] | None = None,
    equipment: str | None = None, limit: int = 200,
) -> list[dict[str, Any]]:
    """Work orders, newest first."""
    limit = max(1, min(limit, 1000))
    return [o.as_dict() for o in _store(service).list(status=status, equipment=equipment, limit=limit)]


@router.get("/work-orders/{wid}")
def work_order(service: ServiceDep, who: Viewer, wid: int) -> dict[str, Any]:
    try:
        return _store(service).get(wid).as_dict()
    except UnknownWorkOrder as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/work-orders/{wid}/ack")
def acknowledge(service: ServiceDep, who: Engineer, wid: int) -> dict[str, Any]:
    """Taken on: the engineer plans the bearing change."""
    try:
        return _store(service).acknowledge(wid, who.name).as_dict()
    except UnknownWorkOrder as exc:
        raise HTTPException(404, str(exc)) from None
    except WorkOrderClosed as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/work-orders/{wid}/close")
def close(service: ServiceDep, who: Engineer, wid: int, note: Note = "") -> dict[str, Any]:
    """Done (or dismissed, with a note saying why)."""
    try:
        return _store(service).close(wid, who.name, note).as_dict()
    except UnknownWorkOrder as exc:
        raise HTTPException(404, str(exc)) from None
    except WorkOrderClosed as exc:
        raise HTTPException(409, str(exc)) from None
