"""Ingest benchmark: a real broker, a publisher process, the platform's ingest path, durable storage.

Measures, for (a) Sparkplug B DDATA payloads of many metrics and (b) one sample
per message: samples/s sustained and durably stored (counted in the historian
after the run), end-to-end latency from publish to queryable (commit) p50/p99,
and peak RSS of the platform process. Side by side, the same publisher stream
goes to a peer: a bare paho subscriber that only counts messages (no decode, no
storage), the ceiling of this broker and client on this machine; the ratio says
how much of it the platform keeps.

The platform runs with each historian backend of ``--backends``: DuckDB (embedded, in a temp
dir) and PostgreSQL (a private server, shopfloor.testing.postgres, fsync on: durable commits; a
fresh database per run). A backend whose binaries are missing is skipped, saying so.

Then the "stores" section (benchmarks/stores.py): the same samples (100 tags x 1 day at 1 Hz,
time-major) written to DuckDB and PostgreSQL through the platform's HistorianWriter and to a
private InfluxDB 1.x over its HTTP line protocol in 5,000-point batches (1 and 2 writers, the
better quoted), each store's count checked; then one tag's day in 1-minute buckets on each.

How to read it:
* MQTT table: "samples/s" is the median of ``--repeat`` runs, sustained and committed; "vs peer"
  is the median of the run-by-run ratios to the bare subscriber (1.00x = the platform keeps up
  with what the broker and paho deliver at all); latency is measured at ``--load`` of the
  measured throughput, so it shows queueing below capacity, not a backlog.
* Stores table: samples/s durable (committed / WAL-fsynced) and the bucket query's median ms;
  "vs InfluxDB" is store rate / InfluxDB's for ingest and InfluxDB ms / store ms for the query,
  so above 1 is better in both. Targets: DuckDB >= 2x InfluxDB's ingest, PostgreSQL >= 1x.
* These are noisy 2-core machines where every server shares the cores with the Python client:
  compare ratios taken in one run, not absolute figures across runs.

Run: python benchmarks/ingest.py [--json] [--seconds 10] [--metrics 200] [--devices 50]
     [--backends duckdb,postgres] [--no-stores] [--store-tags 100] [--store-seconds 86400]
     [--influx-writers 1,2] [--cases a,b | --cases none]
Uses Mosquitto where installed, else the embedded broker (it says which).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psutil
from rich.console import Console
from rich.table import Table

from shopfloor.config.schema import PlantConfig
from shopfloor.connectors.mqtt.sparkplug import DataType, MetricSpec, encode_birth, encode_data
from shopfloor.core.errors import NotReady
from shopfloor.historian import open_historian
from shopfloor.platform import Platform
from shopfloor.testing.machine import cpu_model
from shopfloor.testing.mosquitto import Mosquitto, find_mosquitto
from shopfloor.testing.postgres import PostgresServer, fresh_database

sys.path.insert(0, str(Path(__file__).parent))
import stores as stores_bench  # benchmarks/ is not a package: found through sys.path

GROUP, NODE = "bench", "edge1"
console = Console(stderr=True)


@dataclass
class Result:
    case: str
    sink: str
    messages: int
    samples: int
    seconds: float
    samples_per_s: float
    stored: int | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    peak_rss_mb: float | None
    ratio_runs: list[int] | None = None  # samples/s of every repeat (throughput rows)
    peer_ratio: float | None = None  # median over repeats of platform / peer, pair by pair
    backend: str | None = None  # the platform's historian backend; None for the peer
    role: str = "throughput"  # "throughput", "peer" or "latency"


BACKEND_NAMES = {"duckdb": "DuckDB", "postgres": "PostgreSQL"}


def plant(devices: int, metrics: int, historian_url: str | None = None) -> PlantConfig:
    equipment = [
        {
            "name": f"dev{d}",
            "source": {"protocol": "sparkplug", "group": GROUP, "node": NODE, "device": f"dev{d}"},
            "tags": [{"name": f"m{m}"} for m in range(metrics)],
        }
        for d in range(devices)
    ]
    return PlantConfig.model_validate({
        "site": {"name": "bench", "areas": [{"name": "a", "lines": [{"name": "l", "equipment": equipment}]}]},
        # A client id of its own per run: the broker keeps a persistent session's backlog for its next connect.
        "mqtt": {"qos": 1, "client_id": f"bench-ingest-{time.monotonic_ns()}"},
        "historian": {"backend": "postgres", "url": historian_url} if historian_url else {"backend": "duckdb"},
    })


def publish(host: str, port: int, devices: int, metrics: int, seconds: float, qos: int, rate: float,
            ready: mp.Event, go: mp.Event, out: mp.Queue) -> None:
    """The publisher process: births, then DDATA round-robin over devices, as fast as the client goes
    (rate 0) or paced at `rate` messages/s."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(20_000)  # flow control: a full queue makes publish() return QUEUE_SIZE
    client.connect(host, port)
    client.loop_start()
    specs = [MetricSpec(f"m{m}", DataType.Double, m) for m in range(metrics)]
    aliases = np.arange(metrics, dtype=np.uint64)
    types = np.full(metrics, int(DataType.Double), np.uint32)
    rng = np.random.default_rng(7)
    base_values = rng.normal(50, 10, (devices, metrics))
    ready.set()
    go.wait()
    seq = 0
    now_ms = int(time.time() * 1000)
    client.publish(f"spBv1.0/{GROUP}/NBIRTH/{NODE}", encode_birth(now_ms, seq, [], [], bdseq=0), qos=qos)
    for d in range(devices):
        seq = (seq + 1) % 256
        client.publish(f"spBv1.0/{GROUP}/DBIRTH/{NODE}/dev{d}",
                       encode_birth(now_ms, seq, specs, base_values[d].tolist()), qos=qos)
    topics = [f"spBv1.0/{GROUP}/DDATA/{NODE}/dev{d}" for d in range(devices)]
    sent = sent_samples = 0
    start = time.monotonic()
    last_ms = np.zeros(devices, np.int64)
    info = None
    while time.monotonic() - start < seconds:
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        for d in range(devices):
            seq = (seq + 1) % 256
            # The payload timestamp is the send time and, with no metric timestamps, every sample's time:
            # kept distinct per device so each (tag, ts) is new.
            ts_ms = max(int(time.time() * 1000), int(last_ms[d]) + 1)
            last_ms[d] = ts_ms
            payload = encode_data(ts_ms, seq, aliases, types, base_values[d] + sent * 1e-3)
            info = client.publish(topics[d], payload, qos=qos)
            while info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                time.sleep(0.001)
                info = client.publish(topics[d], payload, qos=qos)
            sent += 1
            sent_samples += metrics
    if info is not None:
        info.wait_for_publish(60)
    elapsed = time.monotonic() - start
    client.loop_stop()
    client.disconnect()
    out.put((sent, sent_samples, elapsed))


