"""Fixtures of the MES tests: an MES with a small generated plant history (see mes_plant.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mes_plant import build_plant

from shopfloor.apps.mes.service import Mes


@pytest.fixture
def mes(tmp_path: Path) -> Iterator[Mes]:
    m = Mes.open(tmp_path / "data", block_size=8)
    build_plant(m)
    yield m
    m.engine.dispose()
