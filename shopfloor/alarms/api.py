"""The alarms API: active alarms, journal, acknowledge, shelve, out of service, rules, and a live WebSocket.

Reads need the viewer role, acknowledge and shelve need operator, out of service
and rule changes need engineer (with auth off, everyone may do everything; see
shopfloor/auth). ``/api/ws/alarms`` sends ``{"type": "alarms", "alarms": [...],
"summary": {...}}`` on connect and then one ``{"type": "alarm", ...}`` message per
transition, with the new counts for a banner (``summary``); the live value stream
(/api/ws/live) is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import AwareDatetime

from shopfloor.alarms.engine import AlarmEngine, RuleConflict, UnknownAlarm, iso
from shopfloor.alarms.lifecycle import NotAllowed
from shopfloor.auth.deps import Engineer, Operator, Viewer, principal_of

router = APIRouter(tags=["alarms"])


def get_engine(request: Request) -> AlarmEngine:
    """The platform's engine (shopfloor.api is not imported here: its app imports this router)."""
    platform = request.app.state.platform
    if platform.started_ns is None:
        raise HTTPException(503, "the platform is starting or stopping")
    engine: AlarmEngine = platform.alarms
    return engine


EngineDep = Annotated[AlarmEngine, Depends(get_engine)]
Comment = Annotated[str, Body(embed=True, max_length=1000)]


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except UnknownAlarm as exc:
        raise HTTPException(404, str(exc)) from None
    except (NotAllowed, RuleConflict) as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/api/alarms")
def list_alarms(engine: EngineDep, who: Viewer, all: bool = False) -> list[dict[str, Any]]:
    """Alarms that need attention (active, unacknowledged, shelved, suppressed, out of service), most urgent first;
    ``all=true`` lists every configured alarm."""
    return engine.alarms(include_normal=all)


@router.get("/api/alarms/summary")
def summary(engine: EngineDep, who: Viewer) -> dict[str, Any]:
    """Counts by priority, for an alarm banner."""
    return engine.summary()


