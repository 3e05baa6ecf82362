"""The maintenance service in a real platform behind a real broker: bad windows are counted and kept as dead
letters while good ones go on being analysed; the work-order API with its roles."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.api import create_app
from shopfloor.apps.maintenance.service import MaintenanceService
from shopfloor.apps.maintenance.workorders import Prediction
from shopfloor.auth.config import AuthConfig
from shopfloor.config.schema import PlantConfig
from shopfloor.platform import Platform
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.machines import CncParams
from shopfloor.sim.vibration import VibrationExtension, VibrationParams, bearing_window, encode_window
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

CNC = CncParams()
EQUIPMENT = "virtual-factory/machining/line1/cell1/cnc1"
HEALTH = f"{EQUIPMENT}-health"
TOPIC = "shopfloor/vibration/cnc1"


def plant() -> PlantConfig:
    return VirtualFactory(seed=1, cncs=(CNC,), extensions=[VibrationExtension(1, cncs=(CNC,))]).plant_config()


def publisher(broker: Mosquitto) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-maintenance-windows")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def header(**fields: object) -> bytes:
    text = json.dumps(fields).encode()
    return struct.pack(">H", len(text)) + text


def test_bad_windows_are_counted_and_kept_and_good_ones_still_analysed(mosquitto: Mosquitto, tmp_path: Path) -> None:
    platform = Platform(plant(), data_dir=tmp_path, broker_url=mosquitto.url)
    platform.start()
    client = publisher(mosquitto)
    try:
        service = platform.service("maintenance")
        assert isinstance(service, MaintenanceService)
        params = VibrationParams()
        x = bearing_window(np.random.default_rng(0), "outer", 0.5**3, 9000.0, CNC.rated_speed_rpm, params)
        now_ms = time.time_ns() // 1_000_000
        good = encode_window(EQUIPMENT, now_ms, params.fs, 9000.0, x)
        nan = x.copy()
        nan[100:110] = np.nan
        base = {"equipment": EQUIPMENT, "ts_ms": now_ms, "fs": params.fs, "rpm": 9000.0, "dtype": "float32"}
        bad = {
            "garbage bytes": b"\xff\xfegarbage",
            "not JSON": struct.pack(">H", 5) + b"{nope" + x.tobytes(),
            "wrong length": header(**base, n=8192) + x[:8000].tobytes(),
            "NaN samples": encode_window(EQUIPMENT, now_ms, params.fs, 9000.0, nan),
            "too short": header(**base, n=100) + x[:100].tobytes(),
            "unknown equipment": encode_window("elsewhere/cnc9", now_ms, params.fs, 9000.0, x),
            "no speed": header(**{**base, "rpm": 0}, n=x.size) + x.tobytes(),
            "lines past Nyquist": encode_window(EQUIPMENT, now_ms, params.fs, 90_000.0, x),
            "unknown dtype": header(**{**base, "dtype": "complex64"}, n=x.size) + x.tobytes(),
        }
        for payload in bad.values():
            client.publish(TOPIC, payload, qos=1).wait_for_publish(10)
        client.publish(TOPIC, good, qos=1).wait_for_publish(10)
        wait_for(lambda: service.analysed == 1 and service.rejected == len(bad), timeout=30)

        letters = platform.dead_letters.list(source="maintenance")
        assert len(letters) == len(bad) and {d.topic for d in letters} == {TOPIC}
        reasons = " | ".join(d.reason for d in letters)
        for needle in ("header length", "not JSON", "body has", "NaN", "sample count", "unknown equipment",
                       "rpm", "do not fit", "dtype"):
            assert needle in reasons, (needle, reasons)
        assert sorted(d.payload for d in letters) == sorted(bad.values())  # kept as they came, for inspection
        health = service.health()
        assert health["errors"] == 0 and health["windows_rejected"] == len(bad)
        assert platform.health()["dead_letters"]["since_start"]["maintenance"] == len(bad)  # type: ignore[index]
        fault = platform.tag_index.id_of(f"{HEALTH}/fault")
        latest = wait_for(lambda: (b := platform.historian.latest([fault])).value.size and b, timeout=30)
        assert latest.value[0] == 2.0  # outer race, from the good window after all the bad ones
    finally:
        client.disconnect()
        client.loop_stop()
        platform.stop()


def test_work_orders_are_listed_to_viewers_and_acted_on_by_engineers(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = plant().model_copy(update={"auth": AuthConfig(enabled=True)})
    platform = Platform(config, data_dir=tmp_path, broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        platform.users.add_user("vera", "viewer-pw!", "viewer")
        platform.users.add_user("emil", "engineer-pw", "engineer")
        viewer = {"Authorization": f"Bearer {platform.users.create_token('vera')[0]}"}
        engineer = {"Authorization": f"Bearer {platform.users.create_token('emil')[0]}"}
        service = platform.service("maintenance")
        assert isinstance(service, MaintenanceService) and service.store is not None
        hour = 3_600_000_000_000
        now = time.time_ns()
        order = service.store.create(EQUIPMENT, Prediction("outer race", 0.97, now, now + 5 * hour, now + 4 * hour,
                                                           now + 2 * hour, 5.0, 4.0))
        assert http.get("/api/maintenance/work-orders").status_code == 401
        listed = http.get("/api/maintenance/work-orders", headers=viewer)
        assert listed.status_code == 200
        [row] = listed.json()
        assert row["number"] == order.number == "MWO-000001" and row["fault"] == "outer race"
        assert row["due_ns"] == now + 2 * hour and row["due"].endswith("Z") and row["status"] == "open"
        machines = http.get("/api/maintenance/machines", headers=viewer).json()
        assert machines["model"] == {"kind": "envelope"} and machines["machines"][0]["equipment"] == EQUIPMENT

        refused = http.post(f"/api/maintenance/work-orders/{order.id}/ack", headers=viewer)
        assert refused.status_code == 403 and "engineer" in refused.json()["detail"]
        acked = http.post(f"/api/maintenance/work-orders/{order.id}/ack", headers=engineer).json()
        assert acked["status"] == "acknowledged" and acked["acked_by"] == "emil"
        assert [o["id"] for o in http.get("/api/maintenance/work-orders?status=open", headers=viewer).json()] == [1]
        closed = http.post(f"/api/maintenance/work-orders/{order.id}/close", json={"note": "bearing changed"},
                           headers=engineer).json()
        assert closed["status"] == "closed" and closed["closed_by"] == "emil" and "bearing changed" in closed["note"]
        again = http.post(f"/api/maintenance/work-orders/{order.id}/close", json={"note": "x"}, headers=engineer)
        assert again.status_code == 409
        assert http.get("/api/maintenance/work-orders?status=open", headers=viewer).json() == []
        assert http.get("/api/maintenance/work-orders/99", headers=viewer).status_code == 404
        assert http.post("/api/maintenance/work-orders/99/ack", headers=engineer).status_code == 404


def test_a_trained_model_chosen_by_version_in_config_diagnoses_the_windows(mosquitto: Mosquitto,
                                                                           tmp_path: Path) -> None:
    from shopfloor.apps.maintenance import simbearing
    from shopfloor.apps.maintenance.config import ModelChoice

    root = tmp_path / "models"
    first = simbearing.train(root, n_per_class=15, seed=0)
    second = simbearing.train(root, n_per_class=10, seed=1)
    assert (first.version, second.version) == (1, 2) and first.metrics["test_accuracy"] > 0.8
    base = plant()
    assert base.maintenance is not None
    choice = ModelChoice(name=simbearing.NAME, version=1, root=str(root))
    config = base.model_copy(update={"maintenance": base.maintenance.model_copy(update={"model": choice})})
    platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
    platform.start()
    client = publisher(mosquitto)
    try:
        service = platform.service("maintenance")
        assert isinstance(service, MaintenanceService)
        assert service.health()["model"] == {"kind": "artifact", "name": "bearing-sim", "version": 1,
                                             "metrics": first.metrics}
        params = VibrationParams()
        x = bearing_window(np.random.default_rng(5), "inner", 0.7**3, 10_000.0, CNC.rated_speed_rpm, params)
        client.publish(TOPIC, encode_window(EQUIPMENT, time.time_ns() // 10**6, params.fs, 10_000.0, x),
                       qos=1).wait_for_publish(10)
        wait_for(lambda: service.analysed == 1, timeout=30)
        view = service.machine_views()[0]
        assert view["fault"] == "inner" and view["confidence"] > 0.5
    finally:
        client.disconnect()
        client.loop_stop()
        platform.stop()


def write_vibration(platform: Platform, start_ns: int, wear: np.ndarray) -> int:
    """The CNC's spindle at rated speed with vibration on the P-F curve of ``wear``, one sample per 10 s."""
    ts = start_ns + np.arange(wear.size, dtype=np.int64) * 10 * 10**9
    vib = CNC.vib_idle_mm_s + CNC.vib_base_mm_s + CNC.vib_wear_mm_s * wear**3
    paths = [f"{EQUIPMENT}/spindle_speed"] * ts.size + [f"{EQUIPMENT}/vibration"] * ts.size
    platform.write(paths, np.concatenate([ts, ts]), np.concatenate([np.full(ts.size, CNC.rated_speed_rpm), vib]))
    return int(ts[-1]) + 10 * 10**9


