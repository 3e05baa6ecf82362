"""HTTP API of the plant's planner (the ``scheduling`` service): the plan against the actual, its history,
and work orders entered by hand. 404 when the platform runs no planner (the plant config has no
``scheduling:`` section)."""

from __future__ import annotations

import queue
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from shopfloor.api.deps import PlatformDep, running_service
from shopfloor.apps.scheduling.plant import WorkOrder
from shopfloor.apps.scheduling.service import PlantScheduler
from shopfloor.auth.deps import Operator, require_role
from shopfloor.auth.store import Role

router = APIRouter(prefix="/api/scheduling/plant", tags=["scheduling"],
                   dependencies=[Depends(require_role(Role.VIEWER))])


def _planner(platform: PlatformDep) -> PlantScheduler:
    return running_service(platform, "scheduling", PlantScheduler, "scheduling")


Planner = Annotated[PlantScheduler, Depends(_planner)]


class WorkOrderIn(BaseModel):
    """A work order entered by hand (the MES sends the same as a ``work_order`` event)."""

    number: str = Field(min_length=1, max_length=80)
    product: str = Field(min_length=1, max_length=80)
    quantity: float = Field(gt=0, lt=1e6)
    due_ms: int | None = Field(default=None, gt=0, description="Epoch ms.")
    priority: float = Field(default=1.0, ge=0, le=1000, description="Weight in tardiness; at or above the "
                            "config's rush_priority the order is a rush order.")


@router.get("")
def plant_plan(planner: Planner) -> dict[str, Any]:
    """The current plan (operations in epoch ms), the orders, KPIs from now on, plan changes and the actual."""
    return planner.view()


@router.get("/events")
def plant_events(planner: Planner) -> list[dict[str, Any]]:
    """Every change of the plan kept (newest last): time, trigger, method, solve ms, disruption."""
    events: list[dict[str, Any]] = planner.view()["events"]
    return events


@router.post("/orders", status_code=202)
def add_order(order: WorkOrderIn, planner: Planner, _: Operator) -> dict[str, Any]:
    """Queue a work order for planning (a rush order when its priority is high enough)."""
    work = WorkOrder(order.number, order.product, order.quantity, order.due_ms, order.priority, planner.now_ms())
    try:
        planner.submit(work)
    except queue.Full:
        raise HTTPException(503, "the planner is behind; try again shortly") from None
    return {"queued": order.number, "rush": order.priority >= planner.config.rush_priority}
