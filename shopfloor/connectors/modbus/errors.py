"""Typed errors of the Modbus connector, so callers (remote control, the API) can tell them apart."""

from __future__ import annotations

from shopfloor.core.errors import NotReady, ShopfloorError


class ModbusError(ShopfloorError):
    """Base of the Modbus connector's errors."""


class ReadOnlyPoint(ModbusError):
    """A write to an input register or discrete input, which the protocol cannot write."""


class SetpointOutOfRange(ModbusError, ValueError):
    """A value that does not fit the point's type (after scale and offset), or is not finite."""


class DeviceUnavailable(ModbusError, NotReady):
    """The device is not connected, or did not answer: retry later."""


class ModbusExceptionResponse(ModbusError):
    """The device answered with a Modbus exception (e.g. 2: illegal data address)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
