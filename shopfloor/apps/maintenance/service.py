"""The maintenance service: bearing diagnosis, health index, RUL and work orders on live plant data.

Inputs, per machine of the ``maintenance:`` config section:
* raw accelerometer windows over MQTT (``topic``; wire format in shopfloor/sim/vibration.py): each is
  diagnosed by envelope analysis (shopfloor/apps/maintenance/diagnosis.py) or by a trained model chosen
  by artifact name and version; the class probabilities of the last ``diagnosis_windows`` windows are
  averaged into the fault class and its confidence;
* the machine's live ``vibration`` and ``spindle_speed`` tags from the platform's sample bus: each
  sample at speed gives the health indicator, the vibration over the healthy level normalised to rated
  speed, ``(vibration - idle) / (speed / rated) - baseline`` (mm/s); its median over ``bucket_s`` of
  sim time is one point of the degradation trend.
At every trend point the service writes the health index (100 x (1 - indicator / failure level), from
the median of the last three points) and the RUL with its interval as derived tags of the machine's health
equipment: the power-law P-F fit (degradation.py) and, when ``rul_interval`` names a calibration artifact,
its conformal factors learnt from past failures (rulinterval.py; the calibration must have been learnt with
the service's trend settings, else start fails); without one, the fit's block-bootstrap interval, which
covers the fit's uncertainty only and is too narrow (docs/maintenance.md). ``health()["rul_interval"]``
says which. When the RUL lower
bound falls under ``work_order_rul_h`` it opens one work order for the developing fault (workorders.py),
refreshes its prediction while it is open, and closes it when the indicator is back at a new bearing's
level. The maintenance alarm is an ordinary alarm rule on those derived tags (plant.yaml).

Bad windows (not the wire format, wrong length, NaN, unknown machine, a speed the analysis cannot use)
are counted and kept as dead letters (source ``maintenance``); the service goes on. Work runs on one
thread of the service; the MQTT callback only queues (bounded: the oldest windows drop, counted).
Times are the samples' and windows' own (sim time in the demo), so fast-forward works as real time does.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import paho.mqtt.client as mqtt
from numpy.typing import NDArray
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.apps.maintenance.config import MachineConfig, MaintenanceConfig
from shopfloor.apps.maintenance.degradation import NoTrend, RulEstimate, estimate_rul, fit_rul
from shopfloor.apps.maintenance.diagnosis import FAULT_CODES, FAULT_LABELS, Diagnosis, EnvelopeDiagnoser
from shopfloor.apps.maintenance.rulinterval import CalibrationError, IntervalCalibration, TrendSettings
from shopfloor.apps.maintenance.signal import BearingGeometry, SignalError
from shopfloor.apps.maintenance.workorders import Prediction, WorkOrder, WorkOrderStore
from shopfloor.core.errors import ShopfloorError

if TYPE_CHECKING:
    from shopfloor.core.bus import Subscription
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
MIN_WINDOW = 1024
DEAD_LETTER_SOURCE = "maintenance"


class WindowError(ShopfloorError, ValueError):
    """A vibration message that is not a usable window."""


@dataclass(frozen=True, slots=True)
class Window:
    """One decoded accelerometer window."""

    equipment: str
    ts_ns: int
    fs: float
    rpm: float
    samples: FloatArray


def decode_window(payload: bytes, max_samples: int = 1 << 20) -> Window:
    """Parse the wire format (2-byte header length, JSON header, float32 or int16 samples); WindowError if bad."""
    if len(payload) < 2:
        raise WindowError(f"message of {len(payload)} bytes: no header length")
    (hlen,) = struct.unpack(">H", payload[:2])
    if hlen == 0 or 2 + hlen > len(payload):
        raise WindowError(f"header length {hlen} does not fit in {len(payload)} bytes")
    try:
        header = json.loads(payload[2:2 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WindowError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise WindowError("header is not a JSON object")
    equipment, ts_ms, n = header.get("equipment"), header.get("ts_ms"), header.get("n")
    fs, rpm = header.get("fs"), header.get("rpm")
    dtype = header.get("dtype", "float32")
    if not isinstance(equipment, str) or not equipment:
        raise WindowError("header has no equipment")
    if not isinstance(ts_ms, int) or isinstance(ts_ms, bool) or ts_ms <= 0:
        raise WindowError(f"bad ts_ms {ts_ms!r}")
    if not _positive(fs) or not _positive(rpm):
        raise WindowError(f"bad fs {fs!r} or rpm {rpm!r}: positive numbers needed")
    if not isinstance(n, int) or isinstance(n, bool) or not MIN_WINDOW <= n <= max_samples:
        raise WindowError(f"bad sample count {n!r} (need {MIN_WINDOW}..{max_samples})")
    body = payload[2 + hlen:]
    scale = header.get("scale", 1.0)
    if dtype == "float32":
        width = 4
    elif dtype == "int16":
        width = 2
    else:
        raise WindowError(f"unknown dtype {dtype!r} (float32 or int16)")
    if not _positive(scale):
        raise WindowError(f"scale must be a positive number, got {scale!r}")
    if len(body) != n * width:
        raise WindowError(f"header says {n} {dtype} samples ({n * width} bytes), body has {len(body)} bytes")
    raw = np.frombuffer(body, dtype="<f4" if width == 4 else "<i2")
    samples = raw.astype(np.float64) * float(scale)
    if not np.all(np.isfinite(samples)):
        raise WindowError(f"{int(np.count_nonzero(~np.isfinite(samples)))} samples are NaN or infinite")
    return Window(equipment, ts_ms * 1_000_000, float(fs), float(rpm), samples)  # type: ignore[arg-type]


def _positive(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


class WindowDiagnoser(Protocol):
    """What the service needs of a diagnosis model: one window in, one Diagnosis out."""

    def diagnose(self, x: FloatArray, fs: float, rpm: float) -> Diagnosis: ...


@dataclass
class MachineState:
    """What the service knows of one machine right now (also what the API shows)."""

    config: MachineConfig
    tag_vibration: int
    tag_speed: int
    last_speed: float = math.nan
    bucket: int | None = None
    bucket_values: list[float] = field(default_factory=list)
    points_t: deque[int] = field(default_factory=deque)
    points_d: deque[float] = field(default_factory=deque)
    probs: deque[dict[str, float]] = field(default_factory=deque)
    windows: int = 0
    last_window_ns: int | None = None
    fault: str = "normal"
    confidence: float = 0.0
    defect_db: float = math.nan
    health_index: float = math.nan
    degradation: float = math.nan
    rul: RulEstimate | None = None
    updated_ns: int | None = None
    work_order_raised: bool = False  # for the developing fault of the current bearing
    replacements: int = 0

    def view(self) -> dict[str, Any]:
        rul = self.rul
        return {
            "equipment": self.config.equipment, "health_equipment": self.config.health,
            "health_index": _num(self.health_index), "degradation_mm_s": _num(self.degradation),
            "failure_level_mm_s": self.config.failure_level_mm_s,
            "rul_h": None if rul is None else rul.rul, "rul_low_h": None if rul is None else rul.low,
            "rul_high_h": None if rul is None else rul.high, "rul_exponent": None if rul is None else rul.exponent,
            "fault": self.fault, "fault_label": FAULT_LABELS[FAULT_CODES[self.fault]],
            "confidence": self.confidence, "defect_db": _num(self.defect_db), "windows": self.windows,
            "last_window_ns": self.last_window_ns, "updated_ns": self.updated_ns, "trend_points": len(self.points_t),
            "bearing_replacements": self.replacements,
        }


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 4)


class MaintenanceService:
    """PlatformService ``maintenance`` (module docstring)."""

    name = "maintenance"

    def __init__(self, config: MaintenanceConfig | None = None, *, client_id: str = "shopfloor-maintenance") -> None:
        """``config``: by default the platform config's ``maintenance:`` section."""
        self._config = config
        self.client_id = client_id
        self.config: MaintenanceConfig | None = None
        self.platform: Platform | None = None
        self.store: WorkOrderStore | None = None
        self.diagnoser: WindowDiagnoser | None = None
        self.model_info: dict[str, Any] = {"kind": "envelope"}
        self.interval: IntervalCalibration | None = None
        self.interval_info: dict[str, Any] = {"kind": "bootstrap", "calibrated": False}
        self.machines: dict[str, MachineState] = {}
        self._by_health: dict[str, MachineState] = {}
        self._lock = threading.Lock()  # machines' state: worker writes, API reads
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._sub: Subscription | None = None
        self._connected = threading.Event()
        self.received = self.analysed = self.rejected = self.dropped = self.errors = 0
        self.evaluations = 0
        self.last_error: str | None = None
        self.cpu_s = 0.0  # CPU time of the service's thread (the analysis and the fits)

    # ------------------------------------------------------------------ life

    def start(self, platform: Platform) -> None:
        config = self._config or platform.config.maintenance
        if config is None:
            raise ShopfloorError("the maintenance service needs a maintenance: section in the plant config")
        self.config, self.platform = config, platform
        self._stop.clear()  # a platform may be started again after a stop
        self._connected.clear()
        self._inbox.clear()
        self.machines, self._by_health = {}, {}
        self.diagnoser = self._diagnoser(config, platform)
        self.interval = self._interval(config, platform)
        index = platform.tag_index
        for m in config.machines:
            st = MachineState(m, index.id_of(f"{m.equipment}/{m.vibration_tag}"),
                              index.id_of(f"{m.equipment}/{m.speed_tag}"),
                              points_t=deque(maxlen=config.max_points), points_d=deque(maxlen=config.max_points),
                              probs=deque(maxlen=config.diagnosis_windows))
            for tag in ("health_index", "degradation", "rul", "rul_low", "rul_high", "fault", "fault_confidence",
                        "defect_level"):
                index.id_of(f"{m.health}/{tag}")  # UnknownTag now, not at the first write
            self.machines[m.equipment] = st
            self._by_health[m.health] = st
        self.store = WorkOrderStore(Path(platform.data_dir) / "maintenance.sqlite")
        for st in self.machines.values():  # an order still open from before a restart covers its fault
            st.work_order_raised = self.store.open_for(st.config.equipment) is not None
        ids = {i for st in self.machines.values() for i in (st.tag_vibration, st.tag_speed)}
        self._sub = platform.bus.subscribe(ids, maxlen=100_000)
        self._thread = threading.Thread(target=self._run, name="maintenance-service", daemon=True)
        self._thread.start()
        self._connect(platform.broker_url, config.topic)

    def _diagnoser(self, config: MaintenanceConfig, platform: Platform) -> WindowDiagnoser:
        """The envelope analysis, or the artifact the config names (its metadata shown in health)."""
        if config.model is None:
            b = config.bearing
            geometry = BearingGeometry(b.n_balls, b.ball_diameter, b.pitch_diameter, b.contact_angle_deg)
            return EnvelopeDiagnoser(geometry, config.envelope_band_hz)
        from shopfloor.apps import artifacts

        root = Path(config.model.root) if config.model.root else Path(platform.data_dir) / "models"
        model, meta = artifacts.load(root, config.model.name, config.model.version)
        if not callable(getattr(model, "diagnose", None)):
            raise ShopfloorError(f"artifact {meta.name} v{meta.version} is not a window diagnoser")
        self.model_info = {"kind": "artifact", "name": meta.name, "version": meta.version, "metrics": meta.metrics}
        diagnoser: WindowDiagnoser = model  # type: ignore[assignment]
        return diagnoser

    def _interval(self, config: MaintenanceConfig, platform: Platform) -> IntervalCalibration | None:
        calibration, self.interval_info = load_rul_interval(config, Path(platform.data_dir))
        return calibration

    def _connect(self, broker_url: str, topic: str) -> None:
        from shopfloor.connectors.mqtt.ingest import parse_broker_url

        host, port, _ = parse_broker_url(broker_url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        assert self.platform is not None
        mqtt_cfg = self.platform.config.mqtt
        if mqtt_cfg.username is not None:
            client.username_pw_set(mqtt_cfg.username, mqtt_cfg.password)

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            if not reason.is_failure:
                c.subscribe(topic, qos=0)  # again after every reconnect

        def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
            if reasons and not reasons[0].is_failure:  # subscribed: windows sent from now on arrive
                self._connected.set()

        def on_disconnect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            self._connected.clear()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = self._on_message
        client.connect_async(host, port)
        client.loop_start()
        self._client = client
        if not self._connected.wait(15.0):
            raise ShopfloorError(f"maintenance: MQTT broker {host}:{port} did not accept the connection")

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self.store is not None:
            self.store.close_db()
            self.store = None

    def health(self) -> dict[str, object]:
        return {
            "model": self.model_info, "rul_interval": self.interval_info, "machines": len(self.machines),
            "connected": self._connected.is_set(),
            "windows_received": self.received, "windows_analysed": self.analysed, "windows_rejected": self.rejected,
            "windows_dropped": self.dropped, "evaluations": self.evaluations, "errors": self.errors,
            "last_error": self.last_error, "cpu_s": round(self.cpu_s, 3),
            "work_orders": self.store.counts() if self.store is not None else {},
        }

    # ------------------------------------------------------------------ views for the API

    def machine_views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [st.view() for st in self.machines.values()]

    # ------------------------------------------------------------------ input

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        assert self.config is not None
        self.received += 1
        if len(self._inbox) >= self.config.queue_size:
            self._inbox.popleft()
            self.dropped += 1
        self._inbox.append((msg.topic, bytes(msg.payload)))
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            started = time.thread_time()
            try:
                self._drain_tags()
                while self._inbox and not self._stop.is_set():
                    topic, payload = self._inbox.popleft()
                    self._handle_window(topic, payload)
                self._drain_tags()
            except Exception as exc:  # keep serving; the reason is in health and the log
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("maintenance service step failed")
            self.cpu_s += time.thread_time() - started
        try:  # what arrived before the stop
            self._drain_tags()
        except Exception:
            log.exception("maintenance service: last tags not evaluated")

    def _reject(self, topic: str, payload: bytes, reason: str) -> None:
        self.rejected += 1
        assert self.platform is not None
        self.platform.dead_letters.add(DEAD_LETTER_SOURCE, topic, reason, payload)
        log.debug("maintenance: rejected window on %s: %s", topic, reason)

    def _handle_window(self, topic: str, payload: bytes) -> None:
        assert self.config is not None and self.diagnoser is not None and self.platform is not None
        try:
            w = decode_window(payload, self.config.max_window)
        except WindowError as exc:
            self._reject(topic, payload, str(exc))
            return
        st = self.machines.get(w.equipment)
        if st is None:
            self._reject(topic, payload, f"unknown equipment {w.equipment!r} (not in maintenance.machines)")
            return
        try:
            d = self.diagnoser.diagnose(w.samples, w.fs, w.rpm)
        except SignalError as exc:
            self._reject(topic, payload, f"cannot analyse: {exc}")
            return
        self.analysed += 1
        with self._lock:
            st.probs.append(d.probabilities)
            avg = {k: float(np.mean([p.get(k, 0.0) for p in st.probs])) for k in FAULT_CODES}
            st.fault = max(avg, key=lambda k: avg[k])
            st.confidence = avg[st.fault]
            st.defect_db = d.defect_db
            st.windows += 1
            st.last_window_ns = w.ts_ns
        h = st.config.health
        self.platform.write([f"{h}/fault", f"{h}/fault_confidence", f"{h}/defect_level"], [w.ts_ns] * 3,
                            [float(FAULT_CODES[st.fault]), 100.0 * st.confidence, d.defect_db])

    def _drain_tags(self) -> None:
        if self._sub is None:
            return
        batch = self._sub.drain()
        if len(batch) == 0:
            return
        order = np.argsort(batch.ts, kind="stable")
        tag, ts, value = batch.tag_id[order], batch.ts[order], batch.value[order]
        for st in self.machines.values():
            self._feed(st, tag, ts, value)

    def _feed(self, st: MachineState, tag: NDArray[np.int32], ts: NDArray[np.int64], value: FloatArray) -> None:
        """Indicator samples from vibration at speed (the last speed at or before each vibration sample)."""
        m = st.config
        sp = tag == st.tag_speed
        vb = tag == st.tag_vibration
        if not vb.any():
            if sp.any():
                st.last_speed = float(value[sp][-1])
            return
        ts_s, v_s = ts[sp], value[sp]
        ts_v, v_v = ts[vb], value[vb]
        i = np.searchsorted(ts_s, ts_v, side="right") - 1
        speed = np.where(i >= 0, v_s[np.maximum(i, 0)] if v_s.size else st.last_speed, st.last_speed)
        if v_s.size:
            st.last_speed = float(v_s[-1])
        assert self.config is not None
        ratio = speed / m.rated_rpm
        ok = np.isfinite(v_v) & np.isfinite(ratio) & (ratio >= self.config.min_speed_frac)
        if not ok.any():
            return
        d = (v_v[ok] - m.idle_mm_s) / ratio[ok] - m.baseline_mm_s
        bucket_ns = round(self.config.bucket_s * 1e9)
        buckets = ts_v[ok] // bucket_ns
        for b, x in zip(buckets.tolist(), d.tolist(), strict=True):
            if st.bucket is not None and b != st.bucket:
                self._close_bucket(st, bucket_ns)
            st.bucket = b
            st.bucket_values.append(x)

    def _close_bucket(self, st: MachineState, bucket_ns: int) -> None:
        values, st.bucket_values = st.bucket_values, []
        if st.bucket is None or len(values) < 3:
            return
        ts = st.bucket * bucket_ns + bucket_ns // 2
        with self._lock:
            st.points_t.append(ts)
            st.points_d.append(float(np.median(values)))
        self._evaluate(st, ts + bucket_ns // 2)

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, st: MachineState, now_ns: int) -> None:
        """Health index, RUL and work orders at the end of a trend point."""
        assert self.config is not None and self.platform is not None and self.store is not None
        cfg, m = self.config, st.config
        self.evaluations += 1
        onset = cfg.onset_fraction * m.failure_level_mm_s
        d = np.fromiter(st.points_d, np.float64)
        recent = float(np.median(d[-3:]))
        if d.size >= 6 and float(d[:-3].max()) >= 3 * onset and float(d[-3:].max()) < onset:
            self._replaced(st, now_ns)  # a new bearing: the old trend says nothing about it
            d = np.fromiter(st.points_d, np.float64)
        t = (np.fromiter(st.points_t, np.int64) - int(st.points_t[0])) / 3.6e12
        now_h = (now_ns - int(st.points_t[0])) / 3.6e12
        rul: RulEstimate | None
        try:
            if self.interval is not None:
                rul = self.interval.estimate(fit_rul(t, d, m.failure_level_mm_s, now_h, onset_level=onset,
                                                     horizon=cfg.horizon_h))
            else:
                rul = estimate_rul(t, d, m.failure_level_mm_s, now_h, onset_level=onset, horizon=cfg.horizon_h)
        except NoTrend:
            rul = None
        hi = 100.0 * min(max(1.0 - recent / m.failure_level_mm_s, 0.0), 1.0)
        with self._lock:
            st.health_index, st.degradation, st.rul, st.updated_ns = hi, recent, rul, now_ns
        h = m.health
        nan = math.nan
        values = [hi, recent, *((rul.rul, rul.low, rul.high) if rul is not None else (nan, nan, nan))]
        self.platform.write([f"{h}/health_index", f"{h}/degradation", f"{h}/rul", f"{h}/rul_low", f"{h}/rul_high"],
                            [now_ns] * 5, values)
        if rul is not None and rul.low <= cfg.work_order_rul_h:
            self._work_order(st, rul, now_ns)

    def _work_order(self, st: MachineState, rul: RulEstimate, now_ns: int) -> None:
        assert self.config is not None and self.store is not None
        fault = FAULT_LABELS[FAULT_CODES[st.fault]]
        if fault == "normal":
            fault = "bearing wear (no defect line identified)"
        hour = 3_600_000_000_000
        failure = now_ns + round(rul.rul * hour)
        low = now_ns + round(rul.low * hour)
        due = max(now_ns, low - round(self.config.work_order_margin_h * hour))
        pred = Prediction(fault, round(st.confidence, 4), now_ns, failure, low, due, rul.rul, rul.low)
        if not st.work_order_raised:
            order = self.store.create(st.config.equipment, pred,
                                      note=f"Spindle bearing: RUL {rul.rul:.1f} h ({rul.low:.1f}-{rul.high:.1f} h)")
            st.work_order_raised = True
            log.info("maintenance work order %s for %s: %s", order.number, order.equipment, fault)
            return
        open_order = self.store.open_for(st.config.equipment)
        if open_order is not None:
            self.store.update_prediction(open_order.id, pred)

    def _replaced(self, st: MachineState, now_ns: int) -> None:
        """New bearing: keep only the new bearing's points, close the open order, allow a new one."""
        assert self.store is not None
        with self._lock:
            keep_t, keep_d = list(st.points_t)[-3:], list(st.points_d)[-3:]
            st.points_t.clear()
            st.points_d.clear()
            st.points_t.extend(keep_t)
            st.points_d.extend(keep_d)
            st.probs.clear()
            st.rul = None
            st.replacements += 1
            st.work_order_raised = False
        order: WorkOrder | None = self.store.open_for(st.config.equipment)
        if order is not None:
            self.store.close(order.id, "maintenance", "bearing replaced: vibration back at a new bearing's level",
                             now_ns=now_ns)
        log.info("maintenance: %s has a new bearing", st.config.equipment)


def load_rul_interval(config: MaintenanceConfig, data_dir: Path) -> tuple[IntervalCalibration | None, dict[str, Any]]:
    """The RUL interval calibration ``config.rul_interval`` names (default root ``<data_dir>/models``) and what
    health shows of it; (None, bootstrap) when none is named. ShopfloorError for an artifact that is missing,
    not a calibration, or learnt with other trend settings than the config's."""
    choice = config.rul_interval
    if choice is None:
        return None, {"kind": "bootstrap", "calibrated": False}
    from shopfloor.apps import artifacts

    root = Path(choice.root) if choice.root else data_dir / "models"
    model, meta = artifacts.load(root, choice.name, choice.version)
    if not isinstance(model, IntervalCalibration):
        raise ShopfloorError(f"artifact {meta.name} v{meta.version} is not an RUL interval calibration")
    try:
        model.check(trend_settings(config))
    except CalibrationError as exc:
        raise ShopfloorError(f"artifact {meta.name} v{meta.version}: {exc}") from None
    return model, {"kind": "calibrated", "calibrated": True, "name": meta.name, "version": meta.version,
                   "coverage": model.coverage, "metrics": meta.metrics}


def trend_settings(config: MaintenanceConfig) -> TrendSettings:
    """How this service fits the trend, for a calibration to be checked against (rulinterval.py)."""
    return TrendSettings(onset_fraction=config.onset_fraction, max_points=config.max_points, bucket_s=config.bucket_s,
                         min_speed_frac=config.min_speed_frac, horizon_h=config.horizon_h)


__all__ = ["DEAD_LETTER_SOURCE", "MaintenanceService", "Window", "WindowError", "decode_window", "load_rul_interval",
           "trend_settings"]
