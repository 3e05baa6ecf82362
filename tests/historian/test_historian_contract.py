"""The Historian contract, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian.base import Buckets, Historian

S = 1_000_000_000
T0 = 1_699_999_980 * S  # 2023-11-14T22:13:00Z, a whole minute
MINUTE = 60 * S

HistorianFactory = Callable[[], Historian]


def time_major(n_tags: int, seconds: int, start_s: int = 0, seed: int = 0) -> SampleBatch:
    """n_tags tags (ids 1..n_tags) at 1 Hz, all tags interleaved per second, as a fleet delivers them."""
    k = np.arange(n_tags * seconds)
    rng = np.random.default_rng(seed)
    return SampleBatch.of(
        1 + k % n_tags, T0 + (start_s + k // n_tags) * S, rng.normal(size=len(k)).round(3), Quality.GOOD
    )


def write_in_chunks(h: Historian, batch: SampleBatch, chunk: int) -> None:
    for i in range(0, len(batch), chunk):
        h.write(batch.take(np.arange(i, min(i + chunk, len(batch)))))


def last_written(batches: list[SampleBatch]) -> dict[tuple[int, int], tuple[float, int]]:
    """(tag_id, ts) -> (value, quality) of the last write: what an idempotent store must hold."""
    rows: dict[tuple[int, int], tuple[float, int]] = {}
    for b in batches:
        for t, ts, v, q in zip(b.tag_id.tolist(), b.ts.tolist(), b.value.tolist(), b.quality.tolist(), strict=True):
            rows[(t, ts)] = (v, q)
    return rows


def expected_raw(
    rows: dict[tuple[int, int], tuple[float, int]], tag: int, start: int, end: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    keys = sorted(ts for (t, ts) in rows if t == tag and start <= ts < end)
    return (
        np.array(keys, np.int64),
        np.array([rows[(tag, ts)][0] for ts in keys], np.float64),
        np.array([rows[(tag, ts)][1] for ts in keys], np.uint8),
    )


def reference_buckets(
    ts: npt.NDArray[np.int64], value: npt.NDArray[np.float64], quality: npt.NDArray[np.uint8], bucket: int
) -> Buckets:
    """Buckets the slow, obvious way, from one tag's deduplicated samples sorted by ts."""
    keep = (quality != Quality.BAD) & ~np.isnan(value)
    ts, value = ts[keep], value[keep]
    starts = ts - ts % bucket
    cols: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "count", "first", "last")}
    uniq = np.unique(starts)
    for s in uniq:
        v = value[starts == s]
        cols["min"].append(v.min())
        cols["max"].append(v.max())
        cols["mean"].append(v.mean())
        cols["count"].append(len(v))
        cols["first"].append(v[0])
        cols["last"].append(v[-1])
    return Buckets(
        uniq.astype(np.int64),
        np.array(cols["min"]),
        np.array(cols["max"]),
        np.array(cols["mean"]),
        np.array(cols["count"], np.int64),
        np.array(cols["first"]),
        np.array(cols["last"]),
    )


def assert_buckets_equal(got: Buckets, want: Buckets) -> None:
    np.testing.assert_array_equal(got.start, want.start)
    np.testing.assert_array_equal(got.count, want.count)
    for name in ("min", "max", "first", "last"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)
    assert [c.dtype.name for c in (got.start, got.count)] == ["int64"] * 2
    assert [c.dtype.name for c in (got.min, got.max, got.mean, got.first, got.last)] == ["float64"] * 5


# -- tags ------------------------------------------------------------------------------------------


def test_ensure_tags_gives_stable_distinct_ids(historian: Historian) -> None:
    ids = historian.ensure_tags(["line1/press/temp", "line1/press/rpm", "line1/press/temp"])
    assert set(ids) == {"line1/press/temp", "line1/press/rpm"}
    assert ids["line1/press/temp"] != ids["line1/press/rpm"]
    again = historian.ensure_tags(["line1/press/rpm", "line2/oven/temp"])
    assert again["line1/press/rpm"] == ids["line1/press/rpm"]
    assert again["line2/oven/temp"] not in ids.values()
    assert historian.tag_ids() == {**ids, **again}
    assert historian.ensure_tags([]) == {}


def test_tag_ids_survive_restart(make_historian: HistorianFactory) -> None:
    h = make_historian()
    ids = h.ensure_tags([f"plant/tag{i}" for i in range(50)])
    h.close()
    h2 = make_historian()
    assert h2.tag_ids() == ids
    assert h2.ensure_tags(["plant/tag7", "plant/new"])["plant/tag7"] == ids["plant/tag7"]
    assert h2.tag_ids()["plant/new"] not in ids.values()


