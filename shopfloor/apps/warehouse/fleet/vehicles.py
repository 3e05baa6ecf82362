"""Vehicles and transport tasks of an AGV fleet, on the cells of a warehouse grid.

A vehicle knows where it is (a grid vertex), its battery, what it is doing and what it carries; a
transport task moves one load from a pickup cell to a drop-off cell. Battery use is linear in distance
driven (``BatteryModel``), which is what the assignment needs to tell whether a trip is possible
before a charge. Bad values raise FleetError, naming the vehicle or task.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopfloor.core.errors import ShopfloorError


class FleetError(ShopfloorError):
    """A vehicle, task or charger that is malformed or unknown."""


class VehicleState(StrEnum):
    IDLE = "idle"
    MOVING = "moving"
    LOADING = "loading"
    CHARGING = "charging"
    STOPPED = "stopped"  # halted on the floor (obstacle, e-stop): an obstacle for path finding
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class BatteryModel:
    """Linear battery use: percent per cell driven, percent per second on a charger, and the reserve."""

    use_pct_per_cell: float = 0.05
    charge_pct_per_s: float = 0.5
    reserve_pct: float = 20.0

    def __post_init__(self) -> None:
        if self.use_pct_per_cell < 0 or self.charge_pct_per_s <= 0 or not 0 <= self.reserve_pct < 100:
            raise FleetError(f"battery model out of range: {self}")


@dataclass(kw_only=True)
class Vehicle:
    """One AGV: ``position`` is a grid vertex; ``speed`` in cells per second."""

    vehicle_id: str
    position: int
    battery_pct: float = 100.0
    state: VehicleState = VehicleState.IDLE
    payload: str | None = None
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.vehicle_id:
            raise FleetError("a vehicle needs an id")
        if not 0.0 <= self.battery_pct <= 100.0:
            raise FleetError(f"vehicle {self.vehicle_id}: battery {self.battery_pct} % is not in 0..100")
        if self.speed <= 0:
            raise FleetError(f"vehicle {self.vehicle_id}: speed must be positive, got {self.speed}")
        self.state = VehicleState(self.state)

    @property
    def available(self) -> bool:
        """Free for a new task: idle and empty-handed (charging vehicles may be called off the charger)."""
        return self.state in (VehicleState.IDLE, VehicleState.CHARGING) and self.payload is None


@dataclass(frozen=True, kw_only=True)
class TransportTask:
    """Move ``load_id`` from ``pickup`` to ``dropoff`` (grid vertices)."""

    task_id: str
    pickup: int
    dropoff: int
    load_id: str = ""
    priority: int = 0  # higher first when there are more tasks than vehicles

    def __post_init__(self) -> None:
        if not self.task_id:
            raise FleetError("a task needs an id")
        if self.pickup == self.dropoff:
            raise FleetError(f"task {self.task_id}: pickup and drop-off are the same cell")
