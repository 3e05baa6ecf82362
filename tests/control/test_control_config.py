"""The control: section is checked against the site when plant.yaml loads; each mistake is named."""

from __future__ import annotations

import pytest

from shopfloor.config import ConfigError, parse_plant_config

SITE = """\
site:
  name: plant
  areas:
    - name: shop
      lines:
        - name: line1
          equipment:
            - name: cnc
              source: {protocol: sparkplug, group: g, node: n, device: cnc}
              tags:
                - {name: state}
                - {name: feed}
            - name: press
              source: {protocol: modbus, host: 127.0.0.1, port: 5020}
              tags:
                - {name: setpoint, modbus: {table: holding, address: 0}}
                - {name: force, modbus: {table: input, address: 0, type: float32}}
                - {name: pump, type: bool, modbus: {table: coil, address: 0, type: bool}}
control:
  commands:
"""
CNC = "plant/shop/line1/cnc"
PRESS = "plant/shop/line1/press"


def load(command: str) -> object:
    return parse_plant_config(SITE + "    - " + command.strip().replace("\n", "\n      ") + "\n")


def test_a_valid_section_loads() -> None:
    config = load(f"""
name: feed
equipment: {CNC}
kind: setpoint
send: {{protocol: sparkplug, metric: feed}}
value: {{type: float, min: 50, max: 120}}
interlocks: [{{name: running, expression: "state == 0"}}]""")
    assert config.control.commands[0].answer_tag() == f"{CNC}/feed"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("command", "message"), [
    (f"{{name: a, equipment: {CNC}/x, kind: setpoint, send: {{protocol: sparkplug, metric: feed}}, "
     "value: {type: float, min: 0, max: 1}}", f"control.commands[0] (a): unknown equipment '{CNC}/x'"),
    (f"{{name: a, equipment: {CNC}, kind: setpoint, send: {{protocol: sparkplug, metric: feed}}, "
     "value: {type: float, min: 5, max: 1}}", "value range min (5) is above max (1)"),
    (f"{{name: a, equipment: {CNC}, kind: setpoint, send: {{protocol: sparkplug, metric: feed}}, "
     "value: {type: float}}", "a float value needs both 'min' and 'max'"),
    (f"{{name: a, equipment: {CNC}, kind: setpoint, send: {{protocol: sparkplug, metric: feed}}, "
     "value: {type: float, min: 0, max: 1}, interlocks: [{name: g, expression: 'guard == 1'}]}",
     f"interlock 'g' names 'guard': unknown tag '{CNC}/guard'"),
    (f"{{name: a, equipment: {CNC}, kind: setpoint, send: {{protocol: sparkplug, metric: feed}}, "
     "value: {type: float, min: 0, max: 1}, interlocks: [{name: g, expression: '__import__(1)'}]}",
     "interlock 'g': not allowed in an expression"),
    (f"{{name: a, equipment: {CNC}, kind: setpoint, send: {{protocol: sparkplug, metric: speed}}, "
     "value: {type: float, min: 0, max: 1}}", f"the answer tag '{CNC}/speed' is unknown"),
    (f"{{name: a, equipment: {CNC}, kind: setpoint, send: {{protocol: modbus, tag: feed}}, "
     "value: {type: float, min: 0, max: 1}}", f"tag '{CNC}/feed' is not read from a Modbus device"),
    (f"{{name: a, equipment: {PRESS}, kind: setpoint, send: {{protocol: modbus, tag: force}}, "
     "value: {type: float, min: 0, max: 1}}", "is a input point: Modbus cannot write it"),
    (f"{{name: a, equipment: {PRESS}, kind: start_stop, send: {{protocol: modbus, tag: pump}}, "
     "value: {type: float, min: 0, max: 1}}", "a coil takes a bool value and a register a number"),
    (f"{{name: a, equipment: {PRESS}, kind: setpoint, send: {{protocol: sparkplug, metric: x}}, "
     "value: {type: float, min: 0, max: 1}}", "a sparkplug command needs equipment whose source is sparkplug"),
    (f"{{name: a, equipment: {PRESS}, kind: mode, send: {{protocol: opcua, node: 'ns=2;s=X'}}, "
     "value: {type: bool}}", "an opcua command needs equipment whose source is opcua"),
    (f"{{name: a, equipment: {PRESS}, kind: mode, send: {{protocol: opcua, method: 'ns=2;s=X'}}, "
     "value: {type: bool}}", "an opcua method call needs both 'method' and 'object'"),
    (f"{{name: a, equipment: {PRESS}, kind: setpoint, send: {{protocol: modbus, tag: setpoint}}, "
     "value: {type: float, min: 0, max: 1}, role: viewer}", "role viewer cannot send commands"),
    (f"{{name: a, equipment: {PRESS}, kind: fly, send: {{protocol: modbus, tag: setpoint}}, "
     "value: {type: float, min: 0, max: 1}}", "Input should be 'setpoint', 'start_stop', 'mode', 'drive' or 'jog'"),
])
def test_mistakes_are_named(command: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(command)
    assert message in str(info.value)
