"""The remote control API under ``/api/control`` (docs/control.md).

* ``GET /api/control/commands`` (viewer): the command types with their interlocks' state now.
* ``POST /api/control/commands/{name}`` (operator, and the command's own role) with
  ``{"value": ...}``: 200 executed (with the device's answer), 202 confirmation required
  (``token``, ``expires_in_s``, ``summary`` of what will be done), 403/404/409/422 refused,
  502 the device refused or could not be reached, 504 no answer in time.
* ``POST /api/control/commands/{name}/confirm`` with ``{"value": ..., "token": ...}``: the second step.
* ``GET /api/control/audit`` (viewer): the audit log, newest first.

A refusal's body is ``{"detail": {"rule": ..., "reason": ..., ...}}``: ``rule`` is the machine-readable
name (role, range, value, interlock:<name>, confirm, unknown_command), ``reason`` the sentence shown to the
operator. With auth off every caller is the anonymous admin (shopfloor.auth.deps): roles pass, but ranges,
interlocks and confirmation still apply, and the audit names the caller "anonymous".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shopfloor.api.deps import PlatformDep, running_service
from shopfloor.auth.deps import Operator, Viewer
from shopfloor.control.service import CommandService, Outcome

router = APIRouter(prefix="/api/control", tags=["control"])


def get_service(platform: PlatformDep) -> CommandService:
    return running_service(platform, "control", CommandService, "control")


ServiceDep = Annotated[CommandService, Depends(get_service)]
Value = Annotated[float | int | bool | str, Body(embed=True, description="Number, true/false, or a state label.")]
Token = Annotated[str, Body(embed=True, max_length=200)]


def _answer(outcome: Outcome) -> JSONResponse:
    body = outcome.as_dict()
    if outcome.decision == "refused":
        return JSONResponse({"detail": body}, status_code=outcome.status)
    return JSONResponse(body, status_code=outcome.status)


@router.get("/commands")
async def list_commands(service: ServiceDep, who: Viewer) -> list[dict[str, Any]]:
    """Command types per equipment with the current state of each interlock (ok, blocked, unknown)."""
    return await run_in_threadpool(service.describe)


@router.post("/commands/{name}")
async def issue(name: str, value: Value, service: ServiceDep, who: Operator) -> JSONResponse:
    """Send a command (or, for a confirm command, get the token that confirms it)."""
    return _answer(await run_in_threadpool(service.request, who, name, value))


@router.post("/commands/{name}/confirm")
async def confirm(name: str, value: Value, token: Token, service: ServiceDep, who: Operator) -> JSONResponse:
    """Confirm a dangerous command with the token its first request returned (same user, command, value)."""
    return _answer(await run_in_threadpool(service.confirm, who, name, value, token))


@router.get("/audit")
async def audit(
    service: ServiceDep,
    who: Viewer,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
    before_id: int | None = None,
    command: str | None = None,
    user: str | None = None,
) -> list[dict[str, Any]]:
    """Every attempt, newest first (``before_id`` pages back); filters by command or user."""
    limit = min(limit, service.config.audit_rows_max)
    return await run_in_threadpool(service.audit.read, limit=limit, before_id=before_id, command=command, user=user)
