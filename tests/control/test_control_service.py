"""The command service against real peers: a Mosquitto broker with a Sparkplug B edge node, asyncua's
server and pymodbus's server (shopfloor.control.peers), through a running platform.

One platform for the module (starting it costs seconds); each test leaves the devices as it found them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shopfloor.api import create_app
from shopfloor.auth.store import Principal, Role
from shopfloor.config import parse_plant_config
from shopfloor.control.peers import FieldPeers, SparkplugCnc, plant_yaml
from shopfloor.control.service import CommandService
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

CNC = "plant/shop/line1/cnc"
OPERATOR = Principal("olga", Role.OPERATOR, "token")
ENGINEER = Principal("erik", Role.ENGINEER, "token")
VIEWER = Principal("vera", Role.VIEWER, "token")


class Clock:
    """Monotonic nanoseconds that tests move by hand (confirmation expiry)."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


@dataclass
class Plant:
    platform: Platform
    service: CommandService
    cnc: SparkplugCnc
    field: FieldPeers
    clock: Clock

    def latest(self, path: str) -> float | None:
        batch = self.platform.historian.latest([self.platform.tag_index.id_of(path)])
        return float(batch.value[0]) if len(batch) else None


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    with Mosquitto() as broker:
        field = FieldPeers()
        field.start()
        cnc = SparkplugCnc("127.0.0.1", broker.port)
        clock = Clock()
        config = parse_plant_config(plant_yaml(broker.port, field) + "auth: {enabled: true}\n")
        service = CommandService(config.control, clock=clock)
        platform = Platform(config, data_dir=tmp_path_factory.mktemp("control"), services=[service])
        platform.start()
        cnc.start()
        try:
            p = Plant(platform, service, cnc, field, clock)
            for tag in ("cnc/guard_closed", "cnc/maintenance", "press/pressure_setpoint", "robot/mode"):
                wait_for(lambda t=tag: p.latest(f"plant/shop/line1/{t}") is not None, 30)  # type: ignore[misc]
            yield p
        finally:
            cnc.stop()
            platform.stop()
            field.stop()


def audit_row(p: Plant, audit_id: int) -> dict[str, object]:
    return next(r for r in p.service.audit.read(limit=50) if r["id"] == audit_id)


def test_operator_without_the_role_is_refused_and_audited(plant: Plant) -> None:
    out = plant.service.request(OPERATOR, "press-pressure", 120.0)
    assert out.decision == "refused" and out.rule == "role" and out.status == 403
    assert out.reason == "role: press-pressure needs role engineer; olga is operator"
    row = audit_row(plant, out.audit_id)
    assert row["user"] == "olga" and row["decision"] == "refused" and row["rule"] == "role"
    assert row["equipment"] == "plant/shop/line1/press" and row["value"] == 120.0
    assert str(row["target"]).startswith("modbus 127.0.0.1:") and str(row["target"]).endswith("holding 0")
    viewer = plant.service.request(VIEWER, "robot-mode", 1)  # below operator: no command at all
    assert viewer.rule == "role" and "needs role operator" in viewer.reason


def test_value_out_of_range_or_of_the_wrong_kind_is_refused(plant: Plant) -> None:
    out = plant.service.request(OPERATOR, "cnc-feed", 130)
    assert (out.decision, out.rule, out.status) == ("refused", "range", 422)
    assert out.reason == "range: 130 % is outside [50, 120] %"
    assert plant.service.request(OPERATOR, "robot-mode", 7).reason.startswith("range: 7 is not one of 0 (auto)")
    assert plant.service.request(OPERATOR, "cnc-run", 0.5).rule == "value"
    assert plant.service.request(OPERATOR, "cnc-feed", "fast").reason == "value: 'fast' is not a number"
    assert plant.service.request(OPERATOR, "nope", 1).status == 404
    assert audit_row(plant, out.audit_id)["answer"] is None


