"""A real `shopfloor demo` process with an hour of history, and headless Chromium driven by Playwright.

The history is the virtual factory's own: the same simulator as the demo, started an hour ago and stepped
to now, written through the historian into the data directory before the demo starts on it. The demo then
carries on live (its counters start again from zero, as a restarted line's would).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest

from shopfloor.core.model import AssetModel
from shopfloor.core.net import free_port
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian.base import open_historian
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.fieldmap import FieldDevice
from shopfloor.sim.machines import Device
from shopfloor.testing.processes import interrupt

if TYPE_CHECKING:
    pass

SEED = 1
OUTPUT = Path(os.environ.get("SHOPFLOOR_TEST_OUTPUT", Path(__file__).parents[2] / "test-output")) / "web"


def seed_history(data_dir: Path, minutes: int = 65) -> int:
    """The virtual factory's last `minutes` at 1 s steps, written to the demo's historian; returns the rows."""
    start_ns = (time.time_ns() - minutes * 60_000_000_000) // 1_000_000 * 1_000_000
    # The demo's factory serves the robot over OPC UA and the press over Modbus: the same tags need both.
    factory = VirtualFactory(seed=SEED, start_ns=start_ns, opcua_endpoint="opc.tcp://127.0.0.1:4840/x/", modbus_port=1)
    model = AssetModel.from_config(factory.plant_config())
    equipment = {n.name: n.path for n in model.root.walk() if n.level == "equipment"}
    historian = open_historian("duckdb", data_dir)
    try:
        ids = historian.ensure_tags([t.path for t in model.tags])
        devices: list[Device | FieldDevice] = [*factory.sparkplug_devices, *factory.json_devices,
                                               *factory.field_devices]
        tag_ids = {
            d.name: np.array([ids[f"{equipment[d.name]}/{s.name}"] for s in d.signals], np.int32) for d in devices
        }
        cols: dict[str, list[np.ndarray]] = {"tag": [], "ts": [], "value": []}
        for _ in range(minutes * 60):
            frame = factory.step()
            for values_by_device in (frame.sparkplug, frame.json, frame.opcua, frame.modbus):
                for name, values in values_by_device.items():
                    cols["tag"].append(tag_ids[name])
                    cols["ts"].append(np.full(len(values), frame.ts_ns, np.int64))
                    cols["value"].append(values)
        value = np.concatenate(cols["value"])
        quality = np.where(np.isnan(value), int(Quality.BAD), int(Quality.GOOD))
        batch = SampleBatch.of(np.concatenate(cols["tag"]), np.concatenate(cols["ts"]), value, quality)
        historian.write(batch)
        return len(batch)
    finally:
        historian.close()


class Demo:
    """`shopfloor demo` as a user runs it, on free ports, stoppable and restartable on the same data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.mqtt_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "demo", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--mqtt-port", str(self.mqtt_port), "--seed", str(SEED)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo exited: {self.proc.stdout.read().decode() if self.proc.stdout else ''}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json()["status"] == "ok":
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the demo did not become healthy")

    def stop(self) -> None:
        if self.proc is not None:
            code, out = interrupt(self.proc)
            self.output.append(out)
            self.proc = None
            assert code == 0, out
            assert "Traceback" not in out, out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    data_dir.mkdir()
    seed_history(data_dir)
    d = Demo(data_dir)
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT
