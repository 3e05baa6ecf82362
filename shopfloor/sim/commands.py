"""Remote control in the virtual factory: the machines accept commands, and the demo's plant declares them.

* CNCs (Sparkplug B): the extension's own MQTT client subscribes to the line's DCMDs, as the
  line controller behind the edge node would, and hands them to the stepping thread: metric
  ``run`` (true starts, false stops: an operator stop holds the machine idle until started
  again) and ``feed_override`` (% of the programmed feed, 50..120). The next DDATA reports
  ``state`` and ``feed_override``, which is the answer the platform waits for.
* The press (Modbus TCP): its pressure setpoint is a writable holding register of the field
  server (field_servers.py), which caps the press force.
* The robot (OPC UA): a ``SetMode`` method on the robot object (field_servers.py) switches auto,
  manual and maintenance; outside auto the robot finishes its cycle and starts no new one.

``extend_plant`` adds the ``control:`` section for whatever of these the plant has (command
types, ranges, roles, interlocks, the press's two-step confirmation), so the demo's platform runs
the command service. A stop has no interlock: stopping is always allowed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.connectors.mqtt.sparkplug import decode_payload, parse_topic
from shopfloor.core.errors import DecodeError
from shopfloor.sim.extension import Broker

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory

log = logging.getLogger(__name__)

FEED_RANGE = (50.0, 120.0)
PRESSURE_RANGE = (100.0, 200.0)  # bar; the press's relief valve opens at 210


def _equipment(plant: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    site = plant["site"]
    out: list[tuple[str, dict[str, Any]]] = []
    for area in site["areas"]:
        for line in area["lines"]:
            base = f"{site['name']}/{area['name']}/{line['name']}"
            for cell in line.get("cells", []):
                out += [(f"{base}/{cell['name']}/{eq['name']}", eq) for eq in cell["equipment"]]
            out += [(f"{base}/{eq['name']}", eq) for eq in line.get("equipment", [])]
    return out


def control_section(plant: dict[str, Any]) -> dict[str, Any]:
    """The command types of the virtual factory's machines that accept commands."""
    equipment = _equipment(plant)
    robot = next((p for p, eq in equipment if eq.get("type") == "robot"), None)
    robot_on_opcua = robot is not None and any(
        p == robot and eq["source"]["protocol"] == "opcua" for p, eq in equipment
    )
    commands: list[dict[str, Any]] = []
    for path, eq in equipment:
        name, kind = eq["name"], eq.get("type")
        if kind == "cnc" and eq["source"]["protocol"] == "sparkplug":
            locks: list[dict[str, Any]] = [
                {"name": "not-broken-down", "expression": "state != 2"},
                {"name": "not-in-tool-change", "expression": "state != 3"},
            ]
            if robot_on_opcua:  # someone may be in the cell: the line must not start
                locks.append({"name": "robot-not-in-maintenance", "expression": "robot_mode != 2",
                              "vars": {"robot_mode": f"{robot}/mode"}})
            answer = {"tag": "state", "expect": {1: 0, 0: 1}}
            commands += [
                {"name": f"{name}-start", "description": f"Start {name} (ends an operator stop)", "equipment": path,
                 "kind": "start_stop", "send": {"protocol": "sparkplug", "metric": "run", "datatype": "Boolean"},
                 "value": {"type": "enum", "states": {1: "start"}}, "answer": answer, "interlocks": locks},
                {"name": f"{name}-stop", "description": f"Stop {name} (always allowed)", "equipment": path,
                 "kind": "start_stop", "send": {"protocol": "sparkplug", "metric": "run", "datatype": "Boolean"},
                 "value": {"type": "enum", "states": {0: "stop"}}, "answer": answer},
                {"name": f"{name}-feed", "description": f"Feed rate override of {name}", "equipment": path,
                 "kind": "setpoint", "send": {"protocol": "sparkplug", "metric": "feed_override"},
                 "value": {"type": "float", "min": FEED_RANGE[0], "max": FEED_RANGE[1], "unit": "%"},
                 "interlocks": [{"name": "not-in-tool-change", "expression": "state != 3"}]},
            ]
        elif kind == "press" and eq["source"]["protocol"] == "modbus":
            commands.append({
                "name": f"{name}-pressure", "description": f"Pressure limit of {name} (caps the press force)",
                "equipment": path, "kind": "setpoint", "send": {"protocol": "modbus", "tag": "pressure_setpoint"},
                "value": {"type": "float", "min": PRESSURE_RANGE[0], "max": PRESSURE_RANGE[1], "unit": "bar"},
                "role": "engineer", "confirm": True,
                "interlocks": [{"name": "pump-on", "expression": "pump_on == 1"}],
            })
        elif kind == "robot" and robot_on_opcua and path == robot:
            commands.append({
                "name": f"{name}-mode", "description": f"Operating mode of {name}", "equipment": path,
                "kind": "mode",
                "send": {"protocol": "opcua", "method": f"ns=2;s={name}.SetMode", "object": f"ns=2;s={name}"},
                "value": {"type": "enum", "states": {0: "auto", 1: "manual", 2: "maintenance"}},
                "confirm": True,
                "interlocks": [{"name": "not-mid-cycle", "expression": "state != 0"}],
            })
    return {"commands": commands}


class CommandsExtension:
    """Makes the factory's machines obey commands (see the module docstring)."""

    name = "commands"

    def __init__(self) -> None:
        self._topic: str | None = None
        self._client: mqtt.Client | None = None
        self._queue: deque[tuple[str, str, float]] = deque(maxlen=256)  # (device, metric, value); oldest dropped
        self._lock = threading.Lock()
        self.applied = 0
        self.ignored = 0

    def extend_plant(self, plant: dict[str, Any]) -> None:
        for _, eq in _equipment(plant):
            src = eq.get("source", {})
            if eq.get("type") == "cnc" and src.get("protocol") == "sparkplug":
                self._topic = f"spBv1.0/{src['group']}/DCMD/{src['node']}/+"
                break
        section = control_section(plant)
        if section["commands"]:
            plant["control"] = section

    def start(self, broker: Broker) -> None:
        if self._topic is None:
            return
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shopfloor-sim-commands-{id(self):x}")
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        topic = self._topic
        client.on_connect = lambda c, u, f, reason, p: None if reason.is_failure else c.subscribe(topic, qos=1)
        client.on_message = self._on_message
        client.connect_async(broker.host, broker.port)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = parse_topic(message.topic)
            decoded = decode_payload(message.payload)
        except DecodeError as exc:
            log.warning("sim commands: ignoring %s: %s", message.topic, exc)
            self.ignored += 1
            return
        if topic is None or topic.device is None or decoded.names is None:
            self.ignored += 1
            return
        with self._lock:
            for i, metric in enumerate(decoded.names):
                if metric is not None:
                    self._queue.append((topic.device, metric, float(decoded.value[i])))

    def on_step(self, factory: VirtualFactory) -> None:
        if not self._queue:
            return
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
        cncs = {c.name: c for c in factory.cncs}
        for device, metric, value in pending:
            cnc = cncs.get(device)
            if cnc is not None and metric == "run" and value in (0.0, 1.0):
                cnc.hold = value == 0.0
            elif cnc is not None and metric == "feed_override" and FEED_RANGE[0] <= value <= FEED_RANGE[1]:
                cnc.feed_override = value
            else:  # a real controller ignores what it does not know; the platform then sees no answer
                log.warning("sim commands: %s ignores %s = %s", device, metric, value)
                self.ignored += 1
                continue
            self.applied += 1


__all__ = ["CommandsExtension", "control_section"]
