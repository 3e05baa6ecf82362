"""The ``mes:`` section of plant.yaml: switches the MES recorder on and declares its master data.

Products, materials and routings live in the plant's configuration, next to the equipment they
run on, so a plant (and the virtual factory, whose extension writes this section) gets the same
master data at every start: the recorder adds what is missing and a new routing version when the
steps changed. Work orders, lots and serials are not configuration: they arrive as events.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_TOPIC = "shopfloor/mes/events"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductConfig(_Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = ""
    unit: str = "pcs"
    gtin: str | None = Field(default=None, description="GS1 GTIN (8-14 digits): EPCIS Digital Link identifiers.")


class MaterialConfig(_Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = ""
    unit: str = "pcs"
    gtin: str | None = None


class RoutingStepConfig(_Strict):
    name: str = Field(min_length=1)
    equipment: str = Field(min_length=1, description="Asset path of the machine that does this step.")
    pri_s: float = Field(gt=0, description="ISO 22400 planned run time per item, seconds.")


class RoutingConfig(_Strict):
    product: str
    steps: list[RoutingStepConfig] = Field(min_length=1)


class MesConfig(_Strict):
    """The MES recorder (docs/mes.md): where its events come from and its master data."""

    topic: str = Field(default=DEFAULT_TOPIC, description="MQTT topic of the plant's MES events (QoS 1).")
    client_id: str = Field(default="shopfloor-mes", description="MQTT client id (a persistent session).")
    url: str | None = Field(default=None, description="Database URL; default <data_dir>/mes.sqlite.")
    products: list[ProductConfig] = Field(default_factory=list)
    materials: list[MaterialConfig] = Field(default_factory=list)
    routings: list[RoutingConfig] = Field(default_factory=list)
    shift_starts_h: list[float] = Field(default=[6.0, 14.0, 22.0], min_length=1,
                                        description="Local hours the shifts start (OEE by shift).")
    utc_offset_h: float = Field(default=0.0, ge=-14, le=14, description="Local time minus UTC, hours.")
    emission_factor_kg_per_kwh: float | None = Field(
        default=None, ge=0, description="kg CO2e per kWh of the site's electricity; no CO2e figures without it."
    )
    seal_every_s: float = Field(default=60.0, gt=0, description="Seconds between signed checkpoints of the tail.")

    @model_validator(mode="after")
    def _references(self) -> MesConfig:
        products = {p.code for p in self.products}
        for r in self.routings:
            if r.product not in products:
                raise ValueError(f"routing of {r.product!r}: no such product in mes.products")
        if len({p.code for p in self.products}) != len(self.products):
            raise ValueError("mes.products: product codes must be unique")
        if len({m.code for m in self.materials}) != len(self.materials):
            raise ValueError("mes.materials: material codes must be unique")
        if any(not 0 <= h < 24 for h in self.shift_starts_h):
            raise ValueError("mes.shift_starts_h: hours must be in [0, 24)")
        return self
