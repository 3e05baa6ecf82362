"""The inspection service: images in (MQTT and HTTP), verdicts out (record, MES, derived tags, review queue).

One worker thread judges the images that arrive over MQTT, in order; HTTP uploads are judged on the
request's thread. Both go through ``_judge``: decode (station.decode), the model under a lock, the image
and verdict into the store, the verdict against the serial in the MES (an ``inspection`` event handed to
the MES recorder service, the MES's one writer), the station's derived tags. An image that cannot be used is counted,
kept byte for byte in the quarantine folder with its reason, and added to the platform's dead letters;
the station goes on with the next one.

The model is loaded (or, in the demo, trained on synthetic defect-free surfaces and saved as a versioned
artifact) on a thread of its own at start, so the platform's start is not held up; images that arrive
meanwhile wait in the queue, uploads get 503.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paho.mqtt.client as mqtt
from sqlalchemy.exc import SQLAlchemyError

from shopfloor.apps import artifacts
from shopfloor.apps.inspection.config import InspectionConfig
from shopfloor.apps.inspection.dataset import ImageError
from shopfloor.apps.inspection.station import (
    FAIL,
    OK_CLASS,
    MessageError,
    StationModel,
    decode,
    decode_message,
    train_synthetic,
)
from shopfloor.apps.inspection.store import PENDING, InspectionStore, NewInspection
from shopfloor.core.errors import NotReady, ShopfloorError
from shopfloor.services import service_client

if TYPE_CHECKING:
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)

TAGS = ("inspected", "rejected", "defect_rate", "anomaly_score", "review_pending")
CHARACTERISTIC = "visual-anomaly"
REVIEW_CHARACTERISTIC = "visual-review"
_FORMATS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "TIFF": "tif"}


class InspectionError(ShopfloorError):
    """A request the station cannot serve (unknown inspection, bad label)."""


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    received_ns: int


@dataclass
class _MesPending:
    inspection_id: int
    serial: str
    ts_ns: int
    value: float
    upper: float
    characteristic: str
    deadline: float


class InspectionService:
    """PlatformService ``inspection`` (see the module docstring)."""

    name = "inspection"

    def __init__(self, config: InspectionConfig | None = None, *, client_id: str = "shopfloor-inspection") -> None:
        self._config = config
        self.client_id = client_id
        self.counts: Counter[str] = Counter()
        self.state = "stopped"  # stopped | loading | training | ready | failed
        self.last_error: str | None = None
        self.model: StationModel | None = None
        self.model_version: int | None = None
        self._platform: Platform | None = None
        self._store: InspectionStore | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._model_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._inbox: queue.Queue[_Message] = queue.Queue(maxsize=64)
        self._threads: list[threading.Thread] = []
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._mes_pending: deque[_MesPending] = deque()
        self._recent: deque[bool] = deque(maxlen=50)
        self._totals = {"inspected": 0, "rejected": 0}
        self._tag_paths: list[str] = []
        self._next_purge = 0.0

    # ------------------------------------------------------------------ lifecycle

    @property
    def config(self) -> InspectionConfig:
        assert self._config is not None, "service not started"
        return self._config

    @property
    def store(self) -> InspectionStore:
        if self._store is None:
            raise NotReady("the inspection service is not running")
        return self._store

    def start(self, platform: Platform) -> None:
        if self._config is None:
            self._config = getattr(platform.config, "inspection", None) or InspectionConfig()
        cfg = self.config
        self._platform = platform
        self._stop.clear()
        self._inbox = queue.Queue(maxsize=cfg.max_queue)
        self._recent = deque(maxlen=cfg.rate_window)
        self._store = InspectionStore(Path(cfg.store_dir) if cfg.store_dir else platform.data_dir / "inspection")
        self._totals = self._store.totals()
        self._tag_paths = []
        if cfg.station is not None:
            for tag in TAGS:
                path = f"{cfg.station}/{tag}"
                with contextlib.suppress(Exception):
                    platform.tag_index.id_of(path)
                    self._tag_paths.append(path)
        self._spawn(self._prepare_model, "inspection-model")
        self._spawn(self._work, "inspection-worker")
        client, host, port = service_client(platform, self.client_id)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self._client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        if not self._connected.wait(15.0):
            raise NotReady(f"inspection: no connection to the MQTT broker {platform.broker_url} within 15 s")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        for thread in self._threads:
            # Training (seconds of CPU) is not waited for: it sees the stop flag when done and saves nothing.
            thread.join(30 if thread.name != "inspection-model" else 0.5)
        self._threads = []
        if self._store is not None:
            self._store.close()
            self._store = None
        self.state = "stopped"

    def health(self) -> dict[str, object]:
        return {
            "state": self.state, "model_version": self.model_version, "connected": self._connected.is_set(),
            "queue": self._inbox.qsize(), "counts": dict(self.counts), "last_error": self.last_error,
            "review_pending": self._store.pending_count() if self._store is not None else None,
        }

    # ------------------------------------------------------------------ the model

    def _prepare_model(self) -> None:
        cfg = self.config
        assert self._platform is not None
        root = Path(cfg.models_dir) if cfg.models_dir else self._platform.data_dir / "models"
        try:
            self.state = "loading"
            if artifacts.versions(root, cfg.anomaly_model) or cfg.anomaly_version is not None:
                model, meta = artifacts.load(root, cfg.anomaly_model, cfg.anomaly_version)
                if not isinstance(model, StationModel):
                    raise artifacts.ArtifactError(f"{cfg.anomaly_model} v{meta.version} is not a station model")
            elif cfg.train_synthetic:
                self.state = "training"
                _lower_thread_priority()  # the platform's ingest and API come first while the demo starts
                start = time.perf_counter()
                model = train_synthetic(0, cfg.train_images, cfg.calibration_images, cfg.image_size[0])
                seconds = time.perf_counter() - start
                if self._stop.is_set():  # stopped while training: no artifact, the next start trains again
                    return
                digest = hashlib.sha256(f"synthetic:0:{cfg.train_images}:{cfg.calibration_images}".encode())
                meta = artifacts.save(root, cfg.anomaly_model, model, dataset="synthetic defect-free surfaces (seed 0)",
                                      data_sha256=digest.hexdigest(), train_seconds=seconds,
                                      metrics=dict(model.calibration), params={"k_sigma": 3.0})
                log.info("inspection: trained %s v%d in %.1f s", cfg.anomaly_model, meta.version, seconds)
            else:
                raise artifacts.ArtifactError(f"no saved {cfg.anomaly_model} under {root} and train_synthetic is off")
            if model.image_size != cfg.image_size:
                raise artifacts.ArtifactError(f"{cfg.anomaly_model} v{meta.version} is for {model.image_size} images, "
                                              f"the station expects {cfg.image_size}")
            if cfg.classifier and artifacts.versions(root, cfg.classifier):
                classifier, cmeta = artifacts.load(root, cfg.classifier, cfg.classifier_version)
                if hasattr(classifier, "predict_image"):
                    model.classifier = classifier
                    log.info("inspection: rejected parts are classified by %s v%d", cfg.classifier, cmeta.version)
            self.model, self.model_version = model, meta.version
            self.state = "ready"
            self._ready.set()
        except Exception as exc:  # the station reports it in /health and refuses images; the platform runs on
            self.state = "failed"
            self.last_error = f"model: {exc}"
            log.exception("inspection: no model")

    # ------------------------------------------------------------------ MQTT (paho's thread)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            return
        client.subscribe(self.config.topic, qos=1)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        item = _Message(msg.topic, bytes(msg.payload), time.time_ns())
        while not self._stop.is_set():  # a full queue holds the network thread: the broker buffers for us
            try:
                self._inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._inbox.get(timeout=0.2)
            except queue.Empty:
                self._retry_mes()
                self._retention()
                continue
            while not self._ready.wait(0.2) and self.state != "failed":
                if self._stop.is_set():
                    return
            try:
                self._handle_message(message)
            except Exception as exc:  # a bug must not stop the station
                self.counts["internal errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("inspection: message on %s failed", message.topic)
            self._retry_mes()

    def _retention(self) -> None:
        """Hourly, when idle: the image files older than ``retention_days`` go (store.purge_files)."""
        days = self.config.retention_days
        if days is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + 3600.0
        try:
            removed = self.store.purge_files(time.time_ns() - int(days * 86_400e9))
        except (OSError, SQLAlchemyError) as exc:
            self.last_error = f"retention: {exc}"
            log.warning("inspection: retention failed: %s", exc)
            return
        self.counts["files removed by retention"] += removed
        if removed:
            log.info("inspection: retention removed %d files older than %s days", removed, days)

    def _handle_message(self, m: _Message) -> None:
        self.counts["mqtt messages"] += 1
        try:
            header, image = decode_message(m.payload)
        except MessageError as exc:
            self._reject("mqtt", m.topic, None, f"bad message: {exc}", m.payload, m.received_ns)
            return
        parts = m.topic.split("/")
        station = str(header.get("station") or (parts[-2] if len(parts) >= 2 else "camera"))
        ts_ms = header.get("ts_ms")
        ts_ns = int(ts_ms * 1_000_000) if ts_ms is not None else m.received_ns
        if not self._ready.is_set():
            self._reject("mqtt", m.topic, header["serial"], f"not judged, the station has no model: {self.last_error}",
                         image, m.received_ns, count="not judged (no model)")
            return
        with contextlib.suppress(ImageError):
            self.inspect_image(image, header["serial"], station=station, ts_ns=ts_ns, source="mqtt",
                               origin=m.topic, received_ns=m.received_ns)

    # ------------------------------------------------------------------ judging one image

    def inspect_image(self, data: bytes, serial: str, *, station: str, ts_ns: int | None = None,
                      source: str = "http", origin: str = "", received_ns: int | None = None) -> dict[str, Any]:
        """Judge one encoded image of a part and record the verdict against its serial; returns the record.

        ImageError (after counting and keeping the image) if it cannot be used; NotReady while the model loads.
        """
        cfg = self.config
        received = received_ns if received_ns is not None else time.time_ns()
        if not self._ready.is_set():
            why = f": {self.last_error}" if self.last_error else ""
            raise NotReady(f"the inspection model is {self.state}{why}")
        assert self.model is not None
        try:
            pixels = decode(data, f"{source} image of {serial}", cfg.image_size, cfg.max_image_bytes)
        except ImageError as exc:
            self._reject(source, origin, serial, str(exc), data, received)
            raise
        ext = _image_ext(data)
        with self._model_lock:
            verdict = self.model.inspect(pixels)
        v = verdict.as_dict()
        review = PENDING if verdict.confidence < cfg.review_below else None
        store = self.store
        with self._record_lock:  # counters and tags in the order the verdicts are recorded
            inspection_id = store.add(NewInspection(
                serial=serial, station=station, source=source, ts_ns=ts_ns if ts_ns is not None else received,
                received_ns=received, image=data, image_ext=ext, heat=verdict.heat, verdict=v, review=review,
                model_version=self.model_version,
            ))
            self.counts["inspected"] += 1
            self.counts[f"verdict {verdict.verdict}"] += 1
            if review:
                self.counts["to review"] += 1
            self._totals["inspected"] += 1
            self._totals["rejected"] += verdict.verdict == FAIL
            self._recent.append(verdict.verdict == FAIL)
            self._write_tags(ts_ns if ts_ns is not None else received, verdict.score)
        self._to_mes(inspection_id, serial, ts_ns if ts_ns is not None else received, CHARACTERISTIC,
                     verdict.score, verdict.threshold)
        row = store.get(inspection_id)
        assert row is not None
        return row

    def _reject(self, source: str, origin: str, serial: str | None, reason: str, payload: bytes,
                received_ns: int, count: str = "bad images") -> None:
        """Count it, log it, keep the bytes in quarantine with the reason and add it to the dead letters."""
        self.counts[count] += 1
        if count == "bad images":
            self.last_error = reason
        log.warning("inspection: %s", reason)
        self.store.reject(source, origin, serial, reason, payload, received_ns)
        if self._platform is not None:
            with contextlib.suppress(Exception):  # the platform's dead letters may be closing at stop
                self._platform.dead_letters.add("inspection", origin or source, reason, payload, received_ns)

    def _write_tags(self, ts_ns: int, score: float | None) -> None:
        """The station's derived tags; without a score (after a review) only the review queue's length."""
        if not self._tag_paths or self._platform is None:
            return
        # The rate over too few parts says little (and would trip its alarm on the first reject): it is
        # written once min(rate_window, 10) parts have been judged since the start.
        enough = len(self._recent) >= min(self.config.rate_window, 10)
        rate = 100.0 * sum(self._recent) / len(self._recent) if enough else None
        values = {"inspected": self._totals["inspected"], "rejected": self._totals["rejected"], "defect_rate": rate,
                  "anomaly_score": score, "review_pending": self.store.pending_count()}
        paths = [p for p in self._tag_paths if values[p.rsplit("/", 1)[1]] is not None
                 and (score is not None or p.endswith("/review_pending"))]
        if not paths:
            return
        try:
            self._platform.write(paths, np.full(len(paths), ts_ns, np.int64),
                                 np.array([values[p.rsplit("/", 1)[1]] for p in paths], np.float64))
        except Exception as exc:
            self.counts["tag write errors"] += 1
            self.last_error = f"derived tags: {exc}"

    # ------------------------------------------------------------------ MES

    def _mes_service(self) -> Any:
        """The platform's MES recorder (service ``mes``), if it runs: it is the one writer of the MES, so the
        verdict goes to it as an ``inspection`` event of the MES contract, like any line controller's."""
        if self._platform is None:
            return None
        try:
            service = self._platform.service("mes")
        except KeyError:
            return None
        if getattr(service, "mes", None) is None or not callable(getattr(service, "submit", None)):
            return None
        return service

    def _to_mes(self, inspection_id: int, serial: str, ts_ns: int, characteristic: str, value: float,
                upper: float) -> None:
        if self._mes_service() is None:
            return
        item = _MesPending(inspection_id, serial, ts_ns, value, upper, characteristic,
                           time.monotonic() + self.config.mes_retry_s)
        if not self._mes_record(item, final=self.config.mes_retry_s <= 0):
            self._mes_pending.append(item)

    def _mes_record(self, item: _MesPending, final: bool) -> bool:
        """True when done (recorded, or refused with the reason kept); False to try again later.

        The MES may record the part's ``produced`` event a moment after the camera's picture is judged, so
        an unknown serial is waited for (``mes_retry_s``) before the event is sent anyway and refused."""
        from sqlalchemy import select

        from shopfloor.apps.mes.models import Item

        service = self._mes_service()
        if service is None:
            return True
        if not final:
            with service.mes.engine.connect() as conn:
                if conn.execute(select(Item.id).where(Item.code == item.serial)).first() is None:
                    return False
        event: dict[str, Any] = {"kind": "inspection", "serial": item.serial, "ts_ms": item.ts_ns // 1_000_000,
                 "characteristic": item.characteristic, "value": item.value, "upper": item.upper}
        if self.config.station is not None:
            event["equipment"] = str(self.config.station)
        if item.characteristic == REVIEW_CHARACTERISTIC:  # a person's label stands over the camera's verdict
            event["supersedes"] = CHARACTERISTIC
        error: str | None
        try:
            outcome = service.submit(json.dumps(event).encode(), topic="inspection")
        except Exception as exc:  # the MES is stopping or its database fails: keep the reason, go on
            error = f"{type(exc).__name__}: {exc}"
        else:
            rejected = list(getattr(outcome, "rejected", []))
            error = "; ".join(str(r.get("reason", r)) for r in rejected) if rejected else None
        if error is None:
            self.counts["mes recorded"] += 1
            if item.characteristic == CHARACTERISTIC:
                self.store.set_mes(item.inspection_id, "recorded", None)
        else:
            self.counts["mes errors"] += 1
            self.last_error = f"MES: {error}"
            self.store.set_mes(item.inspection_id, "refused", error)
        return True

    def _retry_mes(self) -> None:
        now = time.monotonic()
        for _ in range(len(self._mes_pending)):
            item = self._mes_pending.popleft()
            if not self._mes_record(item, final=now >= item.deadline):
                self._mes_pending.append(item)

    # ------------------------------------------------------------------ review

    def review(self, inspection_id: int, label: str, who: str, note: str | None = None) -> dict[str, Any]:
        """A person's label for an inspection (``ok`` or a defect class): confirmed or corrected, kept for
        retraining, and when the label turns the verdict over, recorded in the MES as a review inspection."""
        store = self.store
        row = store.get(inspection_id)
        if row is None:
            raise InspectionError(f"no inspection {inspection_id}")
        label = label.strip()
        if not label or len(label) > 64:
            raise InspectionError("the label must be 1-64 characters: 'ok' or the defect class")
        from shopfloor.apps.inspection.station import decode as decode_image

        if not row["image_file"]:
            raise InspectionError(f"the image of inspection {inspection_id} was removed by retention: "
                                  "nothing left to label")
        data = store.path(row["image_file"]).read_bytes()
        pixels = decode_image(data, row["image_file"], self.config.image_size, 1 << 30)
        updated = store.review(inspection_id, label, who, time.time_ns(), note, pixels)
        self.counts["reviewed"] += 1
        defect = label != OK_CLASS
        if defect != (row["verdict"] == FAIL):
            self.counts["corrected verdicts"] += 1
        self._to_mes(inspection_id, row["serial"], time.time_ns(), REVIEW_CHARACTERISTIC, 1.0 if defect else 0.0, 0.5)
        self._write_tags(time.time_ns(), None)
        return updated


def _image_ext(data: bytes) -> str:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data)) as img:
        return _FORMATS.get(str(img.format), "img")


def _lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread nicer (Linux schedules threads one by one); a no-op where that is not possible."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


__all__ = ["InspectionError", "InspectionService"]
