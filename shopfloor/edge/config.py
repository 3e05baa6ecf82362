"""The edge.yaml schema and loader: which devices the gateway reads and how it reaches the platform.

The device sources and points are plant.yaml's own models (ModbusSource, OpcUaSource,
ModbusPoint, OpcUaPoint), so a device moves between plant.yaml and edge.yaml unchanged.
Errors name the file, the line and the field, through the same YAML reader as plant.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shopfloor.config.loader import load_yaml_model, parse_yaml_model
from shopfloor.config.schema import (
    BROKER_URL,
    ModbusPoint,
    ModbusSource,
    Name,
    OpcUaPoint,
    OpcUaSource,
    Strict,
)

FieldSource = Annotated[ModbusSource | OpcUaSource, Field(discriminator="protocol")]

#: The gateway's own metrics (Sparkplug node metrics), in NBIRTH order: name -> what it says.
LINK_METRICS: dict[str, str] = {
    "link_up": "1 while the uplink to the broker is connected and born, else 0",
    "link_rtt_ms": "median PUBLISH-to-PUBACK time over the last interval (absent when nothing was acknowledged)",
    "link_outages": "uplink outages since the gateway started",
    "link_outage_s": "seconds the current outage has lasted (0 while up)",
    "backlog_samples": "samples on disk not yet acknowledged by the broker",
    "backlog_bytes": "bytes those samples take in the buffer",
    "dropped_samples": "samples dropped because the buffer was full (all time, survives restarts)",
    "samples_read": "samples read from the devices since the gateway started",
}


class GatewayConfig(Strict):
    """Who the gateway is on the wire: a Sparkplug B edge node."""

    group: Name = Field(description="Sparkplug group id.")
    node: Name = Field(description="Sparkplug edge node id: the gateway's name.")


class UplinkConfig(Strict):
    """The MQTT connection to the platform's broker."""

    broker: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host:port of the platform's broker.")
    client_id: str | None = Field(default=None, description="Default: shopfloor-edge-<group>-<node>.")
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=10, ge=2, le=3600, description="A silent link is declared down after 1.5x this.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First pause between connection attempts.")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Longest pause between attempts (backoff cap).")
    max_inflight: int = Field(default=20, ge=1, le=1000, description="QoS 1 messages published but not acknowledged.")
    samples_per_message: int = Field(default=500, ge=1, le=5000, description="Most metrics in one DATA message.")
    drain_s: float = Field(
        default=5.0, ge=0, description="On stop, how long to keep forwarding the backlog before disconnecting."
    )
    primary_host: Name | None = Field(
        default=None,
        description="Sparkplug primary host id (the platform's mqtt.host_id, 'shopfloor' by default): when set, "
        "the gateway sends only while spBv1.0/STATE/<id> says online, so nothing goes to a broker nobody reads.",
    )

    @field_validator("broker")
    @classmethod
    def _url(cls, v: str) -> str:
        if not BROKER_URL.match(v) or v.startswith(("mqtts://", "ssl://")):
            raise ValueError(f"broker must look like mqtt://host:1883 (TLS is not supported yet), got {v!r}")
        return v

    @model_validator(mode="after")
    def _backoff(self) -> UplinkConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class BufferConfig(Strict):
    """The on-disk store-and-forward buffer."""

    data_dir: str = Field(default="edge-data", description="Directory of buffer.sqlite and health.json.")
    max_mb: float = Field(default=256.0, gt=0, description="Bound on the samples kept (21 bytes each).")
    when_full: Literal["drop_oldest", "drop_newest"] = Field(
        default="drop_oldest", description="drop_oldest: make room by deleting the oldest samples; "
        "drop_newest: refuse new samples until there is room. Either way they are counted."
    )
    commit_s: float = Field(default=0.02, gt=0, le=5, description="Samples are gathered this long per disk commit.")


class LinkConfig(Strict):
    interval_s: float = Field(default=5.0, gt=0, description="How often the link metrics are sampled.")


class EdgeTag(Strict):
    """One value of a device: a Sparkplug metric of the gateway named like the tag."""

    name: Name
    description: str = ""
    address: str | None = Field(default=None, description="OPC UA node id (ns=2;s=Speed); not used for Modbus.")
    modbus: ModbusPoint | None = None
    opcua: OpcUaPoint | None = None


class EdgeDevice(Strict):
    """A field device: a Sparkplug device of the gateway."""

    name: Name = Field(description="Sparkplug device id; the platform maps it with source.device.")
    source: FieldSource
    tags: list[EdgeTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> EdgeDevice:
        seen: set[str] = set()
        for tag in self.tags:
            if tag.name in seen:
                raise ValueError(f"duplicate tag name {tag.name!r}")
            seen.add(tag.name)
            if isinstance(self.source, ModbusSource) and tag.modbus is None:
                raise ValueError(f"tag {tag.name!r} reads a Modbus device: it needs 'modbus' (table, address, type)")
            if not isinstance(self.source, ModbusSource) and tag.modbus is not None:
                raise ValueError(f"tag {tag.name!r} has 'modbus' but the device speaks {self.source.protocol}")
            if isinstance(self.source, OpcUaSource) and tag.address is None:
                raise ValueError(f"tag {tag.name!r} reads OPC UA: its 'address' must be the node id, e.g. ns=2;s=Speed")
            if not isinstance(self.source, OpcUaSource) and tag.opcua is not None:
                raise ValueError(f"tag {tag.name!r} has 'opcua' but the device speaks {self.source.protocol}")
        return self


class EdgeConfig(Strict):
    """The whole edge.yaml."""

    gateway: GatewayConfig
    mqtt: UplinkConfig = Field(default_factory=UplinkConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    devices: list[EdgeDevice] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeConfig:
        names = [d.name for d in self.devices]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate device name(s) {dup}")
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"shopfloor-edge-{self.gateway.group}-{self.gateway.node}"


_TOP = "a mapping with 'gateway' and 'devices'"


def parse_edge_config(text: str, file: str = "<string>") -> EdgeConfig:
    """Validate edge.yaml text; raise ConfigError naming file, line and field."""
    return parse_yaml_model(text, EdgeConfig, file, top_level=_TOP)


def load_edge_config(path: str | Path) -> EdgeConfig:
    """Read and validate an edge.yaml file."""
    return load_yaml_model(path, EdgeConfig, top_level=_TOP)
