"""HTTP API of the scheduling app: solve a problem (JSON or benchmark text), fetch Gantt charts, reschedule.

Solved schedules are kept in memory (the last STORE_SIZE) under an id, so that charts and repairs refer to them.
The endpoints are plain `def`: FastAPI runs them in its thread pool, and CP-SAT releases the GIL while it searches.
Rejected inputs (malformed payloads, unreadable files, unknown ids) answer 4xx with the reason and are counted.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from shopfloor.apps.scheduling.dispatch import Rule
from shopfloor.apps.scheduling.errors import SchedulingError
from shopfloor.apps.scheduling.formats import Format, parse_instance
from shopfloor.apps.scheduling.model import Problem
from shopfloor.apps.scheduling.reschedule import REPAIR_TIME_LIMIT_S, Event, RescheduleResult, reschedule
from shopfloor.apps.scheduling.solve import Method, Objective, SolveResult, solve
from shopfloor.auth.deps import Engineer, require_role
from shopfloor.auth.store import Role

STORE_SIZE = 100
MAX_TIME_LIMIT_S = 300.0


class _Stored(BaseModel):
    id: str
    problem: Problem
    result: SolveResult | RescheduleResult


class ScheduleStore:
    """The last schedules solved through the API, and counters of what was solved and rejected."""

    def __init__(self, size: int = STORE_SIZE) -> None:
        self._items: OrderedDict[str, _Stored] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size
        self.solved = 0
        self.rejected = 0

    def put(self, problem: Problem, result: SolveResult | RescheduleResult) -> str:
        key = uuid.uuid4().hex[:12]
        with self._lock:
            self._items[key] = _Stored(id=key, problem=problem, result=result)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            self.solved += 1
        return key

    def get(self, key: str) -> _Stored:
        with self._lock:
            item = self._items.get(key)
        if item is None:
            self.reject()
            raise HTTPException(404, f"no schedule {key!r} (the last {self.size} are kept)")
        return item

    def reject(self) -> None:
        with self._lock:
            self.rejected += 1

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._items)


def store_of(request: Request) -> ScheduleStore:
    state = request.app.state
    store = getattr(state, "scheduling_store", None)
    if store is None:
        store = state.scheduling_store = ScheduleStore()
    assert isinstance(store, ScheduleStore)
    return store


class _CountingRoute(APIRoute):
    """Counts payloads that fail validation before the endpoint runs, then answers as FastAPI does (422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def counted(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                store_of(request).reject()
                raise

        return counted


router = APIRouter(
    prefix="/api/scheduling", tags=["scheduling"], route_class=_CountingRoute,
    dependencies=[Depends(require_role(Role.VIEWER))],
)


class SolveOptions(BaseModel):
    method: Method = "cpsat"
    objective: Objective = "makespan"
    time_limit_s: float = Field(default=10.0, gt=0, le=MAX_TIME_LIMIT_S)
    rule: Rule | None = Field(default=None, description="A dispatching rule; by default the best of all.")


class SolveRequest(SolveOptions):
    problem: Problem


class SolveResponse(BaseModel):
    id: str
    result: SolveResult


class RescheduleRequest(BaseModel):
    now: int = Field(ge=0, description="Operations started before now stay as planned.")
    event: Event
    objective: Objective = "makespan"
    time_limit_s: float = Field(default=REPAIR_TIME_LIMIT_S, gt=0, le=MAX_TIME_LIMIT_S)
    shift_weight: int = Field(default=1, ge=0)
    change_weight: int | None = Field(default=None, ge=0)


class RescheduleResponse(BaseModel):
    id: str
    result: RescheduleResult


class StatsOut(BaseModel):
    stored: int
    solved: int
    rejected: int


def _solve(request: Request, problem: Problem, options: SolveOptions) -> SolveResponse:
    store = store_of(request)
    try:
        result = solve(problem, method=options.method, objective=options.objective,
                       time_limit=options.time_limit_s, rule=options.rule)
    except SchedulingError as exc:
        store.reject()
        raise HTTPException(422, str(exc)) from None
    return SolveResponse(id=store.put(problem, result), result=result)


@router.post("/solve", response_model=SolveResponse)
def solve_json(request: Request, body: SolveRequest, who: Engineer) -> SolveResponse:
    """Schedule a problem given as JSON; the answer holds the schedule, its KPIs, the check and an id."""
    return _solve(request, body.problem, body)


@router.post("/solve/text", response_model=SolveResponse)
def solve_text(
    request: Request,
    who: Engineer,
    text: Annotated[str, Body(media_type="text/plain", description="An OR-Library, Taillard or Brandimarte file.")],
    format: Annotated[Format, Query()] = "auto",
    name: Annotated[str, Query(min_length=1)] = "instance",
    method: Annotated[Method, Query()] = "cpsat",
    objective: Annotated[Objective, Query()] = "makespan",
    time_limit_s: Annotated[float, Query(gt=0, le=MAX_TIME_LIMIT_S)] = 10.0,
) -> SolveResponse:
    """Schedule a problem given in a benchmark format (request body as text/plain)."""
    try:
        problem = parse_instance(text, format, source=name, name=name)
    except SchedulingError as exc:
        store_of(request).reject()
        raise HTTPException(422, str(exc)) from None
    return _solve(request, problem, SolveOptions(method=method, objective=objective, time_limit_s=time_limit_s))


@router.get("/stats", response_model=StatsOut)
def stats(request: Request) -> StatsOut:
    store = store_of(request)
    return StatsOut(stored=len(store.ids()), solved=store.solved, rejected=store.rejected)


@router.get("/schedules", response_model=list[str])
def schedules(request: Request) -> list[str]:
    """Ids of the schedules kept, oldest first."""
    return store_of(request).ids()


@router.get("/schedules/{schedule_id}", response_model=_Stored)
def schedule(request: Request, schedule_id: str) -> _Stored:
    return store_of(request).get(schedule_id)


@router.get("/schedules/{schedule_id}/gantt.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def schedule_png(request: Request, schedule_id: str) -> Response:
    from shopfloor.apps.scheduling.gantt import gantt_png  # matplotlib loads only when a chart is asked for

    item = store_of(request).get(schedule_id)
    return Response(gantt_png(item.problem, item.result.schedule), media_type="image/png")


@router.get("/schedules/{schedule_id}/gantt.html", response_class=HTMLResponse)
def schedule_html(request: Request, schedule_id: str) -> HTMLResponse:
    from shopfloor.apps.scheduling.gantt import gantt_html  # plotly loads only when a chart is asked for

    item = store_of(request).get(schedule_id)
    return HTMLResponse(gantt_html(item.problem, item.result.schedule))


@router.post("/schedules/{schedule_id}/reschedule", response_model=RescheduleResponse)
def reschedule_stored(
    request: Request, schedule_id: str, body: RescheduleRequest, who: Engineer
) -> RescheduleResponse:
    """Repair a kept schedule after a breakdown or a rush order; the repaired one is kept under a new id."""
    store = store_of(request)
    item = store.get(schedule_id)
    try:
        result = reschedule(item.problem, item.result.schedule, body.now, body.event, objective=body.objective,
                            time_limit=body.time_limit_s, shift_weight=body.shift_weight,
                            change_weight=body.change_weight)
    except SchedulingError as exc:
        store.reject()
        raise HTTPException(422, str(exc)) from None
    return RescheduleResponse(id=store.put(result.problem, result), result=result)
