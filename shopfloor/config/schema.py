"""The plant.yaml schema: ISA-95 hierarchy, tags and where their values come from.

Pydantic is used here, at the file boundary only; the rest of the process works
on the frozen registry built from it (shopfloor.core.model).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidatorFunctionWrapHandler, field_validator, model_validator

from shopfloor.alarms.config import AlarmsConfig, KnownTags, known_tags
from shopfloor.apps.inspection.config import InspectionConfig
from shopfloor.apps.maintenance.config import AnomalyConfig, MaintenanceConfig
from shopfloor.apps.mes.config import MesConfig
from shopfloor.apps.scheduling.config import SchedulingConfig
from shopfloor.apps.warehouse.config import WarehouseConfig
from shopfloor.auth.config import AuthConfig
from shopfloor.connectors.mqtt.acl import MqttDevice, check_devices, check_filter
from shopfloor.control.config import ControlConfig, check_control
from shopfloor.control.drive_config import DriveConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]

DataType = Literal[
    "float64", "float32", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "enum",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkplugSource(Strict):
    """Values from a Sparkplug B edge node (and optionally one of its devices)."""

    protocol: Literal["sparkplug"]
    group: Name
    node: Name
    device: Name | None = None


class JsonSource(Strict):
    """Values from a device publishing the plain JSON format (docs/ingest.md)."""

    protocol: Literal["json"]
    device: Name


class ModbusSource(Strict):
    """A Modbus TCP device, polled (docs/connectors.md)."""

    protocol: Literal["modbus"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_s: float = Field(default=1.0, gt=0, description="Seconds between polls.")
    timeout_s: float = Field(default=1.0, gt=0, description="Seconds to wait for each response.")
    retries: int = Field(default=2, ge=0, description="Retries of a request before the device counts as down.")
    max_registers: int = Field(default=125, ge=1, le=125, description="Most registers in one read request.")


class OpcUaSource(Strict):
    """An OPC UA server, read through subscriptions (docs/connectors.md)."""

    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:4840/path")
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: str | None = Field(default=None, description="Client certificate (PEM or DER file).")
    private_key: str | None = Field(default=None, description="Client private key (PEM file).")
    server_certificate: str | None = Field(default=None, description="The server's certificate, to trust it.")
    username: str | None = None
    password: str | None = None
    publishing_interval_ms: float = Field(default=500, gt=0)
    sampling_interval_ms: float = Field(default=250, ge=0, description="Default for the tags of this source.")

    @model_validator(mode="after")
    def _certificates(self) -> OpcUaSource:
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError("security_policy Basic256Sha256 needs 'certificate' and 'private_key'")
        return self


class DerivedSource(Strict):
    """Values computed by the platform itself (a service, e.g. maintenance's health index), not read from a device.

    No connector reads these tags: the service named by ``app`` writes them through ``Platform.write``.
    """

    protocol: Literal["derived"]
    app: Name = Field(description="The platform service that writes these tags, e.g. maintenance.")


Source = Annotated[
    SparkplugSource | JsonSource | ModbusSource | OpcUaSource | DerivedSource, Field(discriminator="protocol")
]


class ModbusPoint(Strict):
    """Where a tag's value lies in a Modbus device, and how to read it."""

    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535, description="Protocol address (0-based) of the first register or bit.")
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"] = "uint16"
    word_order: Literal["big", "little"] = Field(default="big", description="Order of 16-bit words (big: high first).")
    byte_order: Literal["big", "little"] = Field(default="big", description="Order of bytes inside each word.")
    scale: float = Field(default=1.0, description="Value = raw * scale + offset.")
    offset: float = 0.0

    @model_validator(mode="after")
    def _bits(self) -> ModbusPoint:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} holds one bit: its type must be bool")
        if self.table in ("holding", "input") and self.type == "bool":
            raise ValueError("a bool lives in a coil or discrete input, not a register")
        return self


class OpcUaPoint(Strict):
    """Per-tag subscription settings of an OPC UA node (the node id is the tag's address)."""

    sampling_interval_ms: float | None = Field(default=None, ge=0, description="Overrides the source's.")
    deadband: float | None = Field(default=None, ge=0, description="Report only changes larger than this.")
    deadband_type: Literal["absolute", "percent"] = "absolute"


