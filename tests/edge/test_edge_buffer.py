"""The disk buffer: order, bounds, what happens when full, and what survives a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.edge.buffer import SAMPLE_BYTES, DiskBuffer, pack, unpack


def batch(start: int, n: int, tag: int = 1) -> SampleBatch:
    """n samples of one tag whose values (and ns timestamps) count up from start."""
    values = np.arange(start, start + n, dtype=np.float64)
    return SampleBatch.of(np.full(n, tag), values.astype(np.int64) * 1000, values, Quality.GOOD)


def drain(buf: DiskBuffer) -> list[float]:
    """Everything in the buffer, oldest first, read the way the uplink reads it (cursor by cursor)."""
    out: list[float] = []
    cursor = 0
    while rows := buf.read(cursor, max_samples=7):
        out.extend(v for _, b in rows for v in b.value.tolist())
        cursor = rows[-1][0]
    return out


def test_pack_round_trip_keeps_every_column() -> None:
    b = SampleBatch.of([3, 4, 5], [10, -20, 2**62], [1.5, np.nan, -0.0], [192, 0, 64])
    back = unpack(3, pack(b))
    assert back.tag_id.tolist() == [3, 4, 5] and back.ts.tolist() == [10, -20, 2**62]
    assert back.value[0] == 1.5 and np.isnan(back.value[1]) and back.quality.tolist() == [192, 0, 64]
    with pytest.raises(ValueError, match="expected"):
        unpack(4, pack(b))


def test_rows_come_back_in_order_and_go_only_when_deleted(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path / "b.sqlite", 10**6)
    for i in range(10):
        assert buf.append(batch(i * 5, 5)) == (True, 0)
    assert drain(buf) == [float(v) for v in range(50)]
    first = buf.read(0, max_samples=12)
    assert [len(b) for _, b in first] == [5, 5]  # whole rows, within the sample limit
    buf.delete([row_id for row_id, _ in first])
    buf.delete([row_id for row_id, _ in first])  # a second acknowledgement of the same rows is harmless
    assert drain(buf)[:1] == [10.0]
    assert buf.stats().samples == 40 and buf.stats().bytes == 40 * SAMPLE_BYTES
    assert buf.read(0, max_samples=1)[0][1].value.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]  # at least one row


def test_ids_never_go_back_even_when_the_buffer_empties(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path / "b.sqlite", 10**6)
    buf.append(batch(0, 3))
    last = buf.last_id
    buf.delete([last])
    buf.close()
    buf = DiskBuffer(tmp_path / "b.sqlite", 10**6)
    buf.append(batch(3, 3))
    assert buf.last_id > last  # a cursor at `last` still sees the new row
    assert [r for r, _ in buf.read(last, 100)] == [buf.last_id]


def test_drop_oldest_makes_room_and_counts(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path / "b.sqlite", 20 * SAMPLE_BYTES, "drop_oldest")
    for i in range(4):
        assert buf.append(batch(i * 5, 5)) == (True, 0)
    assert buf.append(batch(20, 5)) == (True, 5)  # the oldest row goes
    assert buf.append(batch(25, 7)) == (True, 10)  # two rows go to fit 7 more
    assert drain(buf) == [float(v) for v in range(15, 32)]
    stats = buf.stats()
    assert stats.samples == 17 and stats.dropped_total == 15 and stats.dropped_since_open == 15
    assert buf.append(batch(100, 21)) == (False, 21)  # larger than the whole bound: refused, counted
    assert buf.stats().dropped_total == 36 and drain(buf)[-1] == 31.0


def test_drop_newest_refuses_until_there_is_room(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path / "b.sqlite", 10 * SAMPLE_BYTES, "drop_newest")
    assert buf.append(batch(0, 6)) == (True, 0)
    assert buf.append(batch(6, 6)) == (False, 6)
    assert buf.append(batch(12, 4)) == (True, 0)  # fits exactly
    assert drain(buf) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 12.0, 13.0, 14.0, 15.0]
    buf.delete([r for r, _ in buf.read(0, 6)])
    assert buf.append(batch(16, 6)) == (True, 0)
    assert buf.stats().dropped_total == 6


def test_backlog_and_dropped_count_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    buf = DiskBuffer(path, 10 * SAMPLE_BYTES, "drop_oldest")
    for i in range(3):
        buf.append(batch(i * 4, 4))
    buf.meta_set("bdseq", 7)
    buf.close()
    again = DiskBuffer(path, 10 * SAMPLE_BYTES, "drop_oldest")
    stats = again.stats()
    assert (stats.rows, stats.samples, stats.dropped_total, stats.dropped_since_open) == (2, 8, 4, 0)
    assert drain(again) == [float(v) for v in range(4, 12)]
    assert again.meta_get("bdseq") == 7 and again.meta_get("missing", -1) == -1


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        DiskBuffer(tmp_path / "b.sqlite", 3)
    with pytest.raises(ValueError, match="when_full"):
        DiskBuffer(tmp_path / "b.sqlite", 1000, "drop_random")  # type: ignore[arg-type]
