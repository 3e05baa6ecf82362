"""The embedded historian: one DuckDB file, clustered by tag for per-tag queries.

Design, and why. Numbers: benchmarks/query.py on these 2-core machines, DuckDB 2.0, shared
with other work while measured (so ranges; compare ratios within one run).

* Samples arrive time-major (all tags interleaved), but queries ask for one tag. In arrival
  order a one-tag query reads every row group: one day of one tag in 1-minute buckets took
  54-110 ms with 100 tags (8.6 M rows) and 360-840 ms with 1,000 tags. So there are two tables:

  - ``recent``: append-only, what ``write()`` inserts into. Each batch goes in ordered by tag
    (free: the write path sorts it anyway), so a one-tag scan of ``recent`` decompresses only
    the vectors holding that tag: 2.5x faster than the batch in arrival order.
  - ``samples``: where compaction moves ``recent``, ordered by (tag_id, ts). Each compaction
    appends one sorted run, so row-group zone maps prune by tag inside a run and by time
    across runs (runs are time-bounded because data is time-major); retention of old runs
    drops whole row groups. The same query: 10-18 ms at 100 tags, 17-42 ms at 1,000 tags
    (86 runs a day); the GROUP BY over the day's 86,400 samples is most of it.

  Queries read both tables in one statement (one MVCC snapshot), and a compaction is one
  transaction (insert the sorted run, empty ``recent``), so readers see it whole and no row
  is lost or doubled. ``write()`` compacts once ``recent`` holds ``compact_rows`` rows
  (1 M: larger makes each query scan more unsorted rows, smaller makes more runs); an idle
  writer may call ``compact()`` earlier. Compaction appends every row a second time (sorted):
  190-500 ns/row, so write() + compact() sustains 1-2 M rows/s where write() alone does
  1.8-3 M rows/s and plain appends 2.1-4.2 M rows/s (100k-row batches). Arrow and a dict of
  NumPy arrays insert equally fast (within noise); Arrow is registered by name, explicitly.

* Idempotence on (tag_id, ts) without a primary key (an ART key on (tag_id, ts) cut ingest
  from ~3.3 M to ~0.6 M rows/s, and gets slower as the table grows). Each ``recent`` row
  carries a write sequence number ``seq``. Compaction keeps the last-written row of a key and
  deletes the ``samples`` rows it replaces; queries keep the last-written ``recent`` row and
  hide the ``samples`` rows it replaces. That dedupe costs +5 ms per bucket query, +3 ms per
  raw query and more per compaction, so it runs only while ``recent`` is "dirty": from the sort
  the write path does anyway and each tag's newest timestamp (the latest cache) a batch shows
  whether it can collide with anything stored (a key twice in the batch, or a sample not newer
  than its tag's newest). Time-major data never does; a resend or late data sets the
  (persisted) flag until the next compaction.

* ``latest``: a small table (tag_id primary key) upserted in the same transaction as each
  write, replacing only when the new ts >= stored ts, plus an in-memory copy (LatestCache)
  that answers ``latest()`` for all tags in microseconds (the peer's arg_max: 0.2-1.8 s).
  Retention leaves ``latest`` alone: it is the current value of each tag, however old.

* Threads: one writer (write/compact/delete_before/ensure_tags hold a lock), any number of
  readers, each thread on its own cursor of the one connection (DuckDB connections are not
  thread-safe, cursors of one connection are). Readers take no lock.

* Timestamps are BIGINT ns, not TIMESTAMP_NS: the API is int64 ns, so no conversion either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shopfloor.core.samples import SampleBatch
from shopfloor.historian.base import Buckets, Historian
from shopfloor.historian.latest_cache import LatestCache, index_batch

SCHEMA_VERSION = 1

# Let `recent` live in the WAL until compaction instead of being checkpointed into table blocks
# and deleted again soon after: write() + compact() ran at ~2.15 M rows/s with this against
# ~1.5 M rows/s with DuckDB's default of 16 MB. The price: reopening after a crash replays up to this much WAL.
_CHECKPOINT_THRESHOLD = "256MB"

_SCHEMA_V1 = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY, path VARCHAR NOT NULL UNIQUE);
CREATE TABLE latest (tag_id INTEGER PRIMARY KEY, ts BIGINT NOT NULL, value DOUBLE NOT NULL, quality UTINYINT NOT NULL);
CREATE TABLE samples (tag_id INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL, quality UTINYINT NOT NULL);
CREATE TABLE recent (
    tag_id INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL, quality UTINYINT NOT NULL, seq BIGINT NOT NULL
);
INSERT INTO meta VALUES ('schema_version', '1'), ('recent_dirty', '0');
"""

