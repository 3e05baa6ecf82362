"""Hungarian task assignment on travel time, with charging stops, against brute force on small fleets."""

from itertools import permutations

import numpy as np
import pytest

from shopfloor.apps.warehouse.fleet import (
    BatteryModel,
    FleetError,
    TransportTask,
    Vehicle,
    VehicleState,
    assign_tasks,
)
from shopfloor.apps.warehouse.mapf import GridGraph

GRAPH = GridGraph(np.ones((10, 20), dtype=bool))


def v(x: int, y: int) -> int:
    return GRAPH.vertex(x, y)


def test_hungarian_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    for _ in range(5):
        cells = rng.choice(GRAPH.num_vertices, 14, replace=False).tolist()
        vehicles = [Vehicle(vehicle_id=f"agv{k}", position=cells[k]) for k in range(4)]
        tasks = [TransportTask(task_id=f"t{k}", pickup=cells[4 + 2 * k], dropoff=cells[5 + 2 * k]) for k in range(4)]
        result = assign_tasks(GRAPH, vehicles, tasks, chargers=[v(0, 0)])
        assert len(result.trips) == 4 and not result.unassigned_tasks

        def trip(vh: Vehicle, t: TransportTask) -> float:
            (x0, y0), (x1, y1), (x2, y2) = GRAPH.xy(vh.position), GRAPH.xy(t.pickup), GRAPH.xy(t.dropoff)
            return abs(x0 - x1) + abs(y0 - y1) + abs(x1 - x2) + abs(y1 - y2)  # open grid: Manhattan

        best = min(sum(trip(vehicles[i], tasks[j]) for i, j in enumerate(p)) for p in permutations(range(4)))
        assert result.total_s == pytest.approx(best)


def test_low_battery_charges_first_and_counts_the_time() -> None:
    battery = BatteryModel(use_pct_per_cell=1.0, charge_pct_per_s=2.0, reserve_pct=10.0)
    low = Vehicle(vehicle_id="low", position=v(0, 0), battery_pct=30.0)
    task = TransportTask(task_id="t", pickup=v(10, 0), dropoff=v(19, 0))
    result = assign_tasks(GRAPH, [low], [task], chargers=[v(2, 0)], battery=battery)
    (trip,) = result.trips
    assert trip.charger == v(2, 0)
    # at the charger with 28 %; needs 10 reserve + (8 + 9 + 17 home) cells = 44 %: 16 % at 2 %/s
    assert trip.charge_s == pytest.approx(8.0)
    assert trip.travel_s == pytest.approx(2 + 8 + 9)


def test_charged_vehicle_beats_a_nearer_empty_one() -> None:
    battery = BatteryModel(use_pct_per_cell=1.0, charge_pct_per_s=0.5, reserve_pct=10.0)
    near_empty = Vehicle(vehicle_id="near", position=v(9, 0), battery_pct=15.0)
    far_full = Vehicle(vehicle_id="far", position=v(0, 5), battery_pct=100.0)
    task = TransportTask(task_id="t", pickup=v(10, 0), dropoff=v(12, 0))
    result = assign_tasks(GRAPH, [near_empty, far_full], [task], chargers=[v(19, 9)], battery=battery)
    assert [t.vehicle_id for t in result.trips] == ["far"] and result.idle_vehicles == ("near",)


def test_impossible_trip_is_never_assigned() -> None:
    walled = np.ones((5, 9), dtype=bool)
    walled[:, 4] = False  # a wall splits the floor
    graph = GridGraph(walled)
    vehicle = Vehicle(vehicle_id="a", position=graph.vertex(0, 0))
    task = TransportTask(task_id="t", pickup=graph.vertex(8, 0), dropoff=graph.vertex(8, 4))
    result = assign_tasks(graph, [vehicle], [task], chargers=[graph.vertex(0, 4)])
    assert result.trips == () and result.unassigned_tasks == ("t",) and result.idle_vehicles == ("a",)


def test_priority_and_availability() -> None:
    a = Vehicle(vehicle_id="a", position=v(0, 0))
    busy = Vehicle(vehicle_id="b", position=v(1, 0), state=VehicleState.MOVING)
    urgent = TransportTask(task_id="urgent", pickup=v(19, 9), dropoff=v(18, 9), priority=3)
    near = TransportTask(task_id="near", pickup=v(1, 1), dropoff=v(2, 1))
    result = assign_tasks(GRAPH, [a, busy], [near, urgent], chargers=[v(0, 9)])
    assert [t.task_id for t in result.trips] == ["urgent"] and result.unassigned_tasks == ("near",)


def test_bad_fleet_input() -> None:
    with pytest.raises(FleetError, match="battery 120"):
        Vehicle(vehicle_id="x", position=0, battery_pct=120)
    with pytest.raises(FleetError, match="same cell"):
        TransportTask(task_id="t", pickup=3, dropoff=3)
    a = Vehicle(vehicle_id="a", position=0)
    t = TransportTask(task_id="t", pickup=1, dropoff=2)
    with pytest.raises(FleetError, match="charger"):
        assign_tasks(GRAPH, [a], [t], chargers=[])
    with pytest.raises(FleetError, match="not a free cell"):
        assign_tasks(GRAPH, [a], [TransportTask(task_id="u", pickup=1, dropoff=10**6)], chargers=[0])
    with pytest.raises(FleetError, match="duplicate vehicle"):
        assign_tasks(GRAPH, [a, a], [t], chargers=[0])
