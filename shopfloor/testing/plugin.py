"""Pytest fixtures shared by shopfloor's tests (and usable by plugin authors): a private broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shopfloor.testing.mosquitto import Mosquitto


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A Mosquitto broker of the test's own on a free loopback port."""
    with Mosquitto() as broker:
        yield broker
