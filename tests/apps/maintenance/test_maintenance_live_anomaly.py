"""Streaming anomaly detection on live tags (service ``anomaly``): each watched tag's samples are scored one at
a time as they arrive and the scores land in derived tags; a spike scores high, the usual does not; samples
that cannot be scored are counted and skipped; a watch the site cannot serve is refused at start."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from shopfloor.apps.maintenance.live_anomaly import AnomalyService, WatchError
from shopfloor.config import parse_plant_config
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

PLANT = """\
site:
  name: plant
  areas:
    - name: area1
      lines:
        - name: line1
          equipment:
            - name: press
              source: {protocol: json, device: press}
              tags:
                - {name: oil_temperature, unit: degC, range: [0, 100]}
                - {name: pressure, unit: bar}
                - {name: flow, unit: l/min}
            - name: press-anomaly
              source: {protocol: derived, app: anomaly}
              tags:
                - {name: oil_temperature}
                - {name: pressure}
anomaly:
  tags:
    - {tag: plant/area1/line1/press/oil_temperature, score: plant/area1/line1/press-anomaly/oil_temperature}
    - {tag: plant/area1/line1/press/pressure, score: plant/area1/line1/press-anomaly/pressure}
"""
PRESS, SCORES = "plant/area1/line1/press", "plant/area1/line1/press-anomaly"
N, SPIKE = 3000, 2600


def series(seed: int, level: float, amplitude: float) -> np.ndarray:
    """A daily-like cycle with noise, and one spike at SPIKE."""
    rng = np.random.default_rng(seed)
    x = level + amplitude * np.sin(2 * np.pi * np.arange(N) / 200) + rng.normal(0, amplitude / 20, N)
    x[SPIKE] += 6 * amplitude
    return np.asarray(x)


def test_live_tags_are_scored_one_sample_at_a_time_into_derived_tags(mosquitto: Mosquitto, tmp_path: Path) -> None:
    platform = Platform(parse_plant_config(PLANT), data_dir=tmp_path, broker_url=mosquitto.url)
    platform.start()
    try:
        service = platform.service("anomaly")
        assert isinstance(service, AnomalyService)
        views = {v["tag"]: v for v in service.views()}
        # auto: ARTime where the tag has an engineering range, our detector where it has none
        assert views[f"{PRESS}/oil_temperature"]["detector"] == "artime"
        assert views[f"{PRESS}/pressure"]["detector"] == "ours"
        ids = [platform.tag_index.id_of(f"{PRESS}/{n}") for n in ("oil_temperature", "pressure")]
        t0 = time.time_ns() - N * 10**9
        ts = t0 + np.arange(N, dtype=np.int64) * 10**9
        temp, pressure = series(1, 50, 10), series(2, 180, 15)
        for a in range(0, N, 500):  # in batches, as ingest hands them over
            b = min(a + 500, N)
            batch = SampleBatch.concat([SampleBatch.of(np.full(b - a, i), ts[a:b], v[a:b])
                                        for i, v in zip(ids, (temp, pressure), strict=True)])
            assert platform.writer.submit(batch, timeout=5)
        # then samples that cannot be scored: late, not a number, bad quality
        assert platform.writer.submit(SampleBatch.of([ids[1]], [int(ts[10])], [180.0]), timeout=5)
        assert platform.writer.submit(SampleBatch.of([ids[1]], [int(ts[-1]) + 10**9], [float("nan")]), timeout=5)
        assert platform.writer.submit(SampleBatch.of([ids[1]], [int(ts[-1]) + 2 * 10**9], [180.0], Quality.BAD),
                                      timeout=5)
        score_ids = [platform.tag_index.id_of(f"{SCORES}/{n}") for n in ("oil_temperature", "pressure")]

        def stored() -> list[np.ndarray] | None:
            got = [platform.historian.raw(i, t0, int(ts[-1]) + 1).value for i in score_ids]
            return got if all(len(g) == N for g in got) else None

        scores = wait_for(stored, 60)
        for s in scores:
            assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
            assert s[SPIKE:SPIKE + 20].max() >= 0.5  # the spike is flagged at once (ARTime: at its step's end)
            quiet = np.r_[s[1000:SPIKE - 20], s[SPIKE + 200:]]
            assert (quiet >= 0.5).mean() < 0.01  # the usual cycle after learning is not
        wait_for(lambda: sum(service.views()[1]["skipped"].values()) == 3, 10)
        view = service.views()[1]
        assert view["scored"] == N
        assert view["skipped"] == {"late or repeated": 1, "not a number": 1, "bad quality": 1}
        assert platform.health()["services"]["anomaly"]["errors"] == 0  # type: ignore[index]
    finally:
        platform.stop()


@pytest.mark.parametrize(("change", "message"), [
    ("{tag: plant/area1/line1/press/pressure, score: plant/area1/line1/press-anomaly/pressure, detector: artime}",
     "no engineering range"),
    ("{tag: plant/area1/line1/press/pressure, score: plant/area1/line1/press/flow}", "derived tag"),
    ("{tag: plant/area1/line1/press/nope, score: plant/area1/line1/press-anomaly/pressure}", "unknown tag"),
])
def test_a_watch_the_site_cannot_serve_is_refused_at_start(tmp_path: Path, change: str, message: str) -> None:
    watch = "    - {tag: plant/area1/line1/press/pressure, score: plant/area1/line1/press-anomaly/pressure}"
    text = PLANT.replace(watch, f"    - {change}")
    config = parse_plant_config(text)
    assert config.anomaly is not None
    service = AnomalyService(config.anomaly)
    platform = Platform(config, data_dir=tmp_path, services=[])
    with pytest.raises(WatchError, match=message):
        service.start(platform)


def test_the_section_refuses_a_score_tag_written_twice() -> None:
    text = PLANT.replace("score: plant/area1/line1/press-anomaly/oil_temperature",
                         "score: plant/area1/line1/press-anomaly/pressure")
    with pytest.raises(Exception, match="one score tag twice"):
        parse_plant_config(text)
