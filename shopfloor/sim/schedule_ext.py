"""The virtual factory's planning data: which CNC can do which operation of which product, and how fast.

This extension adds no equipment and publishes nothing: it writes the ``scheduling:`` section of the
plant (docs/scheduling.md), so that the demo's platform runs the planner over the line's CNCs. The
times per unit follow each CNC's cycle time (a faster machine is faster at every step), scaled by how
much of a part's machining the step is. The work orders themselves come from the MES events of the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopfloor.sim.extension import Broker
    from shopfloor.sim.factory import VirtualFactory
    from shopfloor.sim.machines import CncParams

# product -> steps: (name, share of a full part's machining, the CNCs (1-based) that can do it)
ROUTINGS: dict[str, tuple[tuple[str, float, tuple[int, ...]], ...]] = {
    "HOUSING": (("rough", 1.0, (1, 2)), ("finish", 0.8, (2, 3))),
    "SHAFT": (("turn", 0.7, (1, 3)), ("mill", 0.5, (2,))),
    "FLANGE": (("face", 0.6, (1, 2, 3)), ("drill", 0.4, (3,))),
}


class ScheduleExtension:
    """Adds the planner's section to the plant (see the module docstring)."""

    name = "scheduling"

    def __init__(self, cncs: Sequence[CncParams] | None = None, improve_time_limit_s: float = 3.0) -> None:
        self._cncs = cncs
        self.improve_time_limit_s = improve_time_limit_s

    def extend_plant(self, plant: dict[str, Any]) -> None:
        from shopfloor.sim.factory import DEFAULT_CNCS  # the factory imports the extension protocol

        cncs = list(self._cncs or DEFAULT_CNCS)
        site = plant["site"]
        paths: dict[str, str] = {}
        for area in site["areas"]:
            for line in area["lines"]:
                for cell in line.get("cells", []):
                    for eq in cell.get("equipment", []):
                        if eq.get("type") == "cnc":
                            line_path = f"{site['name']}/{area['name']}/{line['name']}"
                            paths[eq["name"]] = f"{line_path}/{cell['name']}/{eq['name']}"
        machines = [{"id": f"cnc{i + 1}", "equipment": paths[f"cnc{i + 1}"], "cycle_time_s": p.cycle_time_s}
                    for i, p in enumerate(cncs) if f"cnc{i + 1}" in paths]
        known = {f"cnc{i + 1}": p.cycle_time_s for i, p in enumerate(cncs) if f"cnc{i + 1}" in paths}
        products = []
        for product, steps in ROUTINGS.items():
            rows = []
            for name, share, which in steps:
                times = {f"cnc{k}": round(known[f"cnc{k}"] * share, 1) for k in which if f"cnc{k}" in known}
                if times:
                    rows.append({"name": name, "seconds_per_unit": times})
            if len(rows) == len(steps):
                products.append({"product": product, "steps": rows})
        plant["scheduling"] = {"machines": machines, "products": products,
                               "improve_time_limit_s": self.improve_time_limit_s}

    def on_step(self, factory: VirtualFactory) -> None:
        """Nothing to do per step: the planner follows the CNCs' state tags on the platform's bus."""

    def start(self, broker: Broker) -> None:
        """Nothing to connect."""

    def stop(self) -> None:
        """Nothing to stop."""


__all__ = ["ROUTINGS", "ScheduleExtension"]
