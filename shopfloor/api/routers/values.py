"""Latest values and history (raw or bucketed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from shopfloor.api.deps import PlatformDep, tag_id_or_404
from shopfloor.api.responses import FastJSONResponse
from shopfloor.api.schemas import HistoryOut, ValueOut
from shopfloor.api.timeparse import auto_bucket_ns, parse_duration_ns, parse_time_ns
from shopfloor.auth.deps import require_role
from shopfloor.auth.store import Role
from shopfloor.core.samples import QUALITY_NAMES, SampleBatch
from shopfloor.platform import Platform

router = APIRouter(prefix="/api", tags=["values"], dependencies=[Depends(require_role(Role.VIEWER))])

MAX_RAW = 1_000_000


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def values_json(platform: Platform, batch: SampleBatch) -> list[dict[str, Any]]:
    out = []
    for tag_id, ts, value, quality in zip(
        batch.tag_id.tolist(), batch.ts.tolist(), batch.value.tolist(), batch.quality.tolist(), strict=True
    ):
        path = platform.tag_index.path_of(tag_id)
        tag = platform.model.by_path.get(path)
        v = None if value != value else value  # NaN -> null
        label = tag.states.get(int(v)) if tag is not None and tag.states and v is not None else None
        out.append({
            "tag": path, "ts": iso(ts), "ts_ms": ts // 1_000_000, "value": v,
            "quality": QUALITY_NAMES.get(quality, "bad"), "label": label,
        })
    return out


@router.get("/latest", response_model=list[ValueOut], response_class=FastJSONResponse)
def latest(
    platform: PlatformDep,
    tag: Annotated[list[str] | None, Query(description="Tag paths (repeat the parameter); all tags if absent.")] = None,
    asset: Annotated[str | None, Query(description="Only tags under this asset path.")] = None,
) -> Any:
    """The newest value of each tag, with its quality."""
    ids: list[int] | None = None
    if tag:
        ids = [tag_id_or_404(platform, p) for p in tag]
    elif asset:
        prefix = asset.rstrip("/") + "/"
        ids = [platform.tag_index.id_of(t.path) for t in platform.model.tags if t.path.startswith(prefix)]
    else:
        ids = [platform.tag_index.id_of(t.path) for t in platform.model.tags]
    return FastJSONResponse(values_json(platform, platform.historian.latest(ids)))


@router.get("/history", response_model=HistoryOut, response_class=FastJSONResponse)
def history(
    platform: PlatformDep,
    tag: Annotated[str, Query(description="Tag path.")],
    start: Annotated[str, Query(description="ISO-8601, epoch ms, 'now' or relative like -1h.")] = "-1h",
    end: Annotated[str, Query(description="ISO-8601, epoch ms, 'now' or relative.")] = "now",
    bucket: Annotated[str, Query(description="'auto' (~1000 buckets), 'raw', or a duration: 10s, 1m, 1h.")] = "auto",
    limit: Annotated[int, Query(ge=1, le=MAX_RAW, description="Most raw samples returned.")] = 100_000,
) -> Any:
    """A tag's history: raw samples, or min/max/mean/count/first/last per time bucket."""
    tag_id = tag_id_or_404(platform, tag)
    try:
        now = parse_time_ns("now")
        start_ns, end_ns = parse_time_ns(start, now), parse_time_ns(end, now)
        if end_ns <= start_ns:
            raise ValueError("end must be after start")
        bucket_ns = None if bucket == "raw" else (
            auto_bucket_ns(end_ns - start_ns) if bucket == "auto" else parse_duration_ns(bucket)
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    out: dict[str, Any] = {"tag": tag, "start_ms": start_ns // 1_000_000, "end_ms": end_ns // 1_000_000}
    if bucket_ns is None:
        raw = platform.historian.raw(tag_id, start_ns, end_ns, limit)
        out |= {"bucket_ms": None, "t": raw.ts // 1_000_000, "value": raw.value, "quality": raw.quality}
    else:
        if (end_ns - start_ns) / bucket_ns > 100_000:
            raise HTTPException(422, "more than 100,000 buckets: choose a larger bucket")
        b = platform.historian.buckets(tag_id, start_ns, end_ns, bucket_ns)
        out |= {
            "bucket_ms": bucket_ns // 1_000_000, "t": b.start // 1_000_000, "min": b.min, "max": b.max,
            "mean": b.mean, "count": b.count, "first": b.first, "last": b.last,
        }
    return FastJSONResponse(out)
