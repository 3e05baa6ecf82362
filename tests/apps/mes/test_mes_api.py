"""The MES API against a running platform: machine states written through the historian writer, MES events
recorded beside them; OEE, shifts, Pareto, trace with process parameters, EPCIS and verify over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from test_mes_kpi import REASONS, STATE_TS, STATES, t

from shopfloor.api import create_app
from shopfloor.apps.mes.epcis import validate
from shopfloor.apps.mes.service import Mes
from shopfloor.config import parse_plant_config
from shopfloor.core.samples import SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer

CNC = """\
                  tags:
                    - {name: state, type: enum, states: {0: running, 1: idle, 2: down, 3: setup}}
                    - {name: stop_reason, type: enum, states: {0: none, 1: starved, 2: breakdown, 4: tool change}}
                    - {name: parts_good, type: int64}
                    - {name: parts_scrap, type: int64}
                    - {name: spindle_load, unit: "%"}
"""
PLANT = f"""\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l1
          cells:
            - name: c1
              equipment:
                - name: cnc1
                  source: {{protocol: sparkplug, group: g, node: n, device: cnc1}}
{CNC}                - name: meter-cnc1
                  source: {{protocol: json, device: meter1}}
                  tags:
                    - {{name: energy, unit: kWh}}
            - name: c2
              equipment:
                - name: cnc2
                  source: {{protocol: sparkplug, group: g, node: n, device: cnc2}}
{CNC}"""
LINE, CNC1, CNC2 = "s/a/l1", "s/a/l1/c1/cnc1", "s/a/l1/c2/cnc2"
SHIFT = {"start": "2026-01-01T06:00:00Z", "end": "2026-01-01T14:00:00Z"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, httpx.Client]]:
    """One platform for the module: every test here only reads."""
    data = tmp_path_factory.mktemp("mes-api") / "data"
    with Mosquitto() as broker:
        platform = Platform(parse_plant_config(PLANT), data_dir=data, broker_url=broker.url)
        with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            yield from _plant(platform, http)


def _plant(platform: Platform, http: httpx.Client) -> Iterator[tuple[Platform, httpx.Client]]:
    if True:
        rows: list[tuple[str, int, float]] = []
        rows += [(f"{CNC1}/state", ts, v) for ts, v in zip(STATE_TS, STATES, strict=True)]
        rows += [(f"{CNC1}/stop_reason", ts, v) for ts, v in zip(STATE_TS, REASONS, strict=True)]
        rows += [(f"{CNC1}/parts_good", t("05:59"), 1000), (f"{CNC1}/parts_good", t("13:59"), 1480)]
        rows += [(f"{CNC1}/parts_scrap", t("05:59"), 50), (f"{CNC1}/parts_scrap", t("13:59"), 70)]
        rows += [("s/a/l1/c1/meter-cnc1/energy", t("05:59"), 5000.0), ("s/a/l1/c1/meter-cnc1/energy", t("13:59"), 5246)]
        rows += [(f"{CNC1}/spindle_load", t("08:00") + k * 10**10, 60.0 + k) for k in range(6)]
        rows += [(f"{CNC2}/state", t("05:00"), 0), (f"{CNC2}/parts_good", t("05:00"), 0)]
        rows += [(f"{CNC2}/parts_good", t("13:00"), 300)]
        ids = [platform.tag_index.id_of(p) for p, _, _ in rows]
        assert platform.writer.submit(SampleBatch.of(ids, [r[1] for r in rows], [r[2] for r in rows]), timeout=5)
        assert platform.writer.flush(10)
        mes = Mes.open(platform.data_dir)
        mes.add_product("SHAFT", gtin="04012345000016")
        mes.add_material("STEEL")
        mes.add_routing("SHAFT", [("turn", CNC1, 45.0), ("turn", CNC2, 60.0)])
        mes.create_work_order("WO-1", "SHAFT", 10)
        mes.create_lot("STEEL-1", t("06:00"), 100.0, material="STEEL")
        mes.logon(CNC1, "alice", t("06:00"))
        mes.material_load(CNC1, "STEEL-1", t("06:01"))
        mes.produce("SN-1", CNC1, t("08:01"), work_order="WO-1")
        mes.close()
        yield platform, http


def test_oee_of_a_line_and_a_machine(api: tuple[Platform, httpx.Client]) -> None:
    _, http = api
    r = http.get("/api/mes/oee", params={"asset": CNC1, **SHIFT, "emission_factor": 0.4})
    assert r.status_code == 200, r.text
    body = r.json()
    m = body["machines"][0]
    assert (m["time_s"]["APT"], m["GQ"], m["SQ"], m["PRI_s"]) == (24_600 + 1200, 480, 20, 45.0)  # no break here
    assert m["co2e_per_good_part_kg"] == pytest.approx(246 / 480 * 0.4)
    line = http.get("/api/mes/oee", params={"asset": LINE, **SHIFT}).json()
    assert [x["machine"] for x in line["machines"]] == [CNC1, CNC2]
    assert line["GQ"] == 780 and line["bottleneck"] == CNC2
    assert line["pareto"][0]["reason"] == "breakdown"


def test_planned_downtime_gives_the_hand_computed_shift(api: tuple[Platform, httpx.Client]) -> None:
    _, http = api
    brk = "2026-01-01T10:00:00Z/2026-01-01T10:30:00Z"
    m = http.get("/api/mes/oee", params={"asset": CNC1, **SHIFT, "planned": brk}).json()["machines"][0]
    assert (m["time_s"]["APT"], m["time_s"]["PDT"], m["time_s"]["PBT"]) == (24_600, 1800, 27_000)
    assert m["oee_index"] == pytest.approx(0.8)
    bad = http.get("/api/mes/oee", params={"asset": CNC1, **SHIFT, "planned": "2026-01-01T10:00:00Z"})
    assert bad.status_code == 422 and "start/end" in bad.text


def test_oee_by_shift_and_pareto(api: tuple[Platform, httpx.Client]) -> None:
    _, http = api
    r = http.get("/api/mes/oee/shifts", params={"asset": LINE, "start": "2026-01-01T06:00:00Z",
                                                "end": "2026-01-01T22:00:00Z"})
    assert r.status_code == 200, r.text
    assert [s["shift"] for s in r.json()["shifts"]] == ["2026-01-01 A", "2026-01-01 B"]
    p = http.get("/api/mes/downtime/pareto", params={"asset": CNC1, **SHIFT}).json()["pareto"]
    assert [(x["reason"], x["planned"]) for x in p] == [("breakdown", False), ("starved", False),
                                                        ("tool change", True)]


def test_trace_with_process_parameters_epcis_and_verify(api: tuple[Platform, httpx.Client]) -> None:
    _, http = api
    tr = http.get("/api/mes/trace/SN-1", params={"parameters": "true"}).json()
    assert tr["ends"] == ["STEEL-1"] and tr["operators"] == ["alice"]
    produced = next(e for n in tr["nodes"] for e in n["events"] if e["kind"] == "produced")
    assert produced["process_parameters"]["spindle_load"] == {"mean": 62.5, "min": 60.0, "max": 65.0, "n": 6}
    forward = http.get("/api/mes/trace/STEEL-1", params={"direction": "forward"}).json()
    assert forward["ends"] == ["SN-1"]
    doc = http.get("/api/mes/trace/SN-1/epcis").json()
    assert validate(doc) == [] and len(doc["epcisBody"]["eventList"]) == 1
    assert http.get("/api/mes/verify").json()["ok"] is True


def test_bad_requests_are_named(api: tuple[Platform, httpx.Client]) -> None:
    _, http = api
    assert http.get("/api/mes/trace/NOPE").status_code == 404
    assert http.get("/api/mes/oee", params={"asset": "s/a/nowhere"}).status_code == 404
    r = http.get("/api/mes/oee", params={"asset": CNC1, "start": "yesterday"})
    assert r.status_code == 422 and "yesterday" in r.text
    r = http.get("/api/mes/oee", params={"asset": CNC1, **SHIFT, "pri": "nonsense"})
    assert r.status_code == 422 and "machine/path=seconds" in r.text
    r = http.get("/api/mes/oee", params={"asset": CNC1, **SHIFT, "pri": f"{CNC1}=0"})
    assert r.status_code == 422 and "PRI" in r.text


def test_oee_command_reads_the_api(api: tuple[Platform, httpx.Client]) -> None:
    from typer.testing import CliRunner

    from shopfloor.cli import app

    _, http = api
    runner = CliRunner()
    base = str(http.base_url).rstrip("/")
    r = runner.invoke(app, ["oee", LINE, "--api", base, "--start", SHIFT["start"], "--end", SHIFT["end"]])
    assert r.exit_code == 0, r.output
    assert "OEE (ISO 22400)" in r.output and "780" in r.output  # the line's good parts
    js = runner.invoke(app, ["oee", CNC1, "--api", base, "--start", SHIFT["start"], "--end", SHIFT["end"], "--json"])
    assert json.loads(js.stdout)["machines"][0]["GQ"] == 480
    bad = runner.invoke(app, ["oee", "s/a/nowhere", "--api", base])
    assert bad.exit_code == 1 and "404" in bad.output
