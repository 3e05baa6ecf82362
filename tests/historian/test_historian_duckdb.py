"""DuckDB-specific behaviour: compaction, the dirty flag, the schema, clustering on disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pytest

from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian import open_historian
from shopfloor.historian.base import Buckets
from shopfloor.historian.duckdb_store import SCHEMA_VERSION, DuckDBHistorian

S = 1_000_000_000
T0 = 1_699_999_980 * S  # a whole minute
MINUTE = 60 * S


def time_major(n_tags: int, seconds: int, start_s: int = 0, seed: int = 0) -> SampleBatch:
    k = np.arange(n_tags * seconds)
    rng = np.random.default_rng(seed)
    return SampleBatch.of(1 + k % n_tags, T0 + (start_s + k // n_tags) * S, rng.normal(size=len(k)), Quality.GOOD)


def table_counts(path: Path) -> tuple[int, int]:
    """Rows in (samples, recent), read from the closed file."""
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT (SELECT count(*) FROM samples), (SELECT count(*) FROM recent)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def snapshot(h: DuckDBHistorian, tags: range) -> list[tuple[SampleBatch, Buckets]]:
    return [(h.raw(t, T0, T0 + 10_000 * S), h.buckets(t, T0, T0 + 10_000 * S, MINUTE)) for t in tags]


def assert_same(a: list[tuple[SampleBatch, Buckets]], b: list[tuple[SampleBatch, Buckets]]) -> None:
    for (raw_a, bk_a), (raw_b, bk_b) in zip(a, b, strict=True):
        for x, y in zip((raw_a.ts, raw_a.value, raw_a.quality), (raw_b.ts, raw_b.value, raw_b.quality), strict=True):
            np.testing.assert_array_equal(x, y)
        for name in ("start", "min", "max", "count", "first", "last"):
            np.testing.assert_array_equal(getattr(bk_a, name), getattr(bk_b, name), err_msg=name)
        np.testing.assert_allclose(bk_a.mean, bk_b.mean, rtol=1e-12)


def test_compaction_changes_no_answer(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    h = DuckDBHistorian(path, compact_rows=10**9)
    data = time_major(4, 300)
    # 0..150 s compacted, 150..300 s in recent: the 2:30 minute bucket straddles the boundary
    for s in range(0, 150, 25):
        h.write(data.take(np.arange(s * 4, (s + 25) * 4)))
    before_first = snapshot(h, range(1, 5))
    assert h.compact() == 600
    assert_same(snapshot(h, range(1, 5)), before_first)
    for s in range(150, 300, 25):
        h.write(data.take(np.arange(s * 4, (s + 25) * 4)))
    across = snapshot(h, range(1, 5))
    straddling = h.buckets(2, T0, T0 + 300 * S, MINUTE)
    assert straddling.count.tolist() == [60] * 5
    assert h.compact() == 600
    assert h.compact() == 0
    assert_same(snapshot(h, range(1, 5)), across)
    assert h.count() == 1200
    h.close()
    assert table_counts(path) == (1200, 0)


def test_compaction_sorts_by_tag_then_time(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    h = DuckDBHistorian(path)
    h.write(time_major(5, 100))
    h.compact()
    h.close()
    with duckdb.connect(str(path), read_only=True) as con:
        got = con.execute("SELECT tag_id, ts FROM samples").fetchnumpy()
    order = np.lexsort((got["ts"], got["tag_id"]))
    np.testing.assert_array_equal(order, np.arange(len(order)))


def test_write_compacts_when_recent_is_full(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    h = DuckDBHistorian(path, compact_rows=100)
    data = time_major(2, 130)
    for s in range(0, 130, 10):
        h.write(data.take(np.arange(s * 2, (s + 10) * 2)))
    h.close()
    assert table_counts(path) == (200, 60)


def test_dedupe_across_the_compaction_boundary(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    h = DuckDBHistorian(path, compact_rows=10**9)
    data = time_major(3, 100)
    h.write(data)
    h.compact()
    # a resend of seconds 50..99 and new seconds 100..119: half collide with compacted rows
    resend = SampleBatch.concat([data.take(np.arange(150, 300)), time_major(3, 20, start_s=100, seed=1)])
    fix = SampleBatch.of([2, 2], [T0 + 10 * S, T0 + 110 * S], [-5.0, -6.0], Quality.UNCERTAIN)
    h.write(resend)
    h.write(fix)
    want_tag2 = h.raw(2, T0, T0 + 200 * S)
    assert len(want_tag2) == 120
    assert h.count() == 360
    assert want_tag2.value[10] == -5.0 and want_tag2.value[110] == -6.0
    assert want_tag2.quality[10] == Quality.UNCERTAIN
    # the dirty flag survives a restart
    h.close()
    h = DuckDBHistorian(path, compact_rows=10**9)
    np.testing.assert_array_equal(h.raw(2, T0, T0 + 200 * S).value, want_tag2.value)
    # recent holds 212 rows with 211 keys (the 110 s fix replaces a row of recent), 151 of them replace samples
    assert h.compact() == 211
    np.testing.assert_array_equal(h.raw(2, T0, T0 + 200 * S).value, want_tag2.value)
    assert h.count() == 360
    h.close()
    assert table_counts(path) == (360, 0)


def test_time_major_batches_keep_recent_clean(tmp_path: Path) -> None:
    h = DuckDBHistorian(tmp_path / "h.duckdb")
    data = time_major(3, 100)
    for s in range(0, 100, 10):
        h.write(data.take(np.arange(s * 3, (s + 10) * 3)))
    assert not h._dirty  # the cheap query path
    h.write(data.take(np.arange(0, 3)))
    assert h._dirty
    h.compact()
    assert not h._dirty
    h.close()


def test_a_killed_writer_loses_nothing_it_was_told_was_written(tmp_path: Path) -> None:
    """write() returns after commit: a process that dies without close() keeps every batch."""
    path = tmp_path / "h.duckdb"
    code = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from shopfloor.core.samples import SampleBatch
        from shopfloor.historian.duckdb_store import DuckDBHistorian
        h = DuckDBHistorian({str(path)!r}, compact_rows=250)
        h.ensure_tags(["a", "b"])
        k = np.arange(600)
        for i in range(0, 600, 100):
            h.write(SampleBatch.of(1 + k[i:i + 100] % 2, k[i:i + 100] // 2, k[i:i + 100] * 0.5))
        h.write(SampleBatch.of([1], [0], [-1.0]))  # a correction, leaves recent dirty
        os._exit(0)  # no close(), no checkpoint
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    h = DuckDBHistorian(path)
    assert h.tag_ids() == {"a": 1, "b": 2}
    assert h.count() == 600
    assert h.raw(1, 0, 3).value.tolist() == [-1.0, 1.0, 2.0]
    assert h.latest().ts.tolist() == [299, 299]
    h.close()


def test_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    DuckDBHistorian(path).close()
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="newer"):
        DuckDBHistorian(path)


def test_in_memory_store_and_open_historian(tmp_path: Path) -> None:
    h = DuckDBHistorian(":memory:")
    h.write(time_major(2, 10))
    assert h.count() == 20
    h.close()
    h2 = open_historian("duckdb", tmp_path / "not" / "yet" / "there")
    assert isinstance(h2, DuckDBHistorian)
    assert (tmp_path / "not" / "yet" / "there" / "historian.duckdb").exists()
    h2.close()


def test_latest_of_ten_thousand_tags(tmp_path: Path) -> None:
    h = DuckDBHistorian(tmp_path / "h.duckdb")
    h.write(time_major(10_000, 3))
    h.write(SampleBatch.of([5000, 10_001], [T0, T0 + 9 * S], [1.0, 2.0]))  # late for 5000, new tag 10001
    h.close()
    h = DuckDBHistorian(tmp_path / "h.duckdb")
    got = h.latest()
    assert len(got) == 10_001
    np.testing.assert_array_equal(got.tag_id, np.arange(1, 10_002))
    assert got.ts[4999] == T0 + 2 * S and got.ts[-1] == T0 + 9 * S
    assert not got.ts.flags.writeable
    h.close()


def test_retention_empties_whole_runs(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    h = DuckDBHistorian(path, compact_rows=300)
    data = time_major(3, 1000)
    for s in range(0, 1000, 100):
        h.write(data.take(np.arange(s * 3, (s + 100) * 3)))
    assert h.delete_before(T0 + 500 * S) == 1500
    h.close()
    assert table_counts(path) == (1500, 0)
