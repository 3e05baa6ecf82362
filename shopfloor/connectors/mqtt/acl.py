"""Device credentials and topic rules for MQTT: a device may publish only under its own topics.

plant.yaml lists the devices (``mqtt.devices``); each one's topics are derived from
the equipment sources it feeds (a Sparkplug edge node publishes its N/D BIRTH, DATA
and DEATH and reads its NCMD/DCMD and the host's STATE; a JSON device publishes
``<json_prefix>/<device>``), plus any topics named outright. The platform's own user
(``mqtt.username``) reads everything and publishes STATE and commands.

One ``BrokerAccess`` holds the result (users, password hashes, publish and read
filters) and is rendered two ways, so both brokers enforce the same rules: as
Mosquitto's ``password_file`` and ``acl_file`` (``shopfloor mqtt-acl``), and as the
embedded amqtt broker's plugins (broker_auth.py). Passwords are never read from
plant.yaml in clear: a secrets file or the environment gives them, or plant.yaml
holds a hash (docs/mqtt-security.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import yaml
from paho.mqtt.client import topic_matches_sub
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shopfloor.core.errors import ShopfloorError

if TYPE_CHECKING:
    from shopfloor.config.schema import PlantConfig

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"  # no ':' (password file) and no blanks (acl file)
Username = Annotated[str, Field(pattern=USERNAME_PATTERN, max_length=64)]
PBKDF2_ITERATIONS = 10_000  # Mosquitto's $7$ format carries its count; mosquitto_passwd's own default is 101
SALT_BYTES = 12  # as mosquitto_passwd
ENV_PREFIX = "SHOPFLOOR_MQTT_PASSWORD_"
SPARKPLUG_NODE_TYPES = ("NBIRTH", "NDATA", "NDEATH")
SPARKPLUG_DEVICE_TYPES = ("DBIRTH", "DDATA", "DDEATH")


class AccessError(ShopfloorError):
    """Device credentials or topic rules that cannot be used; the message says which and why."""


def check_filter(topic_filter: str) -> str:
    """An MQTT topic filter as the spec allows it ('+' a whole level, '#' only last), else ValueError."""
    if not topic_filter or len(topic_filter) > 1024 or "\0" in topic_filter:
        raise ValueError(f"not a topic filter: {topic_filter!r}")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("#" in level and (level != "#" or i != len(levels) - 1)) or ("+" in level and level != "+"):
            raise ValueError(f"not a topic filter: {topic_filter!r} ('+' is a whole level, '#' the last one)")
    return topic_filter


TopicFilter = Annotated[str, Field(min_length=1, max_length=1024)]


class SparkplugNode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(pattern=r"^[^/+#]+$")
    node: str = Field(pattern=r"^[^/+#]+$")


class MqttDevice(BaseModel):
    """One device's MQTT user and what it may publish; with no topics named, they come from the plant's sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Username
    password_hash: str | None = Field(
        default=None, pattern=r"^\$(7|argon2(id|i|d))\$",
        description="A Mosquitto $7$ hash (both brokers) or an argon2 hash (the embedded broker only); "
        "else the password comes from the secrets file or SHOPFLOOR_MQTT_PASSWORD_<USERNAME>.",
    )
    equipment: list[str] = Field(default_factory=list, description="Asset paths it feeds: their sources' topics.")
    sparkplug: list[SparkplugNode] = Field(default_factory=list, description="Sparkplug edge nodes it is.")
    json_devices: list[str] = Field(default_factory=list, alias="json", description="JSON-format devices it is.")
    publish: list[TopicFilter] = Field(default_factory=list, description="More topic filters it may publish to.")
    subscribe: list[TopicFilter] = Field(default_factory=list, description="More topic filters it may read.")

    @field_validator("publish", "subscribe")
    @classmethod
    def _filters(cls, v: list[str]) -> list[str]:
        return [check_filter(f) for f in v]

    @field_validator("json_devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        for d in v:
            if not d or "/" in d or "+" in d or "#" in d:
                raise ValueError(f"a JSON device is one topic level, got {d!r}")
        return v


def check_devices(devices: list[MqttDevice], platform_user: str | None) -> None:
    """Rules of the mqtt section alone: unique users, and a platform user to read what the devices send."""
    if not devices:
        return
    if platform_user is None:
        raise ValueError("mqtt.devices needs mqtt.username: the platform's own user, which reads every topic")
    if not re.match(USERNAME_PATTERN, platform_user):
        raise ValueError(f"mqtt.username {platform_user!r}: letters, digits and _ . @ - only (it goes in the ACL file)")
    seen = {platform_user}
    for d in devices:
        if d.username in seen:
            raise ValueError(f"MQTT user {d.username!r} appears twice (the platform's user is {platform_user!r})")
        seen.add(d.username)


# --- what each user may do ---------------------------------------------------------------------------------------


def filter_covers(allowed: str, requested: str) -> bool:
    """Whether every topic the filter ``requested`` can match is matched by ``allowed`` (a subscription check)."""
    a, r = allowed.split("/"), requested.split("/")
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(r):
            return False
        if r[i] == "#" or (r[i] == "+" and level != "+") or (level not in ("+", r[i])):
            return False
    return len(a) == len(r)


@dataclass(frozen=True, slots=True)
class Grant:
    """One MQTT user: its password hash and the filters it may publish to and read from."""

    username: str
    password_hash: str
    publish: tuple[str, ...]
    read: tuple[str, ...]
    role: str  # "platform" or "device"


@dataclass(frozen=True)
class BrokerAccess:
    """Every user of the broker; anyone else (anonymous included) may do nothing.

    ``refused`` counts what the embedded broker turned away, by action ("connect", "publish", "subscribe").
    """

    users: Mapping[str, Grant] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter, compare=False)

    def authenticate(self, username: str | None, password: str | None) -> bool:
        grant = self.users.get(username or "")
        return grant is not None and password is not None and verify_password(password, grant.password_hash)

    def may_publish(self, username: str | None, topic: str) -> bool:
        grant = self.users.get(username or "")
        return grant is not None and any(topic_matches_sub(f, topic) for f in grant.publish)

    def may_subscribe(self, username: str | None, topic_filter: str) -> bool:
        grant = self.users.get(username or "")
        return grant is not None and any(filter_covers(f, topic_filter) for f in grant.read)

    def may_receive(self, username: str | None, topic: str) -> bool:
        grant = self.users.get(username or "")
        return grant is not None and any(topic_matches_sub(f, topic) for f in grant.read)


