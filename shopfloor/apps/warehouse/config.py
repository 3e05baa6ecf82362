"""The ``warehouse:`` section of plant.yaml: the grid map, its locations, the vehicles and the line-side buffers.

The map is a MovingAI-style grid (``.`` free, ``@`` rack or wall); every location names the free cell a
vehicle stops at to pick or drop there. Vehicles are named by their VDA 5050 manufacturer and serial
number; each has a home cell with a charger. The section switches the warehouse service on.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
LocationKind = Literal["rack", "bin", "dock", "line_side"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocationConfig(_Strict):
    code: Code
    kind: LocationKind
    cell: tuple[int, int] = Field(description="(x, y) of the free cell a vehicle stops at for this location.")
    equipment: str | None = Field(default=None, description="Line-side buffers: the machine (asset path) it feeds.")
    material: str | None = Field(default=None, description="Line-side buffers: the material it holds.")
    min: float | None = Field(default=None, ge=0, description="Line-side: replenish when stock + incoming < min.")
    max: float | None = Field(default=None, gt=0, description="Line-side: replenish up to this quantity.")

    @model_validator(mode="after")
    def _line_side(self) -> LocationConfig:
        if self.kind == "line_side":
            if self.equipment is None or self.material is None or self.min is None or self.max is None:
                raise ValueError(f"line-side buffer {self.code}: equipment, material, min and max are required")
            if self.max <= self.min:
                raise ValueError(f"line-side buffer {self.code}: max must be above min")
        return self


class VehicleConfig(_Strict):
    serial: Code
    manufacturer: Code = "shopfloor"
    home: tuple[int, int] = Field(description="(x, y) of the vehicle's parking cell, which has a charger.")


class StockConfig(_Strict):
    """Initial stock, received once into an empty warehouse (the demo's starting inventory)."""

    location: Code
    material: Code
    lot: Code
    quantity: float = Field(gt=0)


class WarehouseConfig(_Strict):
    map: list[str] = Field(description="Grid rows, top first: '.' free, '@' blocked (racks, walls, machines).")
    map_id: Code = "warehouse"
    cell_size_m: float = Field(default=1.0, gt=0)
    interface: Code = "uagv"
    locations: list[LocationConfig]
    vehicles: list[VehicleConfig] = Field(default_factory=list)
    materials: list[Code] = Field(default_factory=list, description="Material codes created in the MES if missing.")
    initial_stock: list[StockConfig] = Field(default_factory=list)
    tags: str | None = Field(
        default=None, description="Asset path under which each vehicle's derived tags live (<path>/<serial>/x ...)."
    )
    database: str | None = Field(default=None, description="Database URL; default: the MES database (mes.sqlite).")
    speed_cells_per_s: float = Field(default=1.0, gt=0, description="Planning speed of the vehicles.")
    battery_use_pct_per_cell: float = Field(default=0.3, ge=0)
    charge_pct_per_s: float = Field(default=2.0, gt=0)
    reserve_pct: float = Field(default=20.0, ge=0, lt=100)

    @model_validator(mode="after")
    def _check(self) -> WarehouseConfig:
        width = len(self.map[0]) if self.map else 0
        if not width or any(len(r) != width for r in self.map) or any(set(r) - {".", "@"} for r in self.map):
            raise ValueError("warehouse map: rows of equal length made of '.' (free) and '@' (blocked)")

        def free(cell: tuple[int, int], what: str) -> None:
            x, y = cell
            if not (0 <= x < width and 0 <= y < len(self.map)) or self.map[y][x] != ".":
                raise ValueError(f"{what}: cell {list(cell)} is not a free cell of the map")

        codes = [loc.code for loc in self.locations]
        if len(set(codes)) != len(codes):
            raise ValueError("warehouse locations: duplicate codes")
        for loc in self.locations:
            free(loc.cell, f"location {loc.code}")
        homes = [v.home for v in self.vehicles]
        if len(set(homes)) != len(homes) or len({v.serial for v in self.vehicles}) != len(self.vehicles):
            raise ValueError("warehouse vehicles: serials and home cells must be unique")
        stations = {loc.cell for loc in self.locations}
        for v in self.vehicles:
            free(v.home, f"vehicle {v.serial} home")
            if v.home in stations:
                raise ValueError(f"vehicle {v.serial}: the home cell is a location's cell")
        for s in self.initial_stock:
            if s.location not in codes:
                raise ValueError(f"initial stock: unknown location {s.location}")
        return self
