"""The ISA-95 asset model: site, area, line, cell, equipment and their tags.

Built once from the validated plant config and then read-only, so every thread
can share it. A tag's path is its address everywhere (API, historian, CLI):
``site/area/line[/cell]/equipment/tag``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from shopfloor.config.schema import (
    DerivedSource,
    EquipmentConfig,
    JsonSource,
    ModbusPoint,
    ModbusSource,
    OpcUaPoint,
    OpcUaSource,
    PlantConfig,
    SparkplugSource,
)
from shopfloor.core.errors import UnknownTag

Level = Literal["site", "area", "line", "cell", "equipment"]
Source = SparkplugSource | JsonSource | ModbusSource | OpcUaSource | DerivedSource


@dataclass(frozen=True, slots=True)
class Tag:
    path: str
    name: str
    equipment: str
    unit: str
    data_type: str
    description: str
    range: tuple[float, float] | None
    states: dict[int, str] | None
    source: Source
    address: str
    modbus: ModbusPoint | None = None
    opcua: OpcUaPoint | None = None


@dataclass(frozen=True, slots=True)
class AssetNode:
    path: str
    name: str
    level: Level
    type: str = ""
    description: str = ""
    children: tuple[AssetNode, ...] = ()
    tags: tuple[str, ...] = ()

    def walk(self) -> Iterator[AssetNode]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class AssetModel:
    root: AssetNode
    tags: tuple[Tag, ...]
    by_path: dict[str, Tag] = field(repr=False)

    @classmethod
    def from_config(cls, config: PlantConfig) -> AssetModel:
        tags: list[Tag] = []

        def equipment(parent: str, eq: EquipmentConfig) -> AssetNode:
            path = f"{parent}/{eq.name}"
            own: list[str] = []
            for t in eq.tags:
                source = t.source or eq.source
                assert source is not None  # the schema guarantees one
                tag = Tag(
                    path=f"{path}/{t.name}", name=t.name, equipment=path, unit=t.unit,
                    data_type=t.type, description=t.description, range=t.range, states=t.states,
                    source=source, address=t.address or t.name, modbus=t.modbus, opcua=t.opcua,
                )
                tags.append(tag)
                own.append(tag.path)
            return AssetNode(path, eq.name, "equipment", eq.type, eq.description, (), tuple(own))

        site = config.site
        areas = []
        for area in site.areas:
            a_path = f"{site.name}/{area.name}"
            lines = []
            for line in area.lines:
                l_path = f"{a_path}/{line.name}"
                cells = tuple(
                    AssetNode(
                        f"{l_path}/{c.name}", c.name, "cell", "", c.description,
                        tuple(equipment(f"{l_path}/{c.name}", e) for e in c.equipment),
                    )
                    for c in line.cells
                )
                direct = tuple(equipment(l_path, e) for e in line.equipment)
                lines.append(AssetNode(l_path, line.name, "line", "", line.description, cells + direct))
            areas.append(AssetNode(a_path, area.name, "area", "", area.description, tuple(lines)))
        root = AssetNode(site.name, site.name, "site", "", site.description, tuple(areas))
        by_path = {t.path: t for t in tags}
        sources: dict[tuple[object, str], str] = {}
        for t in tags:
            if isinstance(t.source, DerivedSource):
                continue  # written by a service by path, not read from a source address
            point = f"{t.modbus.table}:{t.modbus.address}:{t.modbus.type}" if t.modbus else t.address
            key: tuple[object, str] = (t.source, point)
            if key in sources:
                raise ValueError(f"tags {sources[key]} and {t.path} read the same source value {t.address!r}")
            sources[key] = t.path
        return cls(root, tuple(tags), by_path)

    def tag(self, path: str) -> Tag:
        try:
            return self.by_path[path]
        except KeyError:
            raise UnknownTag(f"unknown tag {path!r}") from None

    def node(self, path: str) -> AssetNode:
        for n in self.root.walk():
            if n.path == path:
                return n
        raise UnknownTag(f"unknown asset {path!r}")


class TagIndex:
    """Dense per-tag arrays indexed by historian tag id, for vectorised checks on the hot path."""

    def __init__(self, model: AssetModel, ids: dict[str, int]) -> None:
        self.model = model
        self.ids = dict(ids)
        size = (max(ids.values()) + 1) if ids else 0
        self.paths: list[str | None] = [None] * size
        self.low = np.full(size, -np.inf)
        self.high = np.full(size, np.inf)
        for path, i in ids.items():
            self.paths[i] = path
            tag = model.by_path.get(path)
            if tag is not None and tag.range is not None:
                self.low[i], self.high[i] = tag.range
        self.path_array = np.array(self.paths, dtype=object)  # paths[tag_id_array] in one gather

    def id_of(self, path: str) -> int:
        try:
            return self.ids[path]
        except KeyError:
            raise UnknownTag(f"unknown tag {path!r}") from None

    def path_of(self, tag_id: int) -> str:
        if 0 <= tag_id < len(self.paths) and (p := self.paths[tag_id]) is not None:
            return p
        raise UnknownTag(f"unknown tag id {tag_id}")

    def out_of_range(self, tag_id: npt.NDArray[np.int32], value: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Mask of samples outside their tag's engineering range (NaN is not out of range)."""
        return (value < self.low[tag_id]) | (value > self.high[tag_id])
