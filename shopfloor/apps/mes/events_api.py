"""HTTP API of the MES beside the read-only one (api.py): events in, and what the dashboard and the
scheduler read: the production view of a line by shift, work orders, recent serials.

``POST /api/mes/events`` takes the MQTT contract's payload (one event or an array) for line
controllers without MQTT; it needs an operator and goes through the running recorder, so the
same checks, dead letters and counters apply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shopfloor.api.deps import PlatformDep
from shopfloor.api.responses import FastJSONResponse
from shopfloor.api.timeparse import parse_time_ns
from shopfloor.apps.mes import kpi
from shopfloor.apps.mes.api import MesDep, _machines, _pri, _source
from shopfloor.apps.mes.config import MesConfig
from shopfloor.apps.mes.errors import MesError
from shopfloor.apps.mes.ingest import MesService
from shopfloor.auth.deps import require_role
from shopfloor.auth.store import Role
from shopfloor.core.errors import UnknownTag
from shopfloor.platform import Platform

router = APIRouter(prefix="/api/mes", tags=["mes"], dependencies=[Depends(require_role(Role.VIEWER))])
MAX_BODY = 4 * 1024 * 1024
NS = 1_000_000_000


def _service(platform: Platform) -> MesService:
    try:
        service = platform.service(MesService.name)
    except KeyError:
        raise HTTPException(503, "the MES recorder is not running: plant.yaml has no 'mes:' section") from None
    assert isinstance(service, MesService)
    return service


@router.post("/events", dependencies=[Depends(require_role(Role.OPERATOR))], response_class=FastJSONResponse)
async def post_events(request: Request, platform: PlatformDep) -> Any:
    """Record MES events (one JSON object or an array, as on MQTT). 200: every event recorded (or a duplicate of
    one recorded before); 422: some were rejected (listed with reasons, and dead-lettered); the others are
    recorded all the same, each event on its own."""
    service = _service(platform)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"at most {MAX_BODY} bytes of events per request")
    from starlette.concurrency import run_in_threadpool

    try:
        out = await run_in_threadpool(service.submit, body)
    except SQLAlchemyError as exc:
        raise HTTPException(503, f"the MES database cannot be written now ({exc}); send the events again") from None
    result = {"recorded": out.recorded, "duplicates": out.duplicates, "rejected": out.rejected}
    if out.rejected:
        raise HTTPException(422, result)
    return FastJSONResponse(result)


def _config(platform: Platform) -> MesConfig:
    return platform.config.mes or MesConfig()


def _lines(platform: Platform) -> list[str]:
    """Lines (and other assets above equipment) that have machines with state and good-part counters."""
    out = []
    for n in platform.model.root.walk():
        if n.level == "line" and any(
            e.level == "equipment" and f"{e.path}/state" in platform.model.by_path
            and f"{e.path}/parts_good" in platform.model.by_path for e in n.walk()
        ):
            out.append(n.path)
    return out


@router.get("/production", response_class=FastJSONResponse)
def production(
    platform: PlatformDep, mes: MesDep,
    asset: Annotated[str | None, Query(description="A line or machine; default the plant's first line.")] = None,
    hours: Annotated[float, Query(gt=0, le=24 * 7, description="Shifts overlapping the last this many hours.")]
    = 24.0,
    end: Annotated[str, Query(description="End of the view (ISO-8601, epoch ms, 'now').")] = "now",
) -> Any:
    """OEE (ISO 22400) of a line per shift with each machine (drill-down), the Pareto of each shift, energy and
    CO2e per good part; shift times, emission factor from the ``mes:`` section. A shift is measured from its
    start or from the first recorded machine state, whichever is later (``measured_from_ns``): time before
    the platform recorded anything is no availability loss."""
    cfg = _config(platform)
    lines = _lines(platform)
    if asset is None:
        if not lines:
            raise HTTPException(404, "the plant has no line with machines (state and parts_good tags)")
        asset = lines[0]
    try:
        b = parse_time_ns(end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    a = b - int(hours * 3600 * NS)
    machines = _machines(platform, asset)
    pri = _pri(mes, machines, None)
    source = _source(platform, mes, cfg.emission_factor_kg_per_kwh)
    first = _first_state_ns(platform, machines, a - source.lookback_ns, b)
    shifts = []
    try:
        for s in kpi.shifts(a, b, cfg.shift_starts_h, cfg.utc_offset_h):
            start = max(s.start_ns, first) if first is not None else None
            if start is None or start >= s.end_ns:
                shifts.append({"shift": s.name, "start_ns": s.start_ns, "end_ns": s.end_ns, "measured_from_ns": None})
                continue
            report = source.line(machines, start, s.end_ns, pri).as_dict()
            shifts.append({"shift": s.name, **report, "start_ns": s.start_ns, "measured_from_ns": start})
    except (MesError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    return FastJSONResponse({
        "asset": asset, "lines": lines, "machines": machines, "pri_s": pri, "start_ns": a, "end_ns": b,
        "shift_starts_h": cfg.shift_starts_h, "utc_offset_h": cfg.utc_offset_h,
        "emission_factor_kg_per_kwh": cfg.emission_factor_kg_per_kwh, "data_since_ns": first, "shifts": shifts,
    })


def _first_state_ns(platform: Platform, machines: list[str], a: int, b: int) -> int | None:
    """The earliest machine state recorded in [a, b) (the step series start there)."""
    first: int | None = None
    for m in machines:
        try:
            tag_id = platform.tag_index.id_of(f"{m}/state")
        except UnknownTag:
            continue
        ts = platform.historian.raw(tag_id, a, b).ts
        if len(ts):
            t = int(ts[0])
            first = t if first is None else min(first, t)
    return first


@router.get("/orders", response_class=FastJSONResponse)
def orders(
    mes: MesDep,
    status: Annotated[Literal["planned", "released", "running", "done", "cancelled"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Any:
    """Work orders, newest first: product, quantity, status, release and due time, and each operation's
    machine, status and good/scrap counts so far (plan vs actual)."""
    where = "WHERE o.status = :status" if status else ""
    with mes.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT o.id, o.number, p.code, o.quantity, o.status, o.planned_start_ns, o.planned_end_ns "
            f"FROM mes_work_order o JOIN mes_product p ON p.id = o.product_id {where} ORDER BY o.id DESC LIMIT :n"
        ), {"status": status, "n": limit}).all()
        ids = [int(r[0]) for r in rows]
        ops: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            for op in conn.execute(text(
                "SELECT op.work_order_id, op.seq, e.path, op.status, op.good_quantity, op.scrap_quantity, "
                "op.started_ns, op.ended_ns FROM mes_operation op JOIN mes_equipment e ON e.id = op.equipment_id "
                f"WHERE op.work_order_id IN ({','.join(str(i) for i in ids)}) ORDER BY op.work_order_id, op.seq"
            )):
                ops[int(op[0])].append({
                    "seq": op[1], "equipment": op[2], "status": op[3], "good": op[4], "scrap": op[5],
                    "started_ms": _ms(op[6]), "ended_ms": _ms(op[7]),
                })
    out = []
    for r in rows:
        steps = ops[int(r[0])]
        last = steps[-1] if steps else None
        out.append({
            "number": r[1], "product": r[2], "quantity": r[3], "status": r[4], "release_ms": _ms(r[5]),
            "due_ms": _ms(r[6]), "good": last["good"] if last else 0.0, "scrap": last["scrap"] if last else 0.0,
            "operations": steps,
        })
    return FastJSONResponse(out)


@router.get("/serials", response_class=FastJSONResponse)
def serials(
    mes: MesDep,
    q: Annotated[str | None, Query(max_length=80, description="Start of the code.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> Any:
    """The most recently produced serials (and lots), newest first, for picking one to trace."""
    where = "AND i.code LIKE :q ESCAPE '\\'" if q else ""
    pattern = (q or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with mes.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT e.ts_ns, i.code, i.kind, p.code, eq.path, o.number, e.payload FROM mes_event e "
            "JOIN mes_item i ON i.id = e.item_id LEFT JOIN mes_product p ON p.id = i.product_id "
            "LEFT JOIN mes_equipment eq ON eq.id = e.equipment_id LEFT JOIN mes_work_order o ON o.id = e.work_order_id "
            f"WHERE e.kind = 'produced' {where} ORDER BY e.seq DESC LIMIT :n"
        ), {"q": pattern, "n": limit}).all()
    return FastJSONResponse([
        {"ts_ms": _ms(r[0]), "code": r[1], "kind": r[2], "product": r[3], "equipment": r[4], "work_order": r[5],
         "quality": orjson.loads(r[6]).get("quality")}
        for r in rows
    ])


def _ms(ns: int | None) -> int | None:
    return None if ns is None else int(ns) // 1_000_000