def sparkplug_node_topics(group: str, node: str) -> tuple[list[str], list[str]]:
    """(publish, read) filters of a Sparkplug B edge node and its devices."""
    publish = [f"spBv1.0/{group}/{t}/{node}" for t in SPARKPLUG_NODE_TYPES]
    publish += [f"spBv1.0/{group}/{t}/{node}/+" for t in SPARKPLUG_DEVICE_TYPES]
    read = [f"spBv1.0/{group}/NCMD/{node}", f"spBv1.0/{group}/DCMD/{node}/+", "spBv1.0/STATE/+"]
    return publish, read


def platform_topics(config: PlantConfig) -> tuple[list[str], list[str]]:
    """(publish, read) filters of the platform's own user: all data in; STATE and commands out."""
    publish = ["spBv1.0/+/NCMD/+", "spBv1.0/+/DCMD/+/+"]
    if config.mqtt.host_id is not None:
        publish.insert(0, f"spBv1.0/STATE/{config.mqtt.host_id}")
    return publish + list(config.mqtt.platform_publish), ["#"]


def device_topics(device: MqttDevice, config: PlantConfig) -> tuple[list[str], list[str]]:
    """(publish, read) filters of one device, from the sources of what it feeds and what it names."""
    from shopfloor.config.schema import JsonSource, SparkplugSource
    from shopfloor.core.model import AssetModel

    prefix = config.mqtt.json_prefix.rstrip("/")
    nodes = [(n.group, n.node) for n in device.sparkplug]
    json_devices = list(device.json_devices)
    sources = [(t.path, t.source) for t in AssetModel.from_config(config).tags]
    for path in device.equipment:
        mine = [s for p, s in sources if p.startswith(path.rstrip("/") + "/")]
        mqtt_sources = [s for s in mine if isinstance(s, SparkplugSource | JsonSource)]
        if not mqtt_sources:
            problem = "no such equipment" if not mine else "its tags do not come over MQTT"
            raise AccessError(f"MQTT device {device.username!r}: equipment {path!r}: {problem}")
        for s in mqtt_sources:
            if isinstance(s, SparkplugSource):
                nodes.append((s.group, s.node))
            else:
                assert isinstance(s, JsonSource)
                json_devices.append(s.device)
    if not (device.equipment or device.sparkplug or device.json_devices or device.publish):
        nodes += [(s.group, s.node) for _, s in sources if isinstance(s, SparkplugSource) and s.node == device.username]
        json_devices += [s.device for _, s in sources if isinstance(s, JsonSource) and s.device == device.username]
        if not nodes and not json_devices:
            raise AccessError(
                f"MQTT device {device.username!r} names no topics and no Sparkplug node or JSON device of the plant "
                "has that name: give it equipment, sparkplug, json or publish"
            )
    publish: list[str] = []
    read: list[str] = []
    for group, node in dict.fromkeys(nodes):
        p, r = sparkplug_node_topics(group, node)
        publish += p
        read += r
    publish += [f"{prefix}/{d}" for d in dict.fromkeys(json_devices)]
    publish += device.publish
    read += device.subscribe
    return list(dict.fromkeys(publish)), list(dict.fromkeys(read))


