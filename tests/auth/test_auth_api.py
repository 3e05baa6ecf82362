"""Role checks on every write endpoint of the alarms API, login with a cookie, API tokens, user admin.

The app here is the real routers over a real user store and alarm engine, on a
stand-in for the platform object (the full platform is in tests/alarms/test_alarms_platform.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from shopfloor.alarms.api import router as alarms_router
from shopfloor.alarms.engine import AlarmEngine
from shopfloor.auth.api import router as auth_router
from shopfloor.auth.store import Role, UserStore
from shopfloor.config import parse_plant_config
from shopfloor.core.bus import SampleBus
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import SampleBatch
from shopfloor.testing.server import ApiServer

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PLANT = """\
site:
  name: plant
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: press
              source: {protocol: json, device: press}
              tags:
                - {name: force}
                - {name: speed}
alarms:
  rules:
    - {name: force, type: limit, tag: plant/a/l/press/force, h: 100}
"""


class Plant:
    def __init__(self, data_dir: Path, auth: bool) -> None:
        self.config = parse_plant_config(PLANT + f"auth: {{enabled: {str(auth).lower()}}}\n")
        model = AssetModel.from_config(self.config)
        self.index = TagIndex(model, {t.path: i for i, t in enumerate(model.tags)})
        self.users = UserStore(data_dir / "auth.sqlite", FAST)
        self.alarms = AlarmEngine(self.config.alarms, model, self.index, SampleBus(), data_dir)
        self.alarms.open()
        self.started_ns = 1
        self.tokens: dict[str, str] = {}
        for role in Role:
            self.users.add_user(role.value, f"{role.value}-password", role)
            self.tokens[role.value] = self.users.create_token(role.value)[0]

    def raise_alarm(self) -> None:
        self.alarms.process(SampleBatch.of([self.index.id_of("plant/a/l/press/force")], [10**18], [150.0]))


@contextlib.contextmanager
def client_for(plant: Plant) -> Iterator[httpx.Client]:
    app = FastAPI()
    app.state.platform = SimpleNamespace(config=plant.config, started_ns=1, users=plant.users, alarms=plant.alarms)
    app.include_router(alarms_router)
    app.include_router(auth_router)
    with ApiServer(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Plant, httpx.Client]]:
    plant = Plant(tmp_path, auth=True)
    with client_for(plant) as client:
        yield plant, client
    plant.alarms.stop()
    plant.users.close()


def bearer(plant: Plant, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plant.tokens[role]}"}


RULE = {"name": "overspeed", "type": "limit", "tag": "plant/a/l/press/speed", "h": 3000}
WRITES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("post", "/api/alarms/force:H/ack", {"comment": "seen"}, "operator"),
    ("post", "/api/alarms/ack", {"ids": ["force:H", "nope:H"]}, "operator"),
    ("post", "/api/alarms/force:H/shelve", {"minutes": 5}, "operator"),
    ("post", "/api/alarms/force:H/unshelve", {}, "operator"),
    ("post", "/api/alarms/force:H/out-of-service", {}, "engineer"),
    ("post", "/api/alarms/force:H/in-service", {}, "engineer"),
    ("post", "/api/alarms/rules", RULE, "engineer"),
    ("put", "/api/alarms/rules/overspeed", {**RULE, "h": 3500}, "engineer"),
    ("delete", "/api/alarms/rules/overspeed", None, "engineer"),
    ("post", "/api/users", {"name": "new", "password": "long enough", "role": "viewer"}, "admin"),
    ("patch", "/api/users/new", {"role": "operator"}, "admin"),
    ("delete", "/api/users/new", None, "admin"),
]


def test_every_write_needs_its_role(secured: tuple[Plant, httpx.Client]) -> None:
    plant, client = secured
    plant.raise_alarm()
    ranks = [r.value for r in Role]
    for method, url, body, needed in WRITES:
        kwargs = {"json": body} if body is not None else {}
        assert client.request(method, url, **kwargs).status_code == 401, url
        for role in ranks[: ranks.index(needed)]:
            r = client.request(method, url, headers=bearer(plant, role), **kwargs)
            assert r.status_code == 403, (url, role)
            assert f"needs role {needed}" in r.json()["detail"]
        r = client.request(method, url, headers=bearer(plant, needed), **kwargs)
        assert r.status_code in (200, 201), (url, r.text)
    who = {(e.event, e.user) for e in plant.alarms.store.journal(limit=100)}
    assert {("acknowledged", "operator"), ("shelved", "operator"), ("removed_from_service", "engineer"),
            ("rule_created", "engineer")} <= who


def test_reads_need_a_viewer_when_auth_is_on(secured: tuple[Plant, httpx.Client]) -> None:
    plant, client = secured
    urls = ("/api/alarms", "/api/alarms/summary", "/api/alarms/journal?since=2026-01-01T00:00Z", "/api/alarms/rules")
    for url in urls:
        assert client.get(url).status_code == 401
        assert client.get(url, headers=bearer(plant, "viewer")).status_code == 200
    assert client.get("/api/alarms", headers={"Authorization": "Bearer sft_1_forged"}).status_code == 401
    assert client.get("/api/alarms/journal?since=yesterday", headers=bearer(plant, "viewer")).status_code == 422


def test_login_cookie_logout(secured: tuple[Plant, httpx.Client]) -> None:
    plant, client = secured
    assert client.post("/api/auth/login", json={"username": "operator", "password": "nope"}).status_code == 401
    r = client.post("/api/auth/login", json={"username": "operator", "password": "operator-password"})
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert "httponly" in r.headers["set-cookie"].lower()
    me = client.get("/api/auth/me").json()  # the cookie alone
    assert me == {"name": "operator", "role": "operator", "via": "session", "auth_enabled": True}
    plant.raise_alarm()
    assert client.post("/api/alarms/force:H/ack", json={}).status_code == 200
    assert client.post("/api/alarms/force:H/ack", json={}).status_code == 409  # nothing left to acknowledge
    client.post("/api/auth/logout")
    client.cookies.clear()
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).status_code == 401


def test_failed_logins_are_throttled(secured: tuple[Plant, httpx.Client]) -> None:
    _, client = secured
    codes = [client.post("/api/auth/login", json={"username": "viewer", "password": "x" * 9}).status_code
             for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_tokens_self_service_and_last_admin(secured: tuple[Plant, httpx.Client]) -> None:
    plant, client = secured
    r = client.post("/api/users/viewer/tokens", json={"label": "grafana"}, headers=bearer(plant, "viewer"))
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["via"] == "token"
    assert client.get("/api/users/operator/tokens", headers=bearer(plant, "viewer")).status_code == 403
    assert client.delete(f"/api/tokens/{r.json()['id']}", headers=bearer(plant, "viewer")).status_code == 200
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    r = client.patch("/api/users/admin", json={"role": "viewer"}, headers=bearer(plant, "admin"))
    assert r.status_code == 409 and "last admin" in r.json()["detail"]
    assert client.post("/api/users", json={"name": "x", "password": "short", "role": "viewer"},
                       headers=bearer(plant, "admin")).status_code == 400


def test_rule_errors_and_unknown_alarms(secured: tuple[Plant, httpx.Client]) -> None:
    plant, client = secured
    eng = bearer(plant, "engineer")
    r = client.post("/api/alarms/rules", json={**RULE, "tag": "plant/a/l/press/nope"}, headers=eng)
    assert r.status_code == 422 and "unknown tag" in str(r.json()["detail"])
    r = client.put("/api/alarms/rules/force", json={"type": "limit", "tag": "plant/a/l/press/force", "h": 1},
                   headers=eng)
    assert r.status_code == 409 and "plant.yaml" in r.json()["detail"]
    assert client.post("/api/alarms/nope:H/ack", json={}, headers=eng).status_code == 404
    assert client.post("/api/alarms/force:H/shelve", json={"minutes": 10_000}, headers=eng).status_code == 409


def test_auth_off_is_the_default_and_changes_nothing(tmp_path: Path) -> None:
    plant = Plant(tmp_path, auth=False)
    try:
        with client_for(plant) as client:
            assert client.get("/api/auth/me").json() == {
                "name": "anonymous", "role": "admin", "via": "anonymous", "auth_enabled": False,
            }
            plant.raise_alarm()
            assert client.post("/api/alarms/force:H/ack", json={}).status_code == 200
            # a logged-in user is still named in the journal
            assert client.post("/api/alarms/force:H/shelve", json={"minutes": 1},
                               headers=bearer(plant, "operator")).status_code == 200
        users = [(e.event, e.user) for e in plant.alarms.store.journal(alarm_id="force:H")]
        assert ("acknowledged", "anonymous") in users and ("shelved", "operator") in users
    finally:
        plant.alarms.stop()
        plant.users.close()
