"""MovingAI map and scenario readers on small generated files, including every kind of bad file."""

from pathlib import Path

import numpy as np
import pytest
from mapf_helpers import map_text

from shopfloor.apps.warehouse.mapf import (
    GridError,
    MovingAIFormatError,
    parse_map,
    parse_scenario,
    read_map,
    read_scenario,
    scenario_vertices,
)

ROWS = ["....", ".@T.", "..G.", "S..W"]


def scen_line(sx: int, sy: int, gx: int, gy: int, sep: str = "\t", w: int = 4, h: int = 4) -> str:
    return sep.join(str(v) for v in (0, "tiny.map", w, h, sx, sy, gx, gy, 3.0))


def test_map_cells_vertices_and_neighbours() -> None:
    g = parse_map(map_text(ROWS), source="tiny.map")
    assert (g.width, g.height, g.name) == (4, 4, "tiny")
    assert g.num_vertices == 16 - 3  # @, T, W are blocked; G and S are free
    assert g.vertex(0, 0) == 0 and g.xy(g.vertex(2, 2)) == (2, 2)
    with pytest.raises(GridError, match="blocked"):
        g.vertex(1, 1)
    with pytest.raises(GridError, match="off the"):
        g.vertex(4, 0)
    corner = g.vertex(0, 0)
    assert sorted(g.xy(int(u)) for u in g.neighbors[corner, :g.degree[corner]]) == [(0, 1), (1, 0)]
    d = g.distances_from(g.vertex(0, 0))
    assert d[g.vertex(3, 2)] == 5
    assert (d >= 0).all()  # every free cell is connected here


def test_read_map_and_scenario_from_files(tmp_path: Path) -> None:
    (tmp_path / "tiny.map").write_text(map_text(ROWS))
    (tmp_path / "tiny.scen").write_text("version 1\n" + scen_line(0, 0, 3, 2) + "\n" + scen_line(2, 2, 0, 3, sep=" ")
                                        + "\n\n")
    g = read_map(tmp_path / "tiny.map")
    sc = read_scenario(tmp_path / "tiny.scen")
    assert len(sc.agents) == 2 and sc.agents[1].start == (2, 2) and sc.agents[0].optimal_length == 3.0
    starts, goals = scenario_vertices(g, sc, 2)
    assert [g.xy(int(v)) for v in starts] == [(0, 0), (2, 2)]
    assert [g.xy(int(v)) for v in goals] == [(3, 2), (0, 3)]
    with pytest.raises(ValueError, match="has 2 agents"):
        sc.starts_goals(3)


@pytest.mark.parametrize(("text", "message"), [
    ("type octile\nheight 4\nwidth 4\n", "no 'map' line"),
    ("type octile\nheight 4\nwidth 4\n" + "\n".join(ROWS), ":4: expected 'type'"),
    ("type octile\nwidth 4\nmap\n" + "\n".join(ROWS), "no 'height'"),
    ("type octile\nheight four\nwidth 4\nmap\n" + "\n".join(ROWS), "must be integers"),
    ("type octile\nheight 5\nwidth 4\nmap\n" + "\n".join(ROWS), "fewer"),
    (map_text(["....", "...", "....", "...."]), ":6: row has 3 cells"),
    (map_text(["....", ".x..", "....", "...."]), "unknown map character 'x'"),
    (map_text(ROWS) + "....\n", "lines after"),
    (map_text(["@@", "@@"]), "no free cell"),
    ("colour red\n", ":1: expected"),
])
def test_bad_maps_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(MovingAIFormatError, match=message):
        parse_map(text, source="bad.map")


@pytest.mark.parametrize(("text", "message"), [
    ("", "version 1"),
    ("version 2\n" + scen_line(0, 0, 1, 0), "unsupported scenario version"),
    ("version 1\n0\ttiny.map\t4\t4\t0\t0\t1", ":2: expected 9 fields"),
    ("version 1\n" + scen_line(0, 0, 1, 0).replace("\t4\t", "\tfour\t", 1), "must be integers"),
    ("version 1\n" + scen_line(0, 9, 1, 0), "start y 9 is outside"),
    ("version 1\n", "no agents"),
])
def test_bad_scenarios_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(MovingAIFormatError, match=message):
        parse_scenario(text, source="bad.scen")


def test_scenario_checked_against_the_map() -> None:
    g = parse_map(map_text(ROWS), source="tiny.map")
    with pytest.raises(MovingAIFormatError, match="blocked"):
        scenario_vertices(g, parse_scenario("version 1\n" + scen_line(1, 1, 0, 0)))
    with pytest.raises(MovingAIFormatError, match="share the goal"):
        scenario_vertices(g, parse_scenario("version 1\n" + scen_line(0, 0, 2, 2) + "\n" + scen_line(1, 0, 2, 2)))
    with pytest.raises(MovingAIFormatError, match="made for a 5x4 map"):
        scenario_vertices(g, parse_scenario("version 1\n" + scen_line(0, 0, 2, 2, w=5)))


def test_non_ascii_file_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "bin.map").write_bytes(b"\xff\xfe\x00type")
    with pytest.raises(MovingAIFormatError, match="not an ASCII text file"):
        read_map(tmp_path / "bin.map")


def test_distance_table_matches_single_searches() -> None:
    g = parse_map(map_text(ROWS))
    goals = np.array([g.vertex(3, 2), g.vertex(0, 3), g.vertex(3, 2)], dtype=np.int32)
    table = g.distance_table(goals)
    for i, goal in enumerate(goals):
        assert (table[i] == g.distances_from(int(goal))).all()
