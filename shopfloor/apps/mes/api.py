"""HTTP API of the MES: OEE by machine, line and shift; downtime Pareto; traces; verify; EPCIS export.

Read-only (events are written by the recorder, ``ingest.py``, and ``events_api.py``). The MES is the
recorder's when the platform runs it; else ``<data_dir>/mes.sqlite`` of the running platform (or the
database at ``SHOPFLOOR_MES_URL``), opened on first use and kept on the app.
"""

from __future__ import annotations

import os
import threading
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select

from shopfloor.api.deps import PlatformDep
from shopfloor.api.responses import FastJSONResponse
from shopfloor.api.timeparse import parse_time_ns
from shopfloor.apps.mes import genealogy
from shopfloor.apps.mes.epcis import export_document
from shopfloor.apps.mes.errors import MesError, NotFound
from shopfloor.apps.mes.ingest import running_mes
from shopfloor.apps.mes.models import Item, Material, Product, WorkOrder
from shopfloor.apps.mes.oee import OeeSource
from shopfloor.apps.mes.rejects import rejected_by_machine
from shopfloor.apps.mes.service import Mes
from shopfloor.apps.mes.verify import verify
from shopfloor.auth.deps import require_role
from shopfloor.auth.store import Role
from shopfloor.core.errors import UnknownTag
from shopfloor.platform import Platform

router = APIRouter(prefix="/api/mes", tags=["mes"], dependencies=[Depends(require_role(Role.VIEWER))])
_open_lock = threading.Lock()
MAX_PARAMETER_EVENTS = 200  # process parameters are read for at most this many production events of a trace


def get_mes(request: Request, platform: PlatformDep) -> Mes:
    """The recorder's Mes when the platform runs the ``mes`` service (one database, one writer), else the
    data directory's MES opened on first use (a platform without the recorder, e.g. fed by scripts)."""
    shared = running_mes(platform)
    if shared is not None:
        return shared
    with _open_lock:
        mes: Mes | None = getattr(request.app.state, "mes", None)
        if mes is None:
            mes = Mes.open(platform.data_dir, url=os.environ.get("SHOPFLOOR_MES_URL"))
            request.app.state.mes = mes
    return mes


MesDep = Annotated[Mes, Depends(get_mes)]
Start = Annotated[str, Query(description="ISO-8601, epoch ms, 'now' or relative like -8h.")]
End = Annotated[str, Query(description="ISO-8601, epoch ms, 'now' or relative.")]
Pri = Annotated[
    list[str] | None,
    Query(description="Planned run time per item: 'machine/path=seconds' (repeat); default from the MES routings."),
]
Planned = Annotated[
    list[str] | None,
    Query(description="Planned downtime (breaks, planned maintenance): 'start/end' in ISO-8601 or epoch ms (repeat)."),
]
EmissionFactor = Annotated[
    float | None, Query(ge=0, description="kg CO2e per kWh of the electricity (no CO2e figures without it).")
]


def _period(start: str, end: str) -> tuple[int, int]:
    try:
        now = parse_time_ns("now")
        a, b = parse_time_ns(start, now), parse_time_ns(end, now)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if b <= a:
        raise HTTPException(422, "end must be after start")
    return a, b


def _planned(given: list[str] | None) -> list[tuple[int, int]]:
    out = []
    for item in given or []:
        a, sep, b = item.partition("/")
        try:
            if not sep:
                raise ValueError(f"planned {item!r} must be 'start/end'")
            window = parse_time_ns(a), parse_time_ns(b)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if window[1] <= window[0]:
            raise HTTPException(422, f"planned window {item!r} ends before it starts")
        out.append(window)
    return out


def _machines(platform: Platform, path: str) -> list[str]:
    """The machines under an asset (or the asset itself): equipment with a state tag and a good-parts counter."""
    try:
        node = platform.model.node(path)
    except UnknownTag as exc:
        raise HTTPException(404, str(exc)) from None
    found = [n.path for n in node.walk() if n.level == "equipment"
             and f"{n.path}/state" in platform.model.by_path and f"{n.path}/parts_good" in platform.model.by_path]
    if not found:
        raise HTTPException(404, f"no machine with state and parts_good tags under {path!r}")
    return found