class NullSink:
    """The peer: a paho subscriber that counts messages and does nothing else."""

    def __init__(self, host: str, port: int, qos: int) -> None:
        self.messages = 0
        self.first = self.last = 0.0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-null", clean_session=True)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(f"spBv1.0/{GROUP}/DDATA/#", qos)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if not self.messages:
            self.first = now
        self.last = now
        self.messages += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_case(case: str, sink: str, host: str, port: int, broker_url: str, devices: int, metrics: int,
             seconds: float, qos: int, rate: float = 0.0, pg: PostgresServer | None = None) -> Result:
    """One run. ``sink`` is "peer", or "platform" with DuckDB, or PostgreSQL on ``pg`` when given
    (a fresh database per run, dropped after)."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database(pg)) if sink == "platform" and pg is not None else None
        return _run_case(case, sink, host, port, broker_url, devices, metrics, seconds, qos, rate, url)


def _run_case(case: str, sink: str, host: str, port: int, broker_url: str, devices: int, metrics: int,
              seconds: float, qos: int, rate: float, pg_url: str | None) -> Result:
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=publish, args=(host, port, devices, metrics, seconds, qos, rate, ready, go, out))
    proc.start()
    ready.wait(60)
    if sink == "platform":
        data_dir = Path(tempfile.mkdtemp(prefix="shopfloor-bench-"))
        platform = Platform(plant(devices, metrics, pg_url), data_dir=data_dir, broker_url=broker_url)
        platform.start()
        rss_peak = [0.0]
        timeline: list[tuple[float, int]] = []
        stop = threading.Event()
        me = psutil.Process()
        writer = platform.writer

        def watch() -> None:
            while not stop.is_set():
                rss_peak[0] = max(rss_peak[0], me.memory_info().rss / 2**20)
                timeline.append((time.monotonic(), writer.rows_committed))
                time.sleep(0.02)

        threading.Thread(target=watch, daemon=True).start()
        births = devices * metrics
        go.set()
        sent, sent_samples, _ = out.get(timeout=seconds + 120)
        proc.join(30)
        expected = sent_samples + births
        with console.status(f"{case}: waiting for the historian to commit {expected:,} samples"):
            deadline = time.monotonic() + 300
            while writer.rows_committed < expected and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(0.05)
        stop.set()
        p50, p99 = writer.latency.percentiles_ms(50, 99)
        platform.stop()
        # Drop the persistent session, or the broker queues every later run's messages for it.
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=platform.config.mqtt.client_id,
                              clean_session=True)
        cleaner.connect(host, port)
        cleaner.disconnect()
        backend = "postgres" if pg_url else "duckdb"
        historian = open_historian(backend, data_dir, pg_url)
        stored = historian.count()
        historian.close()
        shutil.rmtree(data_dir, ignore_errors=True)  # a run's DuckDB files are hundreds of MB
        # Sustained rate over the data messages: from the first commit past the births to the last commit.
        start_t, start_rows = next(((t, r) for t, r in timeline if r > births), timeline[-1])
        end_t, end_rows = next(((t, r) for t, r in timeline if r >= expected), timeline[-1])
        span = max(end_t - start_t, 1e-9)
        label = f"shopfloor, {BACKEND_NAMES[backend]}"
        if rate:
            label += f", at {rate * metrics:,.0f} samples/s offered"
        return Result(case, label, sent, sent_samples, span, (end_rows - start_rows) / span, stored - births,
                      p50, p99, rss_peak[0], backend=backend, role="latency" if rate else "throughput")
    sink_client = NullSink(host, port, qos)
    time.sleep(0.3)
    go.set()
    sent, sent_samples, _ = out.get(timeout=seconds + 120)
    proc.join(30)
    deadline = time.monotonic() + 30
    while sink_client.messages < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    sink_client.close()
    span = max(sink_client.last - sink_client.first, 1e-9)
    received = sink_client.messages
    return Result(case, "peer: bare paho subscriber", sent, sent_samples, span, received * metrics / span, None,
                  None, None, None, role="peer")


def _query_figure() -> dict[str, float]:
    """The bucketed-query figure of benchmarks/query.py (100 tags x 1 day), run here too."""
    sys.path.insert(0, str(Path(__file__).parent))
    import query as query_bench

    opts = argparse.Namespace(tags=100, days=1.0, chunk=100_000, compact_rows=1_000_000, runs=20)
    with tempfile.TemporaryDirectory(prefix="shopfloor-bench-") as tmp:
        r = query_bench.run(opts, console, Path(tmp) / "historian.duckdb", Path(tmp) / "peer.duckdb")
    q = r["queries_ms"]["buckets, one tag, 1 day in 1 min"]
    return {"tags": r["tags"], "historian_ms": q["historian"], "peer_ms": q["peer"], "ratio": q["ratio"]}


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def run_mqtt(args: argparse.Namespace, backends: list[str], pg: PostgresServer | None) -> tuple[str, list[Result]]:
    """The MQTT end-to-end section; returns the broker's name and the results."""
    binary = find_mosquitto()
    broker_ctx = Mosquitto() if binary else None
    if broker_ctx is not None:
        broker_ctx.start()
        host, port, url, broker_name = broker_ctx.host, broker_ctx.port, broker_ctx.url, "mosquitto"
    else:
        from shopfloor.connectors.mqtt.broker import EmbeddedBroker
        from shopfloor.core.net import free_port

        embedded = EmbeddedBroker("127.0.0.1", free_port())
        embedded.start()
        host, port, url, broker_name = embedded.host, embedded.port, embedded.url, "embedded amqtt"
    console.print(f"broker: {broker_name} on {url}")
    cases = []
    if "a" in args.cases:
        cases.append((f"(a) Sparkplug B, {args.metrics} metrics/message", args.devices, args.metrics))
    if "b" in args.cases:
        cases.append(("(b) one sample per message", args.devices, 1))
    results: list[Result] = []
    try:
        for name, devices, metrics in cases:
            runs: dict[str, list[Result]] = {b: [] for b in backends}
            peers: list[Result] = []
            for i in range(args.repeat):
                console.print(f"{name}: throughput {i + 1}/{args.repeat}: platform on "
                              f"{', '.join(BACKEND_NAMES[b] for b in backends)}, then peer, {args.seconds:.0f} s each")
                for b in backends:
                    runs[b].append(run_case(name, "platform", host, port, url, devices, metrics, args.seconds,
                                            args.qos, pg=pg if b == "postgres" else None))
                peers.append(run_case(name, "peer", host, port, url, devices, metrics, args.seconds, args.qos))
            # The machines are noisy: quote the median run, and the median of the pair-by-pair ratios.
            peer = sorted(peers, key=lambda r: r.samples_per_s)[len(peers) // 2]
            case_results: list[Result] = []
            paced_results: list[Result] = []
            for b in backends:
                ordered = sorted(runs[b], key=lambda r: r.samples_per_s)
                ours = ordered[len(ordered) // 2]
                ours.ratio_runs = [round(r.samples_per_s) for r in runs[b]]
                ours.peer_ratio = _median([a.samples_per_s / p.samples_per_s
                                           for a, p in zip(runs[b], peers, strict=True) if p.samples_per_s])
                case_results.append(ours)
                # Latency means something only below capacity: offer a fixed share of the measured throughput.
                rate = args.load * min(ours.samples_per_s, peer.samples_per_s) / metrics
                console.print(f"{name}: {BACKEND_NAMES[b]}: latency at {args.load:.0%} of that throughput ...")
                paced_results.append(run_case(name, "platform", host, port, url, devices, metrics, args.seconds,
                                              args.qos, rate, pg=pg if b == "postgres" else None))
            results += [*case_results, peer, *paced_results]
    finally:
        if broker_ctx is not None:
            broker_ctx.stop()
    return broker_name, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="publishing time per run")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--metrics", type=int, default=200, help="metrics per Sparkplug payload in case (a)")
    ap.add_argument("--qos", type=int, default=1, choices=[0, 1])
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    ap.add_argument("--cases", default="a,b", help="MQTT cases: a, b, a,b, or none")
    ap.add_argument("--backends", default="duckdb,postgres", help="historian backends for the MQTT cases")
    ap.add_argument("--no-query", action="store_true", help="skip the bucketed-query figure")
    ap.add_argument("--no-stores", action="store_true", help="skip the stores section (DuckDB, PostgreSQL, InfluxDB)")
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs per case; the median is shown")
    ap.add_argument("--load", type=float, default=0.5, help="share of the measured throughput offered for latency")
    stores_bench.add_arguments(ap)
    args = ap.parse_args()

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKEND_NAMES]
    if unknown:
        ap.error(f"unknown backend(s) {unknown}; choose from {list(BACKEND_NAMES)}")
    skipped: list[str] = []
    broker_name, results = "", []
    with contextlib.ExitStack() as stack:
        pg = None
        if "postgres" in backends and args.cases != "none":
            try:
                pg = stack.enter_context(PostgresServer(fast=False, settings={"shared_buffers": "1GB"}))
            except NotReady as exc:
                skipped.append(f"MQTT on PostgreSQL skipped: {exc}")
                console.print(skipped[-1])
                backends.remove("postgres")
        if args.cases != "none" and backends:
            broker_name, results = run_mqtt(args, backends, pg)
    query = None
    if not args.no_query:
        console.print("query: one tag's day in 1-minute buckets among 100 tags (benchmarks/query.py) ...")
        query = _query_figure()
    stores = None
    if not args.no_stores:
        console.print("stores: the same samples into DuckDB, PostgreSQL and InfluxDB (benchmarks/stores.py) ...")
        stores = stores_bench.run_from_args(args, console)
    cpu = cpu_model()
    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {cpu}"
    if args.json:
        print(json.dumps({"broker": broker_name, "qos": args.qos, "machine": machine, "skipped": skipped,
                          "results": [asdict(r) for r in results], "bucket_query": query, "stores": stores}))
        return
    for line in skipped:
        print(line)
    if results:
        table = Table(title=f"ingest benchmark: {broker_name}, QoS {args.qos}, {machine}")
        for col in ("case", "sink", "samples/s", "vs peer", "stored", "latency p50 ms", "latency p99 ms",
                    "peak RSS MB"):
            table.add_column(col, justify="right" if col not in ("case", "sink") else "left")
        for r in results:
            paced = r.role == "latency"
            table.add_row(
                r.case, r.sink, f"{r.samples_per_s:,.0f}", f"{r.peer_ratio:.2f}x" if r.peer_ratio else "",
                f"{r.stored:,}" if r.stored is not None else "",
                f"{r.latency_ms_p50:.1f}" if r.latency_ms_p50 is not None and paced else "",
                f"{r.latency_ms_p99:.1f}" if r.latency_ms_p99 is not None and paced else "",
                f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb else "",
            )
        Console(width=160).print(table)
        for r in results:
            if r.ratio_runs:
                print(f"{r.case}, {r.sink}: samples/s of the {len(r.ratio_runs)} throughput runs: {r.ratio_runs}")
    if query is not None:
        print(f"bucketed query, one tag, 1 day (86,400 raw samples) in 1-minute buckets, {query['tags']} tags stored: "
              f"{query['historian_ms']:.1f} ms (peer, plain DuckDB table in arrival order: {query['peer_ms']:.1f} ms,"
              f" {query['ratio']:.1f}x)")
    if results:
        print("stored: samples found in the historian after the platform stopped and reopened it (births excluded);"
              " latency: publish (payload timestamp) to committed, measured at the offered rate shown")
    if stores is not None:
        stores_bench.report(stores)


if __name__ == "__main__":
    sys.exit(main())