# Migrations from version N to N + 1, applied in order inside one transaction at open.
_MIGRATIONS: dict[int, str] = {}

_RANGE = "tag_id = $tag AND ts >= $start AND ts < $end"

# One tag's samples in a range, straight: valid while `recent` holds no key twice and none of `samples`.
_SOURCE_PLAIN = f"""
    SELECT ts, value, quality FROM samples WHERE {_RANGE}
    UNION ALL
    SELECT ts, value, quality FROM recent WHERE {_RANGE}
"""

# The same with (tag_id, ts) deduplicated: the last-written row of `recent` wins, over `samples` too.
_SOURCE_DEDUPE = f"""
    WITH r AS MATERIALIZED (
        SELECT ts, arg_max(value, seq) AS value, arg_max(quality, seq) AS quality
        FROM recent WHERE {_RANGE} GROUP BY ts
    )
    SELECT s.ts, s.value, s.quality FROM (SELECT ts, value, quality FROM samples WHERE {_RANGE}) AS s
    ANTI JOIN r ON s.ts = r.ts
    UNION ALL
    SELECT ts, value, quality FROM r
"""


def _raw_sql(source: str, limited: bool) -> str:
    return f"SELECT ts, value, quality FROM ({source}) ORDER BY ts" + (" LIMIT $limit" if limited else "")


def _buckets_sql(source: str) -> str:
    # Floor modulo, so buckets align to the epoch on both sides of it.
    return f"""
        SELECT ts - ((ts % $bucket) + $bucket) % $bucket AS start,
               min(value) AS min, max(value) AS max, avg(value) AS mean, count(*) AS count,
               arg_min(value, ts) AS first, arg_max(value, ts) AS last
        FROM ({source}) WHERE quality <> 0 AND NOT isnan(value)
        GROUP BY start ORDER BY start
    """


_COUNT_PLAIN = "SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM recent)"
_COUNT_DEDUPE = """
    SELECT (SELECT count(*) FROM samples) + (
        SELECT count(*) FROM (SELECT DISTINCT tag_id, ts FROM recent) AS r
        WHERE NOT EXISTS (SELECT 1 FROM samples AS s WHERE s.tag_id = r.tag_id AND s.ts = r.ts)
    )
"""

_Columns = dict[str, npt.NDArray[Any]]


