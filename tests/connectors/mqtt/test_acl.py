"""Device credentials and topic rules: what each user may do, derived from the plant; hashes Mosquitto checks;
the files `shopfloor mqtt-acl` writes; and a clear error for every way the configuration can be wrong."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.config import ConfigError, parse_plant_config
from shopfloor.connectors.mqtt.acl import (
    AccessError,
    BrokerAccess,
    build_access,
    env_name,
    filter_covers,
    load_secrets,
    mosquitto_hash,
    verify_password,
    write_mosquitto_files,
)

SITE = """\
site:
  name: plant
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: press
              source: {protocol: sparkplug, group: g1, node: press-edge, device: press}
              tags: [{name: force}]
            - name: robot
              source: {protocol: sparkplug, group: g1, node: robot-edge}
              tags: [{name: speed}]
            - name: oven
              source: {protocol: json, device: oven}
              tags: [{name: temp}]
            - name: drill
              source: {protocol: modbus, host: 127.0.0.1}
              tags: [{name: rpm, modbus: {table: holding, address: 0}}]
"""
DEVICES = """\
mqtt:
  username: shopfloor
  devices:
    - {username: press-edge}
    - {username: robot-gw, equipment: [plant/a/l/robot]}
    - {username: oven, password_hash: "%s"}
    - {username: mes, publish: [shopfloor/mes/events]}
