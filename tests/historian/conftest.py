"""Historian fixtures, parametrized by backend so every backend passes the same contract tests.

Adding a backend is one entry in BACKENDS: a function from a store directory to an open
historian. Calling it again on the same directory must reopen the same store (that is how the
restart tests work). "duckdb-compact-often" runs the same contract with a tiny ``recent`` table,
so that every test also crosses DuckDB's recent/compacted boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shopfloor.historian.base import Historian
from shopfloor.historian.duckdb_store import DuckDBHistorian

BACKENDS: dict[str, Callable[[Path], Historian]] = {
    "duckdb": lambda d: DuckDBHistorian(d / "historian.duckdb"),
    "duckdb-compact-often": lambda d: DuckDBHistorian(d / "historian.duckdb", compact_rows=7),
}

HistorianFactory = Callable[[], Historian]


@pytest.fixture(params=sorted(BACKENDS))
def make_historian(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistorianFactory]:
    """Opens historians on one store of the parametrized backend; closes them all at the end."""
    opened: list[Historian] = []
    backend = BACKENDS[request.param]

    def factory() -> Historian:
        historian = backend(tmp_path)
        opened.append(historian)
        return historian

    yield factory
    for historian in opened:
        historian.close()


@pytest.fixture
def historian(make_historian: HistorianFactory) -> Historian:
    """A fresh, empty historian of the parametrized backend."""
    return make_historian()