def test_interlock_refuses_and_names_the_rule(plant: Plant) -> None:
    plant.cnc.set(guard_closed=0.0)
    try:
        wait_for(lambda: plant.latest(f"{CNC}/guard_closed") == 0.0)
        before = plant.cnc.commands
        out = plant.service.request(OPERATOR, "cnc-run", True)
        assert (out.decision, out.rule, out.status) == ("refused", "interlock:guard-closed", 409)
        assert out.reason == "interlock guard-closed: guard_closed == 1 was false (guard_closed=0)"
        assert plant.cnc.commands == before  # nothing reached the device
        listed = {c["name"]: c for c in plant.service.describe()}["cnc-run"]
        assert not listed["ready"]
        assert [(i["name"], i["state"]) for i in listed["interlocks"]] == [
            ("guard-closed", "blocked"), ("not-in-maintenance", "ok")]
        decision = plant.service.authorize(OPERATOR, "cnc-run", 1)
        assert not decision.allowed and decision.rule == "interlock:guard-closed"
    finally:
        plant.cnc.set(guard_closed=1.0)
        wait_for(lambda: plant.latest(f"{CNC}/guard_closed") == 1.0)
    assert plant.service.authorize(OPERATOR, "cnc-run", 1).allowed


def test_sparkplug_dcmd_reaches_the_device_and_its_report_is_the_answer(plant: Plant) -> None:
    out = plant.service.request(OPERATOR, "cnc-feed", 85.5)
    assert out.decision == "executed", out
    assert plant.cnc.values["feed_override"] == 85.5
    assert out.answer is not None and out.answer.startswith("reported feed_override = 85.5 after")
    assert out.round_trip_ms is not None and 0 < out.round_trip_ms < 5000
    row = audit_row(plant, out.audit_id)
    assert row["decision"] == "executed" and row["protocol"] == "sparkplug" and row["answer"] == out.answer
    wait_for(lambda: plant.latest(f"{CNC}/feed_override") == 85.5)  # committed: the platform's last known value
    again = plant.service.request(OPERATOR, "cnc-feed", 85.5)  # no change: a device reporting by exception is silent
    assert again.decision == "executed" and again.answer == (
        "feed_override was already reported 85.5: sent, no change to report")
    started = plant.service.request(OPERATOR, "cnc-run", True)  # start: the device reports state 0 (running)
    assert started.decision == "executed" and plant.cnc.values["state"] == 0.0
    assert started.answer is not None and started.answer.startswith("reported state = 0")
    stopped = plant.service.request(OPERATOR, "cnc-run", False)
    assert stopped.decision == "executed" and plant.cnc.values["state"] == 1.0


def test_an_interlock_input_older_than_its_max_age_is_unknown(plant: Plant) -> None:
    def state() -> str:
        lock = next(c for c in plant.service.describe() if c["name"] == "cnc-feed-fresh")["interlocks"][0]
        return str(lock["state"])

    wait_for(lambda: state() == "unknown")  # the guard was last reported over 0.5 s ago
    out = plant.service.request(OPERATOR, "cnc-feed-fresh", 70)
    assert out.rule == "interlock:guard-seen-lately"
    assert out.reason.startswith("interlock guard-seen-lately: guard_closed == 1 value unknown or stale: "
                                 "plant/shop/line1/cnc/guard_closed stale (")
    assert out.reason.endswith("s old, at most 0.5 s)")