def build_access(config: PlantConfig, secrets: Mapping[str, str], *, for_mosquitto: bool = False) -> BrokerAccess:
    """Users, hashes and filters for the plant's broker. Passwords: ``secrets`` (clear, hashed here) first,
    else the device's ``password_hash``; the platform's own from ``mqtt.password`` or ``secrets``."""
    mqtt = config.mqtt
    if not mqtt.devices:
        raise AccessError("plant.yaml lists no MQTT devices (mqtt.devices): there is nothing to restrict")
    assert mqtt.username is not None  # check_devices
    users: dict[str, Grant] = {}

    def hash_of(username: str, stored: str | None, clear: str | None) -> str:
        clear = secrets.get(username, clear)
        if clear is not None:
            return mosquitto_hash(clear)
        if stored is None:
            raise AccessError(
                f"no password for MQTT user {username!r}: put it in the secrets file or in "
                f"{env_name(username)}, or a password_hash in plant.yaml"
            )
        if for_mosquitto and not stored.startswith("$7$"):
            raise AccessError(
                f"MQTT user {username!r}: Mosquitto checks only $7$ (PBKDF2-SHA512) hashes, not argon2: give the "
                f"password in the secrets file or {env_name(username)}"
            )
        return stored

    publish, read = platform_topics(config)
    users[mqtt.username] = Grant(mqtt.username, hash_of(mqtt.username, None, mqtt.password), tuple(publish),
                                 tuple(read), "platform")
    for device in mqtt.devices:
        publish, read = device_topics(device, config)
        users[device.username] = Grant(device.username, hash_of(device.username, device.password_hash, None),
                                       tuple(publish), tuple(read), "device")
    return BrokerAccess(users)


# --- passwords ---------------------------------------------------------------------------------------------------


def mosquitto_hash(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """Mosquitto's ``$7$`` format: PBKDF2-HMAC-SHA512, ``$7$<iterations>$<salt b64>$<hash b64>``."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a ``$7$`` or argon2 hash (constant time; False for anything malformed)."""
    if stored.startswith("$7$"):
        try:
            _, _, iterations, salt, digest = stored.split("$")
            expected = base64.b64decode(digest, validate=True)
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt, validate=True),
                                      int(iterations))
        except ValueError:  # binascii.Error is a ValueError
            return False
        return hmac.compare_digest(got, expected)
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return PasswordHasher().verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return False


def env_name(username: str) -> str:
    """The environment variable that holds a user's password: SHOPFLOOR_MQTT_PASSWORD_<USERNAME>."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", username.upper())


def password_from_env(username: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The platform's own MQTT password when plant.yaml leaves mqtt.password out (SHOPFLOOR_MQTT_PASSWORD_<USER>)."""
    return environ.get(env_name(username)) if username else None


def load_secrets(path: str | Path | None, environ: Mapping[str, str], usernames: list[str]) -> dict[str, str]:
    """Clear passwords by user: a YAML mapping file (username: password), overridden by the environment."""
    out: dict[str, str] = {}
    if path is not None:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise AccessError(f"secrets file {p}: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise AccessError(f"secrets file {p}: must be a mapping of MQTT username to password (both strings)")
        out.update(data)
    for username in usernames:
        value = environ.get(env_name(username))
        if value is not None:
            out[username] = value
    return out


def readable_by_others(path: str | Path) -> bool:
    return bool(Path(path).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


# --- Mosquitto ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MosquittoFiles:
    password_file: Path
    acl_file: Path
    conf: Path


def acl_text(access: BrokerAccess) -> str:
    """Mosquitto's acl_file: per user, ``topic write`` for what it publishes and ``topic read`` for what it reads."""
    lines = ["# Written by `shopfloor mqtt-acl` from plant.yaml; edit plant.yaml, not this (docs/mqtt-security.md).",
             "# Nothing is granted before the first 'user' line: anonymous clients may do nothing."]
    for grant in access.users.values():
        lines += ["", f"# {grant.role}", f"user {grant.username}"]
        lines += [f"topic write {f}" for f in grant.publish]
        lines += [f"topic read {f}" for f in grant.read]
    return "\n".join(lines) + "\n"


def write_mosquitto_files(access: BrokerAccess, out_dir: str | Path) -> MosquittoFiles:
    """password_file (mode 0600), acl_file and a mosquitto.conf snippet that names them (absolute paths)."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    password_file, acl_file, conf = out / "password_file", out / "acl_file", out / "mosquitto.conf"
    for grant in access.users.values():
        if not grant.password_hash.startswith("$7$"):
            raise AccessError(f"MQTT user {grant.username!r}: Mosquitto needs a $7$ hash")
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.writelines(f"{g.username}:{g.password_hash}\n" for g in access.users.values())
    acl_file.write_text(acl_text(access))
    conf.write_text(
        "# Device credentials and topic rules from plant.yaml (`shopfloor mqtt-acl`, docs/mqtt-security.md).\n"
        "# Include in mosquitto.conf; the broker's user must be able to read both files.\n"
        "allow_anonymous false\n"
        f"password_file {password_file}\n"
        f"acl_file {acl_file}\n"
    )
    return MosquittoFiles(password_file, acl_file, conf)

