"""Start a private PostgreSQL server (initdb into a temp dir, a free loopback port, trust auth).

For tests and benchmarks only: never the machine's own server on 5432, whose data and
settings are not ours. PostgreSQL refuses to run as root, so when we are root the binaries
run as the ``postgres`` OS user and the temp dir is chowned to it. ``restart()`` stops and
starts the same cluster on the same port, which is how the reconnect tests simulate a
database restart during ingest.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shopfloor.core.errors import NotReady
from shopfloor.testing.private_server import PrivateServer

_BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")

# Test speed over crash safety: a clean shutdown (restart()) still writes everything out.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_pg_bin() -> Path | None:
    """The directory that holds initdb and postgres, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    candidates = ([str(Path(found).resolve().parent)] if found else []) + list(_BIN_DIRS)
    for d in candidates:
        if (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    return None


class PostgresServer(PrivateServer):
    """A postgres process of our own; use as a context manager. ``url`` names database ``postgres``."""

    program = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: clients are disconnected, data is written out

    def __init__(self, *, fast: bool = True, settings: dict[str, str] | None = None) -> None:
        """``fast``: fsync off (tests); pass False to measure with durable commits."""
        bindir = find_pg_bin()
        if bindir is None:
            raise NotReady("PostgreSQL is not installed (Debian package 'postgresql')")
        super().__init__("shopfloor-postgres-")
        self.bindir = bindir
        self.settings = {**(FAST_SETTINGS if fast else {}), **(settings or {})}
        self.data_dir = self._dir / "data"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self._dir, pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            self._env = {**os.environ, "HOME": str(self._dir), "USER": "postgres"}
        else:
            self._env = dict(os.environ)
        self._initialized = False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{dbname}"

    def _initdb(self) -> None:
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--locale=C"],
            check=True, capture_output=True, env=self._env, cwd=self._dir, **self._run_as,
        )  # fmt: skip
        self._initialized = True

    def _command(self) -> list[str]:
        if not self._initialized:
            self._initdb()
        args = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-h", self.host,
                "-k", str(self._dir)]  # fmt: skip
        for k, v in self.settings.items():
            args += ["-c", f"{k}={v}"]
        return args

    def _popen_options(self) -> dict[str, Any]:
        return {"env": self._env, **self._run_as}

    def _probe(self) -> str | None:
        """The port opens before recovery ends: serving means a connection is accepted."""
        import psycopg

        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            return str(exc)
        return None

    def restart(self) -> None:
        """Stop and start the same cluster on the same port (``shutdown`` keeps it)."""
        self.shutdown()
        self.start()


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new, empty database on the server (unique name), dropped afterwards; yields its URL."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
