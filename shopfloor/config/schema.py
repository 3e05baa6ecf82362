"""The plant.yaml schema: ISA-95 hierarchy, tags and where their values come from.

Pydantic is used here, at the file boundary only; the rest of the process works
on the frozen registry built from it (shopfloor.core.model).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


Source = Annotated[SparkplugSource | JsonSource, Field(discriminator="protocol")]


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
            if tag.source is None and self.source is None:
                raise ValueError(f"tag {tag.name!r} has no source and equipment {self.name!r} gives none")
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

    @field_validator("broker")
    @classmethod
    def _url(cls, v: str) -> str:
        if not BROKER_URL.match(v):
            raise ValueError(f"broker must look like mqtt://host:1883, got {v!r}")
        return v


class HistorianConfig(Strict):
    backend: Literal["duckdb"] = "duckdb"
    retention_days: float | None = Field(default=None, gt=0, description="Drop raw samples older than this.")


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
