"""The drive session end to end: WebSocket -> platform -> DCMD -> loco firmware -> echoes and camera back.

A real platform (auth on) and API server, Mosquitto, and the simulated loco of the demo's extension
(with the tests' short deadman settings).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from shopfloor.api import create_app
from shopfloor.config.schema import PlantConfig
from shopfloor.control.drive_bench import TEST_SPEC
from shopfloor.control.service import CommandService
from shopfloor.platform import Platform
from shopfloor.sim.extension import Broker
from shopfloor.sim.vehicle import LocomotiveExtension
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

# The deadman at settings a busy test machine does not trip by accident (the link tests time it).
SPEC = replace(TEST_SPEC, heartbeat_timeout_s=1.0, latency_budget_s=0.8)
LOCO = "plant/mine/haulage/loco1"


def plant(auth: bool) -> PlantConfig:
    data: dict[str, Any] = {"site": {"name": "plant", "areas": []}, "auth": {"enabled": auth}}
    LocomotiveExtension(spec=SPEC).extend_plant(data)
    return PlantConfig.model_validate(data)


@dataclass
class Running:
    platform: Platform
    server: ApiServer
    loco: LocomotiveExtension
    tokens: dict[str, str]

    @property
    def control(self) -> CommandService:
        service = self.platform.service("control")
        assert isinstance(service, CommandService)
        return service

    def ws(self, role: str | None, vehicle: str = "loco1") -> ClientConnection:
        url = self.server.url.replace("http", "ws") + f"/api/ws/drive/{vehicle}"
        if role is not None:
            url += f"?token={self.tokens[role]}"
        return connect(url, open_timeout=10)


@pytest.fixture
def running(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Running]:
    platform = Platform(plant(auth=True), data_dir=tmp_path, broker_url=mosquitto.url)
    loco = LocomotiveExtension(spec=SPEC)
    platform.start(connect_timeout=60)  # generous: a busy machine
    server = ApiServer(create_app(platform, manage_lifecycle=False)).start(timeout=60)
    try:
        tokens = {}
        for name, role in (("otto", "operator"), ("olga", "operator"), ("vera", "viewer")):
            platform.users.add_user(name, f"{name}-password", role)
            tokens[name] = platform.users.create_token(name)[0]
        loco.start(Broker("127.0.0.1", mosquitto.port))
        # the drive interlock reads the loco's state from the historian: wait for its first report to be stored
        ids = [platform.tag_index.id_of(f"{LOCO}/{name}") for name in ("drive_state", "speed")]
        wait_for(lambda: len(platform.historian.latest(ids)) == 2, timeout=60)
        yield Running(platform, server, loco, tokens)
    finally:
        loco.stop()
        server.stop()
        platform.stop()


def refusal(ws_factory: Any) -> str:
    with pytest.raises(ConnectionClosed) as closed, ws_factory() as ws:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    return closed.value.rcvd.reason


class Console:
    """The test's operator console: heartbeats on a thread while ``holding``, messages collected."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.holding = threading.Event()
        self.messages: list[dict[str, Any]] = []
        self.frames: list[bytes] = []
        self.rtts: list[float] = []
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._beat, daemon=True), threading.Thread(target=self._read,
                                                                                             daemon=True)]
        for t in self._threads:
            t.start()

    def _beat(self) -> None:
        while not self._done.is_set():
            if self.holding.is_set():
                self.ws.send(json.dumps({"type": "hb", "t": time.monotonic() * 1000}))
            self._done.wait(0.1)

    def _read(self) -> None:
        try:
            while not self._done.is_set():
                message = self.ws.recv(timeout=1)
                if isinstance(message, bytes):
                    self.frames.append(message)
                    continue
                m = json.loads(message)
                if m.get("type") == "echo":
                    self.rtts.append(time.monotonic() * 1000 - m["console"])
                self.messages.append(m)
        except (TimeoutError, ConnectionClosed):
            if not self._done.is_set():
                self._read()

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((m for m in reversed(self.messages) if m.get("type") == kind), None)

    def close(self) -> None:
        self._done.set()
        for t in self._threads:
            t.join(5)


def test_a_viewer_or_a_stranger_is_refused_a_drive_session(running: Running) -> None:
    assert "operator" in refusal(lambda: running.ws("vera"))
    assert "log in" in refusal(lambda: running.ws(None))
    assert "unknown vehicle" in refusal(lambda: running.ws("otto", vehicle="crane9"))
    assert running.loco.device is not None and running.loco.device.snapshot()["speed"] == 0.0
    audit = running.control.audit.read(user="vera")
    assert audit[0]["command"] == "loco1-drive" and audit[0]["decision"] == "refused" and audit[0]["rule"] == "role"


def test_an_operator_drives_sees_the_camera_and_round_trips_and_the_deadman_stops_the_loco(running: Running) -> None:
    device = running.loco.device
    assert device is not None
    with running.ws("otto") as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["timeout_ms"] == 1000 and hello["driver"] == "otto"
        console = Console(ws)
        try:
            wait_for(lambda: len(console.frames) >= 2, 15)  # the camera streams while the session is open
            assert console.frames[-1][:2] == b"\xff\xd8"  # JPEG
            assert "is being driven by otto" in refusal(lambda: running.ws("olga"))  # one driver per vehicle

            ws.send("{not json")  # bad input is answered, and the session goes on
            assert "bad message" in wait_for(lambda: console.last("error"), 10)["reason"]
            ws.send(json.dumps({"type": "fly"}))
            wait_for(lambda: "unknown message type" in (console.last("error") or {}).get("reason", ""), 10)

            console.holding.set()
            wait_for(lambda: len(console.rtts) >= 3, 10)
            ws.send(json.dumps({"type": "drive", "speed": 0.5, "id": 7}))
            reply = wait_for(lambda: console.last("command"), 10)
            assert reply["accepted"] and reply["id"] == 7
            start = device.snapshot()["position"]
            wait_for(lambda: device.snapshot()["position"] > start + 0.1, 10)
            assert 0 < min(console.rtts) < 1000
            echo = console.last("echo")
            assert echo is not None and echo["rtt_ms"] is not None  # the loco's own view of the link

            ws.send(json.dumps({"type": "drive", "speed": 99, "id": 8}))  # the platform checks the range first
            refused = wait_for(lambda: console.last("refused"), 10)
            assert "range" in refused["reason"] and refused["id"] == 8

            console.holding.clear()  # the operator lets go without a stop: the heartbeats stop
            state = wait_for(lambda: (m := console.last("state")) and m["state"] == "safe_stop" and m, 10)
            assert state["trip_reason"] == "heartbeat_timeout"
            wait_for(lambda: device.snapshot()["speed"] == 0.0, 10)
            health = httpx.get(f"{running.server.url}/health").json()
            assert "drive" in json.dumps(health)
            rows = {(r["value"], r["decision"], r["rule"]) for r in running.control.audit.read(user="otto")}
            assert {(0.0, "authorized", None), (0.5, "authorized", None), (99.0, "refused", "range")} <= rows
        finally:
            console.close()
    # the session closed: the camera stops once its lease runs out, and another operator may drive
    frames = device.frames_sent
    time.sleep(3.5)
    assert device.frames_sent - frames <= 16
    sent = device.frames_sent
    time.sleep(0.5)
    assert device.frames_sent == sent
    with running.ws("olga") as ws:
        assert json.loads(ws.recv(timeout=5))["driver"] == "olga"
