"""Columnar sample batches: the one currency of the ingest path.

A batch is four parallel NumPy arrays, never a Python object per sample, so
decode, mapping, storage and fan-out all work a column at a time.
Timestamps are int64 nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Quality(IntEnum):
    """Coarse sample quality, with OPC UA's status-code severity bytes."""

    BAD = 0
    UNCERTAIN = 64
    GOOD = 192

    @classmethod
    def from_opcua_status(cls, code: int) -> Quality:
        """Map a 32-bit OPC UA StatusCode to its severity class."""
        severity = (code >> 30) & 0b11
        return {0: cls.GOOD, 1: cls.UNCERTAIN}.get(severity, cls.BAD)


QUALITY_NAMES = {int(q): q.name.lower() for q in Quality}

TagIds = npt.NDArray[np.int32]
Timestamps = npt.NDArray[np.int64]
Values = npt.NDArray[np.float64]
Qualities = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Samples of any number of tags, one row per (tag_id, ts)."""

    tag_id: TagIds
    ts: Timestamps
    value: Values
    quality: Qualities

    def __post_init__(self) -> None:
        n = len(self.tag_id)
        if not (len(self.ts) == len(self.value) == len(self.quality) == n):
            raise ValueError("SampleBatch columns differ in length")

    def __len__(self) -> int:
        return len(self.tag_id)

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls(
            np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint8)
        )

    @classmethod
    def of(
        cls,
        tag_id: npt.ArrayLike,
        ts: npt.ArrayLike,
        value: npt.ArrayLike,
        quality: npt.ArrayLike | int = Quality.GOOD,
    ) -> SampleBatch:
        """Build a batch from array-likes, coercing dtypes and broadcasting quality."""
        tags = np.ascontiguousarray(tag_id, dtype=np.int32)
        q = np.asarray(quality, dtype=np.uint8)
        if q.ndim == 0:
            q = np.full(len(tags), q, dtype=np.uint8)
        return cls(
            tags,
            np.ascontiguousarray(ts, dtype=np.int64),
            np.ascontiguousarray(value, dtype=np.float64),
            np.ascontiguousarray(q, dtype=np.uint8),
        )

    @classmethod
    def concat(cls, batches: list[SampleBatch]) -> SampleBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.tag_id for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> SampleBatch:
        """Rows selected by an index array or boolean mask."""
        return SampleBatch(self.tag_id[index], self.ts[index], self.value[index], self.quality[index])

    def last_per_tag(self) -> SampleBatch:
        """The newest sample of each tag in the batch (ties: the later row wins)."""
        if len(self) == 0:
            return self
        order = np.lexsort((np.arange(len(self)), self.ts, self.tag_id))
        sorted_tags = self.tag_id[order]
        is_last = np.empty(len(order), dtype=np.bool_)
        is_last[:-1] = sorted_tags[1:] != sorted_tags[:-1]
        is_last[-1] = True
        return self.take(order[is_last])


def now_ns() -> int:
    """Wall-clock time as int64 nanoseconds since the epoch."""
    import time

    return time.time_ns()
