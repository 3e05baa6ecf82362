"""Errors of the scheduling app."""

from __future__ import annotations

from shopfloor.core.errors import ShopfloorError


class SchedulingError(ShopfloorError):
    """Base of the scheduling app's errors."""


class FormatError(SchedulingError):
    """A benchmark-format file that cannot be read; the message names the file and the line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class InfeasibleProblem(SchedulingError):
    """A problem that no schedule can satisfy (e.g. an operation longer than every window of its machines)."""
