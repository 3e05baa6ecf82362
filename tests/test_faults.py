"""Faults against real processes: what the platform acknowledged survives a kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

from shopfloor.connectors.mqtt.jsonfmt import encode_json
from shopfloor.core.net import free_port
from shopfloor.testing.mosquitto import Mosquitto

KEYS = [f"k{i}" for i in range(10)]
PLANT = """\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: dev
              source: {protocol: json, device: dev}
              tags:
""" + "".join(f"                - {{name: {k}}}\n" for k in KEYS)
T0_MS = 1_763_800_000_000
MESSAGES = 3000


def serve(config: Path, data: Path, port: int, broker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "serve", "--config", str(config), "--data-dir", str(data),
         "--port", str(port), "--broker", broker],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_healthy(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the platform did not become healthy")


def stored(base: str, key: str) -> list[int]:
    params = {"tag": f"s/a/l/dev/{key}", "bucket": "raw", "start": str(T0_MS - 1), "end": str(T0_MS + 10**7)}
    return list(httpx.get(f"{base}/api/history", params=params, timeout=10).json()["t"])


def test_kill_9_during_ingest_loses_nothing_acknowledged(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text(PLANT)
    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    platform = serve(config, data, port, mosquitto.url)
    wait_healthy(base)

    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fault-publisher")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    published = threading.Event()

    def publish_all() -> None:
        infos = []
        for i in range(MESSAGES):
            payload = encode_json({k: float(i) for k in KEYS}, T0_MS + i)
            infos.append(publisher.publish("shopfloor/json/dev", payload, qos=1))
            time.sleep(0.0005)
        for info in infos:
            info.wait_for_publish(30)  # the broker has it (PUBACK): from here on it is the platform's to keep
        published.set()

    sender = threading.Thread(target=publish_all)
    sender.start()
    deadline = time.monotonic() + 30
    while len(stored(base, "k0")) < MESSAGES // 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    platform.send_signal(signal.SIGKILL)  # mid-ingest, no goodbye
    platform.wait(10)
    sender.join(60)
    assert published.is_set()
    publisher.loop_stop()
    publisher.disconnect()

    platform = serve(config, data, port, mosquitto.url)  # the broker kept our session's queue meanwhile
    try:
        wait_healthy(base)
        deadline = time.monotonic() + 60
        while len(stored(base, "k9")) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.1)
        for key in KEYS:
            times = stored(base, key)
            assert times == [T0_MS + i for i in range(MESSAGES)], f"{key}: {len(times)} samples"  # all, once
    finally:
        platform.send_signal(signal.SIGINT)
        platform.wait(30)


def test_postgresql_restarted_during_ingest_loses_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The writer keeps the batch and retries with backoff; acks wait; the broker keeps the rest."""
    from shopfloor.config import parse_plant_config
    from shopfloor.platform import Platform
    from shopfloor.testing.postgres import PostgresServer, fresh_database

    with PostgresServer() as server, fresh_database(server) as url:
        config = parse_plant_config(PLANT + f"historian: {{backend: postgres, url: '{url}'}}\n")
        platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
        platform.start()
        try:
            publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pg-fault-publisher")
            publisher.connect(mosquitto.host, mosquitto.port)
            publisher.loop_start()
            tag_id = platform.tag_index.id_of("s/a/l/dev/k0")
            for i in range(MESSAGES):
                publisher.publish("shopfloor/json/dev", encode_json({k: float(i) for k in KEYS}, T0_MS + i), qos=1)
                time.sleep(0.0005)
                if i == MESSAGES // 3:
                    server.restart()  # a real restart of the database process, mid-stream
            publisher.loop_stop()
            publisher.disconnect()
            deadline = time.monotonic() + 120
            expected = [(T0_MS + i) * 1_000_000 for i in range(MESSAGES)]
            while time.monotonic() < deadline:
                try:
                    got = platform.historian.raw(tag_id, 0, 2**62).ts.tolist()
                except Exception:  # the reader reconnects on its next call
                    got = []
                if len(got) >= MESSAGES and platform.writer.pending_rows == 0:
                    break
                time.sleep(0.2)
            diagnosis = f"writer: {platform.writer.last_error}; server log:\n{server.log_tail()}"
            assert len(got) == MESSAGES and got == expected, diagnosis
            assert len(platform.historian.raw(platform.tag_index.id_of("s/a/l/dev/k9"), 0, 2**62)) == MESSAGES
        finally:
            platform.stop()
