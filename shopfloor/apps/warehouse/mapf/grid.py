"""The grid graph of a warehouse map: free cells as vertices, 4-connected moves, exact BFS distance tables.

Vertices are the free cells numbered in row-major order, so a vertex id fits in int32 and every
per-vertex table is a flat NumPy array the numba kernels can index directly. Distances come from one
breadth-first search per distinct goal (exact on a unit-cost grid), run in numba.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
from numpy.typing import NDArray

from shopfloor.core.errors import ShopfloorError

UNREACHABLE = np.int32(-1)
# Neighbour order: up, right, down, left (row, column offsets).
_OFFSETS = ((-1, 0), (0, 1), (1, 0), (0, -1))


class GridError(ShopfloorError):
    """A cell that is off the map or blocked where a free cell is needed."""


@dataclass(frozen=True, eq=False)
class GridGraph:
    """A 4-connected grid: ``free[row, col]`` says which cells an agent may occupy."""

    free: NDArray[np.bool_]
    name: str = ""
    vertex_of: NDArray[np.int32] = field(init=False, repr=False)
    cells: NDArray[np.int32] = field(init=False, repr=False)
    neighbors: NDArray[np.int32] = field(init=False, repr=False)
    degree: NDArray[np.int32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        free = np.ascontiguousarray(self.free, dtype=np.bool_)
        if free.ndim != 2 or free.size == 0:
            raise GridError("a grid needs a non-empty 2-D array of free cells")
        height, width = free.shape
        vertex_of = np.full((height, width), -1, dtype=np.int32)
        cells = np.argwhere(free).astype(np.int32)  # row-major order
        vertex_of[cells[:, 0], cells[:, 1]] = np.arange(len(cells), dtype=np.int32)
        neighbors = np.full((len(cells), 4), -1, dtype=np.int32)
        degree = np.zeros(len(cells), dtype=np.int32)
        padded = np.full((height + 2, width + 2), -1, dtype=np.int32)
        padded[1:-1, 1:-1] = vertex_of
        for dr, dc in _OFFSETS:
            nb = padded[cells[:, 0] + 1 + dr, cells[:, 1] + 1 + dc]
            has = nb >= 0
            idx = np.nonzero(has)[0]
            neighbors[idx, degree[idx]] = nb[idx]
            degree[idx] += 1
        object.__setattr__(self, "free", free)
        object.__setattr__(self, "vertex_of", vertex_of)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "neighbors", neighbors)
        object.__setattr__(self, "degree", degree)

    @property
    def height(self) -> int:
        return int(self.free.shape[0])

    @property
    def width(self) -> int:
        return int(self.free.shape[1])

    @property
    def num_vertices(self) -> int:
        return int(self.cells.shape[0])

    def vertex(self, x: int, y: int) -> int:
        """The vertex at column ``x``, row ``y`` (MovingAI's convention); GridError if off the map or blocked."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise GridError(f"cell (x={x}, y={y}) is off the {self.width}x{self.height} map")
        v = int(self.vertex_of[y, x])
        if v < 0:
            raise GridError(f"cell (x={x}, y={y}) is blocked")
        return v

    def xy(self, v: int) -> tuple[int, int]:
        """Column and row of vertex ``v``."""
        row, col = self.cells[v]
        return int(col), int(row)

    def vertices(self, xys: NDArray[np.integer] | list[tuple[int, int]]) -> NDArray[np.int32]:
        """Vertex ids of many (x, y) cells at once; GridError naming the first bad one."""
        arr = np.asarray(xys, dtype=np.int64).reshape(-1, 2)
        xs, ys = arr[:, 0], arr[:, 1]
        inside = (xs >= 0) & (xs < self.width) & (ys >= 0) & (ys < self.height)
        out = np.full(len(arr), -1, dtype=np.int32)
        out[inside] = self.vertex_of[ys[inside], xs[inside]]
        bad = np.nonzero(out < 0)[0]
        if len(bad):
            self.vertex(int(xs[bad[0]]), int(ys[bad[0]]))  # raises with the reason
        return out

    def without(self, blocked_vertices: NDArray[np.integer] | list[int]) -> GridGraph:
        """A copy with the given vertices turned into obstacles (vertex ids change: map through ``xy``)."""
        free = self.free.copy()
        cells = self.cells[np.asarray(blocked_vertices, dtype=np.int64)]
        free[cells[:, 0], cells[:, 1]] = False
        return GridGraph(free, name=self.name)

    def distances_from(self, source: int) -> NDArray[np.int32]:
        """Shortest-path lengths from ``source`` to every vertex (-1 where unreachable)."""
        return _bfs(self.neighbors, self.degree, np.int32(source))

    def distance_table(self, goals: NDArray[np.integer]) -> NDArray[np.int32]:
        """Row ``i`` holds every vertex's distance to ``goals[i]``; one BFS per distinct goal."""
        goals = np.asarray(goals, dtype=np.int32)
        unique, inverse = np.unique(goals, return_inverse=True)
        table = _bfs_many(self.neighbors, self.degree, unique)
        return np.ascontiguousarray(table[inverse])


@numba.njit(cache=True, nogil=True)
def _bfs(neighbors: NDArray[np.int32], degree: NDArray[np.int32], source: np.int32) -> NDArray[np.int32]:
    n = neighbors.shape[0]
    dist = np.full(n, -1, dtype=np.int32)
    queue = np.empty(n, dtype=np.int32)
    dist[source] = 0
    queue[0] = source
    head, tail = 0, 1
    while head < tail:
        v = queue[head]
        head += 1
        for k in range(degree[v]):
            u = neighbors[v, k]
            if dist[u] < 0:
                dist[u] = dist[v] + 1
                queue[tail] = u
                tail += 1
    return dist


@numba.njit(cache=True, nogil=True)
def _bfs_many(neighbors: NDArray[np.int32], degree: NDArray[np.int32], sources: NDArray[np.int32]) -> NDArray[np.int32]:
    table = np.empty((sources.shape[0], neighbors.shape[0]), dtype=np.int32)
    for i in range(sources.shape[0]):
        table[i] = _bfs(neighbors, degree, sources[i])
    return table
