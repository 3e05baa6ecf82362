"""Streaming anomaly detection on live tags: service ``anomaly``, one detector per watched tag.

Each watched tag's samples are taken from the platform's intake (as the historian writer accepts them,
like the alarm engine), in time order, one at a time: the detector scores a value from the values before
it only, and the score is written as the tag's derived score tag (0 usual, 1 most unusual), so trends,
the live dashboard and ordinary alarm rules (e.g. a limit of 0.5 on the score) work on it.

Detectors (anomaly.py, anomaly_artime.py, measured on NAB in docs/maintenance.md): ``artime`` needs the
tag's engineering range (``range`` in plant.yaml), which stands for the minimum and maximum NAB gives
its reference detectors, and a stream length that sets its probation period; ``ours`` needs nothing in
advance. A value outside the range is scored as the nearest end of it. Detectors learn from the start of
the service: after a restart each learns again (its probation period scores 0).

Samples that cannot be scored are skipped and counted, never fed: not a number, of bad quality (an uncertain
one, such as a value outside the range, is scored), or not newer than the last one scored for the tag (a
late or repeated sample: detectors need order).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopfloor.apps.maintenance.anomaly import Detector, StreamingDetector
from shopfloor.apps.maintenance.anomaly_artime import ARTime
from shopfloor.apps.maintenance.config import AnomalyConfig, WatchedTag
from shopfloor.core.errors import NotReady, ShopfloorError, UnknownTag
from shopfloor.core.samples import Quality

if TYPE_CHECKING:
    from shopfloor.core.bus import Subscription
    from shopfloor.core.model import AssetModel
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)


class WatchError(ShopfloorError, ValueError):
    """A watched tag the service cannot score: not in the site, no derived score tag, no range for ARTime."""


@dataclass
class _Watch:
    config: WatchedTag
    tag_id: int
    detector: Detector
    kind: str
    last_ts: int = -1
    last_score: float = math.nan
    counts: Counter[str] = field(default_factory=Counter)

    def view(self) -> dict[str, Any]:
        return {"tag": self.config.tag, "score_tag": self.config.score, "detector": self.kind,
                "last_score": None if math.isnan(self.last_score) else self.last_score,
                "scored": self.counts["scored"], "skipped": {k: v for k, v in self.counts.items() if k != "scored"}}


def make_detector(watch: WatchedTag, model: AssetModel) -> tuple[Detector, str]:
    """The detector a watched tag asks for, checked against the asset model (WatchError says what is wrong)."""
    try:
        tag = model.tag(watch.tag)
        score = model.tag(watch.score)
    except UnknownTag as exc:
        raise WatchError(f"anomaly: {exc}: watched tags and score tags must be in the site") from None
    if getattr(score.source, "protocol", None) != "derived":
        raise WatchError(f"anomaly: {watch.score} must be a derived tag (source: {{protocol: derived, app: anomaly}})")
    kind = watch.detector
    if kind == "auto":
        kind = "artime" if tag.range is not None else "ours"
    if kind == "ours":
        return StreamingDetector(), kind
    if tag.range is None:
        raise WatchError(f"anomaly: {watch.tag} has no engineering range (range: [low, high]), which ARTime needs")
    low, high = tag.range
    return ARTime(low, high, watch.length), kind


class AnomalyService:
    """PlatformService ``anomaly`` (see the module docstring)."""

    name = "anomaly"

    def __init__(self, config: AnomalyConfig) -> None:
        self.config = config
        self._platform: Platform | None = None
        self._watches: list[_Watch] = []
        self._by_id: dict[int, list[_Watch]] = {}
        self._sub: Subscription | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: str | None = None
        self.cpu_s = 0.0

    def start(self, platform: Platform) -> None:
        self._platform = platform
        made = [make_detector(w, platform.model) for w in self.config.tags]  # every watch checked first
        self._watches = [_Watch(w, platform.tag_index.id_of(w.tag), detector, kind)
                         for w, (detector, kind) in zip(self.config.tags, made, strict=True)]
        self._by_id = {}
        for watch in self._watches:
            self._by_id.setdefault(watch.tag_id, []).append(watch)
        self._sub = platform.intake.subscribe(set(self._by_id), maxlen=10_000)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="anomaly", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    def health(self) -> dict[str, object]:
        return {"state": "ready" if self._thread is not None else "stopped", "tags": len(self._watches),
                "dropped_batches": self._sub.dropped if self._sub is not None else 0, "errors": self.errors,
                "last_error": self.last_error, "cpu_s": round(self.cpu_s, 3)}

    def views(self) -> list[dict[str, Any]]:
        """Each watched tag: its detector, last score and counts."""
        if self._platform is None:
            raise NotReady("the anomaly service is not running")
        return [w.view() for w in self._watches]

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            t0 = time.thread_time()
            try:
                self.step()
            except Exception as exc:  # a bug must not stop the service: counted and logged
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("anomaly: scoring failed")
            self.cpu_s += time.thread_time() - t0

    def step(self) -> int:
        """Score what arrived since the last step; returns the number of scores written."""
        assert self._sub is not None and self._platform is not None
        batch = self._sub.drain()
        if len(batch) == 0:
            return 0
        order = np.argsort(batch.ts, kind="stable")
        paths: list[str] = []
        stamps: list[int] = []
        scores: list[float] = []
        for tag, ts, value, quality in zip(batch.tag_id[order].tolist(), batch.ts[order].tolist(),
                                           batch.value[order].tolist(), batch.quality[order].tolist(), strict=True):
            for w in self._by_id.get(tag, ()):
                if quality < Quality.UNCERTAIN:  # uncertain (e.g. outside the range) is still a value to score
                    w.counts["bad quality"] += 1
                elif not math.isfinite(value):
                    w.counts["not a number"] += 1
                elif ts <= w.last_ts:
                    w.counts["late or repeated"] += 1
                else:
                    w.last_ts = ts
                    w.last_score = min(max(float(w.detector.update(value)), 0.0), 1.0)  # rounding can stray
                    w.counts["scored"] += 1
                    paths.append(w.config.score)
                    stamps.append(ts)
                    scores.append(w.last_score)
        if paths:
            self._platform.write(paths, stamps, scores)
        return len(paths)


__all__ = ["AnomalyService", "WatchError", "make_detector"]
