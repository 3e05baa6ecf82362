"""Edge gateway benchmark: the disk buffer, and forwarding a backlog to Mosquitto, against bare paho.

1. Buffer: append ``--samples`` samples in commits of ``--batch`` samples (SQLite WAL, one blob
   per commit), then read and delete them all the way the uplink does.
2. Backlog: the same samples on disk (100 tags of one device), forwarded by the gateway's
   uplink to a private Mosquitto as Sparkplug B DDATA (QoS 1, ``max_inflight`` 20, 500 metrics
   a message, flagged ``is_historical``), timed until every row is acknowledged and
   deleted. The peer publishes the same number of messages of the same size with a bare paho
   client (QoS 1, same window) and waits for every PUBACK: the ratio is what reading the disk,
   encoding and deleting cost on top of MQTT itself.
3. Encoding alone, per metric: live data, and backlog (the same plus the is_historical pass).

Run: python benchmarks/edge.py [--samples 1000000] [--batch 200] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from shopfloor.core.errors import NotReady
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.edge.buffer import DiskBuffer
from shopfloor.edge.catalog import MetricCatalog
from shopfloor.edge.config import parse_edge_config
from shopfloor.edge.gateway import wanted_metrics
from shopfloor.edge.payloads import encode_samples
from shopfloor.edge.uplink import Uplink
from shopfloor.testing.mosquitto import Mosquitto, find_mosquitto

console = Console(stderr=True, width=120)
TAGS = 100


def config_text(broker: str, data_dir: str) -> str:
    tags = "".join(f"      - {{name: t{i}, modbus: {{address: {i}, type: float32}}}}\n" for i in range(TAGS))
    return (f"gateway: {{group: bench, node: edge}}\nmqtt: {{broker: '{broker}'}}\n"
            f"buffer: {{data_dir: '{data_dir}', max_mb: 4096}}\ndevices:\n  - name: dev\n"
            f"    source: {{protocol: modbus, host: 127.0.0.1}}\n    tags:\n{tags}")


def batches(ids: np.ndarray, total: int, size: int) -> list[SampleBatch]:
    """Rows of ``size`` samples cycling over the tags, timestamps 1 ms apart."""
    out = []
    t0 = 1_763_800_000_000_000_000
    for start in range(0, total, size):
        n = min(size, total - start)
        k = np.arange(start, start + n)
        out.append(SampleBatch.of(ids[k % len(ids)], t0 + k * 1_000_000, np.sin(k * 0.01), Quality.GOOD))
    return out


def bench_buffer(rows: list[SampleBatch], directory: Path) -> dict[str, float]:
    buf = DiskBuffer(directory / "buffer.sqlite", 2**40)
    t = time.perf_counter()
    for b in rows:
        buf.append(b)
    append_s = time.perf_counter() - t
    total = sum(len(b) for b in rows)
    t = time.perf_counter()
    cursor = 0
    while got := buf.read(cursor, 2000):
        buf.delete([r for r, _ in got])
        cursor = got[-1][0]
    drain_s = time.perf_counter() - t
    buf.close()
    return {"append_samples_per_s": total / append_s, "read_delete_samples_per_s": total / drain_s,
            "rows_per_s": len(rows) / append_s}


def bench_backlog(rows: list[SampleBatch], broker: Mosquitto, directory: Path) -> dict[str, float]:
    config = parse_edge_config(config_text(broker.url, str(directory)))
    path = directory / "buffer.sqlite"
    buf = DiskBuffer(path, 2**40)
    catalog = MetricCatalog(path, wanted_metrics(config))
    ids = np.array([m.id for m in catalog.metrics if m.device == "dev"], np.int32)
    total = 0
    for b in rows:
        remapped = SampleBatch(ids[b.tag_id % TAGS], b.ts, b.value, b.quality)
        buf.append(remapped)
        total += len(b)
    uplink = Uplink(config, buf, catalog, lambda: {})
    t = time.perf_counter()
    uplink.start()
    while buf.stats().samples:
        time.sleep(0.01)
    seconds = time.perf_counter() - t
    messages = uplink.messages
    rtt = uplink.link.recent_rtt_ms()
    uplink.stop()
    catalog.close()
    buf.close()
    return {"samples_per_s": total / seconds, "seconds": seconds, "messages": messages,
            "rtt_ms_median_while_draining": rtt or float("nan")}


def bench_peer(messages: int, size: int, broker: Mosquitto) -> dict[str, float]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-bench-peer")
    client.max_inflight_messages_set(20)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = 0

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        acked += 1
        if acked == messages:
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    payload = b"\x00" * size
    t = time.perf_counter()
    for _ in range(messages):
        client.publish("spBv1.0/bench/DDATA/peer/dev", payload, qos=1)
    done.wait(600)
    seconds = time.perf_counter() - t
    client.loop_stop()
    client.disconnect()
    return {"messages_per_s": messages / seconds, "seconds": seconds}


def bench_encode() -> dict[str, float]:
    n = 500
    aliases = np.arange(n, dtype=np.uint64)
    types = np.full(n, 10, np.uint32)
    ts = np.arange(n, dtype=np.int64) * 1_000_000 + 1_763_800_000_000_000_000
    values = np.linspace(0, 1, n)
    quality = np.full(n, 192, np.uint8)
    out = {}
    for name, historical in (("live_us_per_metric", False), ("backlog_us_per_metric", True)):
        encode_samples(0, 0, aliases, types, ts, values, quality, historical=historical)
        reps = 200
        t = time.perf_counter()
        for _ in range(reps):
            encode_samples(0, 0, aliases, types, ts, values, quality, historical=historical)
        out[name] = (time.perf_counter() - t) / reps / n * 1e6
    out["message_bytes_500_metrics"] = float(len(encode_samples(0, 0, aliases, types, ts, values, quality,
                                                                historical=True)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=200, help="Samples per buffer commit.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of the backlog and the peer; the median is shown.")
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args()
    if find_mosquitto() is None:
        console.print("mosquitto is not installed: skipping the edge benchmark")
        return
    rows = batches(np.arange(TAGS, dtype=np.int32), args.samples, args.batch)
    results: dict[str, object] = {"machine": platform.processor() or platform.machine(), "samples": args.samples,
                                  "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp, console.status("buffer: append, read and delete"):
        results["buffer"] = bench_buffer(rows, Path(tmp))
    try:
        with Mosquitto() as broker:
            encode = bench_encode()  # also compiles the encoders, as the gateway does before its first session
            runs, peers = [], []
            for i in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp, \
                        console.status(f"backlog of {args.samples:,} samples, run {i + 1}/{args.repeat}"):
                    runs.append(bench_backlog(rows, broker, Path(tmp)))
                with console.status(f"peer: bare paho, same messages, run {i + 1}/{args.repeat}"):
                    peers.append(bench_peer(int(runs[-1]["messages"]), int(encode["message_bytes_500_metrics"]),
                                            broker))
            backlog = sorted(runs, key=lambda r: r["samples_per_s"])[len(runs) // 2]  # the median run
            peer = sorted(peers, key=lambda r: r["messages_per_s"])[len(peers) // 2]
            results["backlog"] = backlog
            results["peer"] = peer
            results["encode"] = encode
    except NotReady as exc:
        console.print(f"cannot start mosquitto ({exc}): skipping")
        return
    b, bl = results["buffer"], backlog
    assert isinstance(b, dict)
    ratio = (bl["messages"] / bl["seconds"]) / peer["messages_per_s"]
    results["backlog_vs_peer"] = ratio
    if args.json:
        print(json.dumps(results))
        return
    table = Table(title=f"edge gateway, {args.samples:,} samples ({TAGS} tags), commits of {args.batch}; "
                  f"median of {args.repeat} runs")
    table.add_column("what")
    table.add_column("measured", justify="right")
    table.add_row("buffer append (durable commit)", f"{b['append_samples_per_s']:,.0f} samples/s "
                  f"({b['rows_per_s']:,.0f} commits/s)")
    table.add_row("buffer read + delete", f"{b['read_delete_samples_per_s']:,.0f} samples/s")
    table.add_row("backlog forwarded, acknowledged, deleted", f"{bl['samples_per_s']:,.0f} samples/s "
                  f"({bl['messages']:,.0f} messages in {bl['seconds']:.2f} s)")
    table.add_row("peer: bare paho, same messages", f"{peer['messages_per_s']:,.0f} messages/s "
                  f"(gateway: {ratio:.2f}x)")
    table.add_row("round trip while draining (median)", f"{bl['rtt_ms_median_while_draining']:.1f} ms")
    table.add_row("encode, live (numba)", f"{encode['live_us_per_metric']:.3f} us/metric")
    table.add_row("encode, backlog (numba + is_historical pass)", f"{encode['backlog_us_per_metric']:.3f} us/metric")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
