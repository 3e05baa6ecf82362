"""Task assignment by the Hungarian method on travel time, with a charging stop where the battery needs one.

The cost of giving task j to vehicle i is the time to drive to the pickup and on to the drop-off. If
the battery would fall below the reserve on that trip (or on the way from the drop-off to the nearest
charger afterwards), the vehicle first drives to the charger that makes the detour shortest, charges
enough, and the charging time counts. A pair that is impossible even so (a cell cut off, a battery
that cannot get to any charger) is never assigned. ``scipy.optimize.linear_sum_assignment`` then
minimises the total over a rectangular matrix; with more tasks than vehicles, higher priority tasks
are served first (a priority level outweighs any difference in travel time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from shopfloor.apps.warehouse.fleet.vehicles import BatteryModel, FleetError, TransportTask, Vehicle
from shopfloor.apps.warehouse.mapf.grid import GridGraph

_FORBIDDEN = 1e12


@dataclass(frozen=True)
class TripPlan:
    """What one vehicle does for one task; ``charger`` is the vertex of the charging stop, if any."""

    vehicle_id: str
    task_id: str
    charger: int | None
    charge_s: float
    travel_s: float

    @property
    def total_s(self) -> float:
        return self.travel_s + self.charge_s


@dataclass(frozen=True)
class Assignment:
    """Trips chosen, and the tasks and vehicles left without a partner."""

    trips: tuple[TripPlan, ...]
    unassigned_tasks: tuple[str, ...]
    idle_vehicles: tuple[str, ...]

    @property
    def total_s(self) -> float:
        return sum(t.total_s for t in self.trips)


def trip_plan(vehicle: Vehicle, task: TransportTask, chargers: NDArray[np.int32], dist_to: dict[int, NDArray[np.int32]],
              battery: BatteryModel) -> TripPlan | None:
    """The fastest way for ``vehicle`` to do ``task`` within its battery, or None if there is none."""
    to_pickup = int(dist_to[task.pickup][vehicle.position])
    carry = int(dist_to[task.dropoff][task.pickup])
    if to_pickup < 0 or carry < 0:
        return None
    home = [int(dist_to[int(c)][task.dropoff]) for c in chargers]
    reachable_home = [d for d in home if d >= 0]
    if not reachable_home:
        return None
    after = min(reachable_home)  # the drive to a charger once the task is done must stay possible
    use = battery.use_pct_per_cell
    need = (to_pickup + carry + after) * use
    if vehicle.battery_pct - need >= battery.reserve_pct:
        return TripPlan(vehicle.vehicle_id, task.task_id, None, 0.0, (to_pickup + carry) / vehicle.speed)
    best: TripPlan | None = None
    for c in chargers:
        to_c = int(dist_to[int(c)][vehicle.position])
        c_pick = int(dist_to[task.pickup][int(c)])
        if to_c < 0 or c_pick < 0 or vehicle.battery_pct - to_c * use < battery.reserve_pct:
            continue
        target = battery.reserve_pct + (c_pick + carry + after) * use
        if target > 100.0:
            continue  # even a full battery does not last the trip
        charge_s = max(0.0, target - (vehicle.battery_pct - to_c * use)) / battery.charge_pct_per_s
        plan = TripPlan(vehicle.vehicle_id, task.task_id, int(c), charge_s, (to_c + c_pick + carry) / vehicle.speed)
        if best is None or plan.total_s < best.total_s:
            best = plan
    return best


def assign_tasks(graph: GridGraph, vehicles: Sequence[Vehicle], tasks: Sequence[TransportTask],
                 chargers: Sequence[int], battery: BatteryModel | None = None) -> Assignment:
    """Assign available vehicles to tasks minimising the summed time, charging stops included."""
    battery = battery or BatteryModel()
    charger_arr = np.asarray(chargers, dtype=np.int32)
    if len(charger_arr) == 0:
        raise FleetError("at least one charger is needed")
    for v in (*charger_arr.tolist(), *(x.position for x in vehicles), *(t.pickup for t in tasks),
              *(t.dropoff for t in tasks)):
        if not 0 <= int(v) < graph.num_vertices:
            raise FleetError(f"vertex {v} is not a free cell of the map")
    for what, ids in (("vehicle", [v.vehicle_id for v in vehicles]), ("task", [t.task_id for t in tasks])):
        if len(set(ids)) != len(ids):
            raise FleetError(f"duplicate {what} ids")
    free = [v for v in vehicles if v.available]
    if not free or not tasks:
        return Assignment((), tuple(t.task_id for t in tasks), tuple(v.vehicle_id for v in free))
    targets = sorted({int(c) for c in charger_arr} | {t.pickup for t in tasks} | {t.dropoff for t in tasks})
    table = graph.distance_table(np.array(targets, dtype=np.int32))
    dist_to = {t: table[k] for k, t in enumerate(targets)}
    plans: dict[tuple[int, int], TripPlan] = {}
    cost = np.full((len(free), len(tasks)), _FORBIDDEN)
    for i, v in enumerate(free):
        for j, t in enumerate(tasks):
            plan = trip_plan(v, t, charger_arr, dist_to, battery)
            if plan is not None:
                plans[i, j] = plan
                cost[i, j] = plan.total_s
    if plans:
        level = 2.0 * max(p.total_s for p in plans.values()) + 1.0  # one priority step beats any trip time
        priority = np.array([t.priority for t in tasks], dtype=np.float64)
        feasible = cost < _FORBIDDEN
        cost[feasible] -= np.broadcast_to(priority * level, cost.shape)[feasible]
    rows, cols = linear_sum_assignment(cost)
    trips = [plans[i, j] for i, j in zip(rows.tolist(), cols.tolist(), strict=True) if (i, j) in plans]
    taken_tasks = {p.task_id for p in trips}
    taken_vehicles = {p.vehicle_id for p in trips}
    return Assignment(tuple(trips), tuple(t.task_id for t in tasks if t.task_id not in taken_tasks),
                      tuple(v.vehicle_id for v in free if v.vehicle_id not in taken_vehicles))
