"""The ``scheduling:`` section of plant.yaml: the plant's planner (docs/scheduling.md, "In the plant").

Which machines the planner assigns work to (and where their state tags are), the products' routings with
the time per unit on each eligible machine, and how the planner behaves. Only pydantic here: the plant
config imports it.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantMachine(_Strict):
    """A machine the planner assigns work to: its id in plans, its asset path (its state tag is
    ``<equipment>/state``) and its time per unit for products without a routing of their own."""

    id: str = Field(min_length=1)
    equipment: str = Field(min_length=1)
    cycle_time_s: float = Field(gt=0)


class RoutingStep(_Strict):
    """One operation of a product: the machines that can do it, with the time per unit on each."""

    name: str = Field(min_length=1)
    seconds_per_unit: dict[str, float] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> RoutingStep:
        for machine, seconds in self.seconds_per_unit.items():
            if not seconds > 0 or not math.isfinite(seconds):
                raise ValueError(f"step {self.name!r}: the time per unit on {machine} must be a positive number")
        return self


class ProductRouting(_Strict):
    product: str = Field(min_length=1)
    steps: list[RoutingStep] = Field(min_length=1)


class SchedulingConfig(_Strict):
    """The ``scheduling:`` section of plant.yaml: the plant's planner (docs/scheduling.md, "In the plant")."""

    machines: list[PlantMachine] = Field(min_length=1)
    products: list[ProductRouting] = Field(default_factory=list, description="Routings; other products take "
                                           "one operation on any machine, at its cycle time per unit.")
    objective: Literal["makespan", "weighted_tardiness"] = "weighted_tardiness"
    improve_time_limit_s: float = Field(default=3.0, ge=0, description="CP-SAT improvement after a replan "
                                        "(0: none).")
    workers: int = Field(default=1, ge=1, description="CP-SAT workers of the improvement.")
    down_states: list[int] = Field(default_factory=lambda: [2], description="State codes that mean the machine "
                                   "is down (the simulator's 2).")
    expected_repair_s: int = Field(default=900, gt=0, description="How long a breakdown is planned to last; "
                                   "extended while the machine stays down.")
    rush_priority: float = Field(default=5.0, gt=0, description="A work order of this priority or more is a "
                                 "rush order: it is inserted by a repair, not by a replan.")
    events_topic: str = Field(default="shopfloor/mes/events", min_length=1)
    history: int = Field(default=200, ge=1, description="Reschedule events and finished operations kept.")

    @model_validator(mode="after")
    def _references(self) -> SchedulingConfig:
        ids = [m.id for m in self.machines]
        if len(set(ids)) != len(ids):
            raise ValueError("scheduling machine ids must be unique")
        for routing in self.products:
            for step in routing.steps:
                unknown = set(step.seconds_per_unit) - set(ids)
                if unknown:
                    raise ValueError(f"product {routing.product!r} step {step.name!r}: unknown machines "
                                     f"{sorted(unknown)}")
        return self


__all__ = ["PlantMachine", "ProductRouting", "RoutingStep", "SchedulingConfig"]
