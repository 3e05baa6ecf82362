"""Live values over a WebSocket.

Connect to ``/api/ws/live?tag=<path>&tag=<path>`` (no tag: every tag). The server
first sends ``{"type": "hello", "tags": [...]}`` and the latest value of each tag
as a ``samples`` message, then a ``samples`` message whenever committed samples
of those tags arrive, at most every ``interval_ms`` (default 250)::

    {"type": "samples", "tag": [...paths], "t": [...epoch ms], "value": [...], "quality": [...]}

A consumer that falls behind loses the oldest batches (counted in ``dropped``),
never slows ingest.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from shopfloor.auth.deps import principal_of
from shopfloor.core.errors import UnknownTag
from shopfloor.core.samples import SampleBatch
from shopfloor.platform import Platform

router = APIRouter(tags=["live"])


def samples_message(platform: Platform, batch: SampleBatch, dropped: int) -> bytes:
    body: dict[str, Any] = {
        "type": "samples", "tag": platform.tag_index.path_array[batch.tag_id].tolist(), "t": batch.ts // 1_000_000,
        "value": batch.value, "quality": batch.quality, "dropped": dropped,
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


@router.websocket("/api/ws/live")
async def live(websocket: WebSocket) -> None:
    platform: Platform = websocket.app.state.platform
    tags = websocket.query_params.getlist("tag")
    try:
        principal_of(websocket, allow_query=True)  # a viewer at least, when auth is on
    except HTTPException as refused:
        await websocket.accept()
        await websocket.close(code=1008, reason=str(refused.detail)[:120])
        return
    try:
        interval = max(0.05, float(websocket.query_params.get("interval_ms", "250")) / 1000)
        ids = [platform.tag_index.id_of(platform.model.tag(p).path) for p in tags] if tags else None
    except (UnknownTag, ValueError) as exc:
        await websocket.accept()
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    await websocket.accept()
    sub = platform.bus.subscribe(set(ids) if ids is not None else None, loop=asyncio.get_running_loop())
    try:
        names = tags or [t.path for t in platform.model.tags]
        await websocket.send_bytes(orjson.dumps({"type": "hello", "tags": names}))
        snapshot = await run_in_threadpool(platform.historian.latest, ids)
        if len(snapshot):
            await websocket.send_bytes(samples_message(platform, snapshot, 0))
        receiver = asyncio.create_task(_drain_client(websocket))
        while not receiver.done():
            batch = await sub.next(timeout=1.0)
            if len(batch):
                await websocket.send_bytes(samples_message(platform, batch, sub.dropped))
            await asyncio.sleep(interval)
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) client frames so a close is noticed."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