def test_link_loss_makes_interlocks_unknown_and_commands_time_out(plant: Plant) -> None:
    plant.cnc.stop()  # DDEATH/NDEATH: the platform marks the CNC's values bad
    r = plant.service._commands["cnc-feed"]
    spec = r.spec
    try:
        wait_for(lambda: plant.service.describe()[0]["interlocks"][0]["state"] == "unknown")
        out = plant.service.request(OPERATOR, "cnc-run", True)
        assert (out.decision, out.rule) == ("refused", "interlock:guard-closed")
        assert out.reason == ("interlock guard-closed: guard_closed == 1 value unknown or stale: "
                              "plant/shop/line1/cnc/guard_closed quality bad")
        r.spec = spec.model_copy(update={"answer_timeout_s": 0.5})
        lost = plant.service.request(OPERATOR, "cnc-feed", 60)  # no interlock: sent, but no one answers
        assert lost.decision == "timeout" and lost.status == 504
        assert lost.answer == "no report of feed_override = 60 within 0.5 s (last reported nothing)"
        assert audit_row(plant, lost.audit_id)["decision"] == "timeout"
    finally:
        r.spec = spec
        plant.cnc.start()
        wait_for(lambda: plant.service.describe()[0]["ready"], 30)


def test_two_step_confirm_with_expiry_and_single_use(plant: Plant) -> None:
    s = plant.service
    first = s.request(ENGINEER, "press-pressure", 180.0)
    assert first.decision == "confirm_required" and first.status == 202 and first.token
    assert first.summary.startswith("setpoint press: press-pressure = 180 bar via modbus 127.0.0.1:")
    assert (6, 0, [1800]) not in plant.field.writes
    wrong_value = s.confirm(ENGINEER, "press-pressure", 190.0, first.token)
    assert wrong_value.rule == "confirm" and "not erik for press-pressure = 190" in wrong_value.reason
    other_user = s.confirm(Principal("eve", Role.ADMIN, "token"), "press-pressure", 180.0, first.token)
    assert other_user.rule == "confirm" and "issued to erik" in other_user.reason
    done = s.confirm(ENGINEER, "press-pressure", 180.0, first.token)
    assert done.decision == "executed", done
    assert done.answer is not None and done.answer.startswith("write register (6) holding 0 acknowledged: [1800]")
    wait_for(lambda: plant.latest("plant/shop/line1/press/pressure_setpoint") == 180.0)
    reused = s.confirm(ENGINEER, "press-pressure", 180.0, first.token)
    assert reused.rule == "confirm" and reused.reason == "confirm: this confirmation token was already used"

    second = s.request(ENGINEER, "press-pressure", 150.0)
    assert second.token is not None
    plant.clock.ns += 31 * 10**9  # past confirm_ttl_s (30 s)
    expired = s.confirm(ENGINEER, "press-pressure", 150.0, second.token)
    assert expired.rule == "confirm" and expired.reason == "confirm: the confirmation expired (valid 30 s)"
    assert s.confirm(ENGINEER, "press-pressure", 150.0, "made-up").reason.startswith("confirm: unknown")
    decisions = [(r["step"], r["decision"]) for r in s.audit.read(limit=8, command="press-pressure")][::-1]
    assert decisions[-8:] == [
        ("request", "confirm_required"), ("confirm", "refused"), ("confirm", "refused"), ("confirm", "executed"),
        ("confirm", "refused"), ("request", "confirm_required"), ("confirm", "refused"), ("confirm", "refused"),
    ]


def test_modbus_device_exception_is_the_answer(plant: Plant) -> None:
    first = plant.service.request(ENGINEER, "press-pressure", 280.0)  # in our range, above the press's own limit
    out = plant.service.confirm(ENGINEER, "press-pressure", 280.0, first.token or "")
    assert out.decision == "failed" and out.status == 502
    assert out.answer == "exception code 3 (illegal data value)"
    assert audit_row(plant, out.audit_id)["answer"] == "exception code 3 (illegal data value)"
    coil = plant.service.request(OPERATOR, "press-pump", True)
    assert coil.decision == "executed" and coil.answer is not None and coil.answer.startswith("write coil (5)")
    wait_for(lambda: plant.latest("plant/shop/line1/press/pump") == 1.0)


