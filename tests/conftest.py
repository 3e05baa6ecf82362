from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from shopfloor.testing.browser import chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytest_plugins = ["shopfloor.testing.plugin"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium for a module's page tests (.ci/run installs the package)."""
    try:
        with chromium() as b:
            yield b
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
