"""FastAPI dependencies: who is asking (``current_principal``) and ``require_role(role)``.

Credentials, in this order: ``Authorization: Bearer <token>`` (scripts, API
tokens), the ``shopfloor_session`` cookie (the dashboard after login), and for
WebSockets, where browsers cannot set headers, also ``?token=``. With
``auth.enabled`` false (the default, for the demo) every request acts as an
anonymous admin, so nothing changes for a plant that has not turned auth on.

Roles are ordered viewer < operator < engineer < admin; a role includes the ones
below it. Use it on a write endpoint as::

    @router.post("/api/things/{id}/start")
    def start(who: Annotated[Principal, Depends(require_role("operator"))]) -> ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from shopfloor.auth.store import ANONYMOUS_ADMIN, Principal, Role, UserStore

SESSION_COOKIE = "shopfloor_session"


def auth_enabled(conn: HTTPConnection) -> bool:
    """Whether the platform asks for credentials; an app without a platform (a router mounted alone) does not."""
    platform = getattr(conn.app.state, "platform", None)
    return bool(platform is not None and platform.config.auth.enabled)


def user_store(conn: HTTPConnection) -> UserStore:
    platform = conn.app.state.platform
    if platform.started_ns is None:
        raise HTTPException(503, "the platform is starting or stopping")
    store: UserStore = platform.users
    return store


def credential(conn: HTTPConnection, *, allow_query: bool = False) -> str | None:
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    cookie = conn.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie
    if allow_query:
        return conn.query_params.get("token")
    return None


def principal_of(conn: HTTPConnection, *, allow_query: bool = False) -> Principal:
    """The caller; 401 without valid credentials when auth is on."""
    token = credential(conn, allow_query=allow_query)
    if not auth_enabled(conn):
        if token:  # a logged-in user is named in the journal even when auth is off
            principal = user_store(conn).verify_token(token)
            if principal is not None:
                return principal
        return ANONYMOUS_ADMIN
    if not token:
        raise HTTPException(401, "log in or send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    principal = user_store(conn).verify_token(token)
    if principal is None:
        raise HTTPException(401, "the token is unknown, expired or revoked", {"WWW-Authenticate": "Bearer"})
    return principal


def current_principal(request: Request) -> Principal:
    return principal_of(request)


def require_role(role: Role | str) -> Callable[[Request], Principal]:
    """A dependency that returns the caller when their role is at least ``role``, else 403 (401 without login)."""
    needed = Role(role)

    def check(request: Request) -> Principal:
        principal = principal_of(request)
        if not principal.has(needed):
            raise HTTPException(403, f"needs role {needed.value}; {principal.name} is {principal.role.value}")
        return principal

    check.__name__ = f"require_{needed.value}"
    return check


Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Engineer = Annotated[Principal, Depends(require_role(Role.ENGINEER))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
Caller = Annotated[Principal, Depends(current_principal)]
