"""The virtual factory obeys the demo's commands: a CNC over Sparkplug DCMD, the press's pressure setpoint over
Modbus (with its two-step confirmation) and the robot's mode over an OPC UA method call, each answered by the
machine itself (its next report, the write response, the call's status)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopfloor.auth.store import Principal, Role
from shopfloor.control.service import CommandService
from shopfloor.core.net import free_port
from shopfloor.platform import Platform
from shopfloor.sim.commands import CommandsExtension
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.field_servers import FieldServers
from shopfloor.sim.publisher import FactoryPublisher
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

LINE = "virtual-factory/machining/line1"
ENGINEER = Principal("erik", Role.ENGINEER, "token")


@pytest.fixture
def running(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[VirtualFactory, Platform, CommandService]]:
    ext = CommandsExtension()
    factory = VirtualFactory(seed=4, step_s=0.25, opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/sim/",
                             modbus_port=free_port(), extensions=[ext])
    config = factory.plant_config()
    service = CommandService(config.control)
    servers = FieldServers(factory)
    servers.start()
    platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url, services=[service])
    publisher = FactoryPublisher(factory, "127.0.0.1", mosquitto.port, field=servers)
    try:
        platform.start()
        factory.restart_clock()
        publisher.start()
        yield factory, platform, service
    finally:
        publisher.stop()
        platform.stop()
        servers.stop()


def ready(service: CommandService, name: str) -> bool:
    return bool(next(c for c in service.describe() if c["name"] == name)["ready"])


def test_demo_machines_obey_commands_over_all_three_protocols(
    running: tuple[VirtualFactory, Platform, CommandService],
) -> None:
    factory, platform, service = running
    cnc1 = factory.cncs[0]

    wait_for(lambda: ready(service, "cnc1-stop") and ready(service, "press1-pressure"), 30)
    stop = service.request(ENGINEER, "cnc1-stop", "stop")
    assert stop.decision == "executed", stop
    assert stop.answer is not None and stop.answer.startswith("reported state = 1 after")
    assert cnc1.hold and cnc1.state == 1 and cnc1.reason == 5  # idle, operator stop

    feed = service.request(ENGINEER, "cnc1-feed", 80)
    assert feed.decision == "executed" and cnc1.feed_override == 80.0, feed

    first = service.request(ENGINEER, "press1-pressure", 150)
    assert first.decision == "confirm_required" and first.token is not None
    done = service.confirm(ENGINEER, "press1-pressure", 150, first.token)
    assert done.decision == "executed", done
    assert done.answer == "write register (6) holding 3 acknowledged: [1500]"
    assert factory.press is not None
    wait_for(lambda: factory.press is not None and factory.press.pressure_setpoint == 150.0)
    setpoint = platform.tag_index.id_of(f"{LINE}/cell5/press1/pressure_setpoint")
    wait_for(lambda: platform.historian.latest([setpoint]).value.tolist() == [150.0], 20)

    wait_for(lambda: ready(service, "robot1-mode"), 60)  # between two pick-and-place cycles
    first = service.request(ENGINEER, "robot1-mode", "maintenance")
    mode = service.confirm(ENGINEER, "robot1-mode", 2, first.token or "")
    if mode.decision == "refused":  # the robot started a cycle between the two requests: the recheck refused
        assert mode.rule == "interlock:not-mid-cycle"
        wait_for(lambda: ready(service, "robot1-mode"), 60)
        first = service.request(ENGINEER, "robot1-mode", "maintenance")
        mode = service.confirm(ENGINEER, "robot1-mode", 2, first.token or "")
    assert mode.decision == "executed" and mode.answer == "Good", mode
    assert factory.robot.mode == 2

    # with the robot in maintenance, no CNC may start: the interlock says why
    wait_for(lambda: platform.historian.latest([platform.tag_index.id_of(f"{LINE}/cell4/robot1/mode")]).value
             .tolist() == [2.0], 20)
    refused = service.request(ENGINEER, "cnc1-start", "start")
    assert refused.rule == "interlock:robot-not-in-maintenance"
    assert refused.reason == "interlock robot-not-in-maintenance: robot_mode != 2 was false (robot_mode=2)"
