"""Fixtures for the Sparkplug tests.

The broker is the shared ``mosquitto`` fixture (shopfloor.testing.plugin): a real mosquitto of the
test's own on a free loopback port, stopped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sparkplug_observer import Observer

from shopfloor.testing.mosquitto import Mosquitto


@pytest.fixture
def group() -> str:
    """A group id of its own per test, so tests sharing the broker never see each other."""
    return f"g{uuid.uuid4().hex[:10]}"


@pytest.fixture
def observer(mosquitto: Mosquitto, group: str) -> Iterator[Observer]:
    obs = Observer(mosquitto, group)
    yield obs
    obs.close()


@pytest.fixture
def cleanup() -> Iterator[Callable[[Callable[[], None]], None]]:
    """Register teardown callables (e.g. node.stop) that run even when the test fails."""
    todo: list[Callable[[], None]] = []
    yield todo.append
    for fn in reversed(todo):
        fn()
