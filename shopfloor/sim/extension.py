"""Extensions of the virtual factory: more of the plant beside the machining line.

The line itself (factory.py) is a flat, deterministic step function. Everything else the demo
shows (production orders and serials, an inspection camera, AGVs, a remotely driven vehicle,
vibration of the CNCs' bearings) is an extension: it adds its equipment and config sections to
the plant description, follows the line step by step, and talks to the platform over the broker
the way a real device or line controller would (Sparkplug B, JSON, VDA 5050, images over MQTT).

``demo_extensions`` lists what the demo runs; each extension module adds its own line there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory


@dataclass(frozen=True, slots=True)
class Broker:
    """Where an extension connects its own MQTT client(s)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


@runtime_checkable
class FactoryExtension(Protocol):
    """One part of the virtual plant beside the line (see the module docstring)."""

    name: str

    def extend_plant(self, plant: dict[str, Any]) -> None:
        """Add this extension's equipment (cells, tags, sources) and config sections to the plant dict
        (the plant.yaml the platform runs with). Called every time the plant config is built."""

    def on_step(self, factory: VirtualFactory) -> None:
        """Called after every step of the line, on the stepping thread, with the line's state at
        ``factory.now_ns``. Keep it short: anything slow belongs on the extension's own thread."""

    def start(self, broker: Broker) -> None:
        """Connect and start; called once, before the first published step."""

    def stop(self) -> None:
        """Stop and disconnect; idempotent."""


def demo_extensions(seed: int) -> list[FactoryExtension]:
    """The extensions the demo runs, in order (each extension module appends its own line)."""
    extensions: list[FactoryExtension] = []
    from shopfloor.sim.commands import CommandsExtension  # machines that obey remote commands (docs/control.md)

    extensions.append(CommandsExtension())
    from shopfloor.sim.production import ProductionExtension  # work orders, lots, serials (docs/mes.md)

    extensions.append(ProductionExtension(seed))
    from shopfloor.sim.schedule_ext import ScheduleExtension  # the planner's section (docs/scheduling.md)

    extensions.append(ScheduleExtension())
    from shopfloor.sim.camera import InspectionCamera  # a picture of every finished part (docs/inspection.md)

    extensions.append(InspectionCamera(seed))
    from shopfloor.sim.agv import AgvExtension  # warehouse and AGVs, VDA 5050 (docs/warehouse.md)

    extensions.append(AgvExtension(seed))
    from shopfloor.sim.vibration import VibrationExtension  # spindle bearing vibration (docs/maintenance.md)

    extensions.append(VibrationExtension(seed))
    from shopfloor.sim.vehicle import LocomotiveExtension  # the remotely driven ore locomotive (docs/drive.md)

    extensions.append(LocomotiveExtension())
    return extensions


__all__ = ["Broker", "FactoryExtension", "demo_extensions"]
