from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from shopfloor.core.bus import SampleBus
from shopfloor.core.deadletters import DeadLetterStore
from shopfloor.core.samples import SampleBatch


def test_dead_letters_are_kept_counted_and_survive_restart(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    store.add("mqtt", "a/b", "decode error: truncated", b"\x00\x01")
    store.add("mqtt", "c", "unknown topic", b"x")
    assert [d.topic for d in store.list()] == ["c", "a/b"]
    assert store.counts["mqtt"] == 2
    store.close()
    again = DeadLetterStore(tmp_path / "dl.sqlite")
    (first,) = again.list(limit=1, offset=1)
    assert (first.reason, first.payload) == ("decode error: truncated", b"\x00\x01")
    assert again.total() == 2
    again.close()


def test_dead_letters_are_bounded(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", max_rows=100)
    for i in range(2500):
        store.add("mqtt", "t", f"r{i}", b"")
    assert store.total() <= 1100
    assert store.list(limit=1)[0].reason == "r2499"
    assert store.counts["mqtt"] == 2500
    store.close()


def test_bus_filters_by_tag_and_drops_oldest_when_full() -> None:
    bus = SampleBus()
    sub = bus.subscribe({2}, maxlen=2)
    for i in range(4):
        bus.publish(SampleBatch.of([1, 2], [i, i], [0.0, float(i)]))
    got = sub.drain()
    assert got.tag_id.tolist() == [2, 2] and got.value.tolist() == [2.0, 3.0]
    assert sub.dropped == 2
    sub.close()
    assert bus.subscribers == 0


async def test_bus_wakes_an_asyncio_consumer_from_another_thread() -> None:
    bus = SampleBus()
    sub = bus.subscribe(None, loop=asyncio.get_running_loop())
    loop = asyncio.get_running_loop()
    loop.run_in_executor(None, bus.publish, SampleBatch.of([7], [1], [np.pi]))
    got = await sub.next(timeout=5)
    assert got.tag_id.tolist() == [7]
    assert (await sub.next(timeout=0.05)).tag_id.tolist() == []
