"""Spindle bearing vibration of the virtual factory's CNCs: raw accelerometer windows over MQTT.

Each CNC's spindle bearing already wears in ``machines.Cnc`` (Weibull life, vibration RMS rising with the
cube of wear: the P-F curve, failure at full wear, repair, new bearing). This extension gives that bearing
an accelerometer: every ``every_s`` sim seconds, while the spindle turns, it records one window
(``samples`` at ``fs``) of what a bearing with that wear sounds like and publishes it on
``{topic_prefix}/{cnc}``.

The signal (``bearing_window``), in g:
* a local defect on the race or a ball is struck once per pass, at the defect frequency of the bearing
  geometry and the spindle speed (BPFO, BPFI via ``BearingGeometry``; a ball defect at 2 x BSF, hitting
  the outer race and, more softly, the inner race once each per spin), with 1 % random slip of the
  rolling elements; each strike rings a structural resonance (a damped two-pole resonator, kHz);
* the strikes are amplitude-modulated as the defect passes through the load zone: an inner-race defect
  turns with the shaft (modulation at shaft speed), a ball defect with the cage (at FTF), an outer-race
  defect stays put (no modulation); each strike also varies by 10 %;
* 1x and 2x shaft-speed tones (residual unbalance, misalignment), growing with speed squared;
* broadband Gaussian noise (the machine, the cutting, the sensor).
The fault type (inner / outer / ball) is drawn once per bearing life from the extension's own generator,
and the strike amplitude is ``impact_g * wear**3``, the same P-F curve as the CNC's vibration RMS tag, so
the windows and the tags tell one story. A new bearing (wear drops) draws a new fault type.

Wire format (one MQTT message per window, QoS 0): a 2-byte big-endian header length ``H``, ``H`` bytes of
UTF-8 JSON (``equipment`` path, ``ts_ms`` of the window's start, ``fs`` in Hz, ``rpm``, ``n`` samples,
``dtype: "float32"``, ``unit: "g"``), then ``n`` little-endian float32 samples. Windows go straight to the
maintenance service, not through the historian (32 KiB each is a signal, not a tag).

Cost: ``on_step`` only notes (time, speed, wear) when a window is due; a worker thread synthesises and
publishes (about a millisecond per window). Its queue is bounded: in fast-forward the stepping waits for
the worker rather than dropping windows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from scipy import signal as sps

from shopfloor.apps.maintenance.signal import BearingGeometry
from shopfloor.core.errors import NotReady
from shopfloor.sim.extension import Broker
from shopfloor.sim.machines import CncParams

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
FAULTS: Final = ("inner", "outer", "ball")
# An angular-contact spindle bearing (7010-size: 16 balls of 7.9 mm on a 65 mm pitch circle, 25 degrees).
SPINDLE_BEARING: Final = BearingGeometry(n_balls=16, ball_diameter=7.9, pitch_diameter=65.0, contact_angle_deg=25.0)


@dataclass(frozen=True, slots=True)
class VibrationParams:
    """The accelerometer on each spindle and the bearing it listens to."""

    fs: float = 25_600.0  # a common condition-monitoring sampling rate (10 kHz band)
    samples: int = 8192  # 0.32 s: 3.1 Hz resolution, dozens of defect strikes per window
    every_s: float = 10.0  # sim seconds between windows of one CNC
    min_speed_frac: float = 0.25  # record only while the spindle turns at least this fraction of rated speed
    geometry: BearingGeometry = SPINDLE_BEARING
    resonance_hz: float = 7_800.0  # the structural mode the strikes ring
    damping: float = 0.05  # its damping ratio: decays in about 0.4 ms
    impact_g: float = 6.0  # strike amplitude at full wear (times wear**3)
    noise_g: float = 0.08  # broadband noise, RMS
    shaft_g: float = 0.05  # 1x tone at rated speed (2x is half of it)
    slip: float = 0.01  # random slip of the rolling elements, relative
    fault_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)  # inner, outer, ball


def defect_hz(fault: str, rpm: float, geometry: BearingGeometry) -> float:
    """Characteristic frequency of a defect: BPFI, BPFO, or BSF (a ball defect strikes at 2 x BSF: once on
    each race per spin)."""
    f = geometry.frequencies(rpm / 60.0)
    return {"inner": f["bpfi"], "outer": f["bpfo"], "ball": f["bsf"]}[fault]


def bearing_window(
    rng: np.random.Generator, fault: str, severity: float, rpm: float, rated_rpm: float,
    params: VibrationParams = VibrationParams(),
) -> F32:
    """One accelerometer window (g) of a bearing with a ``fault`` of ``severity`` (0: none, 1: failing)."""
    p = params
    n, fs = p.samples, p.fs
    shaft = rpm / 60.0
    t = np.arange(n) / fs
    ratio = rpm / rated_rpm
    phase = rng.uniform(0.0, 2.0 * np.pi, 3)
    x = p.shaft_g * ratio * ratio * (np.sin(2 * np.pi * shaft * t + phase[0]) + 0.5 * np.sin(4 * np.pi * shaft * t))
    x += p.noise_g * rng.standard_normal(n)
    if severity > 0.0 and fault in FAULTS:
        rate = defect_hz(fault, rpm, p.geometry) * (2.0 if fault == "ball" else 1.0)
        count = int(n / fs * rate) + 2
        gaps = (1.0 + p.slip * rng.standard_normal(count)) / rate
        times = rng.uniform(0.0, 1.0 / rate) + np.cumsum(gaps) - gaps[0]
        keep = times < n / fs
        times = times[keep]
        if fault == "inner":  # the defect turns with the shaft through the load zone
            load = 0.55 + 0.45 * np.cos(2 * np.pi * shaft * times + phase[1])
        elif fault == "ball":  # the ball goes round with the cage
            ftf = p.geometry.frequencies(shaft)["ftf"]
            load = 0.55 + 0.45 * np.cos(2 * np.pi * ftf * times + phase[1])
        else:
            load = np.ones(times.size)
        if fault == "ball":  # a spinning ball strikes the outer race, then (more softly) the inner race
            load = load * np.where(np.arange(count)[keep] % 2 == 0, 1.0, 0.5)
        train = np.zeros(n)
        np.add.at(train, (times * fs).astype(np.int64), load * (1.0 + 0.1 * rng.standard_normal(times.size)))
        # A two-pole resonator: each unit strike rings as exp(-zeta*w*t)*sin(wd*t), peak about 1.
        w = 2 * np.pi * p.resonance_hz
        r = math.exp(-p.damping * w / fs)
        theta = w * math.sqrt(1.0 - p.damping**2) / fs
        ring = sps.lfilter([math.sin(theta)], [1.0, -2.0 * r * math.cos(theta), r * r], train)
        x += p.impact_g * severity * ring * ratio  # strikes are harder at speed
    return np.asarray(x, dtype=np.float32)


def encode_window(equipment: str, ts_ms: int, fs: float, rpm: float, samples: npt.ArrayLike) -> bytes:
    """The wire format of one window (module docstring)."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    header = json.dumps({"equipment": equipment, "ts_ms": int(ts_ms), "fs": fs, "rpm": round(float(rpm), 1),
                         "n": int(data.size), "dtype": "float32", "unit": "g"}, separators=(",", ":")).encode()
    return struct.pack(">H", len(header)) + header + data.tobytes()


