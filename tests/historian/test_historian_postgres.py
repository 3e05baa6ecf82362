"""PostgreSQL-specific behaviour: partitions, retention by partition, schema, reconnects, other writers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian import open_historian
from shopfloor.historian.base import Historian
from shopfloor.historian.postgres_store import PARALLEL_MIN_ROWS, SCHEMA_VERSION, PostgresHistorian
from shopfloor.historian.writer import HistorianWriter
from shopfloor.testing.postgres import PostgresServer

S = 1_000_000_000
DAY = 86_400 * S
D0 = 1_699_920_000 * S  # 2023-11-14T00:00:00Z, a whole day
HOUR = 3600 * S


def per_tag(n_tags: int, ts: list[int], value: float = 1.0) -> SampleBatch:
    tags = np.repeat(np.arange(1, n_tags + 1), len(ts))
    return SampleBatch.of(tags, np.tile(ts, n_tags), np.full(len(tags), value))


def partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'samples'::regclass ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.fixture
def pg(postgres_database: str) -> Iterator[PostgresHistorian]:
    h = PostgresHistorian(postgres_database)
    yield h
    h.close()


def test_extreme_values_and_timestamps_round_trip(pg: PostgresHistorian) -> None:
    """The binary COPY encoding and the packed reads, and partitions at both ends of int64."""
    lo, hi = -(2**63), 2**63 - 1
    batch = SampleBatch.of([2**31 - 1, 2**31 - 1, 2**31 - 1], [lo, 0, hi], [np.nan, -0.0, 1e300], [0, 64, 192])
    pg.write(batch)
    got = pg.raw(2**31 - 1, lo, hi)
    np.testing.assert_array_equal(got.ts, [lo, 0])  # the end is exclusive
    np.testing.assert_array_equal(got.value, [np.nan, -0.0])
    assert np.signbit(got.value[1])
    assert pg.latest().ts.tolist() == [hi] and pg.latest().value.tolist() == [1e300]


def test_open_historian_routes_postgres_urls(postgres_database: str) -> None:
    h = open_historian("postgres", "/nonexistent", url=postgres_database)
    try:
        assert isinstance(h, PostgresHistorian)
    finally:
        h.close()


def test_partitions_are_created_as_data_arrives_and_retention_drops_whole_ones(
    pg: PostgresHistorian, postgres_database: str
) -> None:
    pg.write(per_tag(2, [D0 + HOUR, D0 + DAY + HOUR, D0 + 2 * DAY + HOUR, D0 + 2 * DAY + 2 * HOUR]))
    assert partitions(postgres_database) == [f"samples_{D0 + k * DAY}" for k in range(3)]
    assert pg.count() == 8
    # day 0 goes whole, day 2 loses one hour of one sample per tag: 2 + 2 + 2 rows
    assert pg.delete_before(D0 + 2 * DAY + HOUR + 1) == 6
    assert partitions(postgres_database) == [f"samples_{D0 + 2 * DAY}"]
    assert pg.raw(1, 0, 2**62).ts.tolist() == [D0 + 2 * DAY + 2 * HOUR]
    assert len(pg.latest()) == 2
    # writing into a dropped day again recreates its partition
    pg.write(per_tag(1, [D0 + 5]))
    assert partitions(postgres_database) == [f"samples_{D0}", f"samples_{D0 + 2 * DAY}"]
    assert pg.raw(1, 0, 2**62).ts.tolist() == [D0 + 5, D0 + 2 * DAY + 2 * HOUR]


def test_a_partition_dropped_by_another_process_is_recreated_on_the_retry(postgres_database: str) -> None:
    a = PostgresHistorian(postgres_database)
    b = PostgresHistorian(postgres_database)
    try:
        a.write(per_tag(1, [D0]))
        assert b.delete_before(D0 + DAY) == 1  # b drops the partition a believes exists
        with pytest.raises(psycopg.errors.CheckViolation):
            a.write(per_tag(1, [D0 + S]))
        a.write(per_tag(1, [D0 + S]))  # the HistorianWriter's retry
        assert a.raw(1, D0, D0 + DAY).ts.tolist() == [D0 + S]
    finally:
        a.close()
        b.close()


def test_partition_width_is_fixed_at_creation(postgres_database: str) -> None:
    h = PostgresHistorian(postgres_database, partition="1 hour")
    h.write(per_tag(1, [D0, D0 + HOUR, D0 + 90 * 60 * S]))
    h.close()
    h2 = PostgresHistorian(postgres_database, partition="1 week")  # ignored: the store keeps 1 hour
    h2.write(per_tag(1, [D0 + 3 * HOUR]))
    assert partitions(postgres_database) == [f"samples_{D0 + k * HOUR}" for k in (0, 1, 3)]
    assert h2.count() == 4
    h2.close()


def test_bad_partition_width_is_refused(postgres_database: str) -> None:
    with pytest.raises(ValueError):
        PostgresHistorian(postgres_database, partition="0 seconds")


def test_schema_version_is_recorded_and_a_newer_one_refused(pg: PostgresHistorian, postgres_database: str) -> None:
    with psycopg.connect(postgres_database) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert row is not None and row[0] == str(SCHEMA_VERSION)
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(RuntimeError, match="newer"):
        PostgresHistorian(postgres_database)


def test_negative_timestamps_and_epoch_alignment(pg: PostgresHistorian) -> None:
    pg.write(SampleBatch.of([1, 1, 1], [-61 * S, -1 * S, 0], [1.0, 2.0, 4.0]))
    b = pg.buckets(1, -DAY, DAY, 60 * S)
    assert b.start.tolist() == [-120 * S, -60 * S, 0]
    assert b.count.tolist() == [1, 1, 1]
    assert pg.raw(1, -DAY, DAY).value.tolist() == [1.0, 2.0, 4.0]


def test_another_writer_on_the_same_database_is_seen_and_overwritten_correctly(postgres_database: str) -> None:
    """A second process's writes make the first one's latest cache stale: the fast path falls back."""
    a = PostgresHistorian(postgres_database)
    b = PostgresHistorian(postgres_database)
    try:
        a.write(per_tag(1, [D0], value=1.0))
        b.write(per_tag(1, [D0 + S, D0 + 2 * S], value=2.0))  # b has not seen a's write either
        assert a.latest().ts.tolist() == [D0 + 2 * S]  # latest is read from the table
        a.write(per_tag(1, [D0 + S], value=3.0))  # a's cache says nothing newer than D0: collides in SQL
        assert a.raw(1, D0, D0 + DAY).value.tolist() == [1.0, 3.0, 2.0]
        assert b.count() == 3
        assert a.latest().value.tolist() == [2.0]
    finally:
        a.close()
        b.close()


def test_a_large_batch_is_copied_in_parts_over_several_connections(postgres_database: str) -> None:
    """Cut at tag boundaries: every row stored once, latest right, and the parts ran on their own sessions."""
    h = PostgresHistorian(postgres_database, write_connections=3)
    try:
        seconds = [D0 + k * S for k in range(PARALLEL_MIN_ROWS // 10)]
        batch = per_tag(10, seconds, value=4.0)
        parts = h._split(batch.take(np.lexsort((batch.ts, batch.tag_id))))
        assert len(parts) == 3 and sum(len(p) for p in parts) == len(batch)
        assert not set(parts[0].tag_id) & set(parts[1].tag_id)  # no tag in two parts
        h.write(batch)
        assert h.count() == len(batch)
        assert sum(c is not None for c in h._copy_conns) == 2
        assert h.latest().ts.tolist() == [seconds[-1]] * 10
        np.testing.assert_array_equal(h.raw(7, D0, D0 + DAY).ts, seconds)
    finally:
        h.close()


def test_a_collision_in_one_part_sends_the_whole_batch_to_the_upsert(postgres_database: str) -> None:
    """Another process holds one key of the last part: the first part commits, then the upsert stores all."""
    a = PostgresHistorian(postgres_database, write_connections=2)
    b = PostgresHistorian(postgres_database)
    try:
        seconds = [D0 + k * S for k in range(PARALLEL_MIN_ROWS // 4)]
        b.write(SampleBatch.of([4], [seconds[5]], [9.0]))  # tag 4 lands in the second part
        a.write(per_tag(4, seconds, value=1.0))
        assert a.count() == 4 * len(seconds)
        assert a.raw(4, seconds[5], seconds[6]).value.tolist() == [1.0]  # the batch's value wins
        assert a.latest().ts.tolist() == [seconds[-1]] * 4
    finally:
        a.close()
        b.close()


def test_write_connections_is_bounded(postgres_database: str) -> None:
    with pytest.raises(ValueError, match="write_connections"):
        PostgresHistorian(postgres_database, write_connections=0)


def test_a_database_restart_between_writes_loses_nothing(
    postgres_server: PostgresServer, pg: PostgresHistorian
) -> None:
    pg.write(per_tag(3, [D0, D0 + S]))
    assert pg.raw(1, D0, D0 + DAY).ts.tolist() == [D0, D0 + S]  # a reader connection exists now
    postgres_server.restart()
    pg.write(per_tag(3, [D0 + 2 * S]))  # the writer's stale connection is replaced by itself
    assert pg.count() == 9  # and the reader's
    assert pg.raw(2, D0, D0 + DAY).ts.tolist() == [D0, D0 + S, D0 + 2 * S]
    assert pg.latest().ts.tolist() == [D0 + 2 * S] * 3
    assert pg.ensure_tags(["after/restart"])["after/restart"] > 0


def test_while_the_database_is_down_write_raises_and_recovers_afterwards(
    postgres_server: PostgresServer, pg: PostgresHistorian
) -> None:
    pg.write(per_tag(2, [D0]))
    postgres_server.shutdown()
    try:
        with pytest.raises(psycopg.OperationalError):
            pg.write(per_tag(2, [D0 + S]))
        with pytest.raises(psycopg.OperationalError):
            pg.raw(1, D0, D0 + DAY)
    finally:
        postgres_server.start()
    pg.write(per_tag(2, [D0 + S]))
    assert pg.count() == 4
    assert pg.raw(1, D0, D0 + DAY).ts.tolist() == [D0, D0 + S]


def test_the_historian_writer_rides_through_a_restart(postgres_server: PostgresServer, pg: PostgresHistorian) -> None:
    """Ingest keeps going across a restart: the HistorianWriter retries, nothing is lost or doubled."""
    writer = HistorianWriter(pg)
    writer.start()
    committed = threading.Event()
    try:
        for k in range(20):
            assert writer.submit(per_tag(5, [D0 + k * S]), on_commit=committed.set if k == 19 else None)
            if k == 10:
                postgres_server.shutdown()
                time.sleep(0.3)
                postgres_server.start()
        assert committed.wait(30)
    finally:
        writer.stop()
    assert pg.count() == 100
    assert pg.raw(5, D0, D0 + DAY).ts.tolist() == [D0 + k * S for k in range(20)]


def test_quality_is_stored_as_given(pg: Historian) -> None:
    pg.write(SampleBatch.of([1, 1, 1], [D0, D0 + S, D0 + 2 * S], [1.0, 2.0, 3.0], [Quality.GOOD, 7, 255]))
    assert pg.raw(1, D0, D0 + DAY).quality.tolist() == [192, 7, 255]
