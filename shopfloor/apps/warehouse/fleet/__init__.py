"""The AGV fleet: vehicles and transport tasks, Hungarian task assignment with charging, VDA 5050 messages."""

from shopfloor.apps.warehouse.fleet.assignment import Assignment, TripPlan, assign_tasks, trip_plan
from shopfloor.apps.warehouse.fleet.vda5050 import Order, State, apply_state, order_from_path, parse_state, topic
from shopfloor.apps.warehouse.fleet.vehicles import BatteryModel, FleetError, TransportTask, Vehicle, VehicleState

__all__ = [
    "Assignment",
    "BatteryModel",
    "FleetError",
    "Order",
    "State",
    "TransportTask",
    "TripPlan",
    "Vehicle",
    "VehicleState",
    "apply_state",
    "assign_tasks",
    "order_from_path",
    "parse_state",
    "topic",
    "trip_plan",
]
