"""The single writer: commit, then acknowledge, then publish; retry until the store takes it; block when full."""

from __future__ import annotations

import threading
import time

import numpy as np

from shopfloor.config import parse_plant_config
from shopfloor.core.bus import SampleBus
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian.duckdb_store import DuckDBHistorian
from shopfloor.historian.writer import HistorianWriter, LatencyWindow

PLANT = """\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: e
              source: {protocol: json, device: e}
              tags:
                - {name: t, range: [0, 100]}
                - {name: u}
"""


class FlakyHistorian(DuckDBHistorian):
    """Fails the first `failures` writes, like a full disk that gets space back."""

    def __init__(self, failures: int) -> None:
        super().__init__(":memory:")
        self.failures = failures

    def write(self, batch: SampleBatch) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        super().write(batch)


def make(historian: DuckDBHistorian, **kw: object) -> tuple[HistorianWriter, SampleBus, dict[str, int]]:
    model = AssetModel.from_config(parse_plant_config(PLANT))
    ids = historian.ensure_tags([t.path for t in model.tags])
    bus = SampleBus()
    writer = HistorianWriter(historian, bus, TagIndex(model, ids), **kw)  # type: ignore[arg-type]
    return writer, bus, ids


def test_acks_after_commit_and_live_after_commit() -> None:
    historian = DuckDBHistorian(":memory:")
    writer, bus, ids = make(historian)
    sub = bus.subscribe()
    seen_at_ack: list[int] = []
    writer.start()
    t = ids["s/a/l/e/t"]
    writer.submit(SampleBatch.of([t, t], [1, 2], [5.0, 150.0]), on_commit=lambda: seen_at_ack.append(historian.count()))
    assert writer.flush(10)
    assert seen_at_ack == [2]  # the callback ran after the rows were stored
    stored = historian.raw(t, 0, 10)
    assert stored.value.tolist() == [5.0, 150.0]
    assert stored.quality.tolist() == [Quality.GOOD, Quality.UNCERTAIN]  # 150 is above the range
    live = sub.drain()
    assert live.quality.tolist() == [Quality.GOOD, Quality.UNCERTAIN]
    writer.stop()


def test_a_failing_store_is_retried_and_nothing_is_acknowledged_before_it_takes_the_batch() -> None:
    historian = FlakyHistorian(failures=2)
    writer, _, ids = make(historian)
    acked = threading.Event()
    writer.start()
    writer.submit(SampleBatch.of([ids["s/a/l/e/u"]], [1], [1.0]), on_commit=acked.set)
    assert acked.wait(10)
    assert writer.write_errors == 2 and writer.last_error is None
    assert historian.count() == 1
    writer.stop()


def test_submit_blocks_when_the_queue_is_full() -> None:
    historian = DuckDBHistorian(":memory:")
    writer, _, ids = make(historian, max_pending_rows=10)
    u = ids["s/a/l/e/u"]
    assert writer.submit(SampleBatch.of(np.full(10, u), np.arange(10), np.zeros(10)))
    started = time.monotonic()
    assert not writer.submit(SampleBatch.of([u], [99], [0.0]), timeout=0.3)  # writer not started: stays full
    assert time.monotonic() - started >= 0.3
    writer.start()
    assert writer.submit(SampleBatch.of([u], [99], [0.0]), timeout=10)
    assert writer.flush(10) and historian.count() == 11
    writer.stop()


def test_latency_window_percentiles_and_wraparound() -> None:
    window = LatencyWindow(size=100)
    window.add(np.arange(1, 151, dtype=np.int64) * 1_000_000)
    values = window.values()
    assert len(values) == 100 and values.min() == 51_000_000
    p50, p99 = window.percentiles_ms(50, 99)
    assert p50 is not None and 99 < p50 < 102 and p99 is not None and p99 > 148


def test_intake_gets_each_batch_range_checked_before_its_commit() -> None:
    """The alarm engine's feed: it must not wait for the commit, and sees the quality that will be stored."""
    class Closed(DuckDBHistorian):
        """A store that takes nothing until it is opened."""

        open = False

        def write(self, batch: SampleBatch) -> None:
            if not self.open:
                raise OSError("store not ready")
            super().write(batch)

    historian = Closed(":memory:")
    intake = SampleBus()
    writer, bus, ids = make(historian, intake=intake)
    early, late = intake.subscribe(), bus.subscribe()
    writer.start()
    try:
        tag = ids["s/a/l/e/t"]
        assert writer.submit(SampleBatch.of([tag, tag], [1, 2], [50.0, 500.0]))
        got = early.drain()
        assert got.value.tolist() == [50.0, 500.0]
        assert got.quality.tolist() == [Quality.GOOD, Quality.UNCERTAIN]  # 500 is outside the range [0, 100]
        assert len(late.drain()) == 0 and writer.rows_committed == 0  # not committed, not live yet
        historian.open = True  # the store takes it at the next retry
        assert writer.flush(30)
        assert late.drain().quality.tolist() == [Quality.GOOD, Quality.UNCERTAIN]
    finally:
        writer.stop()