"""
SECRETS = {"shopfloor": "platform-pw", "press-edge": "press-pw", "robot-gw": "robot-pw", "oven": "oven-pw",
           "mes": "mes-pw"}
# made by `mosquitto_passwd -c -b pw dev1 secret` (Mosquitto 2.0.11): the format we write, checked by its tool
OVEN_ARGON2 = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("oven-pw")  # cheap for tests
MOSQUITTO_PASSWD_LINE = (
    "dev1:$7$101$RP/aXDMsxFE3qT53$9q3jkfZ1X+Hho6M30sod4rzpzRiDcuwtr1ReqI28W4wyIZRI7FAZvyeGq06Gu3Yjz6RerI6hZ4WIz51Iz6oLwA=="
)


def plant_text(oven_hash: str | None = None) -> str:
    return SITE + DEVICES % (oven_hash or OVEN_ARGON2)


@pytest.fixture(scope="module")
def access() -> BrokerAccess:
    return build_access(parse_plant_config(plant_text()), SECRETS)


def test_each_user_gets_the_topics_of_what_it_feeds(access: BrokerAccess) -> None:
    press = access.users["press-edge"]
    assert press.publish == (
        "spBv1.0/g1/NBIRTH/press-edge", "spBv1.0/g1/NDATA/press-edge", "spBv1.0/g1/NDEATH/press-edge",
        "spBv1.0/g1/DBIRTH/press-edge/+", "spBv1.0/g1/DDATA/press-edge/+", "spBv1.0/g1/DDEATH/press-edge/+",
    )
    assert press.read == ("spBv1.0/g1/NCMD/press-edge", "spBv1.0/g1/DCMD/press-edge/+", "spBv1.0/STATE/+")
    assert access.users["robot-gw"].publish[1] == "spBv1.0/g1/NDATA/robot-edge"  # from its equipment's source
    assert access.users["oven"].publish == ("shopfloor/json/oven",)
    assert (access.users["mes"].publish, access.users["mes"].read) == (("shopfloor/mes/events",), ())
    platform = access.users["shopfloor"]
    assert platform.role == "platform" and platform.read == ("#",)
    assert platform.publish == ("spBv1.0/STATE/shopfloor", "spBv1.0/+/NCMD/+", "spBv1.0/+/DCMD/+/+")


@pytest.mark.parametrize(("user", "topic", "allowed"), [
    ("press-edge", "spBv1.0/g1/DDATA/press-edge/press", True),
    ("press-edge", "spBv1.0/g1/NBIRTH/press-edge", True),
    ("press-edge", "spBv1.0/g1/DDATA/robot-edge/robot", False),  # another device's topic
    ("press-edge", "spBv1.0/g1/NDATA/press-edge/x/y", False),
    ("press-edge", "spBv1.0/g1/NCMD/press-edge", False),  # commands come from the platform only
    ("press-edge", "shopfloor/json/oven", False),
    ("oven", "shopfloor/json/oven", True),
    ("oven", "shopfloor/json/press", False),
    ("mes", "shopfloor/mes/events", True),
    ("shopfloor", "spBv1.0/STATE/shopfloor", True),
    ("shopfloor", "spBv1.0/g1/DCMD/press-edge/press", True),
    ("shopfloor", "spBv1.0/g1/DDATA/press-edge/press", False),  # the platform does not pose as a device
    ("nobody", "shopfloor/json/oven", False),
    (None, "shopfloor/json/oven", False),  # anonymous
])
def test_publish_rights(access: BrokerAccess, user: str | None, topic: str, allowed: bool) -> None:
    assert access.may_publish(user, topic) is allowed


def test_subscribe_and_receive_rights(access: BrokerAccess) -> None:
    assert access.may_subscribe("press-edge", "spBv1.0/g1/DCMD/press-edge/+")
    assert access.may_subscribe("press-edge", "spBv1.0/STATE/shopfloor")
    assert not access.may_subscribe("press-edge", "spBv1.0/g1/#")  # would read other devices' data
    assert not access.may_subscribe("press-edge", "#")
    assert access.may_subscribe("shopfloor", "spBv1.0/g1/#") and access.may_subscribe("shopfloor", "#")
    assert access.may_receive("press-edge", "spBv1.0/g1/NCMD/press-edge")
    assert not access.may_receive("press-edge", "spBv1.0/g1/NCMD/robot-edge")


@pytest.mark.parametrize(("allowed", "requested", "covered"), [
    ("#", "a/b/#", True), ("a/#", "a", True), ("a/#", "a/+/c", True), ("a/+", "a/b", True), ("a/+", "a/+", True),
    ("a/+", "a/#", False), ("a/b", "a/+", False), ("a/+", "a/b/c", False), ("a/b", "a", False), ("a", "a/b", False),
    ("+/b", "x/b", True), ("+/b", "+/c", False),
])
def test_a_subscription_is_allowed_only_inside_a_granted_filter(allowed: str, requested: str, covered: bool) -> None:
    assert filter_covers(allowed, requested) is covered


def test_mosquitto_hash_format_and_checks() -> None:
    _, stored = MOSQUITTO_PASSWD_LINE.split(":", 1)
    assert verify_password("secret", stored)  # a hash mosquitto_passwd made
    assert not verify_password("Secret", stored)
    mine = mosquitto_hash("pw", iterations=101, salt=b"0123456789ab")
    assert mine.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(mine.split("$")[-1]) == 88  # 64-byte digest
    assert verify_password("pw", mosquitto_hash("pw")) and not verify_password("pw ", mosquitto_hash("pw"))
    assert verify_password("oven-pw", OVEN_ARGON2)  # argon2: the embedded broker checks these too
    for broken in ("$7$x$y$z", "$7$101$!!$!!", "$argon2id$nonsense", "plain", ""):
        assert not verify_password("pw", broken)


def test_passwords_from_a_secrets_file_and_the_environment(tmp_path: Path) -> None:
    f = tmp_path / "secrets.yaml"
    f.write_text("press-edge: from-file\noven: from-file\n")
    env = {env_name("press-edge"): "from-env", "UNRELATED": "x"}
    assert env_name("press-edge") == "SHOPFLOOR_MQTT_PASSWORD_PRESS_EDGE"
    assert load_secrets(f, env, ["press-edge", "oven"]) == {"press-edge": "from-env", "oven": "from-file"}
    f.write_text("- just a list\n")
    with pytest.raises(AccessError, match="mapping of MQTT username to password"):
        load_secrets(f, {}, [])
    with pytest.raises(AccessError, match="secrets file"):
        load_secrets(tmp_path / "missing.yaml", {}, [])


@pytest.mark.parametrize(("mqtt", "message"), [
    ("mqtt: {devices: [{username: d1, json: [oven]}]}", "needs mqtt.username"),
    ("mqtt: {username: p, devices: [{username: d1, json: [oven]}, {username: d1, json: [oven]}]}", "twice"),
    ("mqtt: {username: p, devices: [{username: p, json: [oven]}]}", "twice"),
    ("mqtt: {username: p, devices: [{username: 'a:b', json: [oven]}]}", "username"),
    ("mqtt: {username: 'p q', devices: [{username: d1, json: [oven]}]}", "letters, digits"),
    ("mqtt: {username: p, devices: [{username: d1, publish: ['a/#/b']}]}", "not a topic filter"),
    ("mqtt: {username: p, devices: [{username: d1, json: [a/b]}]}", "one topic level"),
    ("mqtt: {username: p, devices: [{username: d1, password_hash: plain}]}", "password_hash"),
    ("mqtt: {username: p, platform_publish: ['x/+y']}", "not a topic filter"),
])
def test_bad_device_config_is_refused_at_load_with_the_field(mqtt: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_plant_config(SITE + mqtt + "\n", "plant.yaml")


@pytest.mark.parametrize(("devices", "message"), [
    ("[{username: d1, equipment: [plant/a/l/nope]}]", "no such equipment"),
    ("[{username: d1, equipment: [plant/a/l/drill]}]", "do not come over MQTT"),
    ("[{username: stranger}]", "names no topics"),
])
def test_devices_that_match_nothing_are_refused(devices: str, message: str) -> None:
    config = parse_plant_config(SITE + f"mqtt: {{username: p, devices: {devices}}}\n")
    with pytest.raises(AccessError, match=message):
        build_access(config, {"p": "x", "d1": "x", "stranger": "x"})


def test_missing_and_unusable_passwords_say_where_to_put_them() -> None:
    config = parse_plant_config(plant_text())
    with pytest.raises(AccessError, match="SHOPFLOOR_MQTT_PASSWORD_PRESS_EDGE"):
        build_access(config, {k: v for k, v in SECRETS.items() if k != "press-edge"})
    no_oven = {k: v for k, v in SECRETS.items() if k != "oven"}
    assert build_access(config, no_oven).users["oven"].password_hash.startswith("$argon2")  # embedded: fine
    with pytest.raises(AccessError, match="Mosquitto checks only"):
        build_access(config, no_oven, for_mosquitto=True)
    with pytest.raises(AccessError, match="nothing to restrict"):
        build_access(parse_plant_config(SITE), {})


def test_mosquitto_files(tmp_path: Path) -> None:
    access = build_access(parse_plant_config(plant_text()), SECRETS, for_mosquitto=True)
    files = write_mosquitto_files(access, tmp_path / "acl")
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o600
    lines = dict(line.split(":", 1) for line in files.password_file.read_text().splitlines())
    assert set(lines) == set(SECRETS) and verify_password("press-pw", lines["press-edge"])
    acl = files.acl_file.read_text()
    block = acl[acl.index("user oven\n"):].split("\n\n")[0]
    assert block == "user oven\ntopic write shopfloor/json/oven"
    assert "user shopfloor\ntopic write spBv1.0/STATE/shopfloor\n" in acl and "topic read #\n" in acl
    conf = files.conf.read_text()
    assert "allow_anonymous false\n" in conf and f"password_file {files.password_file}\n" in conf


def test_cli_writes_the_files_and_explains_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(plant_text())
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("".join(f"{k}: {v}\n" for k, v in SECRETS.items() if k != "mes"))
    secrets.chmod(0o600)
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["mqtt-acl", "--config", str(plant), "--out", str(out), "--secrets", str(secrets)])
    assert result.exit_code == 2 and "SHOPFLOOR_MQTT_PASSWORD_MES" in result.output  # mes has no password yet
    monkeypatch.setenv("SHOPFLOOR_MQTT_PASSWORD_MES", "mes-pw")
    result = runner.invoke(app, ["mqtt-acl", "--config", str(plant), "--out", str(out), "--secrets", str(secrets)])
    assert result.exit_code == 0, result.output
    assert (out / "password_file").exists() and (out / "acl_file").exists() and (out / "mosquitto.conf").exists()
    assert "can be read by others" not in result.output
    plant.write_text(SITE + "mqtt: {devices: [{username: x}]}\n")
    result = runner.invoke(app, ["mqtt-acl", "--config", str(plant), "--out", str(out)])
    assert result.exit_code == 2 and "needs mqtt.username" in result.output