def test_one_work_order_per_developing_fault_closed_when_the_bearing_is_replaced(mosquitto: Mosquitto,
                                                                                 tmp_path: Path) -> None:
    platform = Platform(plant(), data_dir=tmp_path, broker_url=mosquitto.url)
    platform.start()
    try:
        service = platform.service("maintenance")
        assert isinstance(service, MaintenanceService) and service.store is not None
        store = service.store
        t = (time.time_ns() - 6 * 3600 * 10**9) // 10**9 * 10**9
        t = write_vibration(platform, t, np.linspace(0.3, 0.9, 720))  # two hours of a failing bearing
        wait_for(lambda: store.open_for(EQUIPMENT) is not None, timeout=30)
        t = write_vibration(platform, t, np.full(60, 0.9))  # still failing: the same order, refreshed
        wait_for(lambda: service.machine_views()[0]["trend_points"] >= 125, timeout=30)
        [order] = store.list()
        assert order.status == "open" and order.updated_ns > order.created_ns
        t = write_vibration(platform, t, np.full(60, 0.02))  # a new bearing: ten minutes of a sound one
        write_vibration(platform, t, np.full(7, 0.02))
        wait_for(lambda: store.list()[0].status == "closed", timeout=30)
        closed = store.list()[0]
        assert closed.closed_by == "maintenance" and "bearing replaced" in closed.note
        view = wait_for(lambda: (v := service.machine_views()[0])["health_index"] > 95 and v, timeout=30)
        assert view["bearing_replacements"] == 1 and view["rul_h"] is None
        assert len(store.list()) == 1  # no new order for the sound bearing
        rul_id = platform.tag_index.id_of(f"{HEALTH}/rul")
        history = wait_for(lambda: (b := platform.historian.raw(rul_id, 0, t + 3600 * 10**9)).value.size
                           and np.isnan(b.value[-1]) and b, timeout=30)
        assert np.isfinite(history.value).any()  # RUL while the old bearing failed, NaN for the new one
    finally:
        platform.stop()
