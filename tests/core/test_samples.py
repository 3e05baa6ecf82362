from __future__ import annotations

import numpy as np
import pytest

from shopfloor.core.samples import Quality, SampleBatch


def test_of_coerces_and_broadcasts_quality() -> None:
    b = SampleBatch.of([1, 2], [10, 20], [1.5, 2.5])
    assert b.tag_id.dtype == np.int32 and b.ts.dtype == np.int64 and b.quality.tolist() == [192, 192]


def test_mismatched_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        SampleBatch.of([1, 2], [10], [1.0, 2.0])


def test_last_per_tag_picks_newest_and_later_row_on_ties() -> None:
    b = SampleBatch.of([1, 2, 1, 1, 2], [5, 7, 9, 9, 3], [10, 20, 30, 31, 40], [192, 192, 192, 0, 192])
    last = b.last_per_tag()
    assert last.tag_id.tolist() == [1, 2]
    assert last.value.tolist() == [31.0, 20.0]
    assert last.quality.tolist() == [0, 192]


def test_concat_and_empty() -> None:
    assert len(SampleBatch.concat([])) == 0
    b = SampleBatch.of([1], [1], [1.0])
    assert len(SampleBatch.concat([b, SampleBatch.empty(), b])) == 2


def test_quality_from_opcua_status() -> None:
    assert Quality.from_opcua_status(0) is Quality.GOOD
    assert Quality.from_opcua_status(0x40000000) is Quality.UNCERTAIN
    assert Quality.from_opcua_status(0x80340000) is Quality.BAD
