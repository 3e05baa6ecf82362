"""Alarm benchmark: publish-to-alarm latency with many active rules, idle and under background ingest.

A real Mosquitto, the platform (DuckDB), ``--rules`` limit rules on background tags (always
evaluated, never crossed) and one probe rule. A background publisher process (Sparkplug B,
``--metrics`` metrics per DDATA, the publisher of benchmarks/ingest.py) offers ``--rate``
samples/s. Every ``--probe-interval`` seconds the benchmark publishes one JSON sample of the
probe tag that crosses its limit (alternately up and down), and measures the time from the
publish call to the moment the engine has journaled the transition and calls its listeners
(the same call that feeds /api/ws/alarms and notifications). The engine evaluates batches as the
historian writer accepts them, before their commit (see docs/alarms.md).

Cases: "idle" (the rules, no background ingest) is the baseline; "under ingest" adds the
background load. The ratio is p99 under ingest / p99 idle. Target: p99 under 100 ms.

Run: python benchmarks/alarms.py [--json] [--seconds 20] [--rules 1000] [--rate 100000]
     [--metrics 200] [--probe-interval 0.1] [--out benchmarks/out/alarms]
Needs the mosquitto binary; without it the benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
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
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psutil
from rich.console import Console
from rich.table import Table

from shopfloor.config.schema import PlantConfig
from shopfloor.connectors.mqtt.jsonfmt import encode_json
from shopfloor.core.samples import SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.machine import cpu_model
from shopfloor.testing.mosquitto import Mosquitto, find_mosquitto

sys.path.insert(0, str(Path(__file__).parent))
import ingest as ingest_bench  # benchmarks/ is not a package: found through sys.path

console = Console(stderr=True)
PROBE = "bench/a/l/probe/value"


@dataclass
class CaseResult:
    case: str
    rules: int
    offered_samples_per_s: float
    committed_samples_per_s: float
    probes: int
    received: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    commit_p50_ms: float | None
    commit_p99_ms: float | None
    ingest_p50_ms: float | None
    ingest_p99_ms: float | None
    engine_p50_ms: float | None
    engine_p99_ms: float | None
    eval_ms_max: float
    dropped_batches: int
    engine_samples: int


def plant(devices: int, metrics: int, rules: int) -> PlantConfig:
    equipment: list[dict[str, Any]] = [
        {"name": f"dev{d}", "source": {"protocol": "sparkplug", "group": ingest_bench.GROUP, "node": ingest_bench.NODE,
                                       "device": f"dev{d}"},
         "tags": [{"name": f"m{m}"} for m in range(metrics)]}
        for d in range(devices)
    ]
    equipment.append({"name": "probe", "source": {"protocol": "json", "device": "probe"}, "tags": [{"name": "value"}]})
    background = [f"bench/a/l/dev{i // metrics}/m{i % metrics}" for i in range(rules)]
    alarm_rules: list[dict[str, Any]] = [
        {"name": f"r{i}", "type": "limit", "tag": tag, "h": 1e6, "l": -1e6, "deadband": 1}
        for i, tag in enumerate(background)
    ]
    alarm_rules.append({"name": "probe", "type": "limit", "tag": PROBE, "h": 100, "priority": "high"})
    return PlantConfig.model_validate({
        "site": {"name": "bench", "areas": [{"name": "a", "lines": [{"name": "l", "equipment": equipment}]}]},
        "mqtt": {"qos": 1, "client_id": f"bench-alarms-{time.monotonic_ns()}"},
        "alarms": {"rules": alarm_rules},
    })


def run_case(case: str, args: argparse.Namespace, broker: Mosquitto, rate: float) -> tuple[CaseResult, list[float]]:
    devices = max(1, -(-args.rules // args.metrics))
    config = plant(devices, args.metrics, args.rules)
    data_dir = Path(tempfile.mkdtemp(prefix="shopfloor-bench-alarms-"))
    platform = Platform(config, data_dir=data_dir, broker_url=broker.url)
    platform.start()
    sent: dict[float, float] = {}
    accepted: dict[float, float] = {}
    latencies: list[float] = []
    engine_ms: list[float] = []
    ingest_ms: list[float] = []
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event["alarm_id"] == "probe:H" and event["event"] in ("activated", "cleared"):
            with lock:
                t0 = sent.pop(event["value"], None)
                t1 = accepted.pop(event["value"], None)
                if t0 is not None:
                    latencies.append((now - t0) * 1e3)
                if t1 is not None:
                    engine_ms.append((now - t1) * 1e3)
                    if t0 is not None:
                        ingest_ms.append((t1 - t0) * 1e3)

    platform.alarms.listen(on_event)
    # The moment the writer accepts the probe's batch and hands it to the engine (the intake bus, before the
    # commit): splits the latency into ingest and engine.
    probe_id = platform.tag_index.id_of(PROBE)
    bus_publish = platform.intake.publish

    def publish_and_note(batch: SampleBatch) -> None:
        hit = batch.tag_id == probe_id
        if hit.any():
            now = time.monotonic()
            with lock:
                for v in batch.value[hit].tolist():
                    accepted[v] = now
        bus_publish(batch)

    platform.intake.publish = publish_and_note  # type: ignore[method-assign]
    ctx = mp.get_context("spawn")
    proc = None
    seconds = args.seconds + args.warmup
    if rate:
        ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=ingest_bench.publish, args=(
            broker.host, broker.port, devices, args.metrics, seconds, 1, rate / args.metrics, ready, go, out))
        proc.start()
        ready.wait(60)
        go.set()
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-probe")
    probe.connect(broker.host, broker.port)
    probe.loop_start()
    writer = platform.writer
    with console.status(f"{case}: warming up {args.warmup:.0f} s"):
        time.sleep(args.warmup)
    rows0, t0 = writer.rows_committed, time.monotonic()
    probes = 0
    with console.status(f"{case}: probing for {args.seconds:.0f} s") as status:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            probes += 1
            value = float(1000 + probes) if probes % 2 else float(-probes)  # up over the limit, then down
            payload = encode_json({"value": value}, int(time.time() * 1000))
            with lock:
                sent[value] = time.monotonic()
            probe.publish("shopfloor/json/probe", payload, qos=1)
            time.sleep(args.probe_interval)
            status.update(f"{case}: {probes} probes, {len(latencies)} alarms back")
    committed_rate = (writer.rows_committed - rows0) / (time.monotonic() - t0)
    deadline = time.monotonic() + 5
    while len(latencies) < probes and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc is not None:
        out.get(timeout=seconds + 120)
        proc.join(30)
    probe.loop_stop()
    probe.disconnect()
    health = platform.alarms.health()
    commit_p50, commit_p99 = writer.latency.percentiles_ms(50, 99)
    platform.stop()
    cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.mqtt.client_id, clean_session=True)
    cleaner.connect(broker.host, broker.port)
    cleaner.disconnect()
    shutil.rmtree(data_dir, ignore_errors=True)
    lat = np.array(latencies)
    p50, p99, mx = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(lat.max())) if len(lat) else (
        None, None, None)
    def p50_p99(xs: list[float]) -> tuple[float | None, float | None]:
        return (float(np.percentile(xs, 50)), float(np.percentile(xs, 99))) if xs else (None, None)

    i50, i99 = p50_p99(ingest_ms)
    e50, e99 = p50_p99(engine_ms)
    result = CaseResult(case, args.rules, rate, committed_rate, probes, len(latencies), p50, p99, mx, commit_p50,
                        commit_p99, i50, i99, e50, e99, health["eval_ms_max"], health["dropped_batches"],
                        health["samples"])
    return result, latencies


def plot(out: Path, curves: dict[str, list[float]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, lat in curves.items():
        if lat:
            xs = np.sort(lat)
            ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=name)
    ax.axvline(100, color="grey", linestyle="--", label="target p99")
    ax.set_xlabel("publish to alarm journaled, ms")
    ax.set_ylabel("share of probes")
    ax.legend()
    path = out / "latency_cdf.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="probing time per case")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rules", type=int, default=1000, help="active limit rules on background tags")
    ap.add_argument("--rate", type=float, default=100_000, help="background samples/s offered")
    ap.add_argument("--metrics", type=int, default=200, help="metrics per background DDATA message")
    ap.add_argument("--probe-interval", type=float, default=0.1)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "alarms")
    args = ap.parse_args()
    if find_mosquitto() is None:
        print("alarms benchmark skipped: the mosquitto binary is not installed")
        return 0
    results, curves = [], {}
    with Mosquitto() as broker:
        for case, rate in (("idle", 0.0), ("under ingest", args.rate)):
            r, lat = run_case(case, args, broker, rate)
            results.append(r)
            curves[f"{case} (p99 {r.p99_ms:.1f} ms)" if r.p99_ms is not None else case] = lat
    cpu = cpu_model()
    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {cpu}"
    idle, loaded = results
    ratio = loaded.p99_ms / idle.p99_ms if loaded.p99_ms and idle.p99_ms else None
    figure = plot(args.out, curves)
    if args.json:
        print(json.dumps({"machine": machine, "results": [asdict(r) for r in results], "p99_ratio": ratio,
                          "plot": str(figure)}))
        return 0
    table = Table(title=f"alarm latency: Mosquitto, {args.rules} rules + 1 probe rule, {machine}")
    for col in ("case", "background offered/s", "committed/s", "probes", "back", "p50 ms", "p99 ms", "max ms",
                "commit p50/p99 ms", "ingest p50/p99 ms", "engine p50/p99 ms", "eval max ms", "dropped"):
        table.add_column(col, justify="left" if col == "case" else "right")

    def ms(x: float | None) -> str:
        return f"{x:.1f}" if x is not None else "-"

    for r in results:
        table.add_row(r.case, f"{r.offered_samples_per_s:,.0f}", f"{r.committed_samples_per_s:,.0f}", str(r.probes),
                      str(r.received), ms(r.p50_ms), ms(r.p99_ms), ms(r.max_ms),
                      f"{ms(r.commit_p50_ms)} / {ms(r.commit_p99_ms)}",
                      f"{ms(r.ingest_p50_ms)} / {ms(r.ingest_p99_ms)}",
                      f"{ms(r.engine_p50_ms)} / {ms(r.engine_p99_ms)}", f"{r.eval_ms_max:.1f}", str(r.dropped_batches))
    Console(width=180).print(table)
    if ratio is not None:
        print(f"p99 under ingest / p99 idle: {ratio:.2f}x; target p99 < 100 ms: "
              f"{'met' if loaded.p99_ms is not None and loaded.p99_ms < 100 else 'NOT met'}")
    print("p50/p99/max: publish call -> alarm transition journaled (SQLite) and listeners called;"
          " commit: publish (payload time) -> samples committed in the historian, every sample of the case;"
          " ingest: publish call -> the probe's batch accepted by the writer (intake bus, before commit);"
          " engine: accepted -> alarm journaled;"
          f" eval max: the slowest batch evaluation; plot: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
