"""The deadman over a real broker and a faulty link: cut, delay, jitter, loss (fault proxy, docs/drive.md).

The loco's MQTT clients reach Mosquitto through the fault proxy; the platform's drive link and a console
thread send heartbeats every 100 ms; the firmware's timeout is 300 ms and its round-trip budget 250 ms.
Times are from the cut to the trip and to standstill, both on the device's clock.
"""

from __future__ import annotations

import time

import pytest

from shopfloor.control.drive_bench import TEST_HEARTBEAT_S, TEST_SPEC, DriveRig, link_loss_to_stop
from shopfloor.testing.faultproxy import LinkFaults
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

BOUND_S = TEST_SPEC.heartbeat_timeout_s + TEST_HEARTBEAT_S  # the bound: timeout + one heartbeat period
JOG = 0.15  # m/s, a creep speed: braking at the safe deceleration takes 60 ms, less than a heartbeat period


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(LinkFaults(), id="clean"),
        pytest.param(LinkFaults(delay_s=0.03, jitter_s=0.02), id="delay-jitter"),
        pytest.param(LinkFaults(delay_s=0.01, loss=0.1, retransmit_s=0.05), id="loss"),
    ],
)
def test_cutting_the_link_stops_the_loco_within_timeout_plus_one_heartbeat(
    mosquitto: Mosquitto, faults: LinkFaults
) -> None:
    trials = link_loss_to_stop("127.0.0.1", mosquitto.port, 2, faults, speed=JOG)
    for trial in trials:
        assert trial.reason == "heartbeat_timeout"
        assert 0 < trial.trip_s <= BOUND_S, trial
        # standstill: the trip plus braking from the speed at the trip at the safe deceleration
        assert trial.standstill_s == pytest.approx(trial.trip_s + abs(trial.speed) / TEST_SPEC.safe_decel, abs=0.011)
        assert trial.standstill_s <= BOUND_S, trial


def test_at_driving_speed_the_trip_is_as_quick_and_braking_follows_the_physics(mosquitto: Mosquitto) -> None:
    (trial,) = link_loss_to_stop("127.0.0.1", mosquitto.port, 1, LinkFaults(delay_s=0.02, jitter_s=0.01), speed=1.5)
    assert trial.trip_s <= BOUND_S
    assert abs(trial.speed) > 0.3
    assert trial.standstill_s == pytest.approx(trial.trip_s + abs(trial.speed) / TEST_SPEC.safe_decel, abs=0.011)


def test_a_round_trip_over_the_budget_trips_the_safe_stop(mosquitto: Mosquitto) -> None:
    with DriveRig("127.0.0.1", mosquitto.port) as rig:
        assert rig.drive(JOG)["accepted"]
        wait_for(lambda: rig.device.snapshot()["speed"] > 0.05, 10, 0.01)
        # the loco's reports slowed to 300 ms on their way up, over the 250 ms budget; heartbeats still arrive on time
        rig.proxy.set_faults(LinkFaults(delay_s=0.3), direction="up")
        snap = wait_for(lambda: (s := rig.device.snapshot())["state"] == "safe_stop" and s, 10, 0.01)
        assert snap["trip_reason"] == "latency_over_budget"
        assert snap["rtt_ms"] > 250
        trip_at = snap["trip_log"][-1][0]
        wait_for(lambda: rig.device.snapshot()["last_heartbeat"] > trip_at, 10, 0.01)  # a heartbeat after the trip
        refused = rig.drive(JOG)  # still too slow: a new command is refused, saying why
        assert not refused["accepted"] and "budget" in refused["reason"]
        rig.proxy.set_faults(LinkFaults())
        wait_for(lambda: rig.device.snapshot()["rtt_ms"] < 100, 10, 0.02)
        assert rig.drive(JOG)["accepted"]


def test_resumed_heartbeats_do_not_restart_driving_without_a_new_command(mosquitto: Mosquitto) -> None:
    with DriveRig("127.0.0.1", mosquitto.port) as rig:
        trial = rig.cut_while_driving(JOG)
        assert trial.trip_s <= BOUND_S
        rig.reconnect()  # heartbeats flow again
        echoes = rig.console.echoes
        wait_for(lambda: rig.console.echoes >= echoes + 5, 10, 0.02)
        start = time.monotonic()
        while time.monotonic() - start < 0.5:  # half a second of fresh heartbeats: still stopped
            snap = rig.device.snapshot()
            assert snap["state"] == "safe_stop" and snap["speed"] == 0.0 and snap["commanded"] == 0.0
            time.sleep(0.02)
        assert rig.drive(JOG)["accepted"]
        snap = wait_for(lambda: (s := rig.device.snapshot())["speed"] > 0.05 and s, 10, 0.01)
        assert snap["state"] == "driving"


def test_a_drive_command_without_heartbeats_is_refused(mosquitto: Mosquitto) -> None:
    with DriveRig("127.0.0.1", mosquitto.port) as rig:
        rig.console.stop()  # the console's button is not held: no heartbeats
        wait_for(lambda: time.monotonic() - (rig.device.snapshot()["last_heartbeat"] or 0) > 0.35, 10, 0.02)
        rig.console.link.listen("loco1", rig.console._on_link)
        reply = rig.drive(JOG)
        assert not reply["accepted"] and "heartbeat" in reply["reason"]
        assert rig.device.snapshot()["speed"] == 0.0
