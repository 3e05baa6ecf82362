"""Detection leaves out the tags whose limits no sample of the batch can cross (Detector._could_change): it must
find exactly the edges that pairing every sample with every slot finds, for high and low levels, deadbands,
several tags and any cut of the stream into batches."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms.detect import Detector, RawEdges, TagMemory
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import SampleBatch
from tests.alarms.conftest import plant_config

PRESS = "plant/a/l/press"
RULES = f"""\
alarms:
  rules:
    - {{name: f, type: limit, tag: {PRESS}/force, hh: 15, h: 10, l: 4, ll: 1, deadband: 2}}
    - {{name: s, type: limit, tag: {PRESS}/speed, h: 12, l: 3}}
    - {{name: t, type: limit, tag: {PRESS}/temp, l: 8, deadband: 3}}
"""
TAGS = [f"{PRESS}/force", f"{PRESS}/speed", f"{PRESS}/temp"]
# each tag's limits and limits -/+ deadband in RULES, and half a unit either side: where an off-by-one shows
EDGES = ((15, 13, 10, 8, 4, 6, 1, 3), (12, 3), (8, 11))
NEAR = [sorted({float(e + d) for e in edges for d in (-0.5, 0, 0.5)} | {-5.0, 25.0}) for edges in EDGES]
VALUES = sorted({v for near in NEAR for v in near})
_BUILT: list[tuple[Any, Any, Any]] = []


def detector() -> tuple[Detector, TagIndex]:
    if not _BUILT:
        config = plant_config(RULES)
        model = AssetModel.from_config(config)
        _BUILT.append((config, model, TagIndex(model, {t.path: i for i, t in enumerate(model.tags)})))
    config, model, index = _BUILT[0]
    return Detector.build(list(config.alarms.rules), [], model, index, TagMemory.of_size(len(model.tags)), {}), index


def run(det: Detector, index: TagIndex, rows: list[tuple[int, int, float]], cuts: list[int]) -> list[tuple[int, ...]]:
    edges, start, k = [], 0, 0
    while start < len(rows):
        end = min(len(rows), start + cuts[k % len(cuts)])
        part = rows[start:end]
        batch = SampleBatch.of([index.id_of(TAGS[r[0]]) for r in part], [r[1] for r in part], [r[2] for r in part])
        edges.append(det.process(batch))
        start, k = end, k + 1
    e = RawEdges.concat(edges).sorted()
    return sorted(zip(e.ts.tolist(), e.target.tolist(), e.active.tolist(), e.value.tolist(), strict=True))


@settings(max_examples=100, deadline=None)
@given(
    runs=st.lists(st.tuples(st.integers(0, 2), st.lists(st.sampled_from(VALUES), min_size=1, max_size=12)),
                  min_size=1, max_size=20),  # runs of one tag's values
    cuts=st.lists(st.integers(1, 40), min_size=1, max_size=8),
)
def test_leaving_out_tags_that_cannot_change_finds_the_same_edges(runs: list[tuple[int, list[float]]],
                                                                  cuts: list[int]) -> None:
    values = [(tag, v) for tag, run in runs for v in run]
    rows = [(tag, 1_000 + i, v) for i, (tag, v) in enumerate(values)]
    fast, index = detector()
    full, _ = detector()
    full._could_change = lambda tid, val: None  # type: ignore[method-assign]  # pair every sample with its slots
    assert run(fast, index, rows, cuts) == run(full, index, rows, cuts)
    assert np.array_equal(fast.slot_state, full.slot_state)


def test_most_of_a_quiet_batch_is_left_out() -> None:
    det, index = detector()
    force, speed = index.id_of(TAGS[0]), index.id_of(TAGS[1])
    tid = np.array([force, force, speed, speed], np.int32)
    keep = det._could_change(tid, np.array([7.0, 8.0, 5.0, 12.5]))  # force normal; speed reaches its H of 12
    assert keep is not None and keep.tolist() == [False, False, True, True]


def test_every_pair_of_boundary_values_in_consecutive_batches() -> None:
    """Exhaustive at the edges: for every tag, a stream of one-sample batches in which every value at or beside
    a limit or limit -/+ deadband follows every other, so each slot meets each of them set and clear."""
    fast, index = detector()
    full, _ = detector()
    full._could_change = lambda tid, val: None  # type: ignore[method-assign]
    rows = [(tag, 0, v) for tag in range(len(TAGS)) for a in NEAR[tag] for b in NEAR[tag] for v in (a, b)]
    rows = [(tag, 1_000 + i, v) for i, (tag, _, v) in enumerate(rows)]
    found = run(fast, index, rows, [1])
    assert found == run(full, index, rows, [1])
    assert len(found) > 100
