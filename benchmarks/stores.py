"""Store comparison: the same samples into DuckDB, PostgreSQL and InfluxDB 1.x, then one bucketed query.

Called from benchmarks/ingest.py (the "stores" section); runs alone too:

    python benchmarks/stores.py [--json] [--store-tags 100] [--store-seconds 86400]

The samples: ``tags`` tags x ``seconds`` s at 1 Hz, time-major (every tag once per second, as a
fleet delivers them), float64 values, all GOOD (InfluxDB stores no NaN, so there are none).

* DuckDB and PostgreSQL: through the platform's own write path, a ``HistorianWriter`` over the
  historian (``DuckDBHistorian`` in a temp dir; ``PostgresHistorian`` on a private
  ``PostgresServer`` with fsync on and shared_buffers 1 GB), fed 100,000-row batches as fast as it
  takes them; the writer coalesces queued batches into commits of up to 1 M rows, each durable
  (committed) before it counts. Timed from the first submit to the last row committed; the
  batches' generation (NumPy) is inside the time.
* InfluxDB 1.x (private ``influxd``, shopfloor.testing.influxdb): HTTP ``/write`` line protocol,
  ``precision=s``, 5,000-point batches, persistent httpx connections, 1 and 2 concurrent writers
  (each on a fresh server); the better is quoted. The bodies are encoded before the clock starts,
  so InfluxDB's rate leaves out the client's encoding (in its favour). A 204 means the points
  are in its WAL, fsynced (``wal-fsync-delay = 0s``): durable, not yet compacted into TSM.
* Every store's sample count is checked against what was sent before its rate is quoted; a
  store that holds fewer shows its count and no rate.
* Query: one tag's day in 1-minute buckets, median ms of ``--store-runs`` (tag rotated per run):
  DuckDB/PostgreSQL via ``Historian.buckets`` (min/max/mean/count and first/last, NumPy arrays
  out); InfluxDB via InfluxQL ``SELECT min, max, mean, count ... GROUP BY time(1m)`` over
  ``/query``, JSON decoded (no first/last: asking for them too would cost InfluxDB more). One
  tag's buckets are checked against the samples written (count, min, max, mean) before timings
  count. InfluxDB is queried twice: right after ingest (points partly in its cache and in small
  TSM files) and, as quoted, once its cache is written out and the shard fully compacted (what a
  long-running server serves; the cold durations are set to 10 s to get there in the run).

How to read it: "vs InfluxDB" is store rate / InfluxDB's best rate for ingest (above 1: faster)
and InfluxDB ms / store ms for the query (above 1: faster). The machines are noisy 2-core boxes
and every server shares the two cores with the Python client: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from shopfloor.core.errors import NotReady
from shopfloor.core.samples import SampleBatch
from shopfloor.historian.base import Historian
from shopfloor.historian.writer import HistorianWriter

S = 1_000_000_000
T0_S = 1_767_225_600  # 2026-01-01T00:00:00Z
MINUTE = 60 * S
HISTORIAN_BATCH = 100_000
INFLUX_BATCH = 5_000
INFLUX_DB = "bench"


@dataclass
class StoreResult:
    store: str
    status: str  # "ok", "skipped: ...", "failed: ...", "incomplete"
    samples: int = 0
    stored: int | None = None
    seconds: float | None = None
    samples_per_s: float | None = None
    bucket_query_ms: float | None = None
    note: str = ""
    runs: dict[str, float] = field(default_factory=dict)  # e.g. InfluxDB samples/s per writer count


def values_of(k: np.ndarray[Any, np.dtype[np.int64]], tags: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    tag = k % tags
    sec = k // tags
    return np.sin(sec / 600.0 + tag) * 10.0 + (k % 7) * 0.01


def batches(tags: int, seconds: int, rows: int, first_id: int) -> Iterator[SampleBatch]:
    total = tags * seconds
    for a in range(0, total, rows):
        k = np.arange(a, min(a + rows, total), dtype=np.int64)
        yield SampleBatch.of(first_id + k % tags, (T0_S + k // tags) * S, values_of(k, tags))


def paths(tags: int) -> list[str]:
    return [f"bench/line{i // 50}/tag{i}" for i in range(tags)]


def tag_of(i: int, tags: int) -> int:
    """The tag index queried in run i (rotated, as benchmarks/query.py)."""
    return (i * 37) % tags


def median_ms(fn: Callable[[int], object], runs: int) -> float:
    fn(runs)  # warm-up
    times = []
    for i in range(runs):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def reference_buckets(tags: int, seconds: int, tag: int) -> dict[str, np.ndarray[Any, Any]]:
    """The expected 1-minute buckets of one tag, computed from the generator."""
    k = np.arange(seconds, dtype=np.int64) * tags + tag
    v = values_of(k, tags)
    n = seconds // 60 * 60
    m = v[:n].reshape(-1, 60)
    return {"count": np.full(len(m), 60), "min": m.min(1), "max": m.max(1), "mean": m.mean(1)}


def check_buckets(name: str, got: dict[str, np.ndarray[Any, Any]], want: dict[str, np.ndarray[Any, Any]]) -> None:
    for key, w in want.items():
        g = np.asarray(got[key], np.float64)[: len(w)]
        if len(g) != len(w) or not np.allclose(g, w, rtol=1e-9, atol=1e-9):
            raise RuntimeError(f"{name}: buckets.{key} differ from the samples written")


def run_historian(name: str, historian: Historian, tags: int, seconds: int, runs: int, console: Console) -> StoreResult:
    total = tags * seconds
    ids = historian.ensure_tags(paths(tags))
    id_list = [ids[p] for p in paths(tags)]
    first_id = id_list[0]
    if id_list != list(range(first_id, first_id + tags)):
        raise RuntimeError(f"{name}: tag ids are not consecutive")
    writer = HistorianWriter(historian)
    writer.start()
    with console.status(f"stores: {name}, writing {total:,} samples"):
        t = time.perf_counter()
        for batch in batches(tags, seconds, HISTORIAN_BATCH, first_id):
            writer.submit(batch)
        while writer.rows_committed < total and writer.write_errors == 0:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t
        writer.stop()
    if writer.write_errors:
        raise RuntimeError(f"{name}: write failed: {writer.last_error}")
    stored = historian.count()
    result = StoreResult(name, "ok", total, stored, elapsed, total / elapsed)
    if stored != total:
        result.status, result.samples_per_s = "incomplete", None
        return result
    end = (T0_S + seconds) * S
    start = end - min(seconds, 86_400) * S
    probe = tag_of(3, tags)
    b = historian.buckets(first_id + probe, start, end, MINUTE)
    check_buckets(name, {"count": b.count, "min": b.min, "max": b.max, "mean": b.mean},
                  reference_buckets(tags, seconds, probe))  # fmt: skip
    with console.status(f"stores: {name}, bucket query x {runs}"):
        result.bucket_query_ms = median_ms(
            lambda i: historian.buckets(first_id + tag_of(i, tags), start, end, MINUTE), runs
        )
    return result


def run_duckdb(tags: int, seconds: int, runs: int, console: Console) -> StoreResult:
    from shopfloor.historian.duckdb_store import DuckDBHistorian

    tmp = Path(tempfile.mkdtemp(prefix="shopfloor-bench-stores-"))
    try:
        historian = DuckDBHistorian(tmp / "historian.duckdb")
        try:
            r = run_historian("DuckDB (embedded)", historian, tags, seconds, runs, console)
        finally:
            historian.close()
        r.note = "HistorianWriter, commits of up to 1 M rows"
        return r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_postgres(tags: int, seconds: int, runs: int, console: Console) -> StoreResult:
    from shopfloor.historian.postgres_store import PostgresHistorian
    from shopfloor.testing.postgres import PostgresServer, fresh_database

    with PostgresServer(fast=False, settings={"shared_buffers": "1GB"}) as server, fresh_database(server) as url:
        historian = PostgresHistorian(url, write_connections=2)
        try:
            r = run_historian("PostgreSQL", historian, tags, seconds, runs, console)
        finally:
            historian.close()
    r.note = "HistorianWriter, COPY over 2 connections, fsync on, PK (tag_id, ts)"
    return r


def influx_bodies(tags: int, seconds: int) -> list[bytes]:
    """Line protocol, precision s, 5,000 points per body: ``m,tag=t17 value=1.25 1767225600``."""
    prefixes = [f"m,tag=t{t} value=" for t in range(tags)]
    total = tags * seconds
    out = []
    for a in range(0, total, INFLUX_BATCH):
        k = np.arange(a, min(a + INFLUX_BATCH, total), dtype=np.int64)
        vals = values_of(k, tags).tolist()
        secs = (T0_S + k // tags).tolist()
        tag_idx = (k % tags).tolist()
        out.append("\n".join(
            [f"{prefixes[t]}{v!r} {s}" for t, v, s in zip(tag_idx, vals, secs, strict=True)]
        ).encode())  # fmt: skip
    return out


def influx_write(url: str, bodies: list[bytes], writers: int) -> float:
    """Post every body, ``writers`` threads each on its own persistent connection; returns seconds."""
    import httpx

    errors: list[str] = []

    def work(mine: list[bytes]) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for body in mine:
                resp = client.post("/write", params={"db": INFLUX_DB, "precision": "s"}, content=body)
                if resp.status_code != 204:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")
                    return

    threads = [threading.Thread(target=work, args=(bodies[w::writers],)) for w in range(writers)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"InfluxDB /write: {errors[0]}")
    return elapsed


def run_influxdb(tags: int, seconds: int, runs: int, writer_counts: list[int], console: Console) -> StoreResult:
    from shopfloor.testing.influxdb import InfluxDB, find_influxd, influxd_version

    binary = find_influxd()
    if binary is None:
        raise NotReady("influxd is not installed (Debian package 'influxdb')")
    version = influxd_version(binary).split(" (")[0]
    total = tags * seconds
    with console.status(f"stores: InfluxDB, encoding {total:,} points as line protocol"):
        bodies = influx_bodies(tags, seconds)
    end = (T0_S + seconds) * S
    start = end - min(seconds, 86_400) * S
    best: StoreResult | None = None
    rates: dict[str, float] = {}
    for writers in writer_counts:
        with InfluxDB() as server:
            server.create_database(INFLUX_DB)
            with console.status(f"stores: InfluxDB, writing {total:,} points, {writers} writer(s)"):
                elapsed = influx_write(server.url, bodies, writers)
            counted = server.query("SELECT count(value) FROM m", INFLUX_DB)
            stored = int(counted[0]["series"][0]["values"][0][1])  # type: ignore[index]
            r = StoreResult(f"InfluxDB {version.removeprefix('InfluxDB ')}", "ok", total, stored, elapsed,
                            total / elapsed)  # fmt: skip
            rates[f"samples/s, {writers} writer(s)"] = total / elapsed
            if stored != total:
                r.status, r.samples_per_s = "incomplete", None
            else:
                import httpx

                with httpx.Client(base_url=server.url, timeout=120) as client:

                    def query(i: int) -> dict[str, np.ndarray[Any, Any]]:
                        q = (f"SELECT min(value),max(value),mean(value),count(value) FROM m WHERE \"tag\"='t{i}' "
                             f"AND time >= {start} AND time < {end} GROUP BY time(1m)")  # fmt: skip
                        resp = client.get("/query", params={"db": INFLUX_DB, "q": q, "epoch": "ns"})
                        resp.raise_for_status()
                        rows = resp.json()["results"][0]["series"][0]["values"]
                        cols = list(zip(*rows, strict=True))
                        return {"start": np.array(cols[0], np.int64), "min": np.array(cols[1], np.float64),
                                "max": np.array(cols[2], np.float64), "mean": np.array(cols[3], np.float64),
                                "count": np.array(cols[4], np.int64)}  # fmt: skip

                    probe = tag_of(3, tags)
                    check_buckets("InfluxDB", query(probe), reference_buckets(tags, seconds, probe))
                    with console.status(f"stores: InfluxDB, bucket query x {runs}, right after ingest"):
                        fresh_ms = median_ms(lambda i: query(tag_of(i, tags)), runs)
                    with console.status("stores: InfluxDB, waiting for its cache to be written out and compacted"):
                        t = time.perf_counter()
                        settled = server.settle()
                        settle_s = time.perf_counter() - t
                    with console.status(f"stores: InfluxDB, bucket query x {runs}, compacted"):
                        r.bucket_query_ms = median_ms(lambda i: query(tag_of(i, tags)), runs)
                    r.runs[f"query ms right after ingest, {writers} writer(s)"] = fresh_ms
                    r.runs[f"query ms after compaction, {writers} writer(s)"] = r.bucket_query_ms
                    if not settled:
                        r.note += f"not compacted after {settle_s:.0f} s; "
            r.note += f"line protocol, {INFLUX_BATCH:,}-point batches, {writers} writer(s); acked after WAL fsync"
        console.print(f"stores: InfluxDB, {writers} writer(s): {total / elapsed:,.0f} samples/s, {stored:,} stored")
        if best is None or (r.samples_per_s or 0) > (best.samples_per_s or 0):
            best = r
    assert best is not None
    best.runs = {**rates, **best.runs}
    return best


def run(tags: int, seconds: int, runs: int, influx_writers: list[int], console: Console) -> dict[str, Any]:
    """Every store in turn; a store that cannot run is reported as skipped (or failed), never raised."""
    results: list[StoreResult] = []
    steps: list[tuple[str, Callable[[], StoreResult]]] = [
        ("DuckDB (embedded)", lambda: run_duckdb(tags, seconds, runs, console)),
        ("PostgreSQL", lambda: run_postgres(tags, seconds, runs, console)),
        ("InfluxDB", lambda: run_influxdb(tags, seconds, runs, influx_writers, console)),
    ]
    for name, step in steps:
        try:
            r = step()
        except NotReady as exc:
            r = StoreResult(name, f"skipped: {exc}")
        except Exception as exc:  # one store failing must not lose the others' figures
            r = StoreResult(name, f"failed: {type(exc).__name__}: {exc}")
        console.print(f"stores: {r.store}: {r.status}"
                      + (f", {r.samples_per_s:,.0f} samples/s" if r.samples_per_s else "")
                      + (f", buckets {r.bucket_query_ms:.1f} ms" if r.bucket_query_ms else ""))  # fmt: skip
        results.append(r)
    influx = next((r for r in results if r.store.startswith("InfluxDB") and r.status == "ok"), None)
    rows = []
    for r in results:
        row: dict[str, Any] = asdict(r)
        row["ingest_vs_influxdb"] = (
            r.samples_per_s / influx.samples_per_s if influx and influx.samples_per_s and r.samples_per_s else None
        )
        row["query_vs_influxdb"] = (
            influx.bucket_query_ms / r.bucket_query_ms
            if influx and influx.bucket_query_ms and r.bucket_query_ms else None
        )  # fmt: skip
        rows.append(row)
    return {"tags": tags, "seconds": seconds, "samples": tags * seconds, "query_runs": runs, "stores": rows}


def report(r: dict[str, Any]) -> None:
    hours = min(r["seconds"], 86_400) / 3600
    title = (f"stores: {r['tags']} tags x {r['seconds']:,} s at 1 Hz = {r['samples']:,} samples, time-major; "
             f"bucket query: one tag, {hours:g} h in 1 min, median of {r['query_runs']}")  # fmt: skip
    table = Table(title=title)
    for col in ("store", "samples/s durable", "vs InfluxDB", "stored", "bucket query ms", "vs InfluxDB ", "how"):
        table.add_column(col, justify="left" if col in ("store", "how") else "right")
    for s in r["stores"]:
        if s["status"] not in ("ok", "incomplete"):
            table.add_row(s["store"], "", "", "", "", "", s["status"])
            continue
        table.add_row(
            s["store"],
            f"{s['samples_per_s']:,.0f}" if s["samples_per_s"] else "not quoted",
            f"{s['ingest_vs_influxdb']:.2f}x" if s["ingest_vs_influxdb"] else "",
            f"{s['stored']:,}" + ("" if s["status"] == "ok" else " INCOMPLETE"),
            f"{s['bucket_query_ms']:.1f}" if s["bucket_query_ms"] else "",
            f"{s['query_vs_influxdb']:.2f}x" if s["query_vs_influxdb"] else "",
            s["note"],
        )
    Console(width=200).print(table)
    for s in r["stores"]:
        if s["runs"]:
            print(f"{s['store']}: " + ", ".join(f"{k}: {v:,.1f}" for k, v in s["runs"].items()))
    print("vs InfluxDB: ingest = store / InfluxDB (best writer count); query = InfluxDB ms / store ms;"
          " above 1 = faster")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--store-tags", type=int, default=100, help="stores section: tags")
    ap.add_argument("--store-seconds", type=int, default=86_400, help="stores section: seconds of 1 Hz samples")
    ap.add_argument("--store-runs", type=int, default=10, help="stores section: bucket query runs (median)")
    ap.add_argument("--influx-writers", default="1,2", help="stores section: InfluxDB concurrent writer counts")


def run_from_args(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    writers = [int(w) for w in str(args.influx_writers).split(",") if w.strip()]
    return run(args.store_tags, args.store_seconds, args.store_runs, writers, console)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = ap.parse_args()
    r = run_from_args(args, Console(stderr=True))
    if args.json:
        print(json.dumps(r))
    else:
        report(r)


if __name__ == "__main__":
    main()
