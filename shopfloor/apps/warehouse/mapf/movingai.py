"""Readers for MovingAI's grid map (``.map``) and scenario (``.scen``) files, the MAPF benchmark formats.

Map: ``type octile``, ``height H``, ``width W``, ``map``, then H rows of W characters. ``.`` ``G`` and
``S`` are free; ``@`` ``O`` ``T`` and ``W`` are obstacles (the MAPF benchmark treats water as blocked).
Scenario: ``version 1`` then one agent a line, tab- or space-separated: bucket, map name, map width,
map height, start x, start y, goal x, goal y, optimal length. x is the column, y the row. Errors name
the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.mapf.grid import GridError, GridGraph
from shopfloor.core.errors import ShopfloorError

FREE_CHARS = frozenset(".GS")
BLOCKED_CHARS = frozenset("@OTW")


class MovingAIFormatError(ShopfloorError):
    """A map or scenario file that does not follow the MovingAI format."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class ScenarioAgent:
    """One line of a scenario file."""

    bucket: int
    map_name: str
    map_width: int
    map_height: int
    start: tuple[int, int]
    goal: tuple[int, int]
    optimal_length: float


@dataclass(frozen=True)
class Scenario:
    """The agents of a scenario file, in file order (instances take the first N)."""

    name: str
    agents: tuple[ScenarioAgent, ...]

    def starts_goals(self, n_agents: int | None = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(x, y) starts and goals of the first ``n_agents`` agents as (N, 2) arrays."""
        n = len(self.agents) if n_agents is None else n_agents
        if not 0 < n <= len(self.agents):
            raise ValueError(f"scenario {self.name} has {len(self.agents)} agents, asked for {n}")
        chosen = self.agents[:n]
        return (np.array([a.start for a in chosen], dtype=np.int64),
                np.array([a.goal for a in chosen], dtype=np.int64))


def parse_map(text: str, source: str = "<map>") -> GridGraph:
    """Parse the text of a MovingAI ``.map`` file."""
    lines = text.splitlines()
    header: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line.lower() == "map":
            break
        parts = line.split()
        if len(parts) != 2 or parts[0].lower() not in ("type", "height", "width"):
            raise MovingAIFormatError(source, i, f"expected 'type', 'height', 'width' or 'map', got {line[:40]!r}")
        header[parts[0].lower()] = parts[1]
    else:
        raise MovingAIFormatError(source, None, "no 'map' line: not a MovingAI map file")
    for key in ("height", "width"):
        if key not in header:
            raise MovingAIFormatError(source, None, f"header has no '{key}'")
    try:
        height, width = int(header["height"]), int(header["width"])
    except ValueError:
        raise MovingAIFormatError(source, None, "height and width must be integers") from None
    if height <= 0 or width <= 0:
        raise MovingAIFormatError(source, None, f"map size {width}x{height} is empty")
    rows = lines[i:i + height]
    if len(rows) < height or any(not r.strip() for r in rows):
        raise MovingAIFormatError(source, None, f"header says {height} rows, the file has fewer")
    free = np.zeros((height, width), dtype=np.bool_)
    for r, row in enumerate(rows):
        row = row.rstrip("\r\n")
        if len(row) != width:
            raise MovingAIFormatError(source, i + r + 1, f"row has {len(row)} cells, header says width {width}")
        for c, ch in enumerate(row):
            if ch in FREE_CHARS:
                free[r, c] = True
            elif ch not in BLOCKED_CHARS:
                raise MovingAIFormatError(source, i + r + 1, f"unknown map character {ch!r} in column {c}")
    extra = [ln for ln in lines[i + height:] if ln.strip()]
    if extra:
        raise MovingAIFormatError(source, i + height + 1, f"{len(extra)} lines after the {height} map rows")
    if not free.any():
        raise MovingAIFormatError(source, None, "the map has no free cell")
    return GridGraph(free, name=Path(source).stem)


def read_map(path: str | Path) -> GridGraph:
    """Read a MovingAI ``.map`` file."""
    p = Path(path)
    return parse_map(_read_text(p), source=str(p))


def parse_scenario(text: str, source: str = "<scen>") -> Scenario:
    """Parse the text of a MovingAI ``.scen`` file (version 1)."""
    lines = text.splitlines()
    if not lines or lines[0].split()[:1] != ["version"]:
        raise MovingAIFormatError(source, 1, "first line must be 'version 1'")
    version = lines[0].split()[1:]
    if version not in (["1"], ["1.0"]):
        raise MovingAIFormatError(source, 1, f"unsupported scenario version {' '.join(version)!r}")
    agents: list[ScenarioAgent] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if len(parts) != 9:
            raise MovingAIFormatError(source, n, f"expected 9 fields, got {len(parts)}")
        try:
            bucket, width, height, sx, sy, gx, gy = (int(parts[k]) for k in (0, 2, 3, 4, 5, 6, 7))
            optimal = float(parts[8])
        except ValueError:
            raise MovingAIFormatError(source, n, "bucket, sizes and coordinates must be integers") from None
        for name, value, limit in (("start x", sx, width), ("start y", sy, height),
                                   ("goal x", gx, width), ("goal y", gy, height)):
            if not 0 <= value < limit:
                raise MovingAIFormatError(source, n, f"{name} {value} is outside the {width}x{height} map")
        agents.append(ScenarioAgent(bucket, parts[1], width, height, (sx, sy), (gx, gy), optimal))
    if not agents:
        raise MovingAIFormatError(source, None, "no agents")
    return Scenario(Path(source).stem, tuple(agents))


def read_scenario(path: str | Path) -> Scenario:
    """Read a MovingAI ``.scen`` file."""
    p = Path(path)
    return parse_scenario(_read_text(p), source=str(p))


def scenario_vertices(graph: GridGraph, scenario: Scenario,
                      n_agents: int | None = None) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Start and goal vertices of the first ``n_agents``, checked against the map.

    MovingAIFormatError when the scenario was made for a map of another size, a start or goal is blocked,
    or two agents share a start or a goal (not a valid MAPF instance).
    """
    first = scenario.agents[0]
    if (first.map_width, first.map_height) != (graph.width, graph.height):
        raise MovingAIFormatError(scenario.name, None, f"made for a {first.map_width}x{first.map_height} map, "
                                  f"this map is {graph.width}x{graph.height}")
    starts_xy, goals_xy = scenario.starts_goals(n_agents)
    try:
        starts, goals = graph.vertices(starts_xy), graph.vertices(goals_xy)
    except GridError as exc:
        raise MovingAIFormatError(scenario.name, None, f"agent start or goal: {exc}") from None
    for what, arr in (("start", starts), ("goal", goals)):
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            x, y = graph.xy(int(uniq[counts > 1][0]))
            raise MovingAIFormatError(scenario.name, None, f"two agents share the {what} cell (x={x}, y={y})")
    return starts, goals


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise MovingAIFormatError(str(path), None, f"not an ASCII text file ({exc.reason})") from None
