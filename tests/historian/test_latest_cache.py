"""The write path's batch index and the in-memory latest-value snapshot."""

from __future__ import annotations

import numpy as np

from shopfloor.core.samples import SampleBatch
from shopfloor.historian.latest_cache import INT64_MIN, LatestCache, index_batch


def test_index_batch_finds_newest_oldest_and_duplicates() -> None:
    batch = SampleBatch.of([3, 1, 3, 1, 3], [5, 7, 2, 9, 4], [0.5, 0.7, 0.2, 0.9, 0.4])
    idx = index_batch(batch)
    np.testing.assert_array_equal(idx.newest.tag_id, [1, 3])
    np.testing.assert_array_equal(idx.newest.ts, [9, 5])
    np.testing.assert_array_equal(idx.newest.value, [0.9, 0.5])
    np.testing.assert_array_equal(idx.oldest_ts, [7, 2])
    np.testing.assert_array_equal(batch.tag_id[idx.order], [1, 1, 3, 3, 3])
    np.testing.assert_array_equal(batch.ts[idx.order], [7, 9, 2, 4, 5])
    assert not idx.has_duplicates


def test_index_batch_duplicates_keep_write_order() -> None:
    batch = SampleBatch.of([1, 2, 1], [5, 5, 5], [1.0, 2.0, 3.0])
    idx = index_batch(batch)
    assert idx.has_duplicates
    assert idx.newest.value.tolist() == [3.0, 2.0]  # the later row of the duplicate key
    assert idx.order.tolist() == [0, 2, 1]
    assert not index_batch(SampleBatch.of([1, 2], [5, 5], [1.0, 2.0])).has_duplicates


def test_cache_merges_new_newer_equal_and_late_samples() -> None:
    cache = LatestCache()
    assert len(cache.snapshot) == 0
    assert cache.high_water(np.array([1], np.int32)).tolist() == [INT64_MIN]
    cache.install(cache.merged(SampleBatch.of([2, 5], [10, 10], [2.0, 5.0])))
    before = cache.snapshot
    merged = cache.merged(SampleBatch.of([1, 2, 5, 7], [3, 9, 10, 1], [1.0, -2.0, 50.0, 7.0]))
    assert cache.snapshot is before, "merged() must not publish"
    cache.install(merged)
    snap = cache.snapshot
    np.testing.assert_array_equal(snap.tag_id, [1, 2, 5, 7])
    np.testing.assert_array_equal(snap.ts, [3, 10, 10, 1])
    np.testing.assert_array_equal(snap.value, [1.0, 2.0, 50.0, 7.0])  # 2: late, kept; 5: same ts, replaced
    np.testing.assert_array_equal(before.value, [2.0, 5.0])  # old snapshots stay valid for readers
    np.testing.assert_array_equal(cache.high_water(np.array([7, 4, 2], np.int32)), [1, INT64_MIN, 10])
    assert not snap.value.flags.writeable


def test_cache_get_is_sorted_unique_and_skips_unknown_tags() -> None:
    cache = LatestCache(SampleBatch.of([9, 3, 6], [1, 2, 3], [9.0, 3.0, 6.0]))
    np.testing.assert_array_equal(cache.get(None).tag_id, [3, 6, 9])
    np.testing.assert_array_equal(cache.get([9, 4, 3, 9, 2**40]).value, [3.0, 9.0])
    assert len(cache.get([])) == 0
    assert len(LatestCache().get([1, 2])) == 0


def test_an_unchanged_snapshot_is_not_copied() -> None:
    cache = LatestCache(SampleBatch.of([1], [10], [1.0]))
    assert cache.merged(SampleBatch.of([1], [5], [0.0])) is cache.snapshot
