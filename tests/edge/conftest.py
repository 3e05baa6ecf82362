"""Fixtures of the edge tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edge_helpers import CountingPress


@pytest.fixture
def press() -> Iterator[CountingPress]:
    """A Modbus device counting the reads it answers (see edge_helpers)."""
    device = CountingPress().start()
    yield device
    device.stop()
