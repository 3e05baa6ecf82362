"""shopfloor trace verify | backward | forward | export-epcis on a generated plant history."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from shopfloor.apps.mes.epcis import validate
from shopfloor.apps.mes.service import Mes
from shopfloor.cli import app

runner = CliRunner()


def data_dir(mes: Mes) -> str:
    mes.log.seal()
    url = str(mes.engine.url)
    return str(Path(url.removeprefix("sqlite:///")).parent)


def test_verify_passes_then_names_the_first_altered_event(mes: Mes) -> None:
    d = data_dir(mes)
    ok = runner.invoke(app, ["trace", "verify", "--data-dir", d])
    assert ok.exit_code == 0, ok.output
    assert "nothing changed" in ok.output
    with mes.engine.begin() as conn:
        conn.execute(text("UPDATE mes_event SET ts_ns = ts_ns - 1 WHERE seq = 9"))
    bad = runner.invoke(app, ["trace", "verify", "--data-dir", d])
    assert bad.exit_code == 1
    assert "first altered event 9" in bad.output
    as_json = runner.invoke(app, ["trace", "verify", "--data-dir", d, "--json"])
    assert json.loads(as_json.stdout)["first_altered_seq"] == 9


def test_backward_and_forward(mes: Mes) -> None:
    d = data_dir(mes)
    back = runner.invoke(app, ["trace", "backward", "PAL-0", "--data-dir", d])
    assert back.exit_code == 0, back.output
    assert "SN-0003" in back.output and "raw materials: STEEL-A, STEEL-B" in back.output
    fwd = runner.invoke(app, ["trace", "forward", "STEEL-B", "--data-dir", d, "--json"])
    assert json.loads(fwd.stdout)["ends"] == ["PAL-0", "PAL-1", "PAL-2"]
    missing = runner.invoke(app, ["trace", "backward", "NOPE", "--data-dir", d])
    assert missing.exit_code == 1 and "NOPE" in missing.output


def test_export_epcis(mes: Mes, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonld"
    r = runner.invoke(app, ["trace", "export-epcis", "--data-dir", data_dir(mes), "--out", str(out),
                            "--code", "PAL-1"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert validate(doc) == []
    assert len(doc["epcisBody"]["eventList"]) == 1 + 4 * 2  # the packing, and each shaft made and inspected


def test_no_database_is_a_clear_error(tmp_path: Path) -> None:
    r = runner.invoke(app, ["trace", "backward", "X", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no MES database" in r.output
