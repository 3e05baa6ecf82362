"""Sparkplug B metric datatypes: the wire codes of the specification (3.0, section 6.4.16)."""

from __future__ import annotations

from enum import IntEnum


class DataType(IntEnum):
    """Metric datatype codes as carried in ``Metric.datatype``; do not renumber."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19


#: Types whose value travels in ``int_value`` (uint32 on the wire).
INT_VALUE_TYPES = frozenset(
    {DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16, DataType.UInt32}
)
#: Types whose value travels in ``long_value`` (uint64 on the wire).
LONG_VALUE_TYPES = frozenset({DataType.Int64, DataType.UInt64, DataType.DateTime})
#: Types a data message can carry as a number (``encode_data`` and the fast decoder).
NUMERIC_TYPES = INT_VALUE_TYPES | LONG_VALUE_TYPES | {DataType.Float, DataType.Double, DataType.Boolean}
#: Types whose value is a string and lands in ``DecodedPayload.texts``.
TEXT_TYPES = frozenset({DataType.String, DataType.Text, DataType.UUID})
