"""The same MES on PostgreSQL: migrations, recording, traces, verify and tamper detection.

Outside CI a machine without PostgreSQL skips this; in CI (where .ci/run installs it) that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mes_plant import CNC1, CNC2, T0, S, build_plant
from sqlalchemy import text

from shopfloor.apps.mes.db import current_revision
from shopfloor.apps.mes.epcis import export_document, validate
from shopfloor.apps.mes.genealogy import trace
from shopfloor.apps.mes.rejects import rejected_by_machine
from shopfloor.apps.mes.service import Mes
from shopfloor.apps.mes.verify import verify
from shopfloor.core.errors import NotReady
from shopfloor.testing.postgres import PostgresServer, fresh_database


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    try:
        pg = PostgresServer().start()
    except NotReady as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield pg
    pg.stop()


@pytest.fixture
def mes_pg(server: PostgresServer, tmp_path: Path) -> Iterator[Mes]:
    with fresh_database(server) as url:
        mes = Mes.open(tmp_path, url=url, block_size=8)
        build_plant(mes)
        yield mes
        mes.engine.dispose()


def test_the_mes_on_postgresql(mes_pg: Mes) -> None:
    assert mes_pg.engine.dialect.name == "postgresql"
    assert current_revision(mes_pg.engine) == "0001"
    assert [n.code for n in trace(mes_pg.engine, "PAL-1", "backward").ends()] == ["STEEL-A", "STEEL-B"]
    assert [n.code for n in trace(mes_pg.engine, "STEEL-A", "forward").ends()] == ["PAL-0", "PAL-1", "PAL-2"]
    assert validate(export_document(mes_pg.engine)) == []
    assert rejected_by_machine(mes_pg.engine, [CNC1, CNC2], T0, T0 + 4000 * S) == {CNC1: 0, CNC2: 1}
    mes_pg.log.seal()
    assert verify(mes_pg.engine, mes_pg.key).ok
    with mes_pg.engine.begin() as conn:
        conn.execute(text("UPDATE mes_event SET operator = 'mallory' WHERE seq = 12"))
    report = verify(mes_pg.engine, mes_pg.key)
    assert report.first is not None and report.first.seq == 12
