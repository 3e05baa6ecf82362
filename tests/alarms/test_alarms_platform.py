"""End to end: samples through a real Mosquitto raise an alarm that reaches a WebSocket client and a webhook;
a viewer may not acknowledge it, an operator does; it clears; the journal shows each step with who and when;
the alarm state survives a platform restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.connectors.mqtt.jsonfmt import encode_json
from shopfloor.core.net import free_port
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

PLANT = """\
site:
  name: plant
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: press
              source: {{protocol: json, device: press}}
              tags:
                - {{name: force, unit: kN}}
                - {{name: state, type: enum, states: {{0: running, 1: idle, 2: down, 3: maintenance}}}}
alarms:
  rules:
    - {{name: force, type: limit, tag: plant/a/l/press/force, h: 100, deadband: 5, priority: high,
       message: "press force above 100 kN"}}
  suppression:
    - {{asset: plant/a/l/press, tag: plant/a/l/press/state, states: [maintenance]}}
  notify:
    targets:
      - {{name: ops, webhook: {{url: "{webhook}"}}, min_interval_s: 0}}
auth: {{enabled: true}}
"""
FORCE = "plant/a/l/press/force"


class Hook:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.events += json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alarms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def publish(broker: Mosquitto, values: list[tuple[int, float]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-press")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for ts_ms, force in values:
        client.publish("shopfloor/json/press", encode_json({"force": force}, ts_ms), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_alarm_end_to_end(mosquitto: Mosquitto, hook: Hook, tmp_path: Path) -> None:
    config = parse_plant_config(PLANT.format(webhook=hook.url))
    data = tmp_path / "data"
    platform = Platform(config, data_dir=data, broker_url=mosquitto.url)
    now_ms = int(time.time() * 1000)
    with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url) as http:
        platform.users.add_user("olga", "operator-pw", "operator")
        platform.users.add_user("victor", "viewer-pw!", "viewer")
        viewer = {"Authorization": f"Bearer {platform.users.create_token('victor')[0]}"}
        login = http.post("/api/auth/login", json={"username": "olga", "password": "operator-pw"})
        assert login.status_code == 200
        session = login.json()["token"]
        ws_url = server.url.replace("http", "ws") + "/api/ws/alarms"
        with pytest.raises(ConnectionClosed) as closed, connect(ws_url) as ws:  # no credentials: refused
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        with connect(f"{ws_url}?token={session}") as ws:
            hello = json.loads(ws.recv(timeout=5))
            assert hello["type"] == "alarms" and hello["alarms"] == []
            sent = time.monotonic()
            publish(mosquitto, [(now_ms, 50.0), (now_ms + 1000, 150.0)])
            event = json.loads(ws.recv(timeout=10))
            latency = time.monotonic() - sent
            assert (event["alarm_id"], event["event"], event["to_state"], event["value"]) == (
                "force:H", "activated", "unack_active", 150.0)
            assert event["user"] is None and event["priority"] == "high"
            assert event["summary"]["by_priority"]["high"] == {"unack": 1, "active": 1}
            assert latency < 5
        wait_for(lambda: [e["event"] for e in hook.events] == ["activated"], 10)
        assert hook.events[0]["message"] == "press force above 100 kN"

        active = http.get("/api/alarms", headers=viewer).json()
        assert [(a["id"], a["state"]) for a in active] == [("force:H", "unack_active")]
        refused = http.post("/api/alarms/force:H/ack", json={"comment": "not mine"}, headers=viewer)
        assert refused.status_code == 403 and "needs role operator" in refused.json()["detail"]
        acked = http.post("/api/alarms/force:H/ack", json={"comment": "die checked"})  # olga's session cookie
        assert acked.status_code == 200 and acked.json()["acked_by"] == "olga"

        publish(mosquitto, [(now_ms + 2000, 97.0), (now_ms + 3000, 20.0)])  # 97 is inside the deadband
        wait_for(lambda: http.get("/api/alarms/force:H", headers=viewer).json()["state"] == "normal", 10)
        journal = http.get("/api/alarms/journal", params={"alarm": "force:H"}, headers=viewer).json()
        steps = [(j["event"], j["from_state"], j["to_state"], j["user"], j["value"]) for j in reversed(journal)]
        assert steps == [
            ("activated", "normal", "unack_active", None, 150.0),
            ("acknowledged", "unack_active", "acked_active", "olga", 150.0),
            ("cleared", "acked_active", "normal", None, 20.0),
        ]
        assert journal[-1]["time"].startswith(time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000)))
        assert journal[0]["ts_ns"] == (now_ms + 3000) * 1_000_000  # the time of the sample that cleared it
        assert journal[1]["comment"] == "die checked"

        publish(mosquitto, [(now_ms + 4000, 180.0)])  # raised again, left unacknowledged
        wait_for(lambda: http.get("/api/alarms/summary", headers=viewer).json()["unack"] == 1, 10)
        assert platform.health()["alarms"]["errors"] == 0

    restarted = Platform(config, data_dir=data, broker_url=mosquitto.url)
    with ApiServer(create_app(restarted)) as server, httpx.Client(base_url=server.url) as http:
        token = restarted.users.create_token("victor")[0]
        alarm = http.get("/api/alarms/force:H", headers={"Authorization": f"Bearer {token}"}).json()
        assert (alarm["state"], alarm["value"]) == ("unack_active", 180.0)