# -- raw -------------------------------------------------------------------------------------------


def test_raw_is_oldest_first_half_open_and_per_tag(historian: Historian) -> None:
    batch = time_major(3, 100)
    write_in_chunks(historian, batch, 45)
    rows = last_written([batch])
    got = historian.raw(2, T0 + 10 * S, T0 + 20 * S)
    want_ts, want_v, want_q = expected_raw(rows, 2, T0 + 10 * S, T0 + 20 * S)
    np.testing.assert_array_equal(got.ts, want_ts)
    np.testing.assert_array_equal(got.value, want_v)
    np.testing.assert_array_equal(got.quality, want_q)
    assert (got.tag_id == 2).all()
    assert got.ts[0] == T0 + 10 * S and got.ts[-1] == T0 + 19 * S
    assert [c.dtype.name for c in (got.tag_id, got.ts, got.value, got.quality)] == [
        "int32",
        "int64",
        "float64",
        "uint8",
    ]
    assert len(historian.raw(2, T0 + 10 * S, T0 + 10 * S)) == 0
    assert len(historian.raw(99, T0, T0 + 100 * S)) == 0
    assert len(historian.raw(2**40, T0, T0 + 100 * S)) == 0
    assert len(historian.buckets(2**40, T0, T0 + 100 * S, MINUTE)) == 0


def test_raw_limit_keeps_the_oldest(historian: Historian) -> None:
    write_in_chunks(historian, time_major(2, 50), 30)
    got = historian.raw(1, T0, T0 + 50 * S, limit=5)
    np.testing.assert_array_equal(got.ts, T0 + np.arange(5) * S)
    assert len(historian.raw(1, T0, T0 + 50 * S, limit=0)) == 0
    assert len(historian.raw(1, T0, T0 + 50 * S, limit=1000)) == 50
    with pytest.raises(ValueError):
        historian.raw(1, T0, T0 + 50 * S, limit=-1)


def test_raw_sorts_out_of_order_writes(historian: Historian) -> None:
    rng = np.random.default_rng(1)
    ts = T0 + rng.permutation(200) * S
    batch = SampleBatch.of(np.full(200, 5), ts, ts / S)
    write_in_chunks(historian, batch, 33)
    got = historian.raw(5, T0, T0 + 200 * S)
    np.testing.assert_array_equal(got.ts, np.sort(ts))
    np.testing.assert_array_equal(got.value, np.sort(ts) / S)