class DuckDBHistorian(Historian):
    """Historian on one DuckDB file (or ":memory:"); see the module docstring for the design."""

    def __init__(self, path: Path | str, *, compact_rows: int = 1_000_000) -> None:
        """Open or create the store; ``compact_rows``: size of ``recent`` that triggers a compaction."""
        if compact_rows < 1:
            raise ValueError("compact_rows must be positive")
        self._compact_rows = compact_rows
        database = str(path)
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(database, config={"checkpoint_threshold": _CHECKPOINT_THRESHOLD})
        self._write_lock = threading.RLock()
        self._cursors_lock = threading.Lock()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._local = threading.local()
        self._closed = False
        try:
            self._open_schema()
            cur = self._cursor()
            rows = cur.execute("SELECT path, id FROM tags").fetchall()
            self._tags: dict[str, int] = {str(p): int(i) for p, i in rows}
            latest = cur.execute("SELECT tag_id, ts, value, quality FROM latest").fetchnumpy()
            self._latest = LatestCache(
                SampleBatch.of(latest["tag_id"], latest["ts"], latest["value"], latest["quality"])
            )
            n, max_seq = cur.execute("SELECT count(*), coalesce(max(seq) + 1, 0) FROM recent").fetchone() or (0, 0)
            self._recent_rows = int(n)
            self._seq = int(max_seq)
            dirty = cur.execute("SELECT value FROM meta WHERE key = 'recent_dirty'").fetchone()
            # Readers check `_dirty`; `_dirty_gen` lets a reader notice that it flipped during its query.
            self._dirty = dirty is not None and dirty[0] == "1"
            self._dirty_gen = 0
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: DuckDB connections are not thread-safe, their cursors are."""
        if self._closed:
            raise RuntimeError("historian is closed")
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            with self._cursors_lock:
                if self._closed:
                    raise RuntimeError("historian is closed")
                cur = self._con.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    def _transaction(self, work: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        cur = self._cursor()
        cur.begin()
        try:
            work(cur)
        except BaseException:
            cur.rollback()
            raise
        cur.commit()

    def _open_schema(self) -> None:
        def create_or_migrate(cur: duckdb.DuckDBPyConnection) -> None:
            exists = cur.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = 'meta'"
            ).fetchone()
            if not exists or exists[0] == 0:
                cur.execute(_SCHEMA_V1)
                return
            row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"historian schema version {version} is newer than this code ({SCHEMA_VERSION})")
            for v in range(version, SCHEMA_VERSION):
                cur.execute(_MIGRATIONS[v])
            if version != SCHEMA_VERSION:
                cur.execute("UPDATE meta SET value = $v WHERE key = 'schema_version'", {"v": str(SCHEMA_VERSION)})

        self._transaction(create_or_migrate)

    def _read(self, plain: str, dedupe: str, params: dict[str, int]) -> _Columns:
        """Run the cheap form while `recent` is clean, the deduplicating form otherwise.

        The writer raises the flag (and its generation) before it commits a colliding batch, so
        a plain query that saw neither change around it cannot have seen that batch.
        """
        cur = self._cursor()
        gen = self._dirty_gen
        if self._dirty:
            return cur.execute(dedupe, params).fetchnumpy()
        result = cur.execute(plain, params).fetchnumpy()
        if self._dirty or self._dirty_gen != gen:
            result = cur.execute(dedupe, params).fetchnumpy()
        return result

    # -- tags -------------------------------------------------------------------------------------

    def ensure_tags(self, paths: Sequence[str]) -> dict[str, int]:
        with self._write_lock:
            known = self._tags
            new = [p for p in dict.fromkeys(paths) if p not in known]
            if new:
                first = max(known.values(), default=0) + 1
                rows = pa.table({"id": pa.array(range(first, first + len(new)), pa.int32()), "path": new})

                def insert(cur: duckdb.DuckDBPyConnection) -> None:
                    cur.register("_new_tags", rows)
                    try:
                        cur.execute("INSERT INTO tags (id, path) SELECT id, path FROM _new_tags")
                    finally:
                        cur.unregister("_new_tags")

                self._transaction(insert)
                known = {**known, **dict(zip(new, range(first, first + len(new)), strict=True))}
                self._tags = known
            return {p: known[p] for p in paths}

    def tag_ids(self) -> dict[str, int]:
        return dict(self._tags)

    # -- writing ----------------------------------------------------------------------------------

    def write(self, batch: SampleBatch) -> None:
        """Append a batch to ``recent`` and upsert ``latest`` in one transaction; compact when due."""
        n = len(batch)
        if n == 0:
            return
        with self._write_lock:
            index = index_batch(batch)
            collides = index.has_duplicates or bool(
                np.any(index.oldest_ts <= self._latest.high_water(index.newest.tag_id))
            )
            newest = index.newest
            order = index.order
            rows = pa.table(
                {
                    "tag_id": batch.tag_id[order],
                    "ts": batch.ts[order],
                    "value": batch.value[order],
                    "quality": batch.quality[order],
                    "seq": order.astype(np.int64) + self._seq,
                }
            )
            latest_rows = pa.table(
                {"tag_id": newest.tag_id, "ts": newest.ts, "value": newest.value, "quality": newest.quality}
            )
            snapshot = self._latest.merged(newest)
            mark_dirty = collides and not self._dirty
            if mark_dirty:
                self._dirty_gen += 1
                self._dirty = True

            def insert(cur: duckdb.DuckDBPyConnection) -> None:
                cur.register("_batch", rows)
                cur.register("_newest", latest_rows)
                try:
                    cur.execute(
                        "INSERT INTO recent (tag_id, ts, value, quality, seq) "
                        "SELECT tag_id, ts, value, quality, seq FROM _batch"
                    )
                    cur.execute(
                        "INSERT INTO latest SELECT tag_id, ts, value, quality FROM _newest "
                        "ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value, "
                        "quality = excluded.quality WHERE excluded.ts >= latest.ts"
                    )
                    if mark_dirty:
                        cur.execute("UPDATE meta SET value = '1' WHERE key = 'recent_dirty'")
                finally:
                    cur.unregister("_batch")
                    cur.unregister("_newest")

            self._transaction(insert)
            self._seq += n
            self._recent_rows += n
            self._latest.install(snapshot)
            if self._recent_rows >= self._compact_rows:
                self.compact()

    def compact(self) -> int:
        """Move ``recent`` into ``samples`` as one run sorted by (tag_id, ts), in one transaction.

        Returns the rows moved (after dedupe). Called by ``write()`` when ``recent`` is full; a
        writer may call it when idle so that queries scan less of the unclustered part.
        """
        with self._write_lock:
            if self._recent_rows == 0:
                return 0
            dirty = self._dirty
            moved = 0

            def move(cur: duckdb.DuckDBPyConnection) -> None:
                nonlocal moved
                if dirty:
                    lo, hi = cur.execute("SELECT min(ts), max(ts) FROM recent").fetchone() or (None, None)
                    if lo is not None:
                        # The constant time bounds let zone maps skip runs that cannot hold a replaced key.
                        cur.execute(
                            "DELETE FROM samples WHERE ts >= $lo AND ts <= $hi AND EXISTS "
                            "(SELECT 1 FROM recent AS r WHERE r.tag_id = samples.tag_id AND r.ts = samples.ts)",
                            {"lo": lo, "hi": hi},
                        )
                    sql = (
                        "INSERT INTO samples SELECT tag_id, ts, arg_max(value, seq), arg_max(quality, seq) "
                        "FROM recent GROUP BY tag_id, ts ORDER BY tag_id, ts"
                    )
                else:
                    sql = "INSERT INTO samples SELECT tag_id, ts, value, quality FROM recent ORDER BY tag_id, ts"
                row = cur.execute(sql).fetchone()
                moved = int(row[0]) if row else 0
                cur.execute("DELETE FROM recent")
                if dirty:
                    cur.execute("UPDATE meta SET value = '0' WHERE key = 'recent_dirty'")

            self._transaction(move)
            self._recent_rows = 0
            self._dirty = False
            return moved

    def delete_before(self, cutoff_ns: int) -> int:
        """Retention: compacts first (so counts are exact after dedupe), then deletes from ``samples``."""
        with self._write_lock:
            self.compact()
            deleted = 0

            def delete(cur: duckdb.DuckDBPyConnection) -> None:
                nonlocal deleted
                row = cur.execute("DELETE FROM samples WHERE ts < $cutoff", {"cutoff": int(cutoff_ns)}).fetchone()
                deleted = int(row[0]) if row else 0

            self._transaction(delete)
            return deleted

    # -- reading ----------------------------------------------------------------------------------

    def latest(self, tag_ids: Sequence[int] | None = None) -> SampleBatch:
        """From the in-memory copy; sorted by tag_id. The arrays of the all-tags answer are read-only."""
        return self._latest.get(tag_ids)

    def raw(self, tag_id: int, start_ns: int, end_ns: int, limit: int | None = None) -> SampleBatch:
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        params = {"tag": int(tag_id), "start": int(start_ns), "end": int(end_ns)}
        if limit is not None:
            params["limit"] = int(limit)
        limited = limit is not None
        cols = self._read(_raw_sql(_SOURCE_PLAIN, limited), _raw_sql(_SOURCE_DEDUPE, limited), params)
        ts = np.asarray(cols["ts"], np.int64)
        return SampleBatch(
            np.full(len(ts), tag_id if len(ts) else 0, np.int32),
            np.ascontiguousarray(ts),
            np.ascontiguousarray(cols["value"], np.float64),
            np.ascontiguousarray(cols["quality"], np.uint8),
        )

    def buckets(self, tag_id: int, start_ns: int, end_ns: int, bucket_ns: int) -> Buckets:
        if bucket_ns <= 0:
            raise ValueError("bucket_ns must be positive")
        params = {"tag": int(tag_id), "start": int(start_ns), "end": int(end_ns), "bucket": int(bucket_ns)}
        cols = self._read(_buckets_sql(_SOURCE_PLAIN), _buckets_sql(_SOURCE_DEDUPE), params)
        return Buckets(
            start=np.ascontiguousarray(cols["start"], np.int64),
            min=np.ascontiguousarray(cols["min"], np.float64),
            max=np.ascontiguousarray(cols["max"], np.float64),
            mean=np.ascontiguousarray(cols["mean"], np.float64),
            count=np.ascontiguousarray(cols["count"], np.int64),
            first=np.ascontiguousarray(cols["first"], np.float64),
            last=np.ascontiguousarray(cols["last"], np.float64),
        )

    def count(self) -> int:
        cols = self._read(_COUNT_PLAIN, _COUNT_DEDUPE, {})
        (values,) = cols.values()
        return int(values[0])

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's cursor and the connection (DuckDB checkpoints on close). Idempotent."""
        with self._write_lock, self._cursors_lock:
            if self._closed:
                return
            self._closed = True
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
            self._con.close()
