"""Tamper evidence: alter, delete or reorder an event (or rewrite the chain) and verify names the first one."""

from __future__ import annotations

from sqlalchemy import text

from shopfloor.apps.mes.chain import GENESIS, SiteKey, canonical_event, link, merkle_root
from shopfloor.apps.mes.service import Mes
from shopfloor.apps.mes.verify import verify


def sql(mes: Mes, statement: str, **params: object) -> None:
    with mes.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_untouched_record_verifies(mes: Mes) -> None:
    mes.log.seal()
    report = verify(mes.engine, mes.key)
    assert report.ok, report.findings
    assert report.events == mes.log.head[0] == 34  # 3 log-on/off, 2 loads, 2 states, 12 x 2 (made, inspected), 3 packed
    assert report.checkpoints == -(-report.events // 8)  # blocks of 8, the tail sealed as a partial block
    assert report.edges == 12 + 12  # one steel lot per shaft, four shafts per pallet x 3


def test_altered_event_is_named(mes: Mes) -> None:
    with mes.engine.begin() as conn:  # the driver's own SQL: ':' in the JSON is no bind parameter there
        conn.exec_driver_sql("UPDATE mes_event SET payload = replace(payload, '\"passed\":false', '\"passed\":true') "
                             "WHERE kind = 'inspection' AND payload LIKE '%\"passed\":false%'")
    seq = _seq_of(mes, "inspection", "20.05")
    report = verify(mes.engine, mes.key)
    assert not report.ok
    assert report.first is not None and report.first.seq == seq and report.first.what == "altered"
    assert f"event {seq}" in report.first.message


def test_altered_operator_and_time_are_named(mes: Mes) -> None:
    sql(mes, "UPDATE mes_event SET operator = 'mallory' WHERE seq = 20")
    sql(mes, "UPDATE mes_event SET ts_ns = ts_ns + 1 WHERE seq = 33")
    report = verify(mes.engine, mes.key)
    assert [f.seq for f in report.findings if f.what == "altered"][:2] == [20, 33]
    assert report.first is not None and report.first.seq == 20


def test_deleted_event_is_named(mes: Mes) -> None:
    sql(mes, "DELETE FROM mes_event WHERE seq = 17")
    report = verify(mes.engine, mes.key)
    assert report.first is not None and report.first.seq == 17 and report.first.what == "missing"
    assert "17 is missing" in report.first.message


def test_deleted_last_events_are_caught_by_the_checkpoint(mes: Mes) -> None:
    mes.log.seal()
    last = mes.log.head[0]
    sql(mes, "DELETE FROM mes_event WHERE seq = :s", s=last)
    report = verify(mes.engine, mes.key)
    assert not report.ok
    assert any(f.what == "checkpoint" or f.what == "missing" for f in report.findings)


def test_reordered_events_are_named(mes: Mes) -> None:
    # swap events 11 and 12 (each keeps its own stored hash)
    sql(mes, "UPDATE mes_event SET seq = -1 WHERE seq = 11")
    sql(mes, "UPDATE mes_event SET seq = 11 WHERE seq = 12")
    sql(mes, "UPDATE mes_event SET seq = 12 WHERE seq = -1")
    report = verify(mes.engine, mes.key)
    assert report.first is not None and report.first.seq == 11


def test_rewritten_chain_is_caught_by_signed_checkpoints(mes: Mes) -> None:
    """An attacker edits event 14 and recomputes every hash after it: the signed fingerprints still name 14."""
    sql(mes, "UPDATE mes_event SET operator = 'mallory' WHERE seq = 14")
    with mes.engine.begin() as conn:
        rows = conn.execute(text(
            "SELECT seq, ts_ns, kind, item_id, equipment_id, operator, work_order_id, operation_id, payload "
            "FROM mes_event ORDER BY seq"
        )).all()
        prev = GENESIS
        for row in rows:
            prev = link(prev, canonical_event(*row))
            conn.execute(text("UPDATE mes_event SET hash = :h WHERE seq = :s"), {"h": prev, "s": row[0]})
    report = verify(mes.engine, mes.key)
    assert report.first is not None and report.first.seq == 14
    assert "recomputed" in report.first.message
    assert any(f.what == "checkpoint" for f in report.findings)  # the Merkle root of that block differs


def test_forged_checkpoint_and_foreign_key_are_caught(mes: Mes) -> None:
    block = [bytes([i]) * 32 for i in range(8)]
    sql(mes, "UPDATE mes_checkpoint SET merkle_root = :r WHERE first_seq = 1", r=merkle_root(block))
    report = verify(mes.engine, mes.key)
    assert any(f.what == "signature" and f.seq == 1 for f in report.findings)
    other = verify(mes.engine, SiteKey.generate())
    assert not other.ok and all(f.what == "signature" for f in other.findings)


def test_tampered_genealogy_edge_is_caught(mes: Mes) -> None:
    sql(mes, "DELETE FROM mes_genealogy_edge WHERE output_id = (SELECT id FROM mes_item WHERE code = 'PAL-2')")
    report = verify(mes.engine, mes.key)
    assert report.first is not None and report.first.what == "edge"


def test_public_key_alone_verifies(mes: Mes, tmp_path: object) -> None:
    mes.log.seal()
    public = SiteKey(mes.key.public)
    assert verify(mes.engine, public).ok


def _seq_of(mes: Mes, kind: str, needle: str) -> int:
    with mes.engine.connect() as conn:
        return int(conn.execute(text("SELECT seq FROM mes_event WHERE kind = :k AND payload LIKE :p"),
                                {"k": kind, "p": f"%{needle}%"}).scalar_one())
