"""Response models of the API: they document /docs; handlers return columns through FastJSONResponse."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AssetOut(BaseModel):
    path: str
    name: str
    level: Literal["site", "area", "line", "cell", "equipment"]
    type: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list, description="Paths of the equipment's tags.")
    children: list[AssetOut] = Field(default_factory=list)


class TagOut(BaseModel):
    path: str
    name: str
    equipment: str
    unit: str
    type: str
    description: str
    range: tuple[float, float] | None
    states: dict[int, str] | None
    source: dict[str, str | None]
    address: str


class ValueOut(BaseModel):
    tag: str
    ts: str = Field(description="ISO-8601 UTC timestamp of the sample.")
    ts_ms: int
    value: float | None = Field(description="null for a bad-quality sample without a value.")
    quality: Literal["good", "uncertain", "bad"]
    label: str | None = Field(default=None, description="State label of an enum tag.")


class HistoryOut(BaseModel):
    tag: str
    start_ms: int
    end_ms: int
    bucket_ms: int | None = Field(description="null for raw samples.")
    t: list[int] = Field(description="Epoch ms: sample times (raw) or bucket starts.")
    value: list[float | None] | None = Field(default=None, description="Raw values.")
    quality: list[int] | None = Field(default=None, description="Raw qualities (192 good, 64 uncertain, 0 bad).")
    min: list[float] | None = None
    max: list[float] | None = None
    mean: list[float] | None = None
    count: list[int] | None = None
    first: list[float] | None = None
    last: list[float] | None = None


class DeadLetterOut(BaseModel):
    id: int
    received: str
    source: str
    topic: str
    reason: str
    size: int
    payload_hex: str = Field(description="The first 4 KiB of the payload, hex.")
    payload_text: str | None = Field(description="The payload as UTF-8 text, when it is text.")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    tags: int
    historian: dict[str, object]
    dead_letters: dict[str, object]
    live_subscribers: int
    connectors: list[dict[str, object]]
