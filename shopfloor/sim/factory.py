"""The virtual factory: one machining line whose machines are coupled by the part flow.

Layout (site ``virtual-factory``, area ``machining``, line ``line1``): cells
``cell1``..``cell3`` each hold a CNC (``cnc1``..) and its energy meter
(``meter-cnc1``..), ``cell4`` holds the unloading robot ``robot1`` and its meter,
and the line itself holds the conveyor ``conveyor1`` and its meter.

Field protocols beside MQTT, each only when asked for (by default the factory is
MQTT-only): with ``opcua_endpoint`` the robot is served by an OPC UA server at that
endpoint instead of Sparkplug, and with ``modbus_port`` a legacy hydraulic press
``press1`` (its own cell ``cell5``, off the part flow) is served by a Modbus TCP
server. ``FieldServers`` (field_servers.py) runs both; this module only says what
they serve and describes it in plant.yaml.

Coupling, evaluated in this order each step: the conveyor runs while a CNC runs
(from the previous step) and when it is down the CNCs starve; the CNCs make
parts; the robot unloads the parts made; the meters read every machine's power.

Time advances in fixed steps of ``step_s`` simulated seconds from ``start_ns``;
the values never depend on the start time or the wall clock, only on the seed
and the step size. Pacing against the wall clock is the publisher's business.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shopfloor.config.schema import PlantConfig
from shopfloor.sim.extension import FactoryExtension
from shopfloor.sim.fieldmap import MODBUS_UNIT, PRESS_REGISTERS, FieldDevice, opcua_node_id
from shopfloor.sim.machines import (
    F64,
    RUNNING,
    Cnc,
    CncParams,
    Conveyor,
    ConveyorParams,
    Device,
    EnergyMeter,
    Grid,
    GridParams,
    MeterParams,
    Quantizer,
    Robot,
    RobotParams,
)
from shopfloor.sim.plant import _Flow, _tag, build_plant_dict, plant_dict_to_yaml, with_alarm_rules
from shopfloor.sim.press import Press, PressParams

DEFAULT_CNCS: tuple[CncParams, ...] = (
    CncParams(cycle_time_s=48.0, rated_speed_rpm=12000.0, spindle_power_kw=18.5, nominal_load_pct=55.0),
    CncParams(cycle_time_s=60.0, rated_speed_rpm=10000.0, spindle_power_kw=22.0, nominal_load_pct=60.0),
    CncParams(cycle_time_s=75.0, rated_speed_rpm=8000.0, spindle_power_kw=30.0, nominal_load_pct=68.0),
)


@dataclass(frozen=True, slots=True)
class Frame:
    """The values of every device at one sim time.

    ``sparkplug``, ``json``, ``opcua`` and ``modbus`` map a device name to a float64
    array aligned with that device's signal list (``VirtualFactory.devices`` and
    ``field_devices``); NaN means null. ``opcua`` and ``modbus`` stay empty unless
    the factory serves those protocols.
    The arrays are fresh for every frame: keeping a frame is safe.
    """

    ts_ns: int
    sparkplug: dict[str, F64] = field(default_factory=dict)
    json: dict[str, F64] = field(default_factory=dict)
    opcua: dict[str, F64] = field(default_factory=dict)
    modbus: dict[str, F64] = field(default_factory=dict)

    @property
    def ts_ms(self) -> int:
        return self.ts_ns // 1_000_000


class VirtualFactory:
    """A deterministic, faster-than-real-time machining line (see the module docstring)."""

    def __init__(
        self,
        seed: int = 1,
        start_ns: int | None = None,
        step_s: float = 1.0,
        group: str = "shopfloor",
        node: str = "line1",
        json_prefix: str = "shopfloor/json",
        *,
        cncs: Sequence[CncParams] = DEFAULT_CNCS,
        conveyor: ConveyorParams = ConveyorParams(),  # noqa: B008 - frozen, so a shared default is safe
        robot: RobotParams = RobotParams(),  # noqa: B008
        grid: GridParams = GridParams(),  # noqa: B008
        opcua_endpoint: str | None = None,
        modbus_port: int | None = None,
        modbus_host: str = "127.0.0.1",
        press: PressParams = PressParams(),  # noqa: B008
        extensions: Sequence[FactoryExtension] = (),
    ) -> None:
        if not step_s > 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        if not cncs:
            raise ValueError("the line needs at least one CNC")
        self.seed = seed
        self.step_s = float(step_s)
        self.step_ns = round(step_s * 1e9)
        self.group = group
        self.node = node
        self.json_prefix = json_prefix.rstrip("/")
        self.start_ns = time.time_ns() // 1_000_000 * 1_000_000 if start_ns is None else int(start_ns)
        self.steps = 0
        self.opcua_endpoint = opcua_endpoint
        self.modbus_host = modbus_host
        self.modbus_port = modbus_port
        self.extensions: tuple[FactoryExtension, ...] = tuple(extensions)

        dt = self.step_s
        self.cncs = [Cnc(f"cnc{i + 1}", p, seed, dt) for i, p in enumerate(cncs)]
        self.conveyor = Conveyor("conveyor1", conveyor, seed, dt)
        self.robot = Robot("robot1", robot, seed, dt)
        self.grid = Grid(grid, seed, dt)
        # A meter on each machine's feeder, rated for the machine's peak power.
        rated = [c.spindle_power_kw + c.aux_power_kw for c in cncs] + [3.0, 5.0]
        machines = [*(c.name for c in self.cncs), self.conveyor.name, self.robot.name]
        self.meters = [
            EnergyMeter(f"meter-{m}", MeterParams(rated_kw=r), seed, dt) for m, r in zip(machines, rated, strict=True)
        ]

        robot_cell = f"cell{len(cncs) + 1}"
        cnc_devices = [
            Device(
                c.name,
                "cnc",
                "sparkplug",
                f"cell{i + 1}",
                c.signals,
                f"CNC machining centre, {c.p.rated_speed_rpm:.0f} rpm, {c.p.spindle_power_kw:g} kW spindle",
            )
            for i, c in enumerate(self.cncs)
        ]
        meter_cells: list[str | None] = [*(f"cell{i + 1}" for i in range(len(cncs))), None, robot_cell]
        meter_devices = [
            Device(m.name, "energy_meter", "json", cell, m.signals, f"Energy meter on {m.name.removeprefix('meter-')}")
            for m, cell in zip(self.meters, meter_cells, strict=True)
        ]
        conveyor_device = Device(
            self.conveyor.name, "conveyor", "sparkplug", None, self.conveyor.signals, "Belt conveyor feeding the line"
        )
        robot_device = Device(
            self.robot.name,
            "robot",
            "sparkplug",
            robot_cell,
            self.robot.signals,
            "Handling robot unloading finished parts",
        )
        robot_on_opcua = opcua_endpoint is not None
        self.press: Press | None = None
        field_devices: list[FieldDevice] = []
        if robot_on_opcua:
            field_devices.append(
                FieldDevice(
                    robot_device.name, "robot", "opcua", robot_cell, robot_device.signals, robot_device.description
                )
            )
        if modbus_port is not None:
            self.press = Press("press1", press, seed, dt)
            field_devices.append(
                FieldDevice(
                    "press1",
                    "press",
                    "modbus",
                    f"cell{len(cncs) + 2}",
                    self.press.signals,
                    f"Legacy hydraulic press, {press.nominal_force_kn:g} kN, Modbus TCP only",
                )
            )
        self.field_devices: tuple[FieldDevice, ...] = tuple(field_devices)
        self.sparkplug_devices: tuple[Device, ...] = (
            *cnc_devices,
            conveyor_device,
            *(() if robot_on_opcua else (robot_device,)),
        )
        self.json_devices: tuple[Device, ...] = tuple(meter_devices)
        # Every MQTT device, in plant.yaml order: each meter next to its machine.
        self.devices: tuple[Device, ...] = (
            *(d for pair in zip(cnc_devices, meter_devices, strict=False) for d in pair),
            conveyor_device,
            meter_devices[-2],
            *(() if robot_on_opcua else (robot_device,)),
            meter_devices[-1],
        )

        # One flat vector of all values per step (in the order _advance makes them), quantised in one pass,
        # then sliced per device into the frame's protocol maps.
        protocols = {d.name: d.protocol for d in field_devices}
        order: list[Device | FieldDevice] = [
            *cnc_devices,
            conveyor_device,
            robot_device,
            *meter_devices,
            *(d for d in field_devices if d.protocol == "modbus"),
        ]
        self._quant = Quantizer([s for d in order for s in d.signals])
        self._slices: list[tuple[str, str, int, int]] = []
        at = 0
        for d in order:
            self._slices.append((protocols.get(d.name, d.protocol), d.name, at, at + len(d.signals)))
            at += len(d.signals)

    def restart_clock(self, start_ns: int | None = None) -> None:
        """Move the start time (now by default) before the first step: a caller that spent seconds starting
        servers after making the factory still publishes at the wall clock. The values do not change."""
        if self.steps:
            raise RuntimeError("the clock can only be moved before the first step")
        self.start_ns = time.time_ns() // 1_000_000 * 1_000_000 if start_ns is None else int(start_ns)

    @property
    def now_ns(self) -> int:
        """Sim time of the last step (the start time before the first)."""
        return self.start_ns + self.steps * self.step_ns

    def step(self) -> Frame:
        """Advance one step; the values at the new sim time."""
        flat = self._quant(self._advance())
        out: dict[str, dict[str, F64]] = {"sparkplug": {}, "json": {}, "opcua": {}, "modbus": {}}
        for protocol, name, a, b in self._slices:
            out[protocol][name] = flat[a:b]
        return Frame(self.now_ns, out["sparkplug"], out["json"], out["opcua"], out["modbus"])

    def advance(self, steps: int) -> None:
        """Advance ``steps`` steps without building frames (fast-forward, e.g. to age the plant before a demo)."""
        for _ in range(steps):
            self._advance()

    def _advance(self) -> list[float]:
        """One step of every machine, in the order of the part flow; all values, sparkplug devices first."""
        cncs, conveyor, robot = self.cncs, self.conveyor, self.robot
        line_running = any(c.state == RUNNING for c in cncs)
        values = conveyor.step(line_running, robot.queue)
        feed_ok = conveyor.feeding
        cnc_values: list[float] = []
        parts = 0.0
        for c in cncs:
            cnc_values += c.step(feed_ok)
            parts += c.parts_out
        values = cnc_values + values
        values += robot.step(parts)
        grid_v = self.grid.step()
        for c, m in zip(cncs, self.meters, strict=False):
            values += m.step(c.power, grid_v)
        values += self.meters[-2].step(conveyor.power, grid_v)
        values += self.meters[-1].step(robot.power, grid_v)
        if self.press is not None:  # off the part flow: its own generator, the others' values stay the same
            values += self.press.step()
        self.steps += 1
        for ext in self.extensions:
            ext.on_step(self)
        return values

    def plant_config(self) -> PlantConfig:
        """The asset model and sources of everything the factory publishes."""
        return PlantConfig.model_validate(self._plant_dict())

    def plant_yaml(self) -> str:
        """The same as plant.yaml text."""
        text = plant_dict_to_yaml(self._plant_dict(), self.seed)
        if not self.field_devices:
            return text
        served = "; ".join(f"{d.name} is served over {d.protocol}" for d in self.field_devices)
        head, _, body = text.partition("\nsite:")
        return f"{head}\n# Field servers of the simulator: {served}.\nsite:{body}"

    def _plant_dict(self) -> dict[str, object]:
        data = build_plant_dict(self.devices, self.group, self.node, self.json_prefix)
        if self.field_devices:
            line = data["site"]["areas"][0]["lines"][0]
            cells: list[dict[str, Any]] = line["cells"]
            if self.press is not None:
                line["description"] += ", a press cell"
            for d in self.field_devices:
                eq = self._field_equipment(d)
                cell = next((c for c in cells if c["name"] == d.cell), None)
                if cell is None:
                    cells.append({"name": d.cell, "equipment": [eq]})
                else:  # the machine before its meter, as in the MQTT-only layout
                    cell["equipment"].insert(0, eq)
        for ext in self.extensions:
            ext.extend_plant(data)
        return with_alarm_rules(data)

    def _field_equipment(self, d: FieldDevice) -> dict[str, Any]:
        """The plant.yaml equipment of a machine on a field server: source, node ids or registers."""
        source: dict[str, Any]
        tags = [_tag(s) for s in d.signals]
        if d.protocol == "opcua":
            assert self.opcua_endpoint is not None
            source = _Flow(protocol="opcua", endpoint=self.opcua_endpoint, security_policy="None")
            for tag in tags:
                tag["address"] = opcua_node_id(d.name, tag["name"])
        else:
            assert self.modbus_port is not None
            source = _Flow(protocol="modbus", host=self.modbus_host, port=self.modbus_port, unit=MODBUS_UNIT)
            for tag in tags:
                r = PRESS_REGISTERS[tag["name"]]
                point = _Flow(table=r.table, address=r.address, type=r.type)
                if r.scale != 1.0:
                    point["scale"] = r.scale
                tag["modbus"] = point
        return {"name": d.name, "type": d.kind, "description": d.description, "source": source, "tags": tags}


__all__ = ["DEFAULT_CNCS", "Frame", "VirtualFactory"]