def _pri(mes: Mes, machines: list[str], given: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in given or []:
        path, sep, value = item.rpartition("=")
        try:
            out[path] = float(value)
        except ValueError:
            sep = ""
        if not sep or not path:
            raise HTTPException(422, f"pri {item!r} must be 'machine/path=seconds'")
    for m in machines:
        if m not in out:
            pri = mes.planned_run_time(m)
            if pri is None:
                raise HTTPException(422, f"no planned run time per item (PRI) for {m}: add a routing step on it "
                                         f"or pass pri={m}=<seconds>")
            out[m] = pri
    return out


def _source(platform: Platform, mes: Mes, emission_factor: float | None) -> OeeSource:
    """OEE from the historian's counters, with parts rejected at a later inspection (the MES record) as scrap."""
    reasons: dict[int, str] = {}
    for tag in platform.model.tags:
        if tag.name == "stop_reason" and tag.states:
            reasons.update(tag.states)
    return OeeSource(platform.historian, platform.tag_index.ids, reason_labels=reasons,
                     emission_factor_kg_per_kwh=emission_factor,
                     rejects=partial(rejected_by_machine, mes.engine))


@router.get("/oee", response_class=FastJSONResponse)
def oee(
    platform: PlatformDep, mes: MesDep,
    asset: Annotated[str, Query(description="A machine or a line (any asset path): its machines are summed.")],
    start: Start = "-8h", end: End = "now", pri: Pri = None, emission_factor: EmissionFactor = None,
    demand: Annotated[float | None, Query(gt=0, description="Parts wanted in the period (for the takt time).")] = None,
    planned: Planned = None,
) -> Any:
    """ISO 22400 KPIs of a machine or line: time elements, availability, effectiveness, quality ratio, OEE index,
    scrap ratio, MTTR/MTBF, stops, downtime Pareto, bottleneck, energy and CO2e per good part."""
    a, b = _period(start, end)
    machines = _machines(platform, asset)
    try:
        report = _source(platform, mes, emission_factor).line(
            machines, a, b, _pri(mes, machines, pri), _planned(planned), demand=demand
        )
    except MesError as exc:
        raise HTTPException(422, str(exc)) from None
    return FastJSONResponse({"asset": asset, **report.as_dict()})


@router.get("/oee/shifts", response_class=FastJSONResponse)
def oee_by_shift(
    platform: PlatformDep, mes: MesDep, asset: Annotated[str, Query(description="A machine or a line.")],
    start: Start = "-24h", end: End = "now", pri: Pri = None, emission_factor: EmissionFactor = None,
    shift_starts: Annotated[str, Query(description="Local hours the shifts start, comma-separated.")] = "6,14,22",
    utc_offset_h: Annotated[float, Query(ge=-14, le=14, description="Local time minus UTC, hours.")] = 0.0,
    planned: Planned = None,
) -> Any:
    """KPIs per shift, each with its machines (the drill-down)."""
    a, b = _period(start, end)
    if (b - a) > 31 * 86_400 * 10**9:
        raise HTTPException(422, "at most 31 days of shifts at a time")
    try:
        starts = [float(x) for x in shift_starts.split(",") if x.strip()]
    except ValueError:
        raise HTTPException(422, f"shift_starts {shift_starts!r} must be hours like 6,14,22") from None
    machines = _machines(platform, asset)
    try:
        rows = _source(platform, mes, emission_factor).by_shift(
            machines, a, b, _pri(mes, machines, pri), starts_h=starts, utc_offset_h=utc_offset_h,
            planned=_planned(planned),
        )
    except (MesError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    return FastJSONResponse({"asset": asset, "shifts": [{"shift": s.name, **r.as_dict()} for s, r in rows]})


@router.get("/downtime/pareto", response_class=FastJSONResponse)
def downtime_pareto(
    platform: PlatformDep, mes: MesDep, asset: Annotated[str, Query(description="A machine or a line.")],
    start: Start = "-8h", end: End = "now", pri: Pri = None, planned: Planned = None,
) -> Any:
    """Downtime by reason, largest first, with shares, cumulative shares and planned/unplanned."""
    a, b = _period(start, end)
    machines = _machines(platform, asset)
    try:
        source = _source(platform, mes, None)
        report = source.line(machines, a, b, _pri(mes, machines, pri), _planned(planned)).as_dict()
    except MesError as exc:
        raise HTTPException(422, str(exc)) from None
    return FastJSONResponse({"asset": asset, "start_ns": a, "end_ns": b, "pareto": report["pareto"]})


@router.get("/trace/{code}", response_class=FastJSONResponse)
def trace(
    platform: PlatformDep, mes: MesDep, code: str,
    direction: Literal["backward", "forward"] = "backward",
    events: Annotated[bool, Query(description="Each item's events (machines, operators, inspections).")] = True,
    parameters: Annotated[bool, Query(description="Process parameters from the historian per production event.")]
    = False,
    window_s: Annotated[float, Query(gt=0, le=3600, description="Seconds before each production read.")] = 60.0,
) -> Any:
    """The genealogy of a serial or lot: backward (what went in) or forward (what it went into: recall scope)."""
    try:
        tr = genealogy.trace(mes.engine, code, direction, events=events or parameters)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    body = tr.as_dict()
    _describe(mes, body)
    if parameters:
        by_equipment: dict[str, list[tuple[str, str]]] = {}
        for tag in platform.model.tags:
            if tag.data_type not in ("enum", "int64", "bool"):
                by_equipment.setdefault(tag.equipment, []).append((tag.name, tag.path))
        done = 0
        for node in body["nodes"]:
            for ev in node["events"]:
                if ev["kind"] != "produced" or not ev["equipment"] or done >= MAX_PARAMETER_EVENTS:
                    continue
                ev["process_parameters"] = genealogy.process_parameters(
                    platform.historian, platform.tag_index.ids, by_equipment.get(ev["equipment"], []),
                    ev["ts_ns"] - int(window_s * 1e9), ev["ts_ns"] + 1,
                )
                done += 1
    return FastJSONResponse(body)


def _describe(mes: Mes, body: dict[str, Any]) -> None:
    """Name each node's product or material and each event's work order (the trace itself carries ids)."""
    codes = [n["code"] for n in body["nodes"]]
    orders = {ev["work_order_id"] for n in body["nodes"] for ev in n["events"] if ev["work_order_id"] is not None}
    what: dict[str, tuple[str | None, str | None]] = {}
    numbers: dict[int, str] = {}
    with mes.engine.connect() as conn:
        for i in range(0, len(codes), 500):
            chunk = codes[i:i + 500]
            rows = conn.execute(select(Item.code, Product.code, Material.code)
                                .outerjoin(Product, Product.id == Item.product_id)
                                .outerjoin(Material, Material.id == Item.material_id).where(Item.code.in_(chunk)))
            what.update({r[0]: (r[1], r[2]) for r in rows})
        if orders:
            rows = conn.execute(select(WorkOrder.id, WorkOrder.number).where(WorkOrder.id.in_(sorted(orders))))
            numbers = {int(r[0]): str(r[1]) for r in rows}
    for n in body["nodes"]:
        n["product"], n["material"] = what.get(n["code"], (None, None))
        for ev in n["events"]:
            ev["work_order"] = numbers.get(ev["work_order_id"]) if ev["work_order_id"] is not None else None


@router.get("/trace/{code}/epcis", response_class=FastJSONResponse)
def trace_epcis(mes: MesDep, code: str, direction: Literal["backward", "forward"] = "backward") -> Any:
    """The trace's events as a GS1 EPCIS 2.0 JSON-LD document."""
    try:
        tr = genealogy.trace(mes.engine, code, direction, events=False)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return FastJSONResponse(export_document(mes.engine, item_ids=tr.nodes.keys()))


@router.get("/verify", response_class=FastJSONResponse)
def verify_record(mes: MesDep) -> Any:
    """Check the tamper-evident record: every hash link, signed checkpoint and genealogy edge."""
    return FastJSONResponse(verify(mes.engine, mes.key).as_dict())
