"""A line with an inspection station for the tests of this folder: broker, platform with the inspection
service (its model trained on synthetic defect-free surfaces at start), API server and the virtual
factory's camera, which photographs the parts of the ``produced`` events the tests publish."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.publish as mqtt_publish
import pytest

from shopfloor.api.app import create_app
from shopfloor.apps.inspection.station import StationModel
from shopfloor.apps.inspection.synthetic import make_part
from shopfloor.config.schema import PlantConfig
from shopfloor.platform import Platform
from shopfloor.sim.camera import MES_TOPIC, InspectionCamera
from shopfloor.sim.extension import Broker
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

STATION = "plant/area1/line1/camera1"
CNC = "plant/area1/line1/cnc1"
SIZE = (200, 200)


@dataclass
class Line:
    broker: Mosquitto
    platform: Platform
    camera: InspectionCamera
    api: httpx.Client
    tmp: Path

    def produce(self, *serials: str) -> None:
        """The line controller's produced events, as the MES contract has them (one message, an array)."""
        now = time.time_ns() // 1_000_000
        events = [{"kind": "produced", "serial": s, "product": "P-1", "equipment": CNC, "ts_ms": now + i}
                  for i, s in enumerate(serials)]
        self.publish(MES_TOPIC, json.dumps(events).encode())

    def publish(self, topic: str, payload: bytes) -> None:
        mqtt_publish.single(topic, payload, qos=1, hostname=self.broker.host, port=self.broker.port)

    def verdict(self, serial: str, timeout: float = 60.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            r = self.api.get(f"/api/inspection/serials/{serial}")
            return r.json() if r.status_code == 200 else None

        return wait_for(found, timeout, 0.1)


def plant(tmp: Path, camera: InspectionCamera) -> PlantConfig:
    """A line with one machine, the MES recorder (the one writer of the MES) and the camera's station."""
    tags = [{"name": "spindle_speed"}, {"name": "state", "type": "enum", "states": {0: "running", 1: "idle"}},
            {"name": "parts_good", "type": "int64"}, {"name": "parts_scrap", "type": "int64"}]
    cnc = {"name": "cnc1", "source": {"protocol": "json", "device": "cnc1"}, "tags": tags}
    data: dict[str, Any] = {"site": {"name": "plant", "areas": [{"name": "area1", "lines": [
        {"name": "line1", "equipment": [cnc]}]}]}, "mes": {"products": [{"code": "P-1", "name": "Housing"}]}}
    camera.extend_plant(data)  # the camera's equipment, alarm rule and inspection section, as in the demo
    data["inspection"].update(train_images=10, calibration_images=8, review_below=0.95, mes_retry_s=2.0,
                              models_dir=str(tmp / "models"))
    return PlantConfig.model_validate(data)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    tmp = tmp_path_factory.mktemp("inspection")
    camera = InspectionCamera(seed=3, defect_rate=0.5)
    with Mosquitto() as broker:
        platform = Platform(plant(tmp, camera), data_dir=tmp / "data", broker_url=broker.url)
        server = ApiServer(create_app(platform)).start(timeout=120)  # a loaded CI machine starts slowly
        try:
            camera.start(Broker(broker.host, broker.port))
            with httpx.Client(base_url=server.url, timeout=30) as api:
                wait_for(lambda: api.get("/api/inspection/status").json()["state"] == "ready", 120, 0.2)
                yield Line(broker, platform, camera, api, tmp)
        finally:
            camera.stop()
            server.stop()



def json_split(payload: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, image = payload.partition(b"\n")
    return json.loads(head), image



def uncertain_images(model: StationModel, n: int, seed: int = 21) -> list[np.ndarray]:
    """Parts the model is unsure about: defects faded into a defect-free surface until the score is near
    the threshold (what a person should look at)."""
    rng = np.random.default_rng(seed)
    found: list[np.ndarray] = []
    for k in range(40):
        good, bad = make_part(rng, ""), make_part(rng, ("pits", "patch", "scratch")[k % 3])
        for w in (0.3, 0.5, 0.7):
            image = np.clip(good.image * (1 - w) + bad.image * w, 0, 255).astype(np.uint8)
            if model.inspect(image).confidence < 0.95:
                found.append(image)
                break
        if len(found) == n:
            break
    assert len(found) == n
    return found
