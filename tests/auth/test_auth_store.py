"""Users, Argon2 password hashes, hashed tokens, roles."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from shopfloor.auth.store import AuthError, Principal, Role, UserStore, open_user_store

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # tests only: the default takes ~0.8 s here


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    s = UserStore(tmp_path / "auth.sqlite", FAST)
    yield s  # type: ignore[misc]
    s.close()


def test_passwords_are_argon2id_hashes(store: UserStore) -> None:
    store.add_user("ann", "correct horse", Role.OPERATOR)
    digest = sqlite3.connect(store.path).execute("SELECT password_hash FROM users").fetchone()[0]
    assert digest.startswith("$argon2id$") and "correct horse" not in digest
    assert store.authenticate("ann", "correct horse") == Principal("ann", Role.OPERATOR, "password")
    assert store.authenticate("ann", "wrong horse") is None
    assert store.authenticate("nobody", "correct horse") is None
    store.update_user("ann", disabled=True)
    assert store.authenticate("ann", "correct horse") is None


def test_bad_input_is_refused_with_a_reason(store: UserStore) -> None:
    with pytest.raises(AuthError, match="at least 8"):
        store.add_user("ann", "short", "viewer")
    with pytest.raises(AuthError, match="unknown role"):
        store.add_user("ann", "long enough", "superuser")
    with pytest.raises(AuthError, match="user name"):
        store.add_user("ann smith", "long enough", "viewer")
    store.add_user("ann", "long enough", "viewer")
    with pytest.raises(AuthError, match="exists"):
        store.add_user("ann", "long enough", "viewer")
    with pytest.raises(AuthError, match="no user"):
        store.update_user("bob", role="admin")


def test_tokens_are_stored_hashed_and_can_be_revoked_or_expire(store: UserStore) -> None:
    store.add_user("script", "long enough", Role.ENGINEER)
    token, token_id = store.create_token("script", label="nightly export")
    raw = Path(store.path).read_bytes() + (Path(store.path + "-wal").read_bytes() if Path(store.path + "-wal").exists()
                                           else b"")
    assert token.split("_", 2)[2].encode() not in raw
    assert store.verify_token(token) == Principal("script", Role.ENGINEER, "token", token_id)
    assert store.verify_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify_token("garbage") is None
    store.revoke_token(token_id)
    assert store.verify_token(token) is None
    short, _ = store.create_token("script", ttl_s=0.05)
    assert store.verify_token(short) is not None
    time.sleep(0.1)
    assert store.verify_token(short) is None


def test_a_new_password_ends_sessions_but_not_api_tokens(store: UserStore) -> None:
    store.add_user("ann", "long enough", Role.OPERATOR)
    session, _ = store.create_token("ann", kind="session")
    api, _ = store.create_token("ann")
    store.update_user("ann", password="another long one")
    assert store.verify_token(session) is None
    assert store.verify_token(api) is not None


def test_roles_are_ordered() -> None:
    p = Principal("eve", Role.ENGINEER, "token")
    assert p.has("viewer") and p.has(Role.OPERATOR) and p.has("engineer") and not p.has("admin")


def test_bootstrap_admin_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOOR_ADMIN_PASSWORD", "first admin pw")
    s = open_user_store(tmp_path / "auth.sqlite", "root", FAST)
    assert s.authenticate("root", "first admin pw") is not None
    s.close()
    monkeypatch.setenv("SHOPFLOOR_ADMIN_PASSWORD", "changed")
    s = open_user_store(tmp_path / "auth.sqlite", "root", FAST)  # users exist: nothing is created or changed
    assert s.authenticate("root", "first admin pw") is not None and s.count() == 1
    s.close()


def test_command_line_adds_users_and_prints_tokens(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shopfloor.auth.__main__ import app

    runner = CliRunner()
    r = runner.invoke(app, ["add-user", "root", "--role", "admin", "--data-dir", str(tmp_path)],
                      input="admin password\nadmin password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["token", "root", "--label", "ci", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and r.output.startswith("sft_")
    s = UserStore(tmp_path / "auth.sqlite", FAST)
    assert s.verify_token(r.output.strip()) == Principal("root", Role.ADMIN, "token", 1)
    s.close()
    r = runner.invoke(app, ["token", "nobody", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no user 'nobody'" in r.output
    assert "root\tadmin" in runner.invoke(app, ["list", "--data-dir", str(tmp_path)]).output
