"""Slotting suggestions: ABC classes by pick frequency, fast movers to the storage places nearest the docks.

Materials are ranked by picks out of storage; the ones that make up the first 80 % of the picks are
class A, the next 15 % B, the rest C (the usual Pareto split). Storage places are ranked by driving
distance on the grid from the nearest dock. Going down the ranked materials, each takes the nearest
place not yet given out; where that place is nearer to a dock than where the material is now, a move
is suggested. Nothing is moved: a suggestion becomes a move or transport task when someone decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from shopfloor.apps.warehouse.inventory.stock import Inventory

A_SHARE = 0.80
B_SHARE = 0.95


@dataclass(frozen=True)
class Suggestion:
    material: str
    abc: str
    picks: int
    current: str | None  # where most of it is stored now
    current_distance: int | None
    suggested: str
    suggested_distance: int

    @property
    def move(self) -> bool:
        """Whether moving it is worth it: the suggested place is nearer a dock than the current one."""
        return self.current_distance is None or self.suggested_distance < self.current_distance

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "move": self.move}


def abc_classes(picks: dict[str, int]) -> dict[str, str]:
    """Material -> "A" | "B" | "C" by cumulative share of the picks (ties keep their code order)."""
    total = sum(picks.values())
    out: dict[str, str] = {}
    running = 0
    for material, n in sorted(picks.items(), key=lambda kv: (-kv[1], kv[0])):
        share_before = running / total if total else 1.0
        out[material] = "A" if share_before < A_SHARE and n > 0 else "B" if share_before < B_SHARE and n > 0 else "C"
        running += n
    return out


def suggest(inventory: Inventory, distance: Callable[[tuple[int, int]], int], since_ns: int = 0) -> list[Suggestion]:
    """Suggestions for every stored material; ``distance(cell)`` is the driving distance from the nearest dock."""
    counts = inventory.pick_counts(since_ns)
    classes = abc_classes({m: n for m, (n, _) in counts.items()})
    places = sorted(((distance((x, y)), code) for code, x, y, _ in inventory.storage_locations()))
    free = [code for _, code in places]
    dist_of = {code: d for d, code in places}
    out: list[Suggestion] = []
    for material, (picks, stored) in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0])):
        if not free:
            break
        current = max(stored, key=lambda s: s[1])[0] if stored else None
        target = free.pop(0)
        out.append(Suggestion(material, classes[material], picks, current,
                              dist_of.get(current) if current else None, target, dist_of[target]))
    return out


__all__ = ["Suggestion", "abc_classes", "suggest"]
