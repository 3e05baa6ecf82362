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
