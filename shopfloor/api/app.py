"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import shopfloor
from shopfloor.alarms.api import router as alarms_router
from shopfloor.api.routers import assets, dashboard, live, system, values
from shopfloor.apps.inspection.api import router as inspection_router
from shopfloor.apps.maintenance.api import router as maintenance_router
from shopfloor.apps.mes.api import router as mes_router
from shopfloor.apps.mes.events_api import router as mes_events_router
from shopfloor.apps.scheduling.api import router as scheduling_router
from shopfloor.apps.scheduling.plant_api import router as plant_scheduling_router
from shopfloor.apps.warehouse.api import router as warehouse_router
from shopfloor.auth.api import router as auth_router
from shopfloor.control.api import router as control_router
from shopfloor.control.drive import router as drive_router
from shopfloor.platform import Platform
from shopfloor.web import mount_dashboard


def create_app(
    platform: Platform,
    *,
    manage_lifecycle: bool = True,
    on_start: Sequence[Callable[[], None]] = (),
    on_stop: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    """An API over a platform; with manage_lifecycle the app starts and stops the platform with itself.

    on_start hooks run after the platform started (e.g. the demo's virtual factory), on_stop hooks before it stops.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await run_in_threadpool(platform.start)
        for hook in on_start:
            await run_in_threadpool(hook)
        try:
            yield
        finally:
            for hook in on_stop:
                await run_in_threadpool(hook)
            if manage_lifecycle:
                await run_in_threadpool(platform.stop)

    app = FastAPI(
        title="shopfloor",
        version=shopfloor.__version__,
        description="Asset model, live values and history of the plant.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    for module in (system, assets, values, live, dashboard):
        app.include_router(module.router)
    app.include_router(plant_scheduling_router)  # before /api/scheduling/... of the solver API
    app.include_router(scheduling_router)
    app.include_router(alarms_router)
    app.include_router(auth_router)
    app.include_router(mes_router)
    app.include_router(warehouse_router)
    app.include_router(maintenance_router)
    app.include_router(mes_events_router)
    app.include_router(inspection_router)
    app.include_router(control_router)
    app.include_router(drive_router)

    mount_dashboard(app)  # the web dashboard at /, its files under /static

    return app
