"""Historian query benchmark: DuckDBHistorian against a plain DuckDB table in arrival order.

Loads N tags x D days at 1 Hz, time-major as a fleet delivers them, through
``DuckDBHistorian.write`` in chunks (compacting every ``--compact-rows`` rows, as ``write()``
itself would), and the same rows into the peer: one DuckDB table in arrival order, queried
with the straightforward GROUP BY that a naive implementation would use. Then times (median
of ``--runs``) one tag's last day in 1-minute buckets, one hour of raw samples, and the latest
value of every tag, and checks that both answer the same.

    python benchmarks/query.py                 # 100 tags x 1 day = 8.64 M rows
    python benchmarks/query.py --tags 300 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian.duckdb_store import DuckDBHistorian

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
DAY = 86_400 * S
HOUR = 3_600 * S
MINUTE = 60 * S

PEER_BUCKETS = """
    SELECT ts - ts % $bucket AS start, min(value), max(value), avg(value), count(*),
           arg_min(value, ts), arg_max(value, ts)
    FROM samples WHERE tag_id = $tag AND ts >= $start AND ts < $end AND quality <> 0 AND NOT isnan(value)
    GROUP BY start ORDER BY start
"""
PEER_RAW = "SELECT ts, value, quality FROM samples WHERE tag_id = $tag AND ts >= $start AND ts < $end ORDER BY ts"
PEER_LATEST = """
    SELECT tag_id, max(ts), arg_max(value, ts), arg_max(quality, ts) FROM samples GROUP BY tag_id ORDER BY tag_id
