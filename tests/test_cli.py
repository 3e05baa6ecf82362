"""The CLI as a user runs it: the demo serves live data, stops on Ctrl-C, keeps its history; bad configs fail well."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shopfloor.core.net import free_port
from shopfloor.testing.processes import interrupt

CNC_POWER = "virtual-factory/machining/line1/cell1/cnc1/spindle_power"


def _start_demo(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "demo", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )


def _history_count(base: str) -> int:
    r = httpx.get(f"{base}/api/history", params={"tag": CNC_POWER, "bucket": "raw", "start": "-1d"}, timeout=5)
    return len(r.json()["t"])


def test_demo_serves_live_data_within_30_s_and_keeps_history(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_demo(tmp_path / "data", port)
    started = time.monotonic()
    try:
        fresh = False
        while time.monotonic() - started < 30 and not fresh:
            time.sleep(0.5)
            try:
                latest = httpx.get(f"{base}/api/latest", params={"tag": CNC_POWER}, timeout=2).json()
            except httpx.HTTPError:
                continue
            fresh = bool(latest) and latest[0]["quality"] == "good" and time.time() * 1000 - latest[0]["ts_ms"] < 5000
        assert fresh, "no fresh value within 30 s"
        first_count = _history_count(base)
        assert httpx.get(f"{base}/health", timeout=5).json()["status"] == "ok"
    finally:
        code, out = interrupt(proc)
    assert code == 0, out
    assert f"http://127.0.0.1:{port}/" in out
    assert "Traceback" not in out
    assert out.rstrip().endswith("shopfloor.cli: stopped"), out  # after every service and store closed

    proc = _start_demo(tmp_path / "data", port)
    try:
        deadline = time.monotonic() + 30
        count = 0
        while time.monotonic() < deadline and count < first_count:
            time.sleep(0.3)
            try:
                count = _history_count(base)
            except httpx.HTTPError:
                continue
        assert count >= first_count
    finally:
        code, out = interrupt(proc)
    assert code == 0, out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site:\n  name: x\n  areas: 5\n", "plant.yaml:3: site.areas:"),
        ("site: [\n", "invalid YAML"),
    ],
)
def test_serve_with_a_bad_config_names_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "shopfloor", "serve", "--config", str(config)], capture_output=True, timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert expected in result.stderr.decode().replace(str(tmp_path) + "/", "")


def test_serve_a_plant_yaml_against_mosquitto_fed_by_sim(tmp_path: Path) -> None:
    from shopfloor.testing.mosquitto import Mosquitto

    plant_yaml = subprocess.run(
        [sys.executable, "-m", "shopfloor", "sim", "--print-config"], capture_output=True, timeout=60, check=True
    ).stdout.decode()
    config = tmp_path / "plant.yaml"
    config.write_text(plant_yaml)
    port = free_port()
    with Mosquitto() as broker:
        server = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "serve", "--config", str(config), "--port", str(port),
             "--data-dir", str(tmp_path / "data"), "--broker", broker.url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            sim = subprocess.run(
                [sys.executable, "-m", "shopfloor", "sim", "--broker", broker.url, "--steps", "30", "--speed", "0",
                 "--seed", "3"],
                capture_output=True, timeout=60,
            )
            assert sim.returncode == 0, sim.stderr.decode()
            end = str(int(time.time() * 1000) + 3_600_000)  # speed 0 runs ahead of the wall clock
            params = {"tag": CNC_POWER, "bucket": "raw", "start": "-1h", "end": end}
            history: dict[str, list[float]] = {"t": []}
            while time.monotonic() < deadline + 30 and len(history["t"]) < 32:
                history = httpx.get(f"{base}/api/history", params=params, timeout=5).json()
                time.sleep(0.2)
            # The birth's values, 30 steps (each sends every metric at first), then the node's death at stop:
            assert len(history["t"]) == 32
            assert sorted(history["quality"]) == [0] + [192] * 31  # the death is stamped with its arrival time
        finally:
            code, out = interrupt(server)
        assert code == 0, out
