"""The scheduling router in process (httpx over ASGI): solve JSON and text, charts, reschedule, refusals counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from scheduling_testkit import FT06, assert_valid

from shopfloor.apps.scheduling import Problem, Schedule
from shopfloor.apps.scheduling.api import router
from shopfloor.apps.scheduling.generate import random_problem


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_solve_json_then_charts_and_reschedule(client: httpx.AsyncClient) -> None:
    problem = random_problem(6, 3, seed=11, flexibility=2, due_dates=True)
    r = await client.post("/api/scheduling/solve", json={"problem": problem.model_dump(), "method": "cpsat",
                                                   "objective": "weighted_tardiness", "time_limit_s": 1.0})
    assert r.status_code == 200, r.text
    body = r.json()
    schedule = Schedule.model_validate(body["result"]["schedule"])
    assert_valid(problem, schedule)
    assert body["result"]["check"]["valid"] is True
    assert set(body["result"]["kpis"]["utilisation"]) == {"M0", "M1", "M2"}
    key = body["id"]
    assert (await client.get("/api/scheduling/schedules")).json() == [key]
    png = await client.get(f"/api/scheduling/schedules/{key}/gantt.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    html = await client.get(f"/api/scheduling/schedules/{key}/gantt.html")
    assert html.status_code == 200
    assert "text/html" in html.headers["content-type"]
    assert "plotly" in html.text
    now = body["result"]["kpis"]["makespan"] // 3
    r = await client.post(f"/api/scheduling/schedules/{key}/reschedule", json={
        "now": now, "event": {"kind": "machine_down", "machine": "M0", "start": now, "end": now + 20},
        "time_limit_s": 0.5})
    assert r.status_code == 200, r.text
    repaired = r.json()
    assert repaired["id"] != key
    new_problem = Problem.model_validate(repaired["result"]["problem"])
    assert_valid(new_problem, Schedule.model_validate(repaired["result"]["schedule"]))
    assert repaired["result"]["disruption"]["makespan_before"] == body["result"]["kpis"]["makespan"]
    r = await client.post(f"/api/scheduling/schedules/{repaired['id']}/reschedule", json={
        "now": now, "event": {"kind": "rush_order", "job": {"id": "R", "due": now + 10, "weight": 9, "operations": [
            {"options": [{"machine": "M1", "duration": 3}]}]}}, "time_limit_s": 0.5})
    assert r.status_code == 200, r.text
    assert any(op["job"] == "R" for op in r.json()["result"]["schedule"]["operations"])
    kept = (await client.get(f"/api/scheduling/schedules/{r.json()['id']}")).json()
    assert kept["problem"]["jobs"][-1]["id"] == "R"


async def test_solve_text_in_benchmark_format(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/scheduling/solve/text", params={"name": "ft06", "method": "local_search",
                                                         "time_limit_s": 0.5},
                    content=FT06, headers={"content-type": "text/plain"})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["problem"] == "ft06"
    assert result["check"]["valid"] is True
    assert 55 <= result["kpis"]["makespan"] <= 60


async def test_bad_inputs_are_refused_and_counted(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/scheduling/solve/text", params={"name": "broken"}, content="1 2\n0 1 x 2\n",
                    headers={"content-type": "text/plain"})
    assert r.status_code == 422
    assert r.json()["detail"] == "broken:2: expected whole numbers, got '0 1 x 2'"
    r = await client.post("/api/scheduling/solve", json={"problem": {"machines": [{"id": "A"}], "jobs": [
        {"id": "J", "operations": [{"options": [{"machine": "B", "duration": 1}]}]}]}})
    assert r.status_code == 422
    assert "unknown machine 'B'" in r.text
    tiny = random_problem(2, 2).model_dump()
    r = await client.post("/api/scheduling/solve", json={"problem": tiny, "time_limit_s": 0})
    assert r.status_code == 422
    assert (await client.get("/api/scheduling/schedules/nope/gantt.png")).status_code == 404
    r = await client.post("/api/scheduling/solve", json={"problem": {
        "machines": [{"id": "A", "calendar": {"period": 10, "available": [{"start": 0, "end": 5}]}}],
        "jobs": [{"id": "J", "operations": [{"options": [{"machine": "A", "duration": 6}]}]}]}, "method": "dispatch"})
    assert r.status_code == 422
    assert "longer than every calendar window" in r.text
    stats = (await client.get("/api/scheduling/stats")).json()
    assert stats == {"stored": 0, "solved": 0, "rejected": 5}


def test_the_platform_app_serves_the_router() -> None:
    from shopfloor.api import create_app

    app = create_app(None, manage_lifecycle=False)  # type: ignore[arg-type]  # no platform needed for the schema
    paths = app.openapi()["paths"]
    assert {"/api/scheduling/solve", "/api/scheduling/solve/text", "/api/scheduling/schedules/{schedule_id}/gantt.png",
            "/api/scheduling/schedules/{schedule_id}/reschedule"} <= set(paths)
