"""Backend-independent helpers of the write path: one sort per batch, and a latest-value snapshot.

Every write needs the newest sample of each tag (for ``latest``) and whether the batch can
collide with samples already stored (for idempotence on (tag_id, ts)). Both fall out of a
single ``lexsort`` by (tag_id, ts), which also orders the batch by tag so that a store can
append it clustered. ``LatestCache`` keeps the newest sample of every tag in memory as sorted
NumPy arrays, replaced copy-on-write, so ``latest()`` for 10,000 tags is a few array
operations (microseconds) instead of a query, and readers never see a half-updated state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopfloor.core.samples import SampleBatch, Timestamps

INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class BatchIndex:
    """A batch's sort by (tag_id, ts) and what the write path derives from it."""

    order: npt.NDArray[np.intp]
    """Row positions sorted by (tag_id, ts); stable, so of two equal keys the later-written stays later."""
    newest: SampleBatch
    """Newest sample per tag (ties: the later row), sorted by tag_id."""
    oldest_ts: Timestamps
    """Oldest timestamp per tag, aligned with ``newest.tag_id``."""
    has_duplicates: bool
    """Whether some (tag_id, ts) occurs more than once inside the batch."""


def index_batch(batch: SampleBatch) -> BatchIndex:
    """Sort a non-empty batch once by (tag_id, ts) and derive newest/oldest per tag and duplicates."""
    order = np.lexsort((batch.ts, batch.tag_id))
    tags = batch.tag_id[order]
    ts = batch.ts[order]
    new_tag = tags[1:] != tags[:-1]
    is_last = np.append(new_tag, True)
    is_first = np.insert(new_tag, 0, True)
    has_duplicates = bool(np.any(~new_tag & (ts[1:] == ts[:-1])))
    return BatchIndex(order, batch.take(order[is_last]), ts[is_first], has_duplicates)


def _frozen(batch: SampleBatch) -> SampleBatch:
    for column in (batch.tag_id, batch.ts, batch.value, batch.quality):
        column.flags.writeable = False
    return batch


class LatestCache:
    """Newest sample of every tag as one SampleBatch sorted by tag_id, swapped whole on update.

    The writer computes ``merged()`` before its commit and ``install()``s it after, so readers
    only ever see committed values. A newer timestamp replaces an older one; an equal one
    replaces too (a corrected resend), an older one (late data) never does.
    """

    def __init__(self, snapshot: SampleBatch | None = None) -> None:
        snap = snapshot if snapshot is not None else SampleBatch.empty()
        order = np.argsort(snap.tag_id, kind="stable")
        self._snap = _frozen(snap.take(order))

    @property
    def snapshot(self) -> SampleBatch:
        """All tags, sorted by tag_id; the arrays are read-only and shared."""
        return self._snap

    def _find(self, tag_ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        keys = self._snap.tag_id
        if len(keys) == 0:
            return np.zeros(len(tag_ids), np.intp), np.zeros(len(tag_ids), np.bool_)
        pos = np.minimum(np.searchsorted(keys, tag_ids), len(keys) - 1)
        return pos, keys[pos] == tag_ids

    def high_water(self, tag_ids: npt.NDArray[np.int32]) -> Timestamps:
        """Newest stored timestamp per given tag; INT64_MIN where the tag has none."""
        if len(self._snap) == 0:
            return np.full(len(tag_ids), INT64_MIN, np.int64)
        pos, found = self._find(tag_ids.astype(np.int64))
        return np.where(found, self._snap.ts[pos], INT64_MIN)

    def get(self, tag_ids: Sequence[int] | None) -> SampleBatch:
        """Newest samples of the given tags (or of all), sorted by tag_id, unknown tags left out."""
        if tag_ids is None:
            return self._snap
        ids = np.unique(np.asarray(tag_ids, dtype=np.int64))
        pos, found = self._find(ids)
        return self._snap.take(pos[found])

    def merged(self, newest: SampleBatch) -> SampleBatch:
        """The snapshot after applying a batch's newest-per-tag rows (unique tags, sorted)."""
        cur = self._snap
        pos, found = self._find(newest.tag_id.astype(np.int64))
        wins = found & (newest.ts >= cur.ts[pos]) if len(cur) else found
        if found.all() and not wins.any():
            return cur
        tag_id, ts, value, quality = (cur.tag_id.copy(), cur.ts.copy(), cur.value.copy(), cur.quality.copy())
        at = pos[wins]
        ts[at] = newest.ts[wins]
        value[at] = newest.value[wins]
        quality[at] = newest.quality[wins]
        snap = SampleBatch(tag_id, ts, value, quality)
        if not found.all():
            snap = SampleBatch.concat([snap, newest.take(~found)])
            snap = snap.take(np.argsort(snap.tag_id, kind="stable"))
        return _frozen(snap)

    def install(self, snapshot: SampleBatch) -> None:
        """Publish a snapshot from ``merged()`` (after the data it reflects is committed)."""
        self._snap = snapshot