def test_opcua_write_and_method_call_reach_the_server(plant: Plant) -> None:
    out = plant.service.request(OPERATOR, "robot-mode", "manual")  # a state label is accepted
    assert out.decision == "executed" and out.answer == "Good" and out.value == 1.0
    assert plant.field.run(plant.field.mode.read_value()) == 1
    wait_for(lambda: plant.latest("plant/shop/line1/robot/mode") == 1.0)
    call = plant.service.request(OPERATOR, "robot-speed", 35.0)
    assert call.decision == "executed", call
    assert plant.field.run(plant.field.speed.read_value()) == 35.0
    refused = plant.service.request(OPERATOR, "robot-speed-write", 10.0)
    assert refused.decision == "failed" and refused.answer is not None
    assert refused.answer == "BadUserAccessDenied (0x801F0000)"  # asyncua's answer to a read-only node
    plant.service.request(OPERATOR, "robot-mode", 0)


def test_audit_log_rejects_update_and_delete(plant: Plant) -> None:
    plant.service.request(OPERATOR, "cnc-feed", 999)
    path = Path(plant.service.audit.path)
    db = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE"):
            db.execute("UPDATE audit SET decision = 'executed'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE"):
            db.execute("DELETE FROM audit")
    finally:
        db.close()
    assert plant.service.audit.count() >= 1


def test_api_statuses_bodies_and_roles(plant: Plant) -> None:
    users = plant.platform.users
    tokens = {}
    for name, role in (("vic", "viewer"), ("otto", "operator"), ("emma", "engineer")):
        users.add_user(name, "correct-horse-1", role)
        tokens[name] = users.create_token(name)[0]
    server = ApiServer(create_app(plant.platform, manage_lifecycle=False)).start(timeout=60)
    try:

        def call(user: str | None, method: str, path: str, body: object = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
            return httpx.request(method, f"{server.url}/api/control{path}", json=body, headers=headers, timeout=30)

        assert call(None, "GET", "/commands").status_code == 401
        listed = call("vic", "GET", "/commands")
        assert listed.status_code == 200
        assert {c["name"]: c["ready"] for c in listed.json()}["cnc-run"] is True
        refused = call("vic", "POST", "/commands/cnc-feed", {"value": 90})
        assert refused.status_code == 403 and refused.json()["detail"] == "needs role operator; vic is viewer"
        role = call("otto", "POST", "/commands/press-pressure", {"value": 120})
        assert role.status_code == 403
        assert role.json()["detail"]["rule"] == "role" and "needs role engineer" in role.json()["detail"]["reason"]
        out_of_range = call("otto", "POST", "/commands/cnc-feed", {"value": 10})
        assert out_of_range.status_code == 422 and out_of_range.json()["detail"]["rule"] == "range"
        plant.cnc.set(maintenance=1.0)
        try:
            wait_for(lambda: plant.latest(f"{CNC}/maintenance") == 1.0)
            blocked = call("otto", "POST", "/commands/cnc-run", {"value": True})
            assert blocked.status_code == 409
            assert blocked.json()["detail"]["reason"] == (
                "interlock not-in-maintenance: maintenance == 0 was false (maintenance=1)")
        finally:
            plant.cnc.set(maintenance=0.0)
            wait_for(lambda: plant.latest(f"{CNC}/maintenance") == 0.0)
        first = call("emma", "POST", "/commands/press-pressure", {"value": 175})
        assert first.status_code == 202 and first.json()["expires_in_s"] == 30
        wrong = call("emma", "POST", "/commands/press-pressure/confirm", {"value": 175, "token": "x"})
        assert wrong.status_code == 409 and wrong.json()["detail"]["rule"] == "confirm"
        done = call("emma", "POST", "/commands/press-pressure/confirm", {"value": 175, "token": first.json()["token"]})
        assert done.status_code == 200 and done.json()["decision"] == "executed"
        audit = call("vic", "GET", "/audit?limit=3")
        assert audit.status_code == 200
        assert [(r["user"], r["decision"]) for r in audit.json()] == [
            ("emma", "executed"), ("emma", "refused"), ("emma", "confirm_required")]
        assert call(None, "GET", "/audit").status_code == 401
    finally:
        server.stop()
