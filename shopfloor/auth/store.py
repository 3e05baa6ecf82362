"""Users, roles and tokens in SQLite (``<data_dir>/auth.sqlite``).

Passwords are hashed with Argon2id (argon2-cffi, its default parameters, which
follow RFC 9106's recommendations) and rehashed on login when the parameters
move on. Tokens (API tokens for scripts, and dashboard sessions) are 32 random
bytes shown once; only their SHA-256 is stored. A fast hash is right for them:
they carry 256 bits of entropy, so there is nothing to brute-force, and they
are checked on every request, where Argon2's deliberate slowness would hurt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shopfloor.core.errors import ShopfloorError

MIN_PASSWORD = 8
TOKEN_PREFIX = "sft"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class AuthError(ShopfloorError):
    """A user or token request that cannot be done (the API answers 4xx with the message)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request, and with which role."""

    name: str
    role: Role
    via: str  # "session", "token", "anonymous"
    token_id: int | None = None

    def has(self, role: Role | str) -> bool:
        return self.role.rank >= Role(role).rank


ANONYMOUS_ADMIN = Principal("anonymous", Role.ADMIN, "anonymous")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    kind TEXT NOT NULL, label TEXT NOT NULL DEFAULT '', secret_sha256 TEXT NOT NULL, created_ns INTEGER NOT NULL,
    expires_ns INTEGER, last_used_ns INTEGER, revoked INTEGER NOT NULL DEFAULT 0
);
"""


class UserStore:
    """Thread-safe store of users and tokens."""

    def __init__(self, path: str | Path, hasher: PasswordHasher | None = None) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._hasher = hasher or PasswordHasher()  # Argon2id, RFC 9106's low-memory profile (64 MiB, t=3, p=4)
        self._dummy: str | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- users ----------------------------------------------------------------------------------------------------

    def add_user(self, name: str, password: str, role: Role | str) -> None:
        role = _role(role)
        _check_name(name)
        _check_password(password)
        digest = self._hasher.hash(password)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO users (name, role, password_hash, created_ns) VALUES (?, ?, ?, ?)",
                    (name, role.value, digest, time.time_ns()),
                )
            except sqlite3.IntegrityError:
                raise AuthError(f"user {name!r} exists already") from None

    def update_user(
        self, name: str, *, role: Role | str | None = None, password: str | None = None, disabled: bool | None = None
    ) -> None:
        self._user_row(name)
        with self._lock:
            if role is not None:
                self._db.execute("UPDATE users SET role = ? WHERE name = ?", (_role(role).value, name))
            if password is not None:
                _check_password(password)
                digest = self._hasher.hash(password)
                self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (digest, name))
            if disabled is not None:
                self._db.execute("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))
            if password is not None or disabled:  # a new password or a disabled user ends every session
                self._db.execute("UPDATE tokens SET revoked = 1 WHERE user = ? AND kind = 'session'", (name,))

    def delete_user(self, name: str) -> None:
        self._user_row(name)
        with self._lock:
            self._db.execute("DELETE FROM users WHERE name = ?", (name,))

    def users(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT name, role, disabled, created_ns FROM users ORDER BY name").fetchall()
        return [{"name": n, "role": r, "disabled": bool(d), "created_ns": c} for n, r, d, c in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def admins(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0").fetchone()
        return int(row[0])

    def _user_row(self, name: str) -> tuple[str, str, str, int]:
        with self._lock:
            row = self._db.execute("SELECT name, role, password_hash, disabled FROM users WHERE name = ?",
                                   (name,)).fetchone()
        if row is None:
            raise AuthError(f"no user {name!r}")
        return row  # type: ignore[no-any-return]

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The user if the password is right and the user enabled; None otherwise (same work either way)."""
        with self._lock:
            row = self._db.execute("SELECT role, password_hash, disabled FROM users WHERE name = ?", (name,)).fetchone()
        if row is None and self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_hex(16))
        digest: str = row[1] if row else self._dummy or ""
        try:
            self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or row[2]:
            return None
        if self._hasher.check_needs_rehash(digest):
            with self._lock:
                self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                                 (self._hasher.hash(password), name))
        return Principal(name, Role(row[0]), "password")

    # --- tokens ---------------------------------------------------------------------------------------------------

    def create_token(
        self, user: str, *, kind: str = "api", label: str = "", ttl_s: float | None = None
    ) -> tuple[str, int]:
        """A new token for user: (the token, shown only now; its id)."""
        self._user_row(user)
        secret = secrets.token_urlsafe(32)
        now = time.time_ns()
        expires = now + int(ttl_s * 1e9) if ttl_s is not None else None
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO tokens (user, kind, label, secret_sha256, created_ns, expires_ns)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user, kind, label[:200], _sha256(secret), now, expires),
            )
        token_id = int(cur.lastrowid or 0)
        return f"{TOKEN_PREFIX}_{token_id}_{secret}", token_id

    def verify_token(self, token: str) -> Principal | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1].isdigit():
            return None
        token_id, secret = int(parts[1]), parts[2]
        with self._lock:
            row = self._db.execute(
                "SELECT t.secret_sha256, t.expires_ns, t.revoked, t.kind, u.name, u.role, u.disabled, t.last_used_ns"
                " FROM tokens t JOIN users u ON u.name = t.user WHERE t.id = ?", (token_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[0], _sha256(secret)):
            return None
        now = time.time_ns()
        if row[2] or row[6] or (row[1] is not None and row[1] <= now):
            return None
        if row[7] is None or now - row[7] > 60e9:  # last use, to the minute: no write per request
            with self._lock:
                self._db.execute("UPDATE tokens SET last_used_ns = ? WHERE id = ?", (now, token_id))
        return Principal(row[4], Role(row[5]), "session" if row[3] == "session" else "token", token_id)

    def revoke_token(self, token_id: int) -> None:
        with self._lock:
            cur = self._db.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,))
        if cur.rowcount == 0:
            raise AuthError(f"no token {token_id}")

    def token_owner(self, token_id: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT user FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return str(row[0]) if row else None

    def tokens(self, user: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, label, created_ns, expires_ns, last_used_ns, revoked FROM tokens WHERE user = ?"
                " ORDER BY id", (user,),
            ).fetchall()
        return [
            {"id": i, "kind": k, "label": lb, "created_ns": c, "expires_ns": e, "last_used_ns": lu, "revoked": bool(r)}
            for i, k, lb, c, e, lu, r in rows
        ]


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AuthError(f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}") from None


def _check_name(name: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise AuthError("a user name is 1-64 letters, digits or . _ - @")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"a password needs at least {MIN_PASSWORD} characters")


def open_user_store(path: str | Path, bootstrap_admin: str | None, hasher: PasswordHasher | None = None) -> UserStore:
    """The store; with bootstrap_admin and no user yet, that admin is created from SHOPFLOOR_ADMIN_PASSWORD."""
    import logging
    import os

    store = UserStore(path, hasher)
    if bootstrap_admin and store.count() == 0:
        password = os.environ.get("SHOPFLOOR_ADMIN_PASSWORD")
        if password:
            store.add_user(bootstrap_admin, password, Role.ADMIN)
            logging.getLogger(__name__).info("created admin %r from SHOPFLOOR_ADMIN_PASSWORD", bootstrap_admin)
        else:
            logging.getLogger(__name__).warning(
                "auth.bootstrap_admin is set but SHOPFLOOR_ADMIN_PASSWORD is not: no admin created"
            )
    return store