class TagConfig(Strict):
    name: Name
    description: str = ""
    unit: str = ""
    type: DataType = "float64"
    range: tuple[float, float] | None = Field(
        default=None, description="Engineering range [low, high]; values outside are stored as uncertain."
    )
    states: dict[int, str] | None = Field(default=None, description="Labels of an enum tag's codes.")
    address: str | None = Field(
        default=None, description="Metric name (Sparkplug) or key (JSON) at the source; defaults to the tag name."
    )
    source: Source | None = Field(default=None, description="Overrides the equipment's source for this tag.")
    modbus: ModbusPoint | None = Field(default=None, description="Required when the source is a Modbus device.")
    opcua: OpcUaPoint | None = Field(default=None, description="Subscription settings when the source is OPC UA.")

    @field_validator("range")
    @classmethod
    def _range_ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"range low ({v[0]}) must be below high ({v[1]})")
        return v

    @model_validator(mode="after")
    def _states_only_for_enum(self) -> TagConfig:
        if self.type == "enum" and not self.states:
            raise ValueError("an enum tag needs 'states' (code: label)")
        if self.type != "enum" and self.states:
            raise ValueError("'states' is only for tags of type enum")
        return self


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name {name!r}")
        seen.add(name)


class EquipmentConfig(Strict):
    name: Name
    type: str = Field(default="generic", description="Equipment class, e.g. cnc, conveyor, robot, energy_meter.")
    description: str = ""
    source: Source | None = None
    tags: list[TagConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> EquipmentConfig:
        _unique([t.name for t in self.tags], "tag")
        for tag in self.tags:
            source = tag.source or self.source
            if source is None:
                raise ValueError(f"tag {tag.name!r} has no source and equipment {self.name!r} gives none")
            if isinstance(source, ModbusSource) and tag.modbus is None:
                raise ValueError(f"tag {tag.name!r} reads a Modbus device: it needs 'modbus' (table, address, type)")
            if tag.modbus is not None and not isinstance(source, ModbusSource):
                raise ValueError(f"tag {tag.name!r} has 'modbus' but its source is {source.protocol}")
            if tag.opcua is not None and not isinstance(source, OpcUaSource):
                raise ValueError(f"tag {tag.name!r} has 'opcua' but its source is {source.protocol}")
            if isinstance(source, OpcUaSource) and tag.address is None:
                raise ValueError(f"tag {tag.name!r} reads OPC UA: its 'address' must be the node id, e.g. ns=2;s=Speed")
        return self


class CellConfig(Strict):
    name: Name
    description: str = ""
    equipment: list[EquipmentConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> CellConfig:
        _unique([e.name for e in self.equipment], "equipment")
        return self


class LineConfig(Strict):
    name: Name
    description: str = ""
    cells: list[CellConfig] = Field(default_factory=list)
    equipment: list[EquipmentConfig] = Field(
        default_factory=list, description="Equipment that belongs to the line, not to one cell (e.g. a conveyor)."
    )

    @model_validator(mode="after")
    def _check(self) -> LineConfig:
        _unique([c.name for c in self.cells] + [e.name for e in self.equipment], "cell or equipment")
        return self


class AreaConfig(Strict):
    name: Name
    description: str = ""
    lines: list[LineConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AreaConfig:
        _unique([x.name for x in self.lines], "line")
        return self


class SiteConfig(Strict):
    name: Name
    description: str = ""
    areas: list[AreaConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> SiteConfig:
        _unique([a.name for a in self.areas], "area")
        return self


BROKER_URL = re.compile(r"^(mqtt|mqtts|tcp|ssl)://[^/:]+(:\d+)?/?$")


class MqttConfig(Strict):
    broker: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host:port of the broker.")
    client_id: str = "shopfloor-ingest"
    username: str | None = None
    password: str | None = None
    sparkplug_groups: list[Name] | None = Field(
        default=None, description="Sparkplug groups to subscribe to; default: every group named by a source."
    )
    json_prefix: str = Field(default="shopfloor/json", description="Topic prefix of the plain JSON format.")
    qos: Literal[0, 1] = 1
    host_id: Name | None = Field(
        default="shopfloor",
        description="Sparkplug primary host id: spBv1.0/STATE/<host_id> says whether the platform is online; "
        "null to publish no STATE.",
    )
    devices: list[MqttDevice] = Field(
        default_factory=list, description="Device users and their topics (docs/mqtt-security.md); none: no ACLs."
    )
    platform_publish: list[str] = Field(
        default_factory=list, description="Topic filters the platform's user may publish to besides STATE and commands."
    )

    @field_validator("broker")
    @classmethod
    def _url(cls, v: str) -> str:
        if not BROKER_URL.match(v):
            raise ValueError(f"broker must look like mqtt://host:1883, got {v!r}")
        return v

    @field_validator("platform_publish")
    @classmethod
    def _filters(cls, v: list[str]) -> list[str]:
        return [check_filter(f) for f in v]

    @model_validator(mode="after")
    def _devices(self) -> MqttConfig:
        check_devices(self.devices, self.username)
        return self


class HistorianConfig(Strict):
    backend: Literal["duckdb", "postgres"] = "duckdb"
    url: str | None = Field(
        default=None, pattern=r"^postgres(ql)?://", description="postgresql://user@host:5432/db for backend postgres."
    )
    retention_days: float | None = Field(default=None, gt=0, description="Drop raw samples older than this.")
    write_connections: int = Field(
        default=2, ge=1, le=16, description="postgres: connections that COPY a large batch in parallel."
    )

    @model_validator(mode="after")
    def _url_for_postgres(self) -> HistorianConfig:
        if (self.backend == "postgres") != (self.url is not None):
            raise ValueError("backend postgres needs 'url' (postgresql://...), and only it takes one")
        return self


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class PlantConfig(Strict):
    """The whole plant.yaml."""

    site: SiteConfig
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    historian: HistorianConfig = Field(default_factory=HistorianConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    data_dir: str = Field(default="shopfloor-data", description="Where the historian and dead letters live.")
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig, description="Alarm rules (docs/alarms.md).")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Users and roles; off by default.")
    drive: DriveConfig | None = Field(default=None, description="Remotely driven vehicles (docs/drive.md).")
    mes: MesConfig | None = Field(default=None, description="MES recorder and master data (docs/mes.md).")
    maintenance: MaintenanceConfig | None = Field(default=None, description="Bearing diagnosis, RUL (maintenance.md).")
    control: ControlConfig = Field(default_factory=ControlConfig, description="Remote control (docs/control.md).")
    warehouse: WarehouseConfig | None = Field(default=None, description="Warehouse and AGVs (docs/warehouse.md).")
    scheduling: SchedulingConfig | None = Field(default=None, description="The plant's planner (docs/scheduling.md).")
    inspection: InspectionConfig | None = Field(default=None, description="Inspection station (docs/inspection.md).")
    anomaly: AnomalyConfig | None = Field(default=None, description="Live tags scored by streaming anomaly "
                                                                    "detectors (docs/maintenance.md).")

    @model_validator(mode="after")
    def _control_targets(self) -> PlantConfig:
        check_control(self.control, self.site)  # commands name the site's equipment and tags
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _alarm_tags(cls, data: object, handler: ValidatorFunctionWrapHandler) -> PlantConfig:
        """Alarm rules are checked against the site's tags (filled in by _site_tags, which runs first)."""
        token = known_tags.set(KnownTags(complete=False))
        try:
            result: PlantConfig = handler(data)
            return result
        finally:
            known_tags.reset(token)

    @field_validator("site")
    @classmethod
    def _site_tags(cls, site: SiteConfig) -> SiteConfig:
        tags = known_tags.get()
        if tags is not None:
            tags.complete = True
            for area in site.areas:
                for line in area.lines:
                    places = [(f"{site.name}/{area.name}/{line.name}/{c.name}", c.equipment) for c in line.cells]
                    for parent, equipment in [*places, (f"{site.name}/{area.name}/{line.name}", line.equipment)]:
                        for eq in equipment:
                            for t in eq.tags:
                                labels = {v: k for k, v in t.states.items()} if t.states else None
                                tags.states[f"{parent}/{eq.name}/{t.name}"] = labels
        return site
