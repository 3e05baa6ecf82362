"""Health, connectors and dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from shopfloor.api.deps import PlatformDep
from shopfloor.api.responses import FastJSONResponse
from shopfloor.api.routers.values import iso
from shopfloor.api.schemas import DeadLetterOut, HealthOut
from shopfloor.auth.deps import Viewer

router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthOut, response_class=FastJSONResponse)
def health(platform: PlatformDep) -> Any:
    """Liveness and the state of every part: broker link, historian writer, dead letters (open to
    monitoring without a login: it carries states and counts, no plant data)."""
    body = platform.health()
    return FastJSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/api/connectors", response_model=list[dict[str, Any]], response_class=FastJSONResponse)
def connectors(platform: PlatformDep, who: Viewer) -> Any:
    """Each connector's link state and counters (for MQTT: Sparkplug nodes, births, sequence gaps)."""
    return FastJSONResponse(platform.connectors_health())


@router.get("/api/deadletters", response_model=list[DeadLetterOut], response_class=FastJSONResponse)
def dead_letters(
    platform: PlatformDep,
    who: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    source: str | None = None,
) -> Any:
    """Inputs that could not be used, newest first, with the reason and the payload."""
    out = []
    for d in platform.dead_letters.list(limit, offset, source):
        try:
            text: str | None = d.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.append({
            "id": d.id, "received": iso(d.received_ns), "source": d.source, "topic": d.topic, "reason": d.reason,
            "size": len(d.payload), "payload_hex": d.payload[:4096].hex(),
            "payload_text": text[:4096] if text is not None else None,
        })
    return FastJSONResponse(out)