@dataclass
class _Bearing:
    """What the extension remembers of one CNC's bearing."""

    name: str
    path: str
    rated_rpm: float
    rng: np.random.Generator
    fault: str = "outer"
    wear: float = 0.0
    lives: int = 0
    next_ns: int = 0
    published: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)  # (ts_ns, fault) of each bearing life


class VibrationExtension:
    """Accelerometer windows of every CNC's spindle bearing (see the module docstring)."""

    name = "vibration"

    def __init__(
        self, seed: int, cncs: Sequence[CncParams] | None = None, params: VibrationParams = VibrationParams(),
        *, topic_prefix: str = "shopfloor/vibration", alarm_rul_h: float = 8.0, health_alarm_pct: float = 40.0,
        work_order_rul_h: float | None = None, work_order_margin_h: float = 2.0, queue_size: int = 64,
    ) -> None:
        """``cncs``: the factory's CNC parameters (the line's defaults if None), for rated speeds and the
        vibration model the maintenance service is told about. ``alarm_rul_h``: the maintenance alarm fires
        when the RUL interval's lower bound drops below it; work orders at ``work_order_rul_h`` (the same
        by default), due ``work_order_margin_h`` before the predicted failure."""
        from shopfloor.sim.factory import DEFAULT_CNCS

        self.seed = seed
        self.cnc_params = tuple(DEFAULT_CNCS if cncs is None else cncs)
        self.params = params
        self.topic_prefix = topic_prefix.rstrip("/")
        self.alarm_rul_h = alarm_rul_h
        self.health_alarm_pct = health_alarm_pct
        self.work_order_rul_h = alarm_rul_h if work_order_rul_h is None else work_order_rul_h
        self.work_order_margin_h = work_order_margin_h
        self._bearings: dict[str, _Bearing] = {}
        self._paths: dict[str, str] = {}
        self._queue: queue.Queue[tuple[_Bearing, int, float, float, str] | None] = queue.Queue(queue_size)
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self.published = 0
        self.errors = 0

    # ------------------------------------------------------------------ plant

    def extend_plant(self, plant: dict[str, Any]) -> None:
        """A ``<cnc>-health`` equipment of derived tags beside each CNC, its maintenance alarms, and the
        ``maintenance:`` section that switches the platform's maintenance service on."""
        site = plant["site"]
        machines: list[dict[str, Any]] = []
        rules: list[dict[str, Any]] = []
        k = 0
        for area in site["areas"]:
            for line in area["lines"]:
                for cell in line.get("cells", []):
                    base = f"{site['name']}/{area['name']}/{line['name']}/{cell['name']}"
                    for eq in list(cell["equipment"]):
                        if eq.get("type") != "cnc" or k >= len(self.cnc_params):
                            continue
                        p = self.cnc_params[k]
                        k += 1
                        path, health = f"{base}/{eq['name']}", f"{base}/{eq['name']}-health"
                        self._paths[eq["name"]] = path
                        cell["equipment"].append(_health_equipment(eq["name"]))
                        machines.append({
                            "equipment": path, "health": health, "rated_rpm": p.rated_speed_rpm,
                            "baseline_mm_s": p.vib_base_mm_s, "idle_mm_s": p.vib_idle_mm_s,
                            "failure_level_mm_s": p.vib_wear_mm_s,
                        })
                        rules += self._rules(eq["name"], health)
        g = self.params.geometry
        plant.setdefault("alarms", {}).setdefault("rules", []).extend(rules)
        plant["maintenance"] = {
            "topic": f"{self.topic_prefix}/#",
            "bearing": {"n_balls": g.n_balls, "ball_diameter": g.ball_diameter, "pitch_diameter": g.pitch_diameter,
                        "contact_angle_deg": g.contact_angle_deg},
            "envelope_band_hz": [round(self.params.resonance_hz - 2400.0), round(self.params.resonance_hz + 2400.0)],
            "work_order_rul_h": self.work_order_rul_h,
            "work_order_margin_h": self.work_order_margin_h,
            "machines": machines,
        }

    def _rules(self, name: str, health: str) -> list[dict[str, Any]]:
        return [
            {"name": f"{name}-bearing-rul", "type": "expression", "equipment": health,
             "expression": f"rul_low < {self.alarm_rul_h:g}", "priority": "high",
             "message": f"Spindle bearing predicted to fail within {self.alarm_rul_h:g} h (RUL lower bound): "
                        "plan the bearing change (see the maintenance work order)"},
            {"name": f"{name}-bearing-health", "type": "limit", "tag": f"{health}/health_index",
             "l": self.health_alarm_pct, "deadband": 2, "on_delay_s": 60, "priority": "medium",
             "message": "Spindle bearing health index low: the bearing is degrading"},
        ]

    # ------------------------------------------------------------------ stepping

    def on_step(self, factory: VirtualFactory) -> None:
        """Note a window for each CNC whose window is due and whose spindle turns; synthesis is the worker's."""
        now = factory.now_ns
        for i, cnc in enumerate(factory.cncs):
            b = self._bearings.get(cnc.name)
            if b is None:
                b = self._bearing(cnc.name, cnc.p.rated_speed_rpm, now, i)
            if cnc.wear < b.wear - 1e-9:  # a new bearing: a new life, a new fault type
                self._new_life(b, now)
            b.wear = cnc.wear
            if now < b.next_ns or cnc.speed < self.params.min_speed_frac * b.rated_rpm:
                continue
            b.next_ns = now + round(self.params.every_s * 1e9)
            if self._thread is not None:
                self._queue.put((b, now // 1_000_000, cnc.speed, cnc.wear, b.fault))

    def _bearing(self, name: str, rated_rpm: float, now: int, index: int) -> _Bearing:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(f"vib-{name}".encode()),)))
        path = self._paths.get(name, name)
        b = _Bearing(name, path, rated_rpm, rng, next_ns=now)
        self._new_life(b, now)
        self._bearings[name] = b
        return b

    def _new_life(self, b: _Bearing, now: int) -> None:
        w = np.asarray(self.params.fault_weights, dtype=np.float64)
        b.fault = FAULTS[int(b.rng.choice(len(FAULTS), p=w / w.sum()))]
        b.lives += 1
        b.log.append((now, b.fault))

    def fault_of(self, cnc: str) -> str | None:
        """The fault type of that CNC's current bearing (None before its first step)."""
        b = self._bearings.get(cnc)
        return None if b is None else b.fault

    # ------------------------------------------------------------------ life

    def start(self, broker: Broker) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shopfloor-sim-vibration-{self.seed}")
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        client.on_connect = lambda c, u, f, reason, p: None if reason.is_failure else self._connected.set()
        client.connect_async(broker.host, broker.port)
        client.loop_start()
        if not self._connected.wait(10.0):
            client.loop_stop()
            raise NotReady(f"MQTT broker {broker.host}:{broker.port} did not accept the vibration client")
        self._client = client
        self._thread = threading.Thread(target=self._run, name="shopfloor-sim-vibration", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(10.0)
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _run(self) -> None:
        last: mqtt.MQTTMessageInfo | None = None
        while (job := self._queue.get()) is not None:
            b, ts_ms, rpm, wear, fault = job
            try:
                x = bearing_window(b.rng, fault, wear**3, rpm, b.rated_rpm, self.params)
                payload = encode_window(b.path, ts_ms, self.params.fs, rpm, x)
                assert self._client is not None
                last = self._client.publish(f"{self.topic_prefix}/{b.name}", payload, qos=0)
                b.published += 1
                self.published += 1
            except Exception:  # one bad window must not end the accelerometers
                self.errors += 1
                log.exception("vibration window of %s failed", b.name)
        if last is not None and last.rc == mqtt.MQTT_ERR_SUCCESS:
            with contextlib.suppress(RuntimeError, ValueError):
                last.wait_for_publish(5.0)


def _health_equipment(cnc: str) -> dict[str, Any]:
    """The derived tags the maintenance service writes for one CNC."""
    from shopfloor.sim.plant import _Flow, _FlowList

    def tag(name: str, unit: str, description: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "description": description, "unit": unit, "type": "float64", **extra}

    return {
        "name": f"{cnc}-health", "type": "health",
        "description": f"Spindle bearing condition of {cnc}, computed by the maintenance service",
        "source": _Flow(protocol="derived", app="maintenance"),
        "tags": [
            tag("health_index", "%", "Bearing health index (100: new, 0: at the failure level)",
                range=_FlowList([0, 100])),
            tag("degradation", "mm/s", "Vibration over the healthy level at rated speed (the RUL model's input)"),
            tag("rul", "h", "Remaining useful life, point estimate"),
            tag("rul_low", "h", "Remaining useful life, lower bound of the 80 % interval"),
            tag("rul_high", "h", "Remaining useful life, upper bound of the 80 % interval"),
            {"name": "fault", "description": "Diagnosed bearing fault (envelope analysis)", "type": "enum",
             "states": _Flow({0: "normal", 1: "inner race", 2: "outer race", 3: "ball"})},
            tag("fault_confidence", "%", "Confidence of the diagnosed fault", range=_FlowList([0, 100])),
            tag("defect_level", "dB", "Strongest defect line of the envelope spectrum over its floor"),
        ],
    }


__all__ = [
    "FAULTS", "SPINDLE_BEARING", "VibrationExtension", "VibrationParams", "bearing_window", "defect_hz",
    "encode_window",
]
