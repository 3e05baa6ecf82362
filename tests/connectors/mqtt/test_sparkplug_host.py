"""The Sparkplug B host rules: births and aliases, sequence gaps, rebirth requests, held data, deaths."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.connectors.mqtt.sparkplug import (
    DataType,
    MetricSpec,
    decode_payload,
    encode_birth,
    encode_data,
    encode_death,
    is_rebirth_request,
    parse_topic,
)
from shopfloor.connectors.mqtt.sparkplug_host import SparkplugHost
from shopfloor.core.samples import Quality

TAGS = {("g", "n", "d1"): {"temp": 10, "speed": 11}, ("g", "n", None): {"uptime": 12}}
SPECS = [MetricSpec("temp", DataType.Double, 1), MetricSpec("speed", DataType.Float, 2),
         MetricSpec("extra", DataType.Int32, 3)]
T = 1_763_800_000_000


class Harness:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.host = SparkplugHost(lambda key, name: TAGS.get(key, {}).get(name), self._publish,
                                  rebirth_interval_s=0)

    def _publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))

    def feed(self, topic: str, payload: bytes, token: object = None):  # type: ignore[no-untyped-def]
        parsed = parse_topic(topic)
        assert parsed is not None
        return self.host.handle(parsed, payload, T * 1_000_000, token)

    def births(self, bdseq: int = 0) -> None:
        self.feed("spBv1.0/g/NBIRTH/n", encode_birth(T, 0, [MetricSpec("uptime", DataType.Int64, 9)], [5],
                                                      bdseq=bdseq))
        self.feed("spBv1.0/g/DBIRTH/n/d1", encode_birth(T, 1, SPECS, [20.5, 3.0, 7]))

    def rebirths(self) -> int:
        return sum(1 for topic, p in self.sent if topic == "spBv1.0/g/NCMD/n" and is_rebirth_request(decode_payload(p)))


def data(seq: int, aliases: list[int], values: list[float], ts: int = T + 1000) -> bytes:
    types = np.array([{1: 10, 2: 9, 3: 3, 99: 10}[a] for a in aliases], np.uint32)
    return encode_data(ts, seq, np.array(aliases, np.uint64), types, np.array(values))


def test_birth_maps_names_to_tags_and_counts_unmapped() -> None:
    h = Harness()
    h.births()
    node = h.host.nodes[("g", "n")]
    assert (node.online, node.bdseq, node.seq, node.births) == (True, 0, 1, 1)
    assert h.host.unmapped == {"g/n/d1/extra": 1}
    result = h.feed("spBv1.0/g/DDATA/n/d1", data(2, [2, 1, 3], [4.5, 21.25, 8]))
    assert result.batch is not None and result.problem is None
    assert result.batch.tag_id.tolist() == [11, 10]
    assert result.batch.value.tolist() == [4.5, 21.25]
    assert result.batch.ts.tolist() == [(T + 1000) * 1_000_000] * 2
    assert h.rebirths() == 0


def test_sequence_gap_requests_rebirth_but_keeps_the_data() -> None:
    h = Harness()
    h.births()
    result = h.feed("spBv1.0/g/DDATA/n/d1", data(5, [1], [1.0]))
    assert result.batch is not None and result.batch.value.tolist() == [1.0]
    assert h.host.nodes[("g", "n")].seq_gaps == 1
    assert h.rebirths() == 1


def test_unknown_alias_is_reported_and_triggers_rebirth() -> None:
    h = Harness()
    h.births()
    result = h.feed("spBv1.0/g/DDATA/n/d1", data(2, [1, 99], [1.0, 2.0]))
    assert result.batch is not None and result.batch.tag_id.tolist() == [10]
    assert result.problem is not None and "[99]" in result.problem
    assert h.rebirths() == 1


def test_data_before_birth_is_held_then_replayed_after_the_devices_birth() -> None:
    h = Harness()
    held = h.feed("spBv1.0/g/DDATA/n/d1", data(7, [1], [99.0]), token="msg-1")
    node_data = h.feed("spBv1.0/g/NDATA/n", encode_data(T + 5, 8, [9], [4], [600.0]), token="msg-2")
    assert held.held and node_data.held and h.rebirths() == 2  # no rate limit in this harness
    nbirth = h.feed("spBv1.0/g/NBIRTH/n", encode_birth(T, 0, [MetricSpec("uptime", DataType.Int64, 9)], [5],
                                                        bdseq=3))
    ((token, batch, problem),) = nbirth.released  # the node's own data, not the device's
    assert token == "msg-2" and batch is not None and batch.tag_id.tolist() == [12] and problem is None
    dbirth = h.feed("spBv1.0/g/DBIRTH/n/d1", encode_birth(T, 1, SPECS, [20.5, 3.0, 7]))
    ((token, batch, problem),) = dbirth.released
    assert token == "msg-1" and problem is None
    assert batch is not None and batch.tag_id.tolist() == [10] and batch.value.tolist() == [99.0]
    assert h.host.nodes[("g", "n")].seq_gaps == 0


def test_held_data_of_a_device_that_is_never_born_goes_to_the_dead_letters_at_death() -> None:
    h = Harness()
    h.feed("spBv1.0/g/DDATA/n/d1", data(9, [1], [42.0]), token="late")
    h.feed("spBv1.0/g/NBIRTH/n", encode_birth(T, 0, [], [], bdseq=1))
    assert len(h.host.nodes[("g", "n")].held) == 1
    h.feed("spBv1.0/g/NDEATH/n", encode_death(1))
    ((token, batch, problem),) = h.host.orphans
    assert token == "late" and batch is None and problem is not None and "died" in problem


def test_death_marks_tags_bad_and_a_stale_death_is_ignored() -> None:
    h = Harness()
    h.births(bdseq=4)
    stale = h.feed("spBv1.0/g/NDEATH/n", encode_death(3))
    assert stale.batch is None and h.host.nodes[("g", "n")].online
    death = h.feed("spBv1.0/g/NDEATH/n", encode_death(4))
    assert death.batch is not None
    assert sorted(death.batch.tag_id.tolist()) == [10, 11, 12]
    assert np.isnan(death.batch.value).all() and (death.batch.quality == Quality.BAD).all()
    assert not h.host.nodes[("g", "n")].online


def test_device_death_marks_only_that_device() -> None:
    h = Harness()
    h.births()
    death = h.feed("spBv1.0/g/DDEATH/n/d1", encode_data(T, 2, [], [], []))
    assert death.batch is not None and sorted(death.batch.tag_id.tolist()) == [10, 11]
    after = h.feed("spBv1.0/g/DDATA/n/d1", data(3, [1], [1.0]))
    assert after.batch is None and after.problem is not None and "before its birth" in after.problem


def test_malformed_payload_raises_decode_error() -> None:
    from shopfloor.core.errors import DecodeError

    h = Harness()
    h.births()
    with pytest.raises(DecodeError):
        h.feed("spBv1.0/g/DDATA/n/d1", b"\x12\x05\x08")


def test_a_string_metric_mapped_to_a_numeric_tag_is_refused_and_reported() -> None:
    h = Harness()
    h.feed("spBv1.0/g/NBIRTH/n", encode_birth(T, 0, [], [], bdseq=0))
    specs = [MetricSpec("temp", DataType.String, 1), MetricSpec("speed", DataType.Float, 2)]
    result = h.feed("spBv1.0/g/DBIRTH/n/d1", encode_birth(T, 1, specs, ["hot", 3.0]))
    assert result.batch is not None and result.batch.tag_id.tolist() == [11]
    assert result.problem is not None and "temp (String)" in result.problem
    assert h.host.unmapped == {"g/n/d1/temp": 1}
