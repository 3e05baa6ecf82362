"""Login, sessions, users and API tokens over HTTP.

The dashboard logs in with ``POST /api/auth/login`` (the answer sets an
HttpOnly ``shopfloor_session`` cookie, and also returns the token for clients
that prefer a header); ``GET /api/auth/me`` says who is logged in and whether
auth is on at all. Scripts use an API token: ``POST /api/users/{name}/tokens``
returns it once; send it as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from shopfloor.auth.deps import SESSION_COOKIE, Admin, Caller, Viewer, auth_enabled, principal_of, user_store
from shopfloor.auth.store import AuthError, Principal, Role, UserStore

router = APIRouter(tags=["auth"])

StoreDep = Annotated[UserStore, Depends(user_store)]


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserIn(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    role: Role = Role.VIEWER


class UserPatch(BaseModel):
    role: Role | None = None
    password: str | None = Field(default=None, max_length=1024)
    disabled: bool | None = None


class PasswordIn(BaseModel):
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class TokenIn(BaseModel):
    label: str = Field(default="", max_length=200)
    days: float | None = Field(default=None, gt=0, le=3650, description="Lifetime; none: until revoked.")


class _Throttle:
    """Slows password guessing: after 5 failures a name is refused for 30 s (per process)."""

    def __init__(self, failures: int = 5, lock_s: float = 30.0) -> None:
        self.failures, self.lock_s = failures, lock_s
        self._fails: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def locked(self, name: str) -> bool:
        with self._lock:
            n, since = self._fails.get(name, (0, 0.0))
            return n >= self.failures and time.monotonic() - since < self.lock_s

    def failed(self, name: str) -> None:
        with self._lock:
            n, _ = self._fails.get(name, (0, 0.0))
            self._fails[name] = (n + 1, time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop(name, None)


_throttle = _Throttle()


def _bad(exc: AuthError) -> HTTPException:
    return HTTPException(404 if str(exc).startswith("no ") else 400, str(exc))


def _me(p: Principal, request: Request) -> dict[str, Any]:
    return {"name": p.name, "role": p.role.value, "via": p.via, "auth_enabled": auth_enabled(request)}


@router.post("/api/auth/login")
def login(body: LoginIn, request: Request, response: Response, store: StoreDep) -> dict[str, Any]:
    """Password login: a session token, also set as an HttpOnly cookie."""
    if _throttle.locked(body.username):
        raise HTTPException(429, "too many failed logins for this user: wait 30 s")
    principal = store.authenticate(body.username, body.password)
    if principal is None:
        _throttle.failed(body.username)
        raise HTTPException(401, "wrong user name or password")
    _throttle.succeeded(body.username)
    config = request.app.state.platform.config.auth
    ttl = config.session_hours * 3600
    token, _ = store.create_token(principal.name, kind="session", label="login", ttl_s=ttl)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(ttl), httponly=True, samesite="strict",
                        secure=config.secure_cookie)
    return {"token": token, "expires_in_s": int(ttl), "name": principal.name, "role": principal.role.value}


@router.post("/api/auth/logout")
def logout(who: Caller, response: Response, store: StoreDep) -> dict[str, Any]:
    """Ends this session (its token is revoked) and clears the cookie."""
    if who.via == "session" and who.token_id is not None:
        store.revoke_token(who.token_id)
    response.delete_cookie(SESSION_COOKIE)
    return {"ok": True}


@router.get("/api/auth/me")
def me(who: Caller, request: Request) -> dict[str, Any]:
    """Who is asking; auth_enabled false means no login is needed (everyone acts as anonymous admin)."""
    return _me(who, request)


@router.get("/api/auth/session")
def session(request: Request) -> dict[str, Any]:
    """Like /api/auth/me, but never 401: name and role are null when nobody is logged in (or the session ended).

    The dashboard asks this at load, so a login screen is not an error in the browser's console."""
    try:
        return _me(principal_of(request), request)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        return {"name": None, "role": None, "via": None, "auth_enabled": auth_enabled(request)}


@router.post("/api/auth/password")
def change_password(body: PasswordIn, who: Viewer, store: StoreDep) -> dict[str, Any]:
    """A user changes their own password (ends their sessions)."""
    if store.authenticate(who.name, body.old_password) is None:
        raise HTTPException(403, "the old password is wrong")
    try:
        store.update_user(who.name, password=body.new_password)
    except AuthError as exc:
        raise _bad(exc) from None
    return {"ok": True}


@router.get("/api/users")
def list_users(who: Admin, store: StoreDep) -> list[dict[str, Any]]:
    return store.users()


@router.post("/api/users", status_code=201)
def create_user(body: UserIn, who: Admin, store: StoreDep) -> dict[str, Any]:
    try:
        store.add_user(body.name, body.password, body.role)
    except AuthError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 400, str(exc)) from None
    return {"name": body.name, "role": body.role.value}


@router.patch("/api/users/{name}")
def update_user(name: str, body: UserPatch, who: Admin, store: StoreDep) -> dict[str, Any]:
    demoting = (body.role is not None and body.role != Role.ADMIN) or body.disabled
    if demoting and _is_last_admin(store, name):
        raise HTTPException(409, f"{name!r} is the last admin")
    try:
        store.update_user(name, role=body.role, password=body.password, disabled=body.disabled)
    except AuthError as exc:
        raise _bad(exc) from None
    return next(u for u in store.users() if u["name"] == name)


@router.delete("/api/users/{name}")
def delete_user(name: str, who: Admin, store: StoreDep) -> dict[str, Any]:
    if _is_last_admin(store, name):
        raise HTTPException(409, f"{name!r} is the last admin")
    try:
        store.delete_user(name)
    except AuthError as exc:
        raise _bad(exc) from None
    return {"ok": True}


def _is_last_admin(store: UserStore, name: str) -> bool:
    user = next((u for u in store.users() if u["name"] == name), None)
    return user is not None and user["role"] == "admin" and not user["disabled"] and store.admins() <= 1


def _self_or_admin(who: Principal, name: str) -> None:
    if who.name != name and not who.has(Role.ADMIN):
        raise HTTPException(403, "only an admin manages another user's tokens")


@router.get("/api/users/{name}/tokens")
def list_tokens(name: str, who: Viewer, store: StoreDep) -> list[dict[str, Any]]:
    _self_or_admin(who, name)
    return store.tokens(name)


@router.post("/api/users/{name}/tokens", status_code=201)
def create_token(name: str, body: TokenIn, who: Viewer, store: StoreDep) -> dict[str, Any]:
    """An API token with the user's role; the token is in this answer only."""
    _self_or_admin(who, name)
    try:
        token, token_id = store.create_token(name, kind="api", label=body.label,
                                             ttl_s=body.days * 86400 if body.days else None)
    except AuthError as exc:
        raise _bad(exc) from None
    return {"id": token_id, "token": token, "label": body.label}


@router.delete("/api/tokens/{token_id}")
def revoke_token(token_id: int, who: Viewer, store: StoreDep) -> dict[str, Any]:
    owner = store.token_owner(token_id)
    if owner is None:
        raise HTTPException(404, f"no token {token_id}")
    _self_or_admin(who, owner)
    store.revoke_token(token_id)
    return {"ok": True}
