"""Historian fixtures, parametrized by backend so every backend passes the same contract tests.

Adding a backend is one entry in BACKENDS: a function from a store directory to an open
historian. Calling it again on the same directory must reopen the same store (that is how the
restart tests work). "duckdb-compact-often" runs the same contract with a tiny ``recent`` table,
so that every test also crosses DuckDB's recent/compacted boundary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shopfloor.core.errors import NotReady
from shopfloor.historian.base import Historian
from shopfloor.historian.duckdb_store import DuckDBHistorian
from shopfloor.historian.postgres_store import PostgresHistorian
from shopfloor.testing.postgres import PostgresServer, fresh_database

BACKENDS: dict[str, Callable[[Path], Historian]] = {
    "duckdb": lambda d: DuckDBHistorian(d / "historian.duckdb"),
    "duckdb-compact-often": lambda d: DuckDBHistorian(d / "historian.duckdb", compact_rows=7),
    # the store is a fresh database on a private server; the postgres_database fixture names it in d
    "postgres": lambda d: PostgresHistorian((d / "postgres.url").read_text()),
}

HistorianFactory = Callable[[], Historian]


@pytest.fixture(params=sorted(BACKENDS))
def make_historian(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistorianFactory]:
    """Opens historians on one store of the parametrized backend; closes them all at the end."""
    opened: list[Historian] = []
    backend = BACKENDS[request.param]
    if request.param == "postgres":
        (tmp_path / "postgres.url").write_text(request.getfixturevalue("postgres_database"))

    def factory() -> Historian:
        historian = backend(tmp_path)
        opened.append(historian)
        return historian

    yield factory
    for historian in opened:
        historian.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the session.

    Outside CI a machine without PostgreSQL skips these tests; in CI (where .ci/run installs it) that fails.
    """
    try:
        server = PostgresServer().start()
    except NotReady as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh database on the session's server, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
def historian(make_historian: HistorianFactory) -> Historian:
    """A fresh, empty historian of the parametrized backend."""
    return make_historian()
