"""What the web dashboard needs beyond the resource API: per-equipment summaries, the tag browser's
rows with their current values and staleness, and data health (ingest rate, edge gateways, link tags).

Each endpoint answers one page in one request, from the asset model, the historian and the platform's
counters; nothing here is stored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from shopfloor.api.deps import PlatformDep
from shopfloor.api.responses import FastJSONResponse
from shopfloor.api.timeparse import parse_duration_ns
from shopfloor.auth.deps import require_role
from shopfloor.auth.store import Role
from shopfloor.core.model import Tag
from shopfloor.core.samples import QUALITY_NAMES, SampleBatch
from shopfloor.platform import Platform
from shopfloor.web.summary import (
    IngestMeter,
    counter_increase,
    equipment_roles,
    is_link_tag,
    last_change_ns,
    state_segments,
)

# With auth on, the dashboard's data is for logged-in users (viewer and up); with it off this changes nothing.
router = APIRouter(prefix="/api/dashboard", tags=["dashboard"], dependencies=[Depends(require_role(Role.VIEWER))])

QualityName = Literal["good", "uncertain", "bad"]
RAW_LIMIT = 200_000
COUNTER_LOOKBACK_NS = 300_000_000_000  # a counter sent by exception: its last value before the window


class TagNow(BaseModel):
    tag: str
    name: str
    unit: str
    value: float | None
    label: str | None = Field(description="State label of an enum tag.")
    quality: QualityName | None = Field(description="null: the tag has no sample yet.")
    ts_ms: int | None


class CounterNow(TagNow):
    increase: float | None = Field(description="Rise within the window (resets ignored).")
    per_hour: float | None


class StateNow(TagNow):
    since_ms: int | None = Field(description="When the state took its value; null if unchanged over the lookback.")
    timeline: dict[str, list[Any]] = Field(description="Changes within the window: 't' (ms) and 'value'.")


class EquipmentSummary(BaseModel):
    path: str
    name: str
    type: str
    description: str
    parent: str
    state: StateNow | None
    key: list[TagNow]
    counters: list[CounterNow]
    last_seen_ms: int | None
    stale: bool
    quality: dict[str, int] = Field(description="How many of its tags are good, uncertain, bad or missing.")


class CounterTotal(BaseModel):
    name: str
    unit: str
    description: str
    increase: float
    per_hour: float
    equipment: int


class OverviewOut(BaseModel):
    now_ms: int
    window_ms: int
    stale_after_ms: int
    equipment: list[EquipmentSummary]
    states: dict[str, int] = Field(description="Equipment per state label (with a state tag).")
    counters: list[CounterTotal] = Field(description="Counter rises summed per tag name over the plant.")
    quality: dict[str, int]
    stale_equipment: int


class TagRow(TagNow):
    equipment: str
    type: str
    description: str
    stale: bool


class TagsOut(BaseModel):
    now_ms: int
    stale_after_ms: int
    total: int
    tags: list[TagRow]


class GatewayOut(BaseModel):
    name: str
    protocol: str
    online: bool
    last_seen_ms: int | None
    messages: int
    seq_gaps: int
    births: int
    deaths: int
    rebirth_requests: int


class IngestOut(BaseModel):
    rows_committed: int
    rate_per_s: float | None
    series: dict[str, list[float]] = Field(description="'t' (ms) and 'rate' (rows/s) between the dashboard's polls.")
    commits: int
    pending_rows: int
    write_errors: int
    last_error: str | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None


class HealthPageOut(BaseModel):
    now_ms: int
    status: Literal["ok", "degraded"]
    started_ms: int | None
    ingest: IngestOut
    dead_letters: dict[str, Any]
    connectors: list[dict[str, Any]]
    gateways: list[GatewayOut]
    link_tags: list[TagRow]


StaleQuery = Annotated[float, Query(gt=0, le=86_400, description="Seconds without data before equipment is stale.")]


def _window_ns(window: str) -> int:
    try:
        ns = parse_duration_ns(window)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if ns > 7 * 86_400_000_000_000:
        raise HTTPException(422, "window is at most 7d")
    return ns


class _Latest:
    """The newest sample of every tag, looked up by path."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        batch = platform.historian.latest(None)
        paths = platform.tag_index.path_array[batch.tag_id].tolist() if len(batch) else []
        self.rows = dict(zip(paths, zip(batch.ts.tolist(), batch.value.tolist(), batch.quality.tolist(),
                                        strict=True), strict=True))

    def now(self, tag: Tag) -> dict[str, Any]:
        row = self.rows.get(tag.path)
        if row is None:
            return {"tag": tag.path, "name": tag.name, "unit": tag.unit, "value": None, "label": None,
                    "quality": None, "ts_ms": None}
        ts, value, quality = row
        v = None if value != value else value
        label = tag.states.get(int(v)) if tag.states and v is not None else None
        return {"tag": tag.path, "name": tag.name, "unit": tag.unit, "value": v, "label": label,
                "quality": QUALITY_NAMES.get(quality, "bad"), "ts_ms": ts // 1_000_000}

    def last_seen_ns(self, tags: tuple[Tag, ...]) -> int | None:
        seen = [self.rows[t.path][0] for t in tags if t.path in self.rows]
        return max(seen) if seen else None


def _raw(platform: Platform, tag: Tag, start_ns: int, end_ns: int) -> SampleBatch:
    return platform.historian.raw(platform.tag_index.id_of(tag.path), start_ns, end_ns, RAW_LIMIT)


def _quality_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {"good": 0, "uncertain": 0, "bad": 0, "missing": 0}
    for r in rows:
        out[r["quality"] or "missing"] += 1
    return out


@router.get("/overview", response_model=OverviewOut, response_class=FastJSONResponse)
def overview(
    platform: PlatformDep,
    window: Annotated[str, Query(description="Span of rates and state timelines, e.g. 1h.")] = "1h",
    stale_s: StaleQuery = 120,
) -> Any:
    """Every equipment with its state (and state changes over the window), key values, counters and
    their rates, and whether its data is stale; plant totals per state and per counter."""
    window_ns = _window_ns(window)
    now = time.time_ns()
    since = now - window_ns
    stale_ns = int(stale_s * 1e9)
    latest = _Latest(platform)
    equipment: list[dict[str, Any]] = []
    states: dict[str, int] = {}
    totals: dict[str, dict[str, Any]] = {}
    for roles in equipment_roles(platform.model):
        state: dict[str, Any] | None = None
        if roles.state is not None:
            raw = _raw(platform, roles.state, since - COUNTER_LOOKBACK_NS, now + 1)
            values = np.where(raw.quality > 0, raw.value, np.nan)
            changed = last_change_ns(raw.ts, values)
            t, v = state_segments(raw.ts, values, since)
            state = latest.now(roles.state) | {
                "since_ms": changed // 1_000_000 if changed is not None else None, "timeline": {"t": t, "value": v},
            }
            label = state["label"] if state["quality"] == "good" and state["label"] else "unknown"
            states[label] = states.get(label, 0) + 1
        counters = []
        for tag in roles.counters:
            raw = _raw(platform, tag, since - COUNTER_LOOKBACK_NS, now + 1)
            good = raw.quality > 0
            rise = counter_increase(raw.ts[good], raw.value[good], since)
            covered_ns = now - max(since, int(raw.ts[good][0])) if good.any() else 0
            per_hour = rise / (covered_ns / 3.6e12) if rise is not None and covered_ns > 60e9 else None
            counters.append(latest.now(tag) | {"increase": rise, "per_hour": per_hour})
            if rise is not None and per_hour is not None:
                total = totals.setdefault(tag.name, {
                    "name": tag.name, "unit": tag.unit, "description": tag.description.replace(" (monotonic)", ""),
                    "increase": 0.0, "per_hour": 0.0, "equipment": 0,
                })
                total["increase"] += rise
                total["per_hour"] += per_hour
                total["equipment"] += 1
        seen = latest.last_seen_ns(roles.tags)
        equipment.append({
            "path": roles.node.path, "name": roles.node.name, "type": roles.node.type,
            "description": roles.node.description, "parent": roles.parent, "state": state,
            "key": [latest.now(t) for t in roles.key], "counters": counters,
            "last_seen_ms": seen // 1_000_000 if seen is not None else None,
            "stale": seen is None or now - seen > stale_ns,
            "quality": _quality_counts([latest.now(t) for t in roles.tags]),
        })
    quality = _quality_counts([latest.now(t) for t in platform.model.tags])
    return FastJSONResponse({
        "now_ms": now // 1_000_000, "window_ms": window_ns // 1_000_000, "stale_after_ms": stale_ns // 1_000_000,
        "equipment": equipment, "states": states, "counters": list(totals.values()), "quality": quality,
        "stale_equipment": sum(1 for e in equipment if e["stale"]),
    })


def _tag_rows(platform: Platform, latest: _Latest, tags: list[Tag], now: int, stale_ns: int) -> list[dict[str, Any]]:
    seen: dict[str, int | None] = {}
    rows = []
    for tag in tags:
        if tag.equipment not in seen:
            node = platform.model.node(tag.equipment)
            seen[tag.equipment] = latest.last_seen_ns(tuple(platform.model.by_path[p] for p in node.tags))
        last = seen[tag.equipment]
        rows.append(latest.now(tag) | {
            "equipment": tag.equipment, "type": tag.data_type, "description": tag.description,
            "stale": last is None or now - last > stale_ns,
        })
    return rows


@router.get("/tags", response_model=TagsOut, response_class=FastJSONResponse)
def tag_rows(
    platform: PlatformDep,
    q: Annotated[str | None, Query(description="Substring of the path, name or description.")] = None,
    asset: Annotated[str | None, Query(description="Only tags under this asset path.")] = None,
    unit: Annotated[str | None, Query(description="Only tags with this unit ('' for none).")] = None,
    quality: Annotated[
        Literal["good", "uncertain", "bad", "missing", "stale"] | None,
        Query(description="Only tags whose newest sample has this quality, or that are stale."),
    ] = None,
    stale_s: StaleQuery = 120,
) -> Any:
    """The tag catalogue with each tag's current value, quality, age and staleness, filtered."""
    now = time.time_ns()
    stale_ns = int(stale_s * 1e9)
    prefix = asset.rstrip("/") + "/" if asset else None
    needle = q.lower() if q else None
    tags = [
        t for t in platform.model.tags
        if (prefix is None or t.path.startswith(prefix))
        and (unit is None or t.unit == unit)
        and (needle is None or needle in t.path.lower() or needle in t.description.lower())
    ]
    rows = _tag_rows(platform, _Latest(platform), tags, now, stale_ns)
    if quality == "stale":
        rows = [r for r in rows if r["stale"]]
    elif quality == "missing":
        rows = [r for r in rows if r["quality"] is None]
    elif quality is not None:
        rows = [r for r in rows if r["quality"] == quality]
    return FastJSONResponse({
        "now_ms": now // 1_000_000, "stale_after_ms": stale_ns // 1_000_000, "total": len(platform.model.tags),
        "tags": rows,
    })


def _meter(request: Request, platform: Platform) -> IngestMeter:
    """The app's ingest meter, sampling this platform's writer from now on."""
    meter: IngestMeter | None = getattr(request.app.state, "ingest_meter", None)
    if meter is None:
        meter = request.app.state.ingest_meter = IngestMeter()

    def rows() -> int | None:
        return platform.writer.rows_committed if platform.started_ns is not None else None

    meter.run(rows)
    return meter


def _gateways(connectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sparkplug edge nodes seen by the MQTT ingest: the gateways between the machines and the broker."""
    out = []
    for c in connectors:
        sparkplug = c.get("sparkplug")
        if not isinstance(sparkplug, dict):
            continue
        for n in sparkplug.get("nodes", []):
            seen = n.get("last_seen_ns")
            out.append({
                "name": f"{n['group']}/{n['node']}", "protocol": "sparkplug", "online": bool(n.get("online")),
                "last_seen_ms": seen // 1_000_000 if seen else None, "messages": int(n.get("messages", 0)),
                "seq_gaps": int(n.get("seq_gaps", 0)), "births": int(n.get("births", 0)),
                "deaths": int(n.get("deaths", 0)), "rebirth_requests": int(n.get("rebirth_requests", 0)),
            })
    return out


@router.get("/health", response_model=HealthPageOut, response_class=FastJSONResponse)
def health_page(request: Request, platform: PlatformDep, stale_s: StaleQuery = 120) -> Any:
    """Connectors, edge gateways, ingest rate over time, the writer, dead letters, link-quality tags."""
    now = time.time_ns()
    body = platform.health()
    historian: dict[str, Any] = body["historian"]  # type: ignore[assignment]
    meter = _meter(request, platform)
    meter.observe(int(historian["rows_committed"]), now)
    t, rate = meter.series()
    connectors: list[dict[str, Any]] = body["connectors"]  # type: ignore[assignment]
    link = [t for t in platform.model.tags if is_link_tag(t)]
    started = body["started_ns"]
    return FastJSONResponse({
        "now_ms": now // 1_000_000, "status": body["status"],
        "started_ms": started // 1_000_000 if isinstance(started, int) else None,
        "ingest": {
            "rows_committed": historian["rows_committed"], "rate_per_s": meter.rate(),
            "series": {"t": t, "rate": rate},
            **{k: historian[k] for k in ("commits", "pending_rows", "write_errors", "last_error",
                                         "latency_ms_p50", "latency_ms_p99")},
        },
        "dead_letters": body["dead_letters"], "connectors": connectors, "gateways": _gateways(connectors),
        "link_tags": _tag_rows(platform, _Latest(platform), link, now, int(stale_s * 1e9)),
    })
