"""The virtual factory's plant.yaml: its ISA-95 layout and where each device publishes.

Built as plain data first, so that one structure gives both the validated
PlantConfig and a readable YAML text that round-trips through parse_plant_config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from shopfloor.sim.machines import Device, Signal

SITE = "virtual-factory"
AREA = "machining"
LINE = "line1"


class _Flow(dict[Any, Any]):
    """A mapping written inline in the YAML text."""


class _FlowList(list[Any]):
    """A list written inline in the YAML text."""


# A SafeDumper of our own (made with type(): PyYAML may have no type stubs), so the representers stay local.
_Dumper: Any = type("_Dumper", (yaml.SafeDumper,), {})


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _tag(s: Signal) -> dict[str, Any]:
    tag: dict[str, Any] = {"name": s.name}
    if s.description:
        tag["description"] = s.description
    if s.unit:
        tag["unit"] = s.unit
    tag["type"] = s.type
    if s.range is not None:
        tag["range"] = _FlowList(s.range)
    if s.states is not None:
        tag["states"] = _Flow(s.states)
    return tag


def _equipment(d: Device, group: str, node: str) -> dict[str, Any]:
    source: dict[str, Any]
    if d.protocol == "sparkplug":
        source = _Flow(protocol="sparkplug", group=group, node=node, device=d.name)
    else:
        source = _Flow(protocol="json", device=d.name)
    return {
        "name": d.name,
        "type": d.kind,
        "description": d.description,
        "source": source,
        "tags": [_tag(s) for s in d.signals],
    }


def build_plant_dict(devices: Sequence[Device], group: str, node: str, json_prefix: str) -> dict[str, Any]:
    """plant.yaml as plain data: cells in order of first appearance, line-level equipment after them."""
    cells: dict[str, list[dict[str, Any]]] = {}
    line_equipment: list[dict[str, Any]] = []
    for d in devices:
        eq = _equipment(d, group, node)
        if d.cell is None:
            line_equipment.append(eq)
        else:
            cells.setdefault(d.cell, []).append(eq)
    line = {
        "name": LINE,
        "description": "Machining line: three CNC cells, a robot cell, a conveyor",
        "cells": [{"name": name, "equipment": eqs} for name, eqs in cells.items()],
        "equipment": line_equipment,
    }
    return {
        "site": {
            "name": SITE,
            "description": "The simulated plant of shopfloor.sim",
            "areas": [{"name": AREA, "lines": [line]}],
        },
        "mqtt": {"json_prefix": json_prefix},
    }


def plant_dict_to_yaml(data: dict[str, Any], seed: int) -> str:
    head = (
        "# plant.yaml of the shopfloor virtual factory (shopfloor.sim), seed "
        f"{seed}.\n# Machines publish Sparkplug B, energy meters the plain JSON format.\n"
    )
    body: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120
    )
    return head + body



# ------------------------------------------------------------------------------------------------------------ alarms
# Alarm rules of the virtual factory, per kind of machine, on the signals its physics moves (machines.py, press.py).
# Limits sit where a real machine of the kind would warn. With seed 1 the press's cold start raises the first alarm
# within a minute and tool wear the next ones within the first hour; bearing wear, breakdowns and stoppages later.


def _down(eq: str, minutes: int, message: str) -> dict[str, Any]:
    return {"name": f"{eq.rsplit('/', 1)[1]}-down", "type": "state", "tag": f"{eq}/state",
            "states": _FlowList(["down"]), "for_s": minutes * 60, "priority": "high", "message": message}


def _cnc_rules(eq: str, meter: str | None) -> list[dict[str, Any]]:
    name = eq.rsplit("/", 1)[1]
    rules: list[dict[str, Any]] = [
        {"name": f"{name}-bearing-temp", "type": "limit", "tag": f"{eq}/bearing_temp", "h": 55, "hh": 65,
         "deadband": 2, "on_delay_s": 10, "off_delay_s": 30, "priority": "medium", "priorities": _Flow(HH="high"),
         "message": "Spindle bearing temperature high: bearing wear or lubrication"},
        # ISO 10816-3 zone limits for small machines (2.8 and 4.5 mm/s RMS). The off-delay spans a part's cycle,
        # whose load/unload phase stops the spindle.
        {"name": f"{name}-vibration", "type": "limit", "tag": f"{eq}/vibration", "h": 2.8, "hh": 4.5,
         "deadband": 0.3, "on_delay_s": 10, "off_delay_s": 120, "priority": "medium", "priorities": _Flow(HH="high"),
         "message": "Spindle vibration high: the bearing is wearing out"},
        {"name": f"{name}-tool-wear", "type": "limit", "tag": f"{eq}/tool_wear", "h": 80, "hh": 95, "deadband": 1,
         "priority": "low", "priorities": _Flow(HH="medium"),
         "message": "Tool worn: scrap rises, prepare the tool change"},
        _down(eq, 10, "Machine down for over 10 minutes"),
    ]
    if meter is not None:  # two devices that must agree: a machine that runs draws power
        rules.append({
            "name": f"{name}-power-mismatch", "type": "expression", "expression": "state == 0 and power < 1.0",
            "vars": _Flow(state=f"{eq}/state", power=f"{meter}/active_power"), "on_delay_s": 30, "priority": "low",
            "message": "Reported running (state 0) while its feeder draws under 1 kW: state or meter signal wrong",
        })
    return rules


def _press_rules(eq: str) -> list[dict[str, Any]]:
    name = eq.rsplit("/", 1)[1]
    return [
        {"name": f"{name}-hydraulic-pressure", "type": "limit", "tag": f"{eq}/hydraulic_pressure", "hh": 205,
         "ll": 8, "deadband": 2, "on_delay_s": 2, "priority": "high", "priorities": _Flow(HH="critical"),
         "message": "Hydraulic pressure out of range (relief valve at 210 bar, 12 bar standby with the pump on)"},
        # Two tags: pressing (state 0, running) while the oil is still below working temperature, as after a start.
        {"name": f"{name}-oil-cold", "type": "expression", "equipment": eq,
         "expression": "state == 0 and oil_temperature < 38", "on_delay_s": 30, "off_delay_s": 30, "priority": "low",
         "message": "Pressing with cold hydraulic oil (below 38 °C): sluggish valves, more wear"},
        {"name": f"{name}-oil-hot", "type": "limit", "tag": f"{eq}/oil_temperature", "h": 55, "hh": 60,
         "deadband": 2, "on_delay_s": 60, "priority": "medium", "priorities": _Flow(HH="high"),
         "message": "Hydraulic oil hot: check the cooler"},
        {"name": f"{name}-oil-sensor-stuck", "type": "stuck", "tag": f"{eq}/oil_temperature", "for_s": 300,
         "tolerance": 0, "priority": "low", "message": "Oil temperature reading frozen for 5 min: check the sensor"},
        _down(eq, 15, "Press down for over 15 minutes"),
    ]


def _other_rules(kind: str, eq: str) -> list[dict[str, Any]]:
    name = eq.rsplit("/", 1)[1]
    if kind == "conveyor":
        return [
            _down(eq, 5, "Conveyor down for over 5 minutes: the machines starve"),
            {"name": f"{name}-overload", "type": "limit", "tag": f"{eq}/motor_current", "h": 4.2, "deadband": 0.2,
             "on_delay_s": 20, "priority": "medium", "message": "Drive current high: parts piling up at the robot?"},
        ]
    if kind == "robot":
        return [_down(eq, 5, "Robot down for over 5 minutes: finished parts pile up on the conveyor")]
    if kind == "energy_meter":
        return [{"name": f"{name}-frozen", "type": "stuck", "tag": f"{eq}/energy", "for_s": 300, "priority": "low",
                 "message": "Energy register has not moved for 5 minutes: meter or its link frozen"}]
    return []


def with_alarm_rules(data: dict[str, Any]) -> dict[str, Any]:
    """Add the ``alarms:`` section for every machine of the plant dict (call it once all equipment is in)."""
    site = data["site"]
    equipment: list[tuple[str, dict[str, Any]]] = []
    for area in site["areas"]:
        for line in area["lines"]:
            base = f"{site['name']}/{area['name']}/{line['name']}"
            for cell in line.get("cells", []):
                equipment += [(f"{base}/{cell['name']}/{eq['name']}", eq) for eq in cell["equipment"]]
            equipment += [(f"{base}/{eq['name']}", eq) for eq in line.get("equipment", [])]
    paths = {eq["name"]: path for path, eq in equipment}
    rules: list[dict[str, Any]] = []
    for path, eq in equipment:
        kind = eq.get("type", "generic")
        if kind == "cnc":
            rules += _cnc_rules(path, paths.get(f"meter-{eq['name']}"))
        elif kind == "press":
            rules += _press_rules(path)
        else:
            rules += _other_rules(kind, path)
    extra = data.get("alarms", {}).get("rules", [])  # rules an extension added for its own equipment
    data["alarms"] = {"rules": rules + extra}
    return data
