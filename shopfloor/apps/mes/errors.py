"""Errors of the MES: each says what was wrong with the input, in words a user can act on."""

from __future__ import annotations


class MesError(ValueError):
    """Bad input to the MES (unknown id, wrong kind, out-of-range value)."""


class NotFound(MesError):
    """An item, order, product or machine that the MES does not know."""
