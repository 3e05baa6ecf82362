"""The virtual factory's inspection camera: a picture of every finished part, over MQTT.

The camera sits at the end of the line. It follows the MES events (``shopfloor/mes/events``, the line
controller's ``produced`` events carry each part's serial) and, for each part produced, takes its picture:
a synthesised steel surface (apps/inspection/synthetic.py), with a defect injected into a few per cent of
the parts. The picture is the same for the same seed and serial (the generator is seeded from both), so a
replayed shift looks the same and the injected defect and its mask are known for measuring the station.
Alternatively it replays the images of a directory, one per part, in name order.

Each picture goes to ``shopfloor/inspection/<camera>/image`` (QoS 1) as a one-line JSON header
(``serial``, ``ts_ms``, ``station``, ``format``), a newline and the PNG bytes (station.encode_message):
plain MQTT 3.1.1, so the demo's embedded broker carries it. The camera adds itself to the plant (equipment
``camera1`` beside the line with the inspection service's derived tags, an alarm on the defect rate) and
the ``inspection:`` section that switches the platform's inspection service on.

CPU: one 200 x 200 image (~7 ms) per part, on the camera's own thread; parts come every ~20 s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.apps.inspection.station import encode_message, encode_png
from shopfloor.apps.inspection.synthetic import DEFECT_KINDS, SyntheticPart, make_part
from shopfloor.sim.extension import Broker

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory

log = logging.getLogger(__name__)

MES_TOPIC = "shopfloor/mes/events"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def image_topic(camera: str) -> str:
    return f"shopfloor/inspection/{camera}/image"


@dataclass(frozen=True)
class Shot:
    """One picture the camera took: the serial, the payload sent and what was injected ('' for none)."""

    serial: str
    ts_ms: int
    payload: bytes
    kind: str
    mask: np.ndarray | None


def picture(seed: int, serial: str, defect_rate: float, size: int = 200) -> SyntheticPart:
    """The surface of a part: the same for the same seed and serial; defective with probability defect_rate."""
    digest = hashlib.sha256(f"{seed}:{serial}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    kind = ""
    if rng.random() < defect_rate:
        kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
    return make_part(rng, kind, size)


class InspectionCamera:
    """FactoryExtension ``inspection-camera`` (see the module docstring)."""

    name = "inspection-camera"

    def __init__(self, seed: int = 1, *, camera: str = "camera1", defect_rate: float = 0.05, size: int = 200,
                 image_dir: Path | None = None, keep_shots: int = 100) -> None:
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be within 0..1, got {defect_rate}")
        self.seed = seed
        self.camera = camera
        self.defect_rate = defect_rate
        self.size = size
        self.topic = image_topic(camera)
        self.images: list[Path] = []
        if image_dir is not None:
            self.images = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.images:
                raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
        self.counts: Counter[str] = Counter()
        self.shots: list[Shot] = []  # the last keep_shots pictures, with what was injected (tests, measuring)
        self.keep_shots = keep_shots
        self.station_path: str | None = None
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue(maxsize=1000)
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the plant

    def extend_plant(self, plant: dict[str, Any]) -> None:
        """Equipment ``<camera>`` on the line with the service's derived tags, a defect-rate alarm, and
        the ``inspection:`` section that switches the platform's inspection service on."""
        site = plant["site"]
        area = site["areas"][0]
        line = area["lines"][0]
        self.station_path = f"{site['name']}/{area['name']}/{line['name']}/{self.camera}"
        derived = {"protocol": "derived", "app": "inspection"}
        line.setdefault("equipment", []).append({
            "name": self.camera, "type": "inspection_camera",
            "description": "Surface inspection camera at the end of the line: a picture of every finished part",
            "source": derived,
            "tags": [
                {"name": "inspected", "description": "Parts inspected (counter)", "type": "float64"},
                {"name": "rejected", "description": "Parts the station rejected (counter)", "type": "float64"},
                {"name": "defect_rate", "description": "Rejected share of the last 50 parts", "unit": "%",
                 "type": "float64", "range": [0, 100]},
                {"name": "anomaly_score", "description": "Anomaly score of the last part", "type": "float64"},
                {"name": "review_pending", "description": "Verdicts waiting for a person", "type": "float64"},
            ],
        })
        plant.setdefault("alarms", {}).setdefault("rules", []).append({
            "name": f"{self.camera}-defect-rate", "type": "limit", "tag": f"{self.station_path}/defect_rate",
            "h": 15, "deadband": 2, "priority": "medium",
            "message": "Over 15 % of the last 50 parts rejected by the inspection camera: check the process",
        })
        plant["inspection"] = {"station": self.station_path, "image_size": [self.size, self.size]}

    # ------------------------------------------------------------------ the line

    def on_step(self, factory: VirtualFactory) -> None:
        """Nothing per step: pictures are taken when the MES says a part was produced."""

    def start(self, broker: Broker) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shopfloor-sim-{self.camera}", clean_session=True)
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        client.reconnect_delay_set(1, 10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(broker.host, broker.port, keepalive=30)
        client.loop_start()
        self._thread = threading.Thread(target=self._work, name=f"sim-{self.camera}", daemon=True)
        self._thread.start()
        if not self._connected.wait(15.0):
            log.warning("%s: no connection to the broker yet; pictures follow once connected", self.camera)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("%s: the broker refused the connection: %s", self.camera, reason)
            return
        client.subscribe(MES_TOPIC, qos=1)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            events = json.loads(msg.payload)
        except ValueError:
            self.counts["bad MES events"] += 1
            return
        for event in events if isinstance(events, list) else [events]:
            if not isinstance(event, dict) or event.get("kind") != "produced":
                continue
            serial, ts_ms = event.get("serial"), event.get("ts_ms")
            if not isinstance(serial, str) or not serial or not isinstance(ts_ms, int | float):
                self.counts["bad MES events"] += 1
                continue
            try:
                self._queue.put_nowait((serial, int(ts_ms)))
            except queue.Full:
                self.counts["parts missed (queue full)"] += 1

    # ------------------------------------------------------------------ taking pictures

    def take(self, serial: str, ts_ms: int) -> Shot:
        """The picture of one part and its payload (no publishing)."""
        if self.images:
            index = self.counts["pictures"] % len(self.images)
            path = self.images[index]
            data, kind, mask = path.read_bytes(), "", None
            fmt = path.suffix.lower().lstrip(".")
        else:
            part = picture(self.seed, serial, self.defect_rate, self.size)
            data, kind, mask, fmt = encode_png(part.image), part.kind, part.mask, "png"
        header = {"serial": serial, "ts_ms": ts_ms, "station": self.camera, "format": fmt}
        self.counts["pictures"] += 1
        return Shot(serial, ts_ms, encode_message(header, data), kind, mask)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            serial, ts_ms = item
            try:
                shot = self.take(serial, ts_ms)
            except OSError as exc:  # a replayed file gone or unreadable: skip the part, keep the camera up
                self.counts["pictures failed"] += 1
                log.warning("%s: no picture of %s: %s", self.camera, serial, exc)
                continue
            client = self._client
            if client is not None:
                client.publish(self.topic, shot.payload, qos=1)
                self.counts["published"] += 1
            with self._lock:
                self.shots.append(shot)
                del self.shots[:-self.keep_shots]


__all__ = ["MES_TOPIC", "InspectionCamera", "Shot", "image_topic", "picture"]