def test_nan_and_bad_quality_are_stored(historian: Historian) -> None:
    batch = SampleBatch.of([1, 1, 1], [T0, T0 + S, T0 + 2 * S], [1.0, np.nan, 3.0], [Quality.GOOD, Quality.BAD, 64])
    historian.write(batch)
    got = historian.raw(1, T0, T0 + 10 * S)
    np.testing.assert_array_equal(got.value, [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(got.quality, [192, 0, 64])


def test_empty_batch_is_a_no_op(historian: Historian) -> None:
    historian.write(SampleBatch.empty())
    assert historian.count() == 0
    assert len(historian.latest()) == 0


# -- buckets ---------------------------------------------------------------------------------------


def test_buckets_match_a_reference(historian: Historian) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    ts = T0 - 7 * S + np.sort(rng.choice(30 * 60, n // 2, replace=False)).repeat(2) * S
    tags = np.tile([1, 2], n // 2)
    value = rng.normal(size=n)
    quality = rng.choice([Quality.GOOD, Quality.UNCERTAIN, Quality.BAD], size=n, p=[0.7, 0.2, 0.1])
    value[rng.random(n) < 0.05] = np.nan
    value[quality == Quality.BAD] = np.nan
    value[rng.random(n) < 0.02] = 1e9  # a bad-quality sample with a real value must not count either
    quality[value == 1e9] = Quality.BAD
    batch = SampleBatch.of(tags, ts, value, quality)
    # arrive shuffled, so first/last must come from the timestamps, not from arrival order
    write_in_chunks(historian, batch.take(rng.permutation(n)), 500)
    for bucket in (MINUTE, 7 * S, 3600 * S):
        start, end = T0 - 3 * MINUTE, T0 + 15 * MINUTE + 13 * S
        got = historian.buckets(1, start, end, bucket)
        sel = (tags == 1) & (ts >= start) & (ts < end)
        want = reference_buckets(ts[sel], value[sel], quality[sel], bucket)
        assert_buckets_equal(got, want)
    assert not np.isin(1e9, historian.buckets(1, T0 - 3600 * S, T0 + 3600 * S, MINUTE).max)


def test_buckets_align_to_the_epoch_and_skip_empty_ones(historian: Historian) -> None:
    ts = np.array([T0 + 5 * S, T0 + 65 * S, T0 + 66 * S, T0 + 305 * S])
    historian.write(SampleBatch.of([1, 1, 1, 1], ts, [1.0, 2.0, 4.0, 8.0]))
    got = historian.buckets(1, T0 + 3 * S, T0 + 400 * S, MINUTE)
    np.testing.assert_array_equal(got.start, [T0, T0 + MINUTE, T0 + 5 * MINUTE])
    np.testing.assert_array_equal(got.count, [1, 2, 1])
    np.testing.assert_array_equal(got.first, [1.0, 2.0, 8.0])
    np.testing.assert_array_equal(got.last, [1.0, 4.0, 8.0])
    np.testing.assert_array_equal(got.mean, [1.0, 3.0, 8.0])
    assert len(historian.buckets(1, T0 + 400 * S, T0 + 500 * S, MINUTE)) == 0
    assert len(historian.buckets(2, T0, T0 + 500 * S, MINUTE)) == 0
    with pytest.raises(ValueError):
        historian.buckets(1, T0, T0 + S, 0)


def test_buckets_of_only_bad_samples_are_absent(historian: Historian) -> None:
    historian.write(SampleBatch.of([1, 1], [T0, T0 + S], [np.nan, 5.0], Quality.BAD))
    assert len(historian.buckets(1, T0, T0 + MINUTE, MINUTE)) == 0


# -- latest ----------------------------------------------------------------------------------------


def test_latest_is_the_newest_sample_per_tag(historian: Historian) -> None:
    write_in_chunks(historian, time_major(4, 30), 17)
    got = historian.latest()
    np.testing.assert_array_equal(got.tag_id, [1, 2, 3, 4])
    np.testing.assert_array_equal(got.ts, np.full(4, T0 + 29 * S))
    some = historian.latest([3, 1, 42])
    np.testing.assert_array_equal(some.tag_id, [1, 3])
    np.testing.assert_array_equal(some.value, got.value[[0, 2]])
    assert len(historian.latest([])) == 0


def test_late_data_does_not_overwrite_latest_but_a_same_time_correction_does(historian: Historian) -> None:
    historian.write(SampleBatch.of([1, 2], [T0 + 10 * S, T0 + 10 * S], [1.0, 2.0]))
    historian.write(SampleBatch.of([1, 2], [T0 + 5 * S, T0 + 10 * S], [-1.0, 20.0], Quality.UNCERTAIN))
    got = historian.latest()
    np.testing.assert_array_equal(got.ts, [T0 + 10 * S, T0 + 10 * S])
    np.testing.assert_array_equal(got.value, [1.0, 20.0])
    np.testing.assert_array_equal(got.quality, [Quality.GOOD, Quality.UNCERTAIN])
    # the late sample is still stored as history
    np.testing.assert_array_equal(historian.raw(1, T0, T0 + 20 * S).value, [-1.0, 1.0])


def test_latest_within_a_batch_takes_the_newest_timestamp_not_the_last_row(historian: Historian) -> None:
    historian.write(SampleBatch.of([1, 1, 1], [T0 + 3 * S, T0 + 9 * S, T0 + 4 * S], [3.0, 9.0, 4.0]))
    np.testing.assert_array_equal(historian.latest().value, [9.0])


# -- idempotence -----------------------------------------------------------------------------------


def test_writing_the_same_batch_twice_stores_it_once(historian: Historian) -> None:
    batch = time_major(3, 40)
    write_in_chunks(historian, batch, 25)
    write_in_chunks(historian, batch, 25)
    assert historian.count() == len(batch)
    got = historian.raw(2, T0, T0 + 40 * S)
    np.testing.assert_array_equal(got.ts, T0 + np.arange(40) * S)
    assert historian.buckets(2, T0, T0 + 40 * S, MINUTE).count.tolist() == [40]


def test_a_later_correction_of_an_existing_sample_wins(historian: Historian) -> None:
    first = time_major(2, 30)
    write_in_chunks(historian, first, 20)
    fix = SampleBatch.of([1, 1, 2], [T0 + 3 * S, T0 + 29 * S, T0 + 10 * S], [100.0, 200.0, np.nan], Quality.BAD)
    historian.write(fix)
    rows = last_written([first, fix])
    for tag in (1, 2):
        want_ts, want_v, want_q = expected_raw(rows, tag, T0, T0 + 30 * S)
        got = historian.raw(tag, T0, T0 + 30 * S)
        np.testing.assert_array_equal(got.ts, want_ts)
        np.testing.assert_array_equal(got.value, want_v)
        np.testing.assert_array_equal(got.quality, want_q)
        assert_buckets_equal(
            historian.buckets(tag, T0, T0 + 30 * S, 10 * S), reference_buckets(want_ts, want_v, want_q, 10 * S)
        )
    assert historian.count() == len(first)
    assert historian.latest([1]).value.tolist() == [200.0]


def test_duplicates_inside_one_batch_keep_the_later_row(historian: Historian) -> None:
    historian.write(SampleBatch.of([1, 1, 1, 2], [T0, T0 + S, T0, T0], [1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(historian.raw(1, T0, T0 + 10 * S).value, [3.0, 2.0])
    assert historian.count() == 3


# -- retention, count ------------------------------------------------------------------------------


def test_delete_before_drops_old_samples_and_counts_them(historian: Historian) -> None:
    batch = time_major(3, 100)
    write_in_chunks(historian, batch, 40)
    historian.write(batch.take(np.arange(0, 30)))  # a resend must not be counted twice
    assert historian.count() == 300
    assert historian.delete_before(T0 + 60 * S) == 180
    assert historian.count() == 120
    assert historian.raw(1, T0, T0 + 100 * S).ts[0] == T0 + 60 * S
    assert historian.delete_before(T0 + 60 * S) == 0
    # latest is the current value and stays, however old
    assert len(historian.latest()) == 3
    assert historian.delete_before(T0 + 1000 * S) == 120
    assert historian.count() == 0
    assert len(historian.buckets(1, T0, T0 + 1000 * S, MINUTE)) == 0


# -- durability ------------------------------------------------------------------------------------


def test_everything_written_survives_a_restart(make_historian: HistorianFactory) -> None:
    h = make_historian()
    ids = h.ensure_tags(["a", "b", "c"])
    batch = time_major(3, 50)
    write_in_chunks(h, batch, 16)
    h.write(batch.take(np.arange(10)))  # a resend, still one copy after the restart
    before_raw = h.raw(2, T0, T0 + 50 * S)
    before_latest = h.latest()
    h.close()
    h.close()  # closing twice is harmless

    h2 = make_historian()
    assert h2.tag_ids() == ids
    assert h2.count() == len(batch)
    after_raw = h2.raw(2, T0, T0 + 50 * S)
    np.testing.assert_array_equal(after_raw.ts, before_raw.ts)
    np.testing.assert_array_equal(after_raw.value, before_raw.value)
    after_latest = h2.latest()
    for a, b in zip(
        (after_latest.tag_id, after_latest.ts, after_latest.value, after_latest.quality),
        (before_latest.tag_id, before_latest.ts, before_latest.value, before_latest.quality),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # and it keeps working: new data, late data and restarts again
    h2.write(SampleBatch.of([1, 1], [T0 + 60 * S, T0 + 2 * S], [6.0, 0.5]))
    h2.close()
    h3 = make_historian()
    assert h3.count() == len(batch) + 1
    assert h3.latest([1]).value.tolist() == [6.0]
    assert h3.raw(1, T0 + 2 * S, T0 + 3 * S).value.tolist() == [0.5]


def test_a_closed_historian_refuses_work(historian: Historian) -> None:
    historian.close()
    with pytest.raises(RuntimeError):
        historian.write(time_major(1, 1))
    with pytest.raises(RuntimeError):
        historian.raw(1, T0, T0 + S)


# -- threads ---------------------------------------------------------------------------------------


def test_readers_run_concurrently_with_the_writer(historian: Historian) -> None:
    """Readers never fail and never see a sample twice or a sample vanish while one thread writes."""
    n_tags, seconds, chunk_s = 5, 240, 10
    data = time_major(n_tags, seconds)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for s in range(0, seconds, chunk_s):
                part = data.take(np.arange(s * n_tags, (s + chunk_s) * n_tags))
                historian.write(part)
                if s % 60 == 0:  # a gateway's resend of what it just sent
                    historian.write(part)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    def reader(tag: int) -> None:
        try:
            seen = 0
            while not done.is_set():
                got = historian.raw(tag, T0, T0 + seconds * S)
                assert (np.diff(got.ts) > 0).all(), "a sample shows up twice or out of order"
                assert len(got) >= seen, "samples vanished"
                seen = len(got)
                b = historian.buckets(tag, T0, T0 + seconds * S, MINUTE)
                assert b.count.sum() <= seconds
                latest = historian.latest([tag])
                assert len(latest) <= 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(t,)) for t in (1, 3, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert historian.count() == len(data)
    assert len(historian.raw(3, T0, T0 + seconds * S)) == seconds
