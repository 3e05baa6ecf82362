"""The dashboard's derived figures: equipment roles, counter rises across resets, state segments, ingest rate."""

from __future__ import annotations

import numpy as np

from shopfloor.config import parse_plant_config
from shopfloor.core.model import AssetModel
from shopfloor.web.summary import (
    IngestMeter,
    counter_increase,
    equipment_roles,
    is_link_tag,
    last_change_ns,
    state_segments,
)

PLANT = """\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l
          cells:
            - name: c1
              equipment:
                - name: mill
                  source: {protocol: sparkplug, group: g, node: n, device: mill}
                  tags:
                    - {name: mode, type: enum, states: {0: auto, 1: manual}}
                    - {name: status, type: enum, states: {0: Running, 1: Idle}}
                    - {name: a, unit: kW}
                    - {name: b, type: float32}
                    - {name: parts, type: int32}
                    - {name: c}
                    - {name: d}
                    - {name: e}
                    - {name: door, type: bool}
          equipment:
            - name: gateway
              source: {protocol: json, device: gw}
              tags:
                - {name: wifi_rssi, unit: dBm}
                - {name: uptime, unit: s}
                - {name: margin, unit: dB}
                - {name: link_rtt_ms, unit: ms}
                - {name: backlog_samples}
"""
S = 1_000_000_000


def test_roles_follow_types_and_plant_order() -> None:
    roles = {r.node.name: r for r in equipment_roles(AssetModel.from_config(parse_plant_config(PLANT)))}
    mill = roles["mill"]
    assert mill.parent == "s/a/l/c1"
    assert mill.state is not None and mill.state.name == "status"  # no enum named state: the one with 'running'
    assert [t.name for t in mill.key] == ["a", "b", "c", "d"]
    assert [t.name for t in mill.counters] == ["parts"]
    gateway = roles["gateway"]
    assert gateway.parent == "s/a/l" and gateway.state is None
    assert [t.name for t in gateway.tags if is_link_tag(t)] == ["wifi_rssi", "margin", "link_rtt_ms", "backlog_samples"]


def test_counter_increase_ignores_resets_and_uses_the_sample_before_the_window() -> None:
    ts = np.array([0, 10, 20, 30, 40, 50], np.int64) * S
    values = np.array([100, 105, 110, 2, 5, np.nan])  # reset to 0 between 20 s and 30 s, then a bad reading
    assert counter_increase(ts, values, since_ns=15 * S) == 5 + 0 + 3  # 105->110, the reset, 2->5
    assert counter_increase(ts, values, since_ns=0) == 5 + 5 + 0 + 3
    assert counter_increase(ts, values, since_ns=45 * S) == 0.0
    assert counter_increase(ts[:1], values[:1], since_ns=0) is None


def test_last_change_and_state_segments() -> None:
    ts = np.array([0, 10, 20, 30, 40, 50], np.int64) * S
    state = np.array([0, 0, 2, 2, np.nan, 0])
    assert last_change_ns(ts, state) == 50 * S
    assert last_change_ns(ts[:4], state[:4]) == 20 * S
    assert last_change_ns(ts[:2], state[:2]) is None
    t, v = state_segments(ts, state, since_ns=15 * S)
    assert t == [15_000, 20_000, 40_000, 50_000]  # the state at 15 s was the one sampled at 10 s
    assert v == [0.0, 2.0, None, 0.0]
    assert state_segments(ts[:0], state[:0], 0) == ([], [])


def test_ingest_meter_rates_between_readings_and_restarts() -> None:
    meter = IngestMeter(keep_s=60)
    assert meter.rate() is None
    meter.observe(0, now_ns=0)
    meter.observe(500, now_ns=S // 2)  # under a second after the last reading: not kept
    meter.observe(1000, now_ns=1 * S)
    meter.observe(3000, now_ns=3 * S)
    assert meter.series() == ([1000, 3000], [1000.0, 1000.0])
    assert meter.rate(over_s=10) == 1000.0
    meter.observe(10, now_ns=4 * S)  # a new writer counts from zero
    assert meter.series() == ([], [])
    meter.observe(1010, now_ns=50 * S)
    assert meter.rate() == 1000 / 46
    meter.observe(2010, now_ns=100 * S)  # the reading at 4 s is now older than keep_s
    assert meter.series() == ([100_000], [20.0])
