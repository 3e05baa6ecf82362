"""Small generated maps and instances for the MAPF tests (never the shared benchmark data)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.mapf import GridGraph, parse_map


def map_text(rows: list[str]) -> str:
    return f"type octile\nheight {len(rows)}\nwidth {len(rows[0])}\nmap\n" + "\n".join(rows) + "\n"


def warehouse_rows(shelves_x: int = 4, shelves_y: int = 3, shelf_len: int = 5) -> list[str]:
    """A miniature of MovingAI's warehouse maps: rows of shelves (2 deep) with 1-wide aisles and gaps."""
    inner_w = shelves_x * (shelf_len + 1) + 1
    width = inner_w + 6
    rows = ["@" * width, "@" + "." * (width - 2) + "@"]
    for _ in range(shelves_y):
        shelf = "@" + "..." + "." + ("T" * shelf_len + ".") * shelves_x + "..." + "@"
        shelf = shelf[:width - 1] + "@" if len(shelf) >= width else shelf + "." * (width - 1 - len(shelf)) + "@"
        rows += [shelf, shelf, "@" + "." * (width - 2) + "@"]
    rows.append("@" * width)
    return rows


def random_instance(graph: GridGraph, n: int, seed: int) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    rng = np.random.default_rng(seed)
    starts = rng.choice(graph.num_vertices, size=n, replace=False).astype(np.int32)
    goals = rng.choice(graph.num_vertices, size=n, replace=False).astype(np.int32)
    return starts, goals


def small_warehouse() -> GridGraph:
    return parse_map(map_text(warehouse_rows()), source="mini-warehouse.map")
