"""With auth on, every plant-data endpoint of the real app needs a viewer, and planning needs an engineer;
/health stays open to monitoring. Without auth (the demo), nothing asks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_auth_api import PLANT  # the same one-press plant
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer

READS = [
    "/api/assets", "/api/tags", "/api/latest", "/api/history?tag=plant/a/l/press/force", "/api/connectors",
    "/api/deadletters", "/api/dashboard/overview", "/api/alarms", "/api/mes/verify",
    "/api/scheduling/stats",
]
JOB_SHOP = "1 1\n0 5\n"  # OR-Library: one job, one machine, 5 time units


def test_reads_need_a_viewer_and_planning_an_engineer(mosquitto: Mosquitto, tmp_path: Path) -> None:
    platform = Platform(parse_plant_config(PLANT + "auth: {enabled: true}\n"), data_dir=tmp_path,
                        broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url) as http:
        platform.users.add_user("vera", "viewer-pw!", "viewer")
        platform.users.add_user("emil", "engineer-pw", "engineer")
        viewer = {"Authorization": f"Bearer {platform.users.create_token('vera')[0]}"}
        engineer = {"Authorization": f"Bearer {platform.users.create_token('emil')[0]}"}
        assert http.get("/health").status_code == 200
        for path in READS:
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers=viewer).status_code == 200, path
        solve = {"params": {"method": "dispatch", "time_limit_s": 1}, "content": JOB_SHOP,
                 "headers": {"content-type": "text/plain"}}
        assert http.post("/api/scheduling/solve/text", **solve).status_code == 401  # type: ignore[arg-type]
        refused = http.post("/api/scheduling/solve/text", **{**solve, "headers": {**solve["headers"], **viewer}})  # type: ignore[arg-type]
        assert refused.status_code == 403 and "needs role engineer" in refused.json()["detail"]
        solved = http.post("/api/scheduling/solve/text", **{**solve, "headers": {**solve["headers"], **engineer}})  # type: ignore[arg-type]
        assert solved.status_code == 200, solved.text

        ws_url = server.url.replace("http", "ws") + "/api/ws/live"
        with pytest.raises(ConnectionClosed) as closed, connect(ws_url) as ws:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        token = viewer["Authorization"].split()[1]
        with connect(f"{ws_url}?token={token}") as ws:
            assert b'"hello"' in ws.recv(timeout=5)  # type: ignore[operator]


def test_without_auth_nothing_asks(mosquitto: Mosquitto, tmp_path: Path) -> None:
    platform = Platform(parse_plant_config(PLANT), data_dir=tmp_path, broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url) as http:
        for path in READS:
            assert http.get(path).status_code == 200, path
