"""/api/auth/session: who is logged in, without a 401 when nobody is (the dashboard asks it at every load)."""

from __future__ import annotations

from pathlib import Path

from tests.auth.test_auth_api import Plant, client_for


def test_session_names_the_user_or_nobody_and_never_answers_401(tmp_path: Path) -> None:
    plant = Plant(tmp_path, auth=True)
    try:
        with client_for(plant) as client:
            nobody = client.get("/api/auth/session")
            assert nobody.status_code == 200
            assert nobody.json() == {"name": None, "role": None, "via": None, "auth_enabled": True}
            assert client.get("/api/auth/me").status_code == 401  # /me keeps its 401
            stale = client.get("/api/auth/session", headers={"Authorization": "Bearer not-a-token"})
            assert stale.status_code == 200 and stale.json()["name"] is None

            login = client.post("/api/auth/login", json={"username": "operator", "password": "operator-password"})
            assert login.status_code == 200
            me = client.get("/api/auth/session").json()  # the session cookie
            assert me == {"name": "operator", "role": "operator", "via": "session", "auth_enabled": True}
            client.post("/api/auth/logout")
            assert client.get("/api/auth/session").json()["name"] is None
    finally:
        plant.alarms.stop()
        plant.users.close()

    (tmp_path / "open").mkdir()
    open_plant = Plant(tmp_path / "open", auth=False)
    try:
        with client_for(open_plant) as client:
            assert client.get("/api/auth/session").json() == {
                "name": "anonymous", "role": "admin", "via": "anonymous", "auth_enabled": False}
    finally:
        open_plant.alarms.stop()
        open_plant.users.close()
