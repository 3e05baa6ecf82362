"""The locomotive's firmware and physics on a simulated clock: deadman trips, resume rules, track ends."""

from __future__ import annotations

import math

import pytest

from shopfloor.sim.vehicle import Brake, DriveState, Locomotive, LocoSpec, TripReason

SPEC = LocoSpec(heartbeat_timeout_s=0.3, latency_budget_s=0.2, safe_decel=2.0, start_position_m=100.0)
HB = 0.1


def drive_with_heartbeats(loco: Locomotive, t0: float, until: float, period: float = HB, rtt: float = 0.02) -> float:
    """Heartbeats every ``period`` from t0 until ``until`` (with echo times giving round trip ``rtt``)."""
    t = t0
    while t <= until + 1e-9:
        loco.heartbeat(t, seq=round(t * 1000), echo_us=round((t - rtt) * 1e6), held_us=0)
        t += period
    return t - period


def started(speed: float = 2.0) -> Locomotive:
    loco = Locomotive.create(SPEC, 0.0)
    loco.heartbeat(0.0, seq=0)
    assert loco.command_speed(0.0, speed) is None
    return loco


def test_accelerates_at_its_limit_and_reaches_the_set_point() -> None:
    loco = started(2.0)
    drive_with_heartbeats(loco, 0.1, 2.0)
    loco.advance(2.0)
    assert loco.speed == pytest.approx(1.0, abs=1e-6)  # 0.5 m/s^2 for 2 s
    last = drive_with_heartbeats(loco, 2.1, 6.0)
    loco.advance(last)
    assert loco.speed == pytest.approx(2.0)
    assert loco.state == DriveState.DRIVING and loco.brake == Brake.RELEASED
    assert loco.position > 100.0


def test_heartbeats_stopping_trip_the_deadman_at_timeout_and_brake_at_the_safe_deceleration() -> None:
    loco = started(2.0)
    last = drive_with_heartbeats(loco, 0.1, 6.0)  # at 2 m/s by now
    loco.advance(last + 2.0)
    assert loco.state == DriveState.SAFE_STOP and loco.trip_reason == TripReason.HEARTBEAT_TIMEOUT
    trip = loco.trip_log[-1]
    assert trip.at == pytest.approx(last + SPEC.heartbeat_timeout_s)
    assert trip.speed == pytest.approx(2.0)
    assert trip.standstill_at == pytest.approx(trip.at + 2.0 / SPEC.safe_decel)
    assert loco.speed == 0.0 and loco.brake == Brake.SAFE and loco.trips == 1


def test_the_trip_is_exact_in_device_time_however_late_the_cycle_runs() -> None:
    loco = started(1.0)
    last = drive_with_heartbeats(loco, 0.1, 3.0)
    loco.advance(last + 5.0)  # one late call: the trip still happened at last + timeout
    assert loco.trip_log[-1].at == pytest.approx(last + SPEC.heartbeat_timeout_s)


def test_a_round_trip_over_budget_trips_at_once() -> None:
    loco = started(1.0)
    drive_with_heartbeats(loco, 0.1, 1.0)
    loco.heartbeat(1.1, seq=99_999, echo_us=round((1.1 - 0.25) * 1e6), held_us=0)
    assert loco.state == DriveState.SAFE_STOP and loco.trip_reason == TripReason.LATENCY
    assert loco.rtt_s == pytest.approx(0.25)


def test_held_time_at_the_platform_is_not_counted_as_link_latency() -> None:
    loco = started(1.0)
    loco.heartbeat(0.2, seq=10, echo_us=round(0.05 * 1e6), held_us=round(0.12 * 1e6))  # 0.15 s old, 0.12 s held
    assert loco.rtt_s == pytest.approx(0.03)
    assert loco.state == DriveState.DRIVING


def test_resumed_heartbeats_do_not_restart_driving_and_a_new_command_needs_a_fresh_heartbeat() -> None:
    loco = started(2.0)
    last = drive_with_heartbeats(loco, 0.1, 2.0)
    loco.advance(last + 0.5)
    assert loco.state == DriveState.SAFE_STOP
    assert loco.command_speed(last + 0.6, 1.0) is not None  # no fresh heartbeat: refused
    resumed = drive_with_heartbeats(loco, last + 0.7, last + 4.0)
    loco.advance(resumed)
    assert loco.state == DriveState.SAFE_STOP and loco.speed == 0.0 and loco.commanded == 0.0
    assert loco.command_speed(resumed, 1.0) is None
    assert loco.state == DriveState.DRIVING and loco.trip_reason == TripReason.NONE
    assert loco.refused == 1


def test_stale_heartbeats_are_ignored() -> None:
    loco = started(1.0)
    assert loco.heartbeat(0.1, seq=5)
    assert not loco.heartbeat(0.2, seq=5)
    assert not loco.heartbeat(0.3, seq=4)
    loco.advance(0.1 + SPEC.heartbeat_timeout_s + 0.01)
    assert loco.state == DriveState.SAFE_STOP and loco.stale_heartbeats == 2


def test_a_normal_stop_needs_no_link() -> None:
    loco = started(2.0)
    last = drive_with_heartbeats(loco, 0.1, 6.0)
    assert loco.command_speed(last, 0.0) is None
    loco.advance(last + 5.0)  # no heartbeats while it brakes at the service deceleration
    assert loco.trips == 0 and loco.speed == 0.0 and loco.state == DriveState.STOPPED


def test_speed_out_of_range_is_refused() -> None:
    loco = started(1.0)
    assert "outside" in (loco.command_speed(0.0, SPEC.max_speed + 0.1) or "")
    assert "outside" in (loco.command_speed(0.0, math.nan) or "")


def test_uplink_loss_trips_when_echoes_stop_reaching_the_platform() -> None:
    loco = started(1.0)
    t = 0.1
    while t < 3.0:  # heartbeats keep coming, but they confirm no echo newer than t=0.05
        loco.heartbeat(t, seq=round(t * 1000), echo_us=50_000, held_us=round((t - 0.06) * 1e6))
        t += HB
    assert loco.state == DriveState.SAFE_STOP and loco.trip_reason == TripReason.UPLINK
    assert loco.trip_log[-1].at == pytest.approx(0.05 + 2 * SPEC.heartbeat_timeout_s + SPEC.latency_budget_s)


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_the_loco_stops_before_the_track_ends(direction: float) -> None:
    spec = LocoSpec(start_position_m=240.0, heartbeat_timeout_s=1e6, latency_budget_s=1e6)
    loco = Locomotive.create(spec, 0.0)
    loco.heartbeat(0.0, seq=0)
    assert loco.command_speed(0.0, direction * spec.max_speed) is None
    loco.advance(400.0)
    assert loco.speed == 0.0
    end = spec.track_length_m if direction > 0 else 0.0
    assert 0.0 < abs(end - loco.position) <= spec.end_margin_m + 0.2