"""


def chunks(n_tags: int, seconds: int, chunk_rows: int, first_id: int) -> Iterator[SampleBatch]:
    """Time-major samples: every tag once per second; a sine per tag, 0.1 % bad samples with NaN."""
    total = n_tags * seconds
    for a in range(0, total, chunk_rows):
        k = np.arange(a, min(a + chunk_rows, total), dtype=np.int64)
        tag = k % n_tags
        sec = k // n_tags
        value = np.sin(sec / 600.0 + tag) * 10.0 + (k % 7) * 0.01
        bad = k % 997 == 0
        value[bad] = np.nan
        quality = np.where(bad, Quality.BAD, Quality.GOOD).astype(np.uint8)
        yield SampleBatch.of(first_id + tag, T0 + sec * S, value, quality)


def median_ms_pair(mine: Callable[[int], object], theirs: Callable[[int], object], runs: int) -> tuple[float, float]:
    """Median ms of each, alternating runs so that both see the same noise of a shared machine."""
    mine(0)  # warm-up
    theirs(0)
    a, b = [], []
    for i in range(runs):
        t = time.perf_counter()
        mine(i)
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs(i)
        b.append(time.perf_counter() - t)
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, default=100)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per write()")
    parser.add_argument("--compact-rows", type=int, default=1_000_000, help="compact every this many rows")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of tables")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory, removed")
    args = parser.parse_args()

    console = Console(stderr=args.json)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="shopfloor-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    hist_path, peer_path = data_dir / "historian.duckdb", data_dir / "peer.duckdb"
    for p in (hist_path, peer_path):
        for f in (p, p.with_name(p.name + ".wal")):
            f.unlink(missing_ok=True)
    try:
        result = run(args, console, hist_path, peer_path)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        report(console, result)


def run(args: argparse.Namespace, console: Console, hist_path: Path, peer_path: Path) -> dict[str, Any]:
    seconds = int(args.days * 86_400)
    n_rows = args.tags * seconds
    hist = DuckDBHistorian(hist_path, compact_rows=2**62)  # the benchmark compacts, to time it apart
    ids = hist.ensure_tags([f"bench/line{i // 50}/tag{i}" for i in range(args.tags)])
    first_id = min(ids.values())
    peer = duckdb.connect(str(peer_path))
    peer.execute("CREATE TABLE samples (tag_id INTEGER, ts BIGINT, value DOUBLE, quality UTINYINT)")

    write_s = compact_s = peer_s = 0.0
    compactions = compacted_rows = since_compact = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"loading {n_rows:,} rows", total=n_rows)
        for batch in chunks(args.tags, seconds, args.chunk, first_id):
            t = time.perf_counter()
            hist.write(batch)
            write_s += time.perf_counter() - t
            since_compact += len(batch)
            if since_compact >= args.compact_rows:
                t = time.perf_counter()
                compacted_rows += hist.compact()
                compact_s += time.perf_counter() - t
                compactions += 1
                since_compact = 0
            rows = pa.table({"tag_id": batch.tag_id, "ts": batch.ts, "value": batch.value, "quality": batch.quality})
            t = time.perf_counter()
            peer.register("_batch", rows)
            peer.execute("INSERT INTO samples SELECT * FROM _batch")
            peer.unregister("_batch")
            peer_s += time.perf_counter() - t
            progress.advance(task, len(batch))

    end = T0 + seconds * S
    day_start = max(T0, end - DAY)
    tags = sorted(ids.values())

    def tag_of(i: int) -> int:
        return tags[(i * 37) % len(tags)]

    def peer_params(i: int, start: int, stop: int, **extra: int) -> dict[str, int]:
        return {"tag": tag_of(i), "start": start, "end": stop, **extra}

    queries: dict[str, tuple[Callable[[int], object], Callable[[int], object]]] = {
        "buckets, one tag, 1 day in 1 min": (
            lambda i: hist.buckets(tag_of(i), day_start, end, MINUTE),
            lambda i: peer.execute(PEER_BUCKETS, peer_params(i, day_start, end, bucket=MINUTE)).fetchnumpy(),
        ),
        "raw, one tag, 1 hour": (
            lambda i: hist.raw(tag_of(i), end - 2 * HOUR, end - HOUR),
            lambda i: peer.execute(PEER_RAW, peer_params(i, end - 2 * HOUR, end - HOUR)).fetchnumpy(),
        ),
        "latest, all tags": (lambda i: hist.latest(), lambda i: peer.execute(PEER_LATEST).fetchnumpy()),
    }
    check_same_answers(hist, peer, tag_of(3), day_start, end)
    recent_rows = since_compact
    timings = {name: median_ms_pair(h, p, args.runs) for name, (h, p) in queries.items()}
    t = time.perf_counter()
    hist.compact()
    final_compact_ms = (time.perf_counter() - t) * 1e3
    bucket_name = "buckets, one tag, 1 day in 1 min"
    timings[bucket_name + " (after compact)"] = median_ms_pair(*queries[bucket_name], args.runs)
    hist.close()
    peer.close()
    return {
        "tags": args.tags,
        "days": args.days,
        "rows": n_rows,
        "chunk_rows": args.chunk,
        "compact_rows": args.compact_rows,
        "duckdb": duckdb.__version__,
        "ingest_rows_per_s_write": n_rows / write_s,
        "ingest_rows_per_s_write_and_compact": n_rows / (write_s + compact_s),
        "peer_ingest_rows_per_s": n_rows / peer_s,
        "compactions": compactions,
        "compact_ms_mean": compact_s / max(compactions, 1) * 1e3,
        "compact_ns_per_row": compact_s / max(compacted_rows, 1) * 1e9,
        "final_compact_ms": final_compact_ms,
        "recent_rows_at_query": recent_rows,
        "bytes_per_row": hist_path.stat().st_size / n_rows,
        "peer_bytes_per_row": peer_path.stat().st_size / n_rows,
        "queries_ms": {name: {"historian": h, "peer": p, "ratio": p / h} for name, (h, p) in timings.items()},
    }


def check_same_answers(hist: DuckDBHistorian, peer: duckdb.DuckDBPyConnection, tag: int, start: int, end: int) -> None:
    """Refuse to report timings of answers that differ."""
    got = hist.buckets(tag, start, end, MINUTE)
    mine = (got.start, got.min, got.max, got.mean, got.count, got.first, got.last)
    theirs = peer.execute(PEER_BUCKETS, {"tag": tag, "start": start, "end": end, "bucket": MINUTE}).fetchnumpy()
    for name, g, w in zip(
        ("start", "min", "max", "mean", "count", "first", "last"), mine, theirs.values(), strict=True
    ):
        if len(g) != len(w) or not np.allclose(np.asarray(g, np.float64), np.asarray(w, np.float64), rtol=1e-9):
            raise SystemExit(f"historian and peer disagree on buckets.{name}")
    latest = hist.latest()
    peer_latest = peer.execute(PEER_LATEST).fetchnumpy()
    if not np.array_equal(latest.ts, peer_latest["max(ts)"]):
        raise SystemExit("historian and peer disagree on latest")


def report(console: Console, r: dict[str, Any]) -> None:
    console.print(
        f"{r['tags']} tags x {r['days']} days at 1 Hz = {r['rows']:,} rows, time-major, "
        f"{r['chunk_rows']:,} rows per write, DuckDB {r['duckdb']}"
    )
    ingest = Table(title="ingest")
    for col in ("", "rows/s"):
        ingest.add_column(col, justify="right" if col else "left")
    ingest.add_row("historian write()", f"{r['ingest_rows_per_s_write'] / 1e6:.2f} M")
    ingest.add_row("historian write() + compact()", f"{r['ingest_rows_per_s_write_and_compact'] / 1e6:.2f} M")
    ingest.add_row("peer, plain appends", f"{r['peer_ingest_rows_per_s'] / 1e6:.2f} M")
    console.print(ingest)
    console.print(
        f"compaction: {r['compactions']} x {r['compact_rows']:,} rows, {r['compact_ms_mean']:.0f} ms each "
        f"({r['compact_ns_per_row']:.0f} ns/row); queries ran with {r['recent_rows_at_query']:,} rows not yet "
        f"compacted; on disk {r['bytes_per_row']:.1f} B/row (peer {r['peer_bytes_per_row']:.1f})"
    )
    table = Table(title=f"queries, median ms of runs ({r['tags']} tags)")
    for col in ("query", "historian", "peer", "peer / historian"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for name, q in r["queries_ms"].items():
        table.add_row(name, f"{q['historian']:.3g}", f"{q['peer']:.3g}", f"{q['ratio']:,.1f}x")
    console.print(table)


if __name__ == "__main__":
    main()