@router.get("/api/alarms/journal")
def journal(
    engine: EngineDep,
    who: Viewer,
    alarm: str | None = None,
    rule: str | None = None,
    since: Annotated[AwareDatetime | None, Query(description="ISO-8601 with a zone, e.g. 2026-11-22T08:00Z")] = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Every transition, newest first, with who, when and the value that caused it. Page with before_id."""
    since_ns = int(since.timestamp() * 1e9) if since else None
    until_ns = int(until.timestamp() * 1e9) if until else None
    rows = engine.store.journal(alarm_id=alarm, rule=rule, since_ns=since_ns, until_ns=until_ns, limit=limit,
                                before_id=before_id)
    return [
        {"id": r.id, "time": iso(r.ts_ns), "ts_ns": r.ts_ns, "recorded": iso(r.recorded_ns), "alarm_id": r.alarm_id,
         "rule": r.rule, "event": r.event, "from_state": r.from_state, "to_state": r.to_state, "value": r.value,
         "user": r.user, "comment": r.comment, "priority": r.priority, "annunciated": r.annunciated}
        for r in rows
    ]


@router.post("/api/alarms/ack")
def acknowledge_many(
    engine: EngineDep,
    who: Operator,
    ids: Annotated[list[str], Body(embed=True, max_length=10_000)],
    comment: Comment = "",
) -> dict[str, str]:
    """Acknowledge several alarms at once (e.g. all visible in a list); per id "acknowledged" or the reason not."""
    return engine.acknowledge_many(ids, who.name, comment)


@router.get("/api/alarms/rules")
def list_rules(engine: EngineDep, who: Viewer) -> list[dict[str, Any]]:
    """Every rule, from plant.yaml (source config) and from the API (source api)."""
    return engine.rules()


@router.get("/api/alarms/rules/{name}")
def get_rule(name: str, engine: EngineDep, who: Viewer) -> dict[str, Any]:
    return _call(engine.rule, name)  # type: ignore[no-any-return]


def _validated(engine: AlarmEngine, body: dict[str, Any]) -> Any:
    try:
        return engine.validate_rule(body)
    except ValueError as exc:  # pydantic's ValidationError included
        errors = getattr(exc, "errors", None)
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors()] if callable(errors) else str(exc)
        raise HTTPException(422, detail) from None


@router.post("/api/alarms/rules", status_code=201)
def create_rule(body: Annotated[dict[str, Any], Body()], engine: EngineDep, who: Engineer) -> dict[str, Any]:
    """A new rule (same fields as in plant.yaml), stored and evaluated from now on."""
    rule = _validated(engine, body)
    _call(lambda: engine.put_rule(rule, who.name, create=True))
    return engine.rule(rule.name)


@router.put("/api/alarms/rules/{name}")
def update_rule(
    name: str, body: Annotated[dict[str, Any], Body()], engine: EngineDep, who: Engineer
) -> dict[str, Any]:
    """Replace a rule made through the API (rules from plant.yaml are changed in the file)."""
    if body.get("name", name) != name:
        raise HTTPException(422, "the body's name differs from the URL's")
    rule = _validated(engine, {**body, "name": name})
    _call(lambda: engine.put_rule(rule, who.name, create=False))
    return engine.rule(name)


@router.delete("/api/alarms/rules/{name}")
def delete_rule(name: str, engine: EngineDep, who: Engineer) -> dict[str, Any]:
    _call(engine.delete_rule, name, who.name)
    return {"ok": True}


@router.get("/api/alarms/{alarm_id}")
def get_alarm(alarm_id: str, engine: EngineDep, who: Viewer) -> dict[str, Any]:
    return _call(engine.alarm, alarm_id)  # type: ignore[no-any-return]


@router.post("/api/alarms/{alarm_id}/ack")
def acknowledge(alarm_id: str, engine: EngineDep, who: Operator, comment: Comment = "") -> dict[str, Any]:
    """Acknowledge: unacknowledged active -> acknowledged active, returned unacknowledged -> normal."""
    return _call(engine.acknowledge, alarm_id, who.name, comment)  # type: ignore[no-any-return]


@router.post("/api/alarms/{alarm_id}/shelve")
def shelve(
    alarm_id: str,
    engine: EngineDep,
    who: Operator,
    minutes: Annotated[float, Body(embed=True, gt=0)],
    comment: Comment = "",
) -> dict[str, Any]:
    """Take an alarm out of the list for a while (at most alarms.max_shelve_min); it comes back by itself."""
    return _call(engine.shelve, alarm_id, minutes, who.name, comment)  # type: ignore[no-any-return]


@router.post("/api/alarms/{alarm_id}/unshelve")
def unshelve(alarm_id: str, engine: EngineDep, who: Operator, comment: Comment = "") -> dict[str, Any]:
    return _call(engine.unshelve, alarm_id, who.name, comment)  # type: ignore[no-any-return]


@router.post("/api/alarms/{alarm_id}/out-of-service")
def out_of_service(alarm_id: str, engine: EngineDep, who: Engineer, comment: Comment = "") -> dict[str, Any]:
    """Maintenance: the alarm is not annunciated until returned to service."""
    return _call(engine.set_out_of_service, alarm_id, True, who.name, comment)  # type: ignore[no-any-return]


@router.post("/api/alarms/{alarm_id}/in-service")
def in_service(alarm_id: str, engine: EngineDep, who: Engineer, comment: Comment = "") -> dict[str, Any]:
    return _call(engine.set_out_of_service, alarm_id, False, who.name, comment)  # type: ignore[no-any-return]


@router.websocket("/api/ws/alarms")
async def alarms_live(websocket: WebSocket) -> None:
    """Alarm transitions as they happen (credentials: session cookie, bearer header or ?token=)."""
    await websocket.accept()
    try:
        principal_of(websocket, allow_query=True)
        engine: AlarmEngine = websocket.app.state.platform.alarms
    except (HTTPException, AssertionError) as exc:
        reason = exc.detail if isinstance(exc, HTTPException) else "the platform is not running"
        await websocket.close(code=1008, reason=str(reason)[:120])
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
    dropped = 0

    def offer(event: dict[str, Any]) -> None:  # on the engine's thread
        def put() -> None:
            nonlocal dropped
            if queue.full():
                dropped += 1
            else:
                queue.put_nowait(event)

        with contextlib.suppress(RuntimeError):  # the loop closed: the socket is going away
            loop.call_soon_threadsafe(put)

    remove = engine.listen(offer)
    try:
        await websocket.send_bytes(orjson.dumps(
            {"type": "alarms", "alarms": engine.alarms(), "summary": engine.summary()}
        ))
        receiver = asyncio.create_task(_drain_client(websocket))
        while not receiver.done():
            try:
                event = await asyncio.wait_for(queue.get(), 1.0)
            except TimeoutError:
                continue
            await websocket.send_bytes(orjson.dumps({**event, "dropped": dropped}))
    except WebSocketDisconnect:
        pass
    finally:
        remove()


async def _drain_client(websocket: WebSocket) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
