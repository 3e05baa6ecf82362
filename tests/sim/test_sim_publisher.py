"""FactoryPublisher against a real Mosquitto: Sparkplug births and data, JSON meters, pacing, stop."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

from shopfloor.connectors.mqtt.jsonfmt import decode_json
from shopfloor.connectors.mqtt.sparkplug import decode_payload
from shopfloor.core.errors import NotReady
from shopfloor.core.model import AssetModel
from shopfloor.core.net import free_port
from shopfloor.sim import VirtualFactory
from shopfloor.sim.publisher import FactoryPublisher
from shopfloor.testing.mosquitto import Mosquitto

START = 1_700_000_000_000_000_000
SP = "spBv1.0/shopfloor"


def kinds(messages: list[tuple[str, bytes]]) -> Counter[str]:
    """Message counts by type: NBIRTH, DBIRTH/cnc1, DDATA/cnc1, ..., json/meter-cnc1."""
    out: Counter[str] = Counter()
    for topic, _ in messages:
        parts = topic.split("/")
        if parts[0] == "spBv1.0":
            out[parts[2] if len(parts) == 4 else f"{parts[2]}/{parts[4]}"] += 1
        else:
            out[f"json/{parts[-1]}"] += 1
    return out


def test_run_for_publishes_births_data_and_meters(sim_broker: Mosquitto, recorder: Any) -> None:
    factory = VirtualFactory(seed=3, start_ns=START)
    twin = VirtualFactory(seed=3, start_ns=START)  # the same stream, to check values exactly
    expected = [twin.step() for _ in range(6)]
    pub = FactoryPublisher(factory, sim_broker.host, sim_broker.port, speed=0, deadband=None)
    pub.run_for(5)
    assert pub.steps_published == 6  # the births' step and five data steps
    devices = [d.name for d in factory.sparkplug_devices]
    meters = [d.name for d in factory.json_devices]
    messages = recorder.wait_for(1 + 6 * len(devices) + 6 * len(meters))
    pub.stop()
    pub.stop()  # idempotent
    counts = kinds(messages)
    assert counts["NBIRTH"] == 1
    for d in devices:
        assert counts[f"DBIRTH/{d}"] == 1
        assert counts[f"DDATA/{d}"] == 5
    for m in meters:
        assert counts[f"json/{m}"] == 6

    aliases: dict[int, tuple[str, str | None]] = {}
    seen_data = {d: 0 for d in devices}
    for topic, payload in messages:
        if not topic.startswith(SP):
            continue
        kind, device = topic.split("/")[2], topic.split("/")[-1]
        decoded = decode_payload(payload)
        if kind == "DBIRTH":
            spec = next(d for d in factory.sparkplug_devices if d.name == device)
            assert decoded.names == [s.name for s in spec.signals]
            np.testing.assert_array_equal(decoded.value, expected[0].sparkplug[device])
            aliases.update({int(a): (device, n) for a, n in zip(decoded.alias, decoded.names, strict=True)})
        elif kind == "DDATA":
            frame = expected[1 + seen_data[device]]
            seen_data[device] += 1
            assert decoded.timestamp == frame.ts_ms
            assert [aliases[int(a)] for a in decoded.alias] == [
                (device, s.name) for s in next(d for d in factory.sparkplug_devices if d.name == device).signals
            ]
            np.testing.assert_array_equal(decoded.value, frame.sparkplug[device])
    assert len(aliases) == sum(len(d.signals) for d in factory.sparkplug_devices)

    meter_msgs = [(t, p) for t, p in messages if t.startswith("shopfloor/json/")]
    for i, m in enumerate(meters):
        mine = [p for t, p in meter_msgs if t == f"shopfloor/json/{m}"]
        for frame, payload in zip(expected, mine, strict=True):
            doc = json.loads(payload)
            assert doc["ts"] == frame.ts_ms
            assert list(doc["values"]) == [s.name for s in factory.json_devices[i].signals]
            samples = decode_json(payload, received_ns=0)  # the ingest side's own parser
            assert samples.problems == []
            assert (samples.ts_ns == frame.ts_ns).all()
            np.testing.assert_array_equal(samples.value, frame.json[m])


def test_everything_published_is_in_the_plant_config(sim_broker: Mosquitto, recorder: Any) -> None:
    factory = VirtualFactory(seed=8, start_ns=START)
    model = AssetModel.from_config(factory.plant_config())
    known = {(t.source.protocol, getattr(t.source, "device", None), t.address) for t in model.tags}
    pub = FactoryPublisher(factory, sim_broker.host, sim_broker.port, speed=0)
    pub.run_for(3)
    messages = recorder.wait_for(1 + 5 + 5 + 4 * 5)
    pub.stop()
    checked = 0
    for topic, payload in messages:
        parts = topic.split("/")
        if topic.startswith(f"{SP}/DBIRTH/line1/"):
            for name in decode_payload(payload).names or []:
                assert ("sparkplug", parts[-1], name) in known
                checked += 1
        elif topic.startswith("shopfloor/json/"):
            for key in json.loads(payload)["values"]:
                assert ("json", parts[-1], key) in known
                checked += 1
    assert checked == len(model.tags) + 3 * 4 * len(factory.json_devices)


def test_report_by_exception_sends_changes_and_periodic_refreshes(sim_broker: Mosquitto, recorder: Any) -> None:
    factory = VirtualFactory(seed=4, start_ns=START)
    pub = FactoryPublisher(factory, sim_broker.host, sim_broker.port, speed=0, deadband=0.01, refresh_every=10)
    pub.run_for(20)
    pub.stop()
    messages = recorder.wait_for_topic(f"{SP}/NDEATH/line1")
    sizes = {i: len(decode_payload(p)) for i, (t, p) in enumerate(messages) if f"{SP}/DDATA/line1/cnc1" == t}
    full = len(factory.sparkplug_devices[0].signals)
    assert max(sizes.values()) == full  # the refreshes
    assert min(sizes.values()) < full / 2  # counters, states, slow temperatures wait for a change


def test_speed_paces_against_the_wall_clock(sim_broker: Mosquitto) -> None:
    factory = VirtualFactory(seed=1, step_s=1.0)
    pub = FactoryPublisher(factory, sim_broker.host, sim_broker.port, speed=40.0)  # 25 ms per step
    pub.run_for(1)  # connect first
    t0 = time.perf_counter()
    pub.run_for(8)
    elapsed = time.perf_counter() - t0
    pub.stop()
    assert 0.18 < elapsed < 1.5
    fast = FactoryPublisher(VirtualFactory(seed=1), sim_broker.host, sim_broker.port, speed=0)
    fast.run_for(1)
    t0 = time.perf_counter()
    fast.run_for(50)
    assert time.perf_counter() - t0 < 1.0
    fast.stop()


def test_background_thread_and_death_certificates(sim_broker: Mosquitto, recorder: Any) -> None:
    factory = VirtualFactory(seed=2)
    pub = FactoryPublisher(factory, sim_broker.host, sim_broker.port, speed=100.0)
    pub.start()
    with pytest.raises(RuntimeError):
        pub.run_for(1)
    time.sleep(0.3)
    pub.stop()
    assert pub.error is None
    n = pub.steps_published
    assert n >= 5
    time.sleep(0.1)
    assert pub.steps_published == n
    counts = kinds(recorder.wait_for_topic(f"{SP}/NDEATH/line1"))
    assert counts["NDEATH"] == 1
    assert all(counts[f"DDEATH/{d.name}"] == 1 for d in factory.sparkplug_devices)
    with pytest.raises(RuntimeError):
        pub.run_for(1)


def test_cap_at_wall_clock_backfills_then_stays_behind_now(sim_broker: Mosquitto) -> None:
    start = time.time_ns() - 30 * 10**9  # 30 s ago
    factory = VirtualFactory(seed=6, start_ns=start)
    pub = FactoryPublisher(factory, sim_broker.host, sim_broker.port, speed=0, cap_at_wall_clock=True)
    pub.start()
    time.sleep(1.0)
    pub.stop()
    assert factory.now_ns <= time.time_ns()
    assert 30 <= pub.steps_published <= 33  # the 30 s of history, then real time


def test_no_broker_raises_not_ready() -> None:
    pub = FactoryPublisher(VirtualFactory(), "127.0.0.1", free_port(), connect_timeout=0.5)
    with pytest.raises(NotReady):
        pub.run_for(1)
    pub.stop()
