"""Pure helpers of the OPC UA connector: value coercion for writes, timestamps, status names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from asyncua import ua

from shopfloor.connectors.opcua import OpcUaError
from shopfloor.connectors.opcua._client import check_status, datetime_to_ns, status_name
from shopfloor.connectors.opcua.connector import coerce


def test_coerce_keeps_the_node_type() -> None:
    assert coerce(1, ua.VariantType.Boolean, "w") == ua.Variant(True, ua.VariantType.Boolean)
    assert coerce(True, ua.VariantType.Double, "w") == ua.Variant(1.0, ua.VariantType.Double)
    assert coerce(3.0, ua.VariantType.Int16, "w") == ua.Variant(3, ua.VariantType.Int16)
    assert coerce(2**64 - 1, ua.VariantType.UInt64, "w").Value == 2**64 - 1
    with pytest.raises(OpcUaError, match="out of range"):
        coerce(-1, ua.VariantType.UInt16, "w")
    with pytest.raises(OpcUaError, match="not an integer"):
        coerce(0.5, ua.VariantType.Byte, "w")
    with pytest.raises(OpcUaError, match="not a number"):
        coerce("1", ua.VariantType.Double, "w")
    with pytest.raises(OpcUaError, match="String"):
        coerce(1, ua.VariantType.String, "w")


def test_datetime_to_ns_is_exact() -> None:
    naive = datetime(2024, 5, 1, 12, 0, 0, 123456)
    assert datetime_to_ns(naive) == 1_714_564_800_123_456_000
    assert datetime_to_ns(naive.replace(tzinfo=UTC)) == 1_714_564_800_123_456_000
    plus2 = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert datetime_to_ns(plus2) == 1_714_564_800_123_456_000


def test_status_names_and_checks() -> None:
    assert status_name(0x80340000) == "BadNodeIdUnknown"
    assert status_name(0x80340000 | 0x0400) == "BadNodeIdUnknown"  # info bits do not hide the name
    assert status_name(0) == "Good"
    check_status(ua.StatusCode(), "ok")
    with pytest.raises(OpcUaError) as err:
        check_status(0x80740000, "write x")
    assert err.value.status == "BadTypeMismatch" and err.value.code == 0x80740000
    assert "write x: BadTypeMismatch" in str(err.value)
