"""With auth on, inspection results are read by viewers and images uploaded and verdicts reviewed by operators;
a model saved beforehand as a versioned artifact is loaded by version instead of trained."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np

from shopfloor.api.app import create_app
from shopfloor.apps import artifacts
from shopfloor.apps.inspection.config import InspectionConfig
from shopfloor.apps.inspection.station import encode_png, train_synthetic
from shopfloor.apps.inspection.synthetic import make_part
from shopfloor.auth.config import AuthConfig
from shopfloor.config.schema import PlantConfig
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for


def test_viewers_read_operators_upload_and_review_with_a_model_loaded_by_version(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    model = train_synthetic(seed=4, n_train=6, n_calibration=6)
    for _ in range(2):  # versions 1 and 2: the config asks for 1
        artifacts.save(models, "inspection-anomaly", model, dataset="test", data_sha256="0" * 64, train_seconds=0.1)
    config = PlantConfig.model_validate({
        "site": {"name": "plant", "areas": [{"name": "a", "lines": [{"name": "l"}]}]},
        "auth": AuthConfig(enabled=True).model_dump(),
        "inspection": InspectionConfig(models_dir=str(models), anomaly_version=1, train_synthetic=False,
                                       review_below=1.0).model_dump(),
    })
    platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
    server = ApiServer(create_app(platform)).start(timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            platform.users.add_user("vera", "viewer-pw!", "viewer")
            platform.users.add_user("otto", "operator-pw", "operator")
            viewer = {"Authorization": f"Bearer {platform.users.create_token('vera')[0]}"}
            operator = {"Authorization": f"Bearer {platform.users.create_token('otto')[0]}"}
            assert http.get("/api/inspection/status").status_code == 401
            status = wait_for(lambda: (s := http.get("/api/inspection/status", headers=viewer).json())["state"]
                              == "ready" and s, 60)
            assert status["model_version"] == 1 and not (tmp_path / "models" / "inspection-anomaly" / "v3").exists()

            image = encode_png(make_part(np.random.default_rng(9), "scratch").image)
            files = {"file": ("p.png", image, "image/png")}
            refused = http.post("/api/inspection/images", files=files, data={"serial": "SN-A"}, headers=viewer)
            assert refused.status_code == 403 and "operator" in refused.json()["detail"]
            assert http.get("/api/inspection/serials/SN-A", headers=viewer).status_code == 404  # nothing stored
            made = http.post("/api/inspection/images", files=files, data={"serial": "SN-A"}, headers=operator)
            assert made.status_code == 201, made.text
            record = made.json()
            assert record["model_version"] == 1 and record["review"] == "pending"  # review_below 1.0: all
            found = http.get("/api/inspection/serials/SN-A", headers=viewer).json()
            assert found["inspections"][0]["id"] == record["id"]

            path = f"/api/inspection/review/{record['id']}"
            assert http.post(path, json={"label": "ok"}, headers=viewer).status_code == 403
            reviewed = http.post(path, json={"label": "ok", "note": "a mark on the lens"}, headers=operator).json()
            assert reviewed["reviewed_by"] == "otto" and reviewed["label"] == "ok"
            assert reviewed["reviewed_ns"] <= time.time_ns()
            assert http.get("/api/inspection/labelled.zip", headers=viewer).status_code == 200
    finally:
        server.stop()


def test_a_missing_model_version_leaves_the_station_failed_but_keeping_what_arrives(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    import paho.mqtt.publish as mqtt_publish

    from shopfloor.apps.inspection.station import encode_message

    config = PlantConfig.model_validate({
        "site": {"name": "plant", "areas": [{"name": "a", "lines": [{"name": "l"}]}]},
        "inspection": InspectionConfig(models_dir=str(tmp_path / "models"), anomaly_version=3).model_dump(),
    })
    platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
    server = ApiServer(create_app(platform)).start(timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            status = wait_for(lambda: (s := http.get("/api/inspection/status").json())["state"] == "failed" and s, 60)
            assert "no saved versions of 'inspection-anomaly'" in status["last_error"]
            assert http.get("/health").json()["services"]["inspection"]["state"] == "failed"
            image = encode_png(make_part(np.random.default_rng(1)).image)
            r = http.post("/api/inspection/images", params={"serial": "SN-1"}, content=image,
                          headers={"content-type": "image/png"})
            assert r.status_code == 503 and "failed" in r.json()["detail"]
            mqtt_publish.single("shopfloor/inspection/cam/image", encode_message({"serial": "SN-2"}, image), qos=1,
                                hostname=mosquitto.host, port=mosquitto.port)
            kept = wait_for(lambda: http.get("/api/inspection/rejected").json()["items"], 30)
            assert kept[0]["serial"] == "SN-2" and "not judged" in kept[0]["reason"]
            assert (tmp_path / "data" / "inspection" / kept[0]["file"]).read_bytes() == image
            assert not (tmp_path / "models" / "inspection-anomaly").exists()  # nothing trained behind its back
    finally:
        server.stop()
