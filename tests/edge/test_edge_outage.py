"""Fault test, real processes: the broker is stopped for 30 s while `shopfloor edge` keeps reading a device.

Mosquitto on a free port (keeping sessions across its restart, as docs/edge.md asks of a
broker), a pymodbus device that counts the reads it answers, the gateway as a
`shopfloor edge` process, and the platform ingesting from the same broker into DuckDB.
The device's count is the ground truth of what the gateway read: the historian must hold
exactly 1, 2, ..., count, each once, in order.
"""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from edge_helpers import CountingPress, edge_yaml, plant_yaml

from shopfloor.config import parse_plant_config
from shopfloor.core.samples import Quality
from shopfloor.edge.config import parse_edge_config
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

OUTAGE_S = 30.0
READS = "s/a/l/press1/reads"
FORCE = "s/a/l/press1/force"


def health(data_dir: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads((data_dir / "health.json").read_text())
        return loaded
    except (OSError, ValueError):
        return {}


def drained(summary: dict[str, Any]) -> bool:
    """Connected, and nothing left on disk."""
    return bool(summary.get("uplink", {}).get("up")) and summary.get("buffer", {}).get("samples") == 0


def samples(platform: Platform, path: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    batch = platform.historian.raw(platform.tag_index.id_of(path), 0, 2**62)
    return batch.ts, batch.value, batch.quality


def good(platform: Platform, path: str) -> tuple[list[int], list[float]]:
    ts, value, quality = samples(platform, path)
    keep = quality == Quality.GOOD
    return ts[keep].tolist(), value[keep].tolist()


def test_broker_down_30_s_while_the_gateway_reads_loses_nothing_and_duplicates_nothing(
    press: CountingPress, tmp_path: Path
) -> None:
    with tempfile.TemporaryDirectory(prefix="shopfloor-mosquitto-db-") as db:
        Path(db).chmod(0o777)  # mosquitto may run as its own user
        keep_sessions = f"persistence true\npersistence_location {db}/\nuser {getpass.getuser()}\n"
        broker = Mosquitto(extra_config=keep_sessions).start()
        edge_dir = tmp_path / "edge"
        text = edge_yaml(press, broker.url, str(edge_dir))
        (tmp_path / "edge.yaml").write_text(text)
        platform = Platform(parse_plant_config(plant_yaml(parse_edge_config(text))), data_dir=tmp_path / "platform",
                            broker_url=broker.url)
        platform.start()
        # the platform's own backoff grows to 10 s over a 30 s outage; the gateway's is what is under test here
        platform.ingest.client.reconnect_delay_set(0.2, 1)
        try:
            log = (tmp_path / "edge.log").open("wb")
            gateway = subprocess.Popen(
                [sys.executable, "-m", "shopfloor", "edge", "--config", str(tmp_path / "edge.yaml")],
                stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                wait_for(lambda: len(good(platform, READS)[0]) >= 10, 30)
                wait_for(lambda: health(edge_dir).get("uplink", {}).get("up"), 10)  # health.json: every second

                broker.stop()
                down_ns = time.time_ns()
                wait_for(lambda: not health(edge_dir).get("uplink", {}).get("up", True), 10)
                stored_before = len(good(platform, READS)[0])
                time.sleep(max(0.0, OUTAGE_S - (time.time_ns() - down_ns) / 1e9))
                during = health(edge_dir)
                assert during["buffer"]["samples"] > 0 and during["uplink"]["outage_s"] > OUTAGE_S - 3
                assert press.count > stored_before + 0.5 * OUTAGE_S / 0.1  # the gateway kept reading
                broker = Mosquitto(port=broker.port, extra_config=keep_sessions).start()
                up_ns = time.time_ns()

                wait_for(lambda: drained(health(edge_dir)), 30)
                final_count = press.freeze()
                wait_for(lambda: any(d["request_errors"] for d in health(edge_dir).get("devices", [])), 10)
                gateway.send_signal(signal.SIGINT)
                assert gateway.wait(30) == 0
                wait_for(lambda: len(good(platform, READS)[0]) >= final_count, 30)
            finally:
                if gateway.poll() is None:
                    gateway.kill()
                    gateway.wait(10)
                log.close()
                broker.stop()

            diagnosis = (tmp_path / "edge.log").read_text()[-3000:]
            ts, reads = good(platform, READS)
            assert reads == [float(v) for v in range(1, final_count + 1)], diagnosis  # every read, once, in order
            assert np.all(np.diff(ts) > 0)
            assert good(platform, FORCE)[1] == [v / 4 for v in range(1, final_count + 1)]
            in_outage = [t for t in ts if down_ns + 2e9 < t < up_ns - 2e9]
            assert len(in_outage) > 0.5 * (OUTAGE_S - 4) / 0.1  # read during the outage, delivered after it

            end = health(edge_dir)
            assert end["buffer"]["samples"] == 0 and end["buffer"]["dropped_total"] == 0
            assert end["uplink"]["outages"] == 1 and end["samples"]["read"] == end["samples"]["stored"]

            link_ts, link_up = good(platform, "s/a/l/edge1/link_up")
            assert any(v == 0.0 and down_ns < t < up_ns for t, v in zip(link_ts, link_up, strict=True))
            assert max(good(platform, "s/a/l/edge1/link_outage_s")[1]) > OUTAGE_S - 3
            assert max(good(platform, "s/a/l/edge1/backlog_samples")[1]) > 0.5 * OUTAGE_S / 0.1
            assert good(platform, "s/a/l/edge1/link_outages")[1][-1] == 1.0
        finally:
            platform.stop()


def test_kill_9_of_the_gateway_keeps_its_committed_backlog_for_the_next_start(
    press: CountingPress, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """No broker for the first run, which dies by SIGKILL; the next run (with a broker) sends what was on disk."""
    from shopfloor.core.net import free_port
    from shopfloor.edge.gateway import EdgeGateway

    edge_dir = tmp_path / "edge"
    offline = edge_yaml(press, f"mqtt://127.0.0.1:{free_port()}", str(edge_dir))
    (tmp_path / "edge.yaml").write_text(offline)
    gateway = subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "--config", str(tmp_path / "edge.yaml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: health(edge_dir).get("samples", {}).get("stored", 0) >= 40, 30)
    finally:
        gateway.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
        gateway.wait(10)
    read_before_kill = press.count

    online = parse_edge_config(edge_yaml(press, mosquitto.url, str(edge_dir)))
    platform = Platform(parse_plant_config(plant_yaml(online)), data_dir=tmp_path / "platform",
                        broker_url=mosquitto.url)
    platform.start()
    try:
        restarted = EdgeGateway(online)
        restarted.start()
        try:
            # the reads of this run come after the backlog: once they show, the backlog is in
            wait_for(lambda: max(good(platform, READS)[1] or [0]) > read_before_kill + 5, 20)
        finally:
            restarted.stop()
        reads = [int(v) for v in good(platform, READS)[1]]
    finally:
        platform.stop()
    before = [v for v in reads if v <= read_before_kill]
    after = [v for v in reads if v > read_before_kill]
    assert before[:20] == list(range(1, 21))  # health had reported 40 samples (20 reads) stored: all there
    assert before == list(range(1, len(before) + 1))  # in order, no gap, no repeat
    # lost at most: the reads not yet committed (commit_s) plus one request the kill cut short
    assert read_before_kill - len(before) <= 3
    assert after == list(range(after[0], after[0] + len(after)))
