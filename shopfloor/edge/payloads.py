"""Sparkplug B payloads of the gateway: births with last values, data with one timestamp per sample.

Every sample keeps the time it was read (the metric timestamp, ms), so a sample forwarded
late, or twice, lands on the same (tag, timestamp) in the historian. Data with good or bad
samples goes through the codec's numba encoder (a bad sample travels as null: the
historian's bad samples are NaN); for the backlog, a second numba pass copies its output
adding ``is_historical`` to every metric (protobuf objects would cost ~7 us a metric, which
a large backlog feels). Uncertain samples (a ``Quality`` property of 64) go through protobuf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
import numpy.typing as npt

from shopfloor.connectors.mqtt.sparkplug import BDSEQ, REBIRTH, DataType, encode_data
from shopfloor.connectors.mqtt.sparkplug import sparkplug_b_pb2 as pb
from shopfloor.connectors.mqtt.sparkplug.codec import QUALITY_PROPERTY
from shopfloor.connectors.mqtt.sparkplug.datatypes import INT_VALUE_TYPES, LONG_VALUE_TYPES
from shopfloor.core.samples import Quality
from shopfloor.edge.catalog import Metric

_INT_BOUNDS = {
    DataType.Int8: (-(2**7), 2**7 - 1), DataType.Int16: (-(2**15), 2**15 - 1),
    DataType.Int32: (-(2**31), 2**31 - 1), DataType.Int64: (-(2**63), 2**63 - 1),
    DataType.UInt8: (0, 2**8 - 1), DataType.UInt16: (0, 2**16 - 1), DataType.UInt32: (0, 2**32 - 1),
    DataType.UInt64: (0, 2**64 - 1), DataType.DateTime: (-(2**63), 2**63 - 1),
}
_PROPERTY_INT32 = 3  # PropertyValue.type of an Int32


def _fill(m: pb.Payload.Metric, datatype: DataType, ts_ns: int, value: float, quality: int) -> None:
    """Timestamp, value (null when bad or NaN) and, for an uncertain sample, the Quality property."""
    if ts_ns > 0:
        m.timestamp = ts_ns // 1_000_000
    if quality == Quality.BAD or math.isnan(value):
        m.is_null = True
        return
    if quality == Quality.UNCERTAIN:
        m.properties.keys.append(QUALITY_PROPERTY)
        m.properties.values.add(type=_PROPERTY_INT32, int_value=int(Quality.UNCERTAIN))
    if datatype in INT_VALUE_TYPES or datatype in LONG_VALUE_TYPES:
        lo, hi = _INT_BOUNDS[datatype]
        number = hi if value >= hi else lo if value <= lo else round(value)
        if datatype in INT_VALUE_TYPES:
            m.int_value = number & 0xFFFFFFFF
        else:
            m.long_value = number & 0xFFFFFFFFFFFFFFFF
    elif datatype == DataType.Float:
        m.float_value = value
    elif datatype == DataType.Boolean:
        m.boolean_value = value != 0.0
    else:
        m.double_value = value


def encode_birth(
    timestamp_ms: int,
    seq: int,
    metrics: Sequence[Metric],
    ts_ns: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    *,
    bdseq: int | None = None,
) -> bytes:
    """NBIRTH (with ``bdseq``: bdSeq and Node Control/Rebirth first) or DBIRTH: names, aliases, last values.

    A metric never read (ts 0) is born null without a timestamp.
    """
    payload = pb.Payload(timestamp=timestamp_ms, seq=seq)
    if bdseq is not None:
        payload.metrics.add(name=BDSEQ, datatype=DataType.Int64, long_value=bdseq)
        payload.metrics.add(name=REBIRTH, datatype=DataType.Boolean, boolean_value=False)
    for i, metric in enumerate(metrics):
        m = payload.metrics.add(name=metric.name, alias=metric.id, datatype=int(metric.datatype))
        if ts_ns[i] <= 0:
            m.is_null = True
        else:
            _fill(m, metric.datatype, int(ts_ns[i]), float(values[i]), int(quality[i]))
    data: bytes = payload.SerializeToString()
    return data


def encode_samples(
    timestamp_ms: int,
    seq: int,
    aliases: npt.NDArray[np.uint64],
    datatypes: npt.NDArray[np.uint32],
    ts_ns: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    *,
    historical: bool,
) -> bytes:
    """NDATA/DDATA: one metric per sample, by alias, each with its read time."""
    if not (quality == Quality.UNCERTAIN).any():
        sent = np.where(quality == Quality.BAD, np.nan, values)
        fast = encode_data(timestamp_ms, seq, aliases, datatypes, sent, ts_ns // 1_000_000)
        if not historical:
            return fast
        src = np.frombuffer(fast, np.uint8)
        out = np.empty(len(src) + 2 * len(aliases), np.uint8)
        n = _flag_historical(src, out)
        if n >= 0:
            return out[:n].tobytes()
    payload = pb.Payload(timestamp=timestamp_ms, seq=seq)
    for alias, datatype, ts, value, q in zip(
        aliases.tolist(), datatypes.tolist(), ts_ns.tolist(), values.tolist(), quality.tolist(), strict=True
    ):
        m = payload.metrics.add(alias=alias, datatype=datatype)
        if historical:
            m.is_historical = True
        _fill(m, DataType(datatype), ts, value, q)
    data: bytes = payload.SerializeToString()
    return data


def warm_up() -> None:
    """Compile (or load from numba's cache) both encoders now: the first call costs about two seconds."""
    one = np.ones(1)
    for historical in (False, True):
        encode_samples(0, 0, np.ones(1, np.uint64), np.full(1, int(DataType.Double), np.uint32), np.ones(1, np.int64),
                       one, np.full(1, int(Quality.GOOD), np.uint8), historical=historical)


_METRIC_KEY = 0x12  # Payload.metrics: field 2, length-delimited
_HISTORICAL = (0x28, 0x01)  # Metric.is_historical: field 5, varint, true


@numba.njit(cache=True, nogil=True)
def _flag_historical(src: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8]) -> int:  # pragma: no cover - njit
    """Copy an encode_data payload, appending is_historical = true to every metric; -1 if it is not one.

    encode_data writes the payload timestamp and seq as varints and every metric with a
    one-byte length (at most 39 bytes), which stays one byte with the 2 bytes added.
    """
    i = 0
    o = 0
    n = src.shape[0]
    while i < n:
        key = src[i]
        if key == _METRIC_KEY:
            if i + 1 >= n:
                return -1
            length = int(src[i + 1])
            if length > 125 or i + 2 + length > n:
                return -1
            out[o] = key
            out[o + 1] = np.uint8(length + 2)
            out[o + 2:o + 2 + length] = src[i + 2:i + 2 + length]
            out[o + 2 + length] = _HISTORICAL[0]
            out[o + 3 + length] = _HISTORICAL[1]
            i += 2 + length
            o += 4 + length
        elif key == 0x08 or key == 0x18:  # timestamp, seq
            out[o] = key
            i += 1
            o += 1
            while i < n and src[i] & 0x80:
                out[o] = src[i]
                i += 1
                o += 1
            if i >= n:
                return -1
            out[o] = src[i]
            i += 1
            o += 1
        else:
            return -1
    return o
