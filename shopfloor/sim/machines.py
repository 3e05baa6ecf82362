"""Machine models of the virtual factory: CNC machining centres, a conveyor, a robot and energy meters.

Physics, kept simple but causal, so that analytics built on the data find what
a real plant would show:

* CNC: a part completes every cycle time while running. A cycle has phases
  (load/unload with the spindle stopped, roughing at high load, finishing at full
  speed and lower load, retract); spindle speed follows its set point with a short
  first-order lag. Spindle power is rated power x speed ratio x load. Bearing
  temperature follows speed, load and bearing wear with a first-order lag
  (minutes). Bearing wear accumulates with spindle revolutions at a rate drawn
  per bearing (Weibull life); vibration rises with the cube of wear (a P-F curve:
  hours of warning), temperature with its square; at full wear the bearing fails
  (down, hours of repair, then a new bearing). Tool wear grows per part, raises
  cutting load and scrap, and at 100 % forces a tool change (setup). Random
  stoppages are Poisson processes while running: material starvation (idle,
  exponential duration) and short breakdowns (down, log-normal repair).
* Conveyor: runs while any CNC runs, idles otherwise, breaks down now and then;
  while it is down the CNCs starve. Belt speed lags its set point; motor current
  follows belt speed and the parts waiting on the belt.
* Robot: unloads every finished part (good or scrap) in a pick-and-place cycle;
  joint torques follow the cycle phase, gravity and the payload.
* Energy meter: active power of its machine with class-0.5 noise, the energy
  register (the integral of the true power), the plant's grid voltage (an
  Ornstein-Uhlenbeck process) less a load-dependent drop, and a power factor that
  is poor at light load, as an induction motor's is. A rare communication glitch
  reports the instantaneous values as null.

Determinism: each machine draws from its own numpy Generator, seeded from the
factory seed and the machine's name, in blocks of fixed size and content that
never depend on the machine's state. One seed gives bit-identical streams
whatever the wall clock, and adding a machine leaves the others' streams alone.

Speed: a machine's step is a few dozen float operations on Python floats, which
for single values is an order of magnitude cheaper than numpy calls; the random
numbers come from numpy in blocks, and rounding and range clipping of all
values is one vectorised pass per frame (``Quantizer``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# Machine state codes, the same for every machine.
RUNNING: Final = 0
IDLE: Final = 1
DOWN: Final = 2
SETUP: Final = 3
STATES: Final[Mapping[int, str]] = {RUNNING: "running", IDLE: "idle", DOWN: "down", SETUP: "setup"}

# Why a CNC is not running.
REASON_NONE: Final = 0
REASON_STARVED: Final = 1
REASON_BREAKDOWN: Final = 2
REASON_BEARING: Final = 3
REASON_TOOL_CHANGE: Final = 4
REASON_OPERATOR: Final = 5  # stopped by a remote command (shopfloor.sim.commands)
STOP_REASONS: Final[Mapping[int, str]] = {
    REASON_NONE: "none",
    REASON_STARVED: "starved",
    REASON_BREAKDOWN: "breakdown",
    REASON_BEARING: "bearing failure",
    REASON_TOOL_CHANGE: "tool change",
    REASON_OPERATOR: "operator stop",
}

NOISE_BLOCK: Final = 512  # steps of random numbers drawn at once per machine


@dataclass(frozen=True, slots=True)
class Signal:
    """One published value of a device: a tag in plant.yaml, a metric (Sparkplug) or a key (JSON)."""

    name: str
    unit: str
    type: Literal["float64", "int64", "enum"] = "float64"
    range: tuple[float, float] | None = None
    description: str = ""
    states: Mapping[int, str] | None = None
    decimals: int = 3  # resolution of the reading; values are rounded to it


@dataclass(frozen=True, slots=True)
class Device:
    """A publishing device: its place in the line and what it sends."""

    name: str
    kind: Literal["cnc", "conveyor", "robot", "energy_meter"]
    protocol: Literal["sparkplug", "json"]
    cell: str | None  # None: equipment of the line itself
    signals: tuple[Signal, ...]
    description: str = ""


def machine_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one machine, from the seed and the machine's name (not its position)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


class Noise:
    """Standard normals and uniforms for one machine, drawn from its generator in blocks, served per step."""

    def __init__(self, rng: np.random.Generator, normals: int, uniforms: int) -> None:
        self._rng = rng
        self._k, self._u = normals, uniforms
        self._z: list[list[float]] = []
        self._uu: list[list[float]] = []
        self._i = NOISE_BLOCK

    def next(self) -> tuple[list[float], list[float]]:
        """(normals, uniforms) of the next step; the same count every step, whatever happens."""
        i = self._i
        if i == NOISE_BLOCK:
            self._z = self._rng.standard_normal((NOISE_BLOCK, self._k)).tolist()
            self._uu = self._rng.random((NOISE_BLOCK, self._u)).tolist()
            i = 0
        self._i = i + 1
        return self._z[i], self._uu[i]


class Quantizer:
    """Rounds each value to its signal's resolution and clips it to its engineering range (NaN stays NaN)."""

    def __init__(self, signals: Sequence[Signal]) -> None:
        self.scale = np.array([10.0**s.decimals for s in signals])
        self.low = np.array([s.range[0] if s.range else -np.inf for s in signals])
        self.high = np.array([s.range[1] if s.range else np.inf for s in signals])

    def __call__(self, values: list[float]) -> F64:
        out = np.array(values, dtype=np.float64)
        out *= self.scale
        np.rint(out, out=out)
        out /= self.scale
        np.maximum(out, self.low, out=out)  # (cheaper than np.clip for short vectors)
        np.minimum(out, self.high, out=out)
        out += 0.0  # no -0.0
        return out


def per_step(mtbf_h: float, dt: float) -> float:
    """Probability of at least one event within dt of a Poisson process with this mean time between events."""
    return -math.expm1(-dt / (mtbf_h * 3600.0))


def lag(tau_s: float, dt: float) -> float:
    """Gain of a first-order lag discretised exactly for the step: x += (target - x) * gain."""
    return -math.expm1(-dt / tau_s)


# --------------------------------------------------------------------------- CNC


@dataclass(frozen=True, slots=True)
class CncParams:
    """One CNC machining centre. Lives are compressed (hours, not years) so that faults show in a demo."""

    cycle_time_s: float = 60.0
    cycle_jitter: float = 0.02  # relative standard deviation of a part's cycle time
    rated_speed_rpm: float = 12000.0
    spindle_power_kw: float = 18.5  # at rated speed and 100 % load
    nominal_load_pct: float = 60.0  # roughing load with a new tool
    tool_load_gain: float = 0.35  # relative load rise at 100 % tool wear
    aux_power_kw: float = 2.5  # coolant, hydraulics, chip conveyor, controls while running
    ambient_c: float = 22.0
    temp_speed_c: float = 22.0  # bearing temperature rise at rated speed
    temp_load_c: float = 10.0  # ... at 100 % load
    temp_wear_c: float = 30.0  # ... with a bearing at the end of its life
    temp_tau_s: float = 900.0
    speed_tau_s: float = 0.8
    vib_idle_mm_s: float = 0.05  # background with the spindle stopped
    vib_base_mm_s: float = 1.1  # healthy bearing at rated speed
    vib_wear_mm_s: float = 8.0  # added at full wear (x wear**3)
    bearing_life_h: float = 30.0  # Weibull scale, hours at rated speed
    bearing_weibull_k: float = 2.5
    bearing_repair_s: float = 3 * 3600.0  # median, log-normal
    tool_life_parts: float = 200.0  # median, log-normal
    tool_change_s: float = 300.0
    scrap_base: float = 0.006
    scrap_tool: float = 0.08  # added with a worn-out tool (ramps in from 60 % wear)
    breakdown_mtbf_h: float = 12.0  # of running time
    breakdown_repair_s: float = 900.0  # median, log-normal
    starvation_mtbf_h: float = 4.0
    starvation_s: float = 240.0  # mean, exponential


# Auxiliary power by state, as a fraction of aux_power_kw: running, idle, down, setup.
_AUX_FRAC: Final = (1.0, 0.6, 0.25, 0.5)

CNC_SIGNALS: Final = (
    Signal("state", "", "enum", None, "Machine state", STATES, 0),
    Signal("stop_reason", "", "enum", None, "Why the machine is not running", STOP_REASONS, 0),
    Signal("spindle_speed", "rpm", "float64", (0.0, 15000.0), "Spindle speed", None, 0),
    Signal("spindle_load", "%", "float64", (0.0, 150.0), "Spindle load (% of rated torque)", None, 1),
    Signal("spindle_power", "kW", "float64", (0.0, 60.0), "Spindle drive power", None, 2),
    Signal("vibration", "mm/s", "float64", (0.0, 50.0), "Spindle vibration velocity, RMS", None, 2),
    Signal("bearing_temp", "°C", "float64", (0.0, 150.0), "Spindle bearing temperature", None, 1),
    Signal("parts_good", "parts", "int64", None, "Good parts made (monotonic)", None, 0),
    Signal("parts_scrap", "parts", "int64", None, "Scrapped parts (monotonic)", None, 0),
    Signal("cycle_time", "s", "float64", (0.0, 600.0), "Cycle time of the last part", None, 1),
    Signal("tool_wear", "%", "float64", (0.0, 100.0), "Tool wear (100 % forces a tool change)", None, 1),
    Signal("bearing_health", "%", "float64", (0.0, 100.0), "Remaining spindle bearing life", None, 1),
    Signal("feed_override", "%", "float64", (0.0, 150.0), "Feed rate override (set by remote command)", None, 0),
)


class Cnc:
    """A CNC machining centre (see the module docstring for its physics)."""

    signals = CNC_SIGNALS

    def __init__(self, name: str, params: CncParams, seed: int, dt: float) -> None:
        p = params
        self.name = name
        self.p = p
        self.dt = dt
        rng = machine_rng(seed, name)
        u0 = rng.random(4).tolist()  # initial conditions: the line has been running for a while
        self._noise = Noise(rng, 8, 5)
        self.p_break = per_step(p.breakdown_mtbf_h, dt)
        self.p_starve = per_step(p.starvation_mtbf_h, dt)
        self.a_temp = lag(p.temp_tau_s, dt)
        self.a_speed = lag(p.speed_tau_s, dt)

        self.state = RUNNING
        self.reason = REASON_NONE
        self.timer = 0.0  # time left in the current stop
        self.cycle = p.cycle_time_s  # duration of the part in work
        self.progress = u0[0] * p.cycle_time_s
        self.last_cycle = p.cycle_time_s
        self.wear = 0.6 * u0[1]  # bearings of different ages
        self.wear_rate = self._bearing_rate(u0[2])
        self.tool = 80.0 * u0[3]
        self.tool_rate = 100.0 / p.tool_life_parts  # % per part
        self.speed = 0.0
        self.temp = p.ambient_c + 0.6 * p.temp_speed_c + 0.3 * p.temp_load_c + p.temp_wear_c * self.wear**2
        self.good = 0.0
        self.scrap = 0.0
        self.power = p.aux_power_kw  # electrical power of the whole machine, for its meter
        self.parts_out = 0.0  # parts finished in the last step
        self.hold = False  # remote control: stopped by an operator until started again
        self.feed_override = 100.0  # remote control: % of the programmed feed rate

    def _bearing_rate(self, u: float) -> float:
        """Wear per second at rated speed of a new bearing: Weibull life by the inverse CDF of u."""
        p = self.p
        life_h = p.bearing_life_h * math.pow(-math.log1p(-u), 1.0 / p.bearing_weibull_k)
        return 1.0 / (max(life_h, 0.5) * 3600.0)

    def step(self, feed_ok: bool) -> list[float]:
        """Advance one step; ``feed_ok``: raw parts arrive (the conveyor is not down). Returns the signal values."""
        p, dt = self.p, self.dt
        z, u = self._noise.next()
        if self.hold:  # a remote stop holds the machine idle; a stop already under way ends first
            if self.state == RUNNING or (self.state == IDLE and self.reason == REASON_STARVED):
                self._stop(IDLE, REASON_OPERATOR, math.inf)
        elif self.reason == REASON_OPERATOR:
            self.timer = 0.0

        # Stops that end: repair or tool change done, material back.
        if self.state != RUNNING:
            self.timer -= dt
            if self.timer <= 0.0:
                if self.reason == REASON_BEARING:
                    self.wear = 0.0
                    self.wear_rate = self._bearing_rate(u[4])
                elif self.reason == REASON_TOOL_CHANGE:
                    self.tool = 0.0
                    self.tool_rate = 100.0 / (p.tool_life_parts * math.exp(0.15 * z[7]))
                if feed_ok:
                    self._stop(RUNNING, REASON_NONE, 0.0)
                else:
                    self._stop(IDLE, REASON_STARVED, 0.0)
        elif not feed_ok:
            self._stop(IDLE, REASON_STARVED, 0.0)

        # Production: parts finished in this step (more than one if the step is long).
        running = self.state == RUNNING
        self.parts_out = 0.0
        if running:
            self.progress += dt * self.feed_override / 100.0
            if self.progress >= self.cycle:
                self._finish_parts(z, u)
        self.wear += dt * self.speed / p.rated_speed_rpm * self.wear_rate

        # Events that stop a running machine, by priority.
        if running:
            if self.wear >= 1.0:
                self.wear = 1.0
                self._stop(DOWN, REASON_BEARING, p.bearing_repair_s * math.exp(0.25 * z[5]))
            elif u[0] < self.p_break:
                self._stop(DOWN, REASON_BREAKDOWN, p.breakdown_repair_s * math.exp(0.6 * z[5]))
            elif self.tool >= 100.0:
                self._stop(SETUP, REASON_TOOL_CHANGE, p.tool_change_s * (1.0 + 0.1 * abs(z[5])))
            elif u[1] < self.p_starve:
                self._stop(IDLE, REASON_STARVED, -p.starvation_s * math.log1p(-u[3]))
            running = self.state == RUNNING

        # Cycle phase: speed and load set points as fractions of rated speed and nominal load.
        speed_frac = load_frac = 0.0
        if running:
            phase = self.progress / self.cycle
            if phase >= 0.9:
                speed_frac, load_frac = 0.3, 0.06  # retract, air cut
            elif phase >= 0.55:
                speed_frac, load_frac = 1.0, 0.45  # finishing
            elif phase >= 0.08:
                speed_frac, load_frac = 0.75, 1.0  # roughing
            # else: part load/unload, spindle stopped

        rated = p.rated_speed_rpm
        self.speed += (speed_frac * rated - self.speed) * self.a_speed
        if self.speed < 1.0:
            self.speed = 0.0
        speed = self.speed * (1.0 + 0.002 * z[0])
        ratio = speed / rated
        load = load_frac * p.nominal_load_pct * (1.0 + p.tool_load_gain * self.tool / 100.0) * (1.0 + 0.04 * z[1])
        spindle_power = p.spindle_power_kw * ratio * load / 100.0 * (1.0 + 0.01 * z[2])
        self.power = p.aux_power_kw * _AUX_FRAC[self.state] + spindle_power
        w = self.wear
        target = p.ambient_c + p.temp_speed_c * ratio + p.temp_load_c * load / 100.0 + p.temp_wear_c * w * w
        self.temp += (target - self.temp) * self.a_temp
        vib = (p.vib_idle_mm_s + (p.vib_base_mm_s + p.vib_wear_mm_s * w * w * w) * ratio) * (1.0 + 0.06 * z[3])
        return [
            float(self.state),
            float(self.reason),
            speed,
            load,
            spindle_power,
            vib,
            self.temp + 0.05 * z[4],
            self.good,
            self.scrap,
            self.last_cycle,
            self.tool,
            100.0 * (1.0 - w),
            self.feed_override,
        ]

    def _stop(self, state: int, reason: int, duration: float) -> None:
        self.state = state
        self.reason = reason
        self.timer = duration  # a stop shows in at least one frame, however short

    def _finish_parts(self, z: list[float], u: list[float]) -> None:
        p = self.p
        done = math.floor(self.progress / self.cycle)
        self.progress -= done * self.cycle
        self.last_cycle = self.cycle
        self.cycle = p.cycle_time_s * (1.0 + p.cycle_jitter * z[6])
        worn = min(max((self.tool - 60.0) / 40.0, 0.0), 1.0)
        p_scrap = p.scrap_base + p.scrap_tool * worn * worn + 0.05 * self.wear**4
        scrap = min(math.floor(done * p_scrap + u[2]), done)  # stochastic rounding: exact for one part
        self.scrap += scrap
        self.good += done - scrap
        self.tool = min(self.tool + done * self.tool_rate, 100.0)
        self.parts_out = float(done)


# ---------------------------------------------------------------------- Conveyor


@dataclass(frozen=True, slots=True)
class ConveyorParams:
    """The line's belt conveyor, driven by a 2.2 kW induction motor."""

    belt_speed_m_s: float = 0.5
    speed_tau_s: float = 2.0
    current_no_load_a: float = 2.1
    current_full_load_a: float = 4.6
    base_load: float = 0.35  # belt friction, fraction of full load
    part_load: float = 0.04  # per part waiting on the belt
    voltage_v: float = 400.0
    power_factor: float = 0.8
    standby_kw: float = 0.12  # drive electronics
    breakdown_mtbf_h: float = 30.0
    breakdown_repair_s: float = 600.0  # median, log-normal


CONVEYOR_SIGNALS: Final = (
    Signal("state", "", "enum", None, "Conveyor state", STATES, 0),
    Signal("belt_speed", "m/s", "float64", (0.0, 1.0), "Belt speed", None, 3),
    Signal("motor_current", "A", "float64", (0.0, 10.0), "Drive motor current", None, 2),
)


class Conveyor:
    """The line's conveyor: feeds the CNCs (when it is down they starve) and carries their parts to the robot."""

    signals = CONVEYOR_SIGNALS

    def __init__(self, name: str, params: ConveyorParams, seed: int, dt: float) -> None:
        self.name = name
        self.p = params
        self.dt = dt
        self._noise = Noise(machine_rng(seed, name), 3, 1)
        self.a_speed = lag(params.speed_tau_s, dt)
        self.p_break = per_step(params.breakdown_mtbf_h, dt)
        self.state = RUNNING
        self.timer = 0.0
        self.speed = params.belt_speed_m_s
        self.power = params.standby_kw

    @property
    def feeding(self) -> bool:
        return self.state != DOWN

    def step(self, line_running: bool, parts_on_belt: float) -> list[float]:
        """Advance one step; ``line_running``: some CNC runs. Returns the signal values."""
        p, dt = self.p, self.dt
        z, u = self._noise.next()
        if self.state == DOWN:
            self.timer -= dt
            if self.timer <= 0.0:
                self.state = IDLE
        if self.state != DOWN:
            if self.state == RUNNING and u[0] < self.p_break:
                self.state = DOWN
                self.timer = max(p.breakdown_repair_s * math.exp(0.6 * z[2]), dt)
            else:
                self.state = RUNNING if line_running else IDLE
        target = p.belt_speed_m_s if self.state == RUNNING else 0.0
        self.speed += (target - self.speed) * self.a_speed
        if self.speed < 1e-3:
            self.speed = 0.0
        current = speed = 0.0
        if self.speed > 0.0:
            ratio = self.speed / p.belt_speed_m_s
            load = p.base_load + p.part_load * parts_on_belt
            current = (p.current_no_load_a + (p.current_full_load_a - p.current_no_load_a) * load) * ratio
            current *= 1.0 + 0.01 * z[1]
            speed = self.speed * (1.0 + 0.004 * z[0])
        self.power = p.standby_kw + math.sqrt(3.0) * p.voltage_v * current * p.power_factor / 1000.0
        return [float(self.state), speed, current]


# ------------------------------------------------------------------------- Robot


@dataclass(frozen=True, slots=True)
class RobotParams:
    """A six-axis handling robot unloading the line; the torques of its three main axes are published."""

    cycle_time_s: float = 12.0
    cycle_jitter: float = 0.02
    payload_kg: float = 8.0
    controller_kw: float = 0.45
    watts_per_nm_moving: float = 6.0
    watts_per_nm_holding: float = 1.5
    breakdown_mtbf_h: float = 60.0  # of cycling time
    breakdown_repair_s: float = 480.0  # median, log-normal
    max_queue: int = 50  # parts the end of the belt holds


ROBOT_MODES: Final[Mapping[int, str]] = {0: "auto", 1: "manual", 2: "maintenance"}  # no new cycle unless auto
ROBOT_SIGNALS: Final = (
    Signal("state", "", "enum", None, "Robot state", STATES, 0),
    Signal("cycle_count", "cycles", "int64", None, "Pick-and-place cycles completed (monotonic)", None, 0),
    Signal("torque_j1", "Nm", "float64", (-400.0, 400.0), "Base axis (J1) torque", None, 1),
    Signal("torque_j2", "Nm", "float64", (-400.0, 400.0), "Shoulder axis (J2) torque", None, 1),
    Signal("torque_j3", "Nm", "float64", (-400.0, 400.0), "Elbow axis (J3) torque", None, 1),
    Signal("mode", "", "enum", None, "Operating mode (set by remote command)", ROBOT_MODES, 0),
)


class Robot:
    """Takes each finished part off the conveyor; idle when none waits, brakes on (no torque) when down."""

    signals = ROBOT_SIGNALS

    def __init__(self, name: str, params: RobotParams, seed: int, dt: float) -> None:
        self.name = name
        self.p = params
        self.dt = dt
        self._noise = Noise(machine_rng(seed, name), 5, 1)
        self.p_break = per_step(params.breakdown_mtbf_h, dt)
        self.state = IDLE
        self.timer = 0.0
        self.queue = 0.0  # parts waiting at the end of the conveyor
        self.in_cycle = False
        self.progress = 0.0
        self.cycle = params.cycle_time_s
        self.count = 0.0
        self.power = params.controller_kw
        self.mode = 0  # remote control: auto; manual and maintenance finish the cycle under way, start none

    def step(self, parts_in: float) -> list[float]:
        """Advance one step; ``parts_in``: parts the CNCs finished. Returns the signal values."""
        p, dt = self.p, self.dt
        z, u = self._noise.next()
        self.queue = min(self.queue + parts_in, float(p.max_queue))
        if self.state == DOWN:
            self.timer -= dt
            if self.timer <= 0.0:
                self.state = IDLE
        elif self.in_cycle and u[0] < self.p_break:
            self.state = DOWN
            self.timer = max(p.breakdown_repair_s * math.exp(0.6 * z[4]), dt)
        if self.state != DOWN:
            left = dt
            while left > 0.0:  # more than one cycle per step if the step is long
                if not self.in_cycle:
                    if self.queue < 1.0 or self.mode != 0:
                        break
                    self.queue -= 1.0
                    self.in_cycle = True
                    self.cycle = p.cycle_time_s * (1.0 + p.cycle_jitter * z[3])
                take = min(left, self.cycle - self.progress)
                self.progress += take
                left -= take
                if self.progress >= self.cycle:
                    self.count += 1.0
                    self.in_cycle = False
                    self.progress = 0.0
            self.state = RUNNING if self.in_cycle else IDLE

        if self.state == DOWN:  # servo off, brakes on
            j1 = j2 = j3 = 0.0
            self.power = 0.7 * p.controller_kw
        else:
            if self.in_cycle:  # pick, carry the part (payload on J2/J3), place, return
                phi = self.progress / self.cycle
                g = 9.81 * p.payload_kg if 0.3 <= phi < 0.8 else 0.0
                j1 = 110.0 * math.sin(2.0 * math.pi * phi) * (1.0 + 0.02 * g)
                j2 = 170.0 + 60.0 * math.sin(4.0 * math.pi * phi) + 0.55 * g
                j3 = 65.0 + 28.0 * math.sin(4.0 * math.pi * phi + 1.0) + 0.25 * g
                w_per_nm = p.watts_per_nm_moving
            else:  # holding the home pose against gravity
                j1, j2, j3 = 0.0, 150.0, 55.0
                w_per_nm = p.watts_per_nm_holding
            j1 += 1.5 * z[0]
            j2 += 1.5 * z[1]
            j3 += 1.0 * z[2]
            self.power = p.controller_kw + w_per_nm * (abs(j1) + abs(j2) + abs(j3)) / 1000.0
        return [float(self.state), self.count, j1, j2, j3, float(self.mode)]


# ------------------------------------------------------------------ Energy meters


@dataclass(frozen=True, slots=True)
class MeterParams:
    """A three-phase energy meter on one machine's feeder."""

    rated_kw: float = 40.0  # of the feeder: sets the power-factor curve, the voltage drop and the power range
    pf_no_load: float = 0.2
    pf_full_load: float = 0.95
    voltage_drop_v: float = 4.0  # at rated power
    glitch_mtbf_h: float = 20.0  # communication glitches: the instantaneous values read null


def meter_signals(rated_kw: float) -> tuple[Signal, ...]:
    """A meter's signals; the power range depends on the feeder."""
    return (
        Signal("active_power", "kW", "float64", (0.0, 1.5 * rated_kw), "Active power", None, 2),
        Signal("energy", "kWh", "float64", None, "Active energy register (monotonic)", None, 3),
        Signal("voltage", "V", "float64", (0.0, 500.0), "Line-to-line voltage", None, 1),
        Signal("power_factor", "", "float64", (0.0, 1.0), "Power factor", None, 3),
    )


@dataclass(frozen=True, slots=True)
class GridParams:
    """The plant's supply voltage: an Ornstein-Uhlenbeck process around the nominal value."""

    nominal_v: float = 400.0
    sigma_v: float = 2.5
    tau_s: float = 1800.0


class Grid:
    """The supply voltage that every meter sees."""

    def __init__(self, params: GridParams, seed: int, dt: float) -> None:
        self.p = params
        rng = machine_rng(seed, "grid")
        self.voltage = params.nominal_v + params.sigma_v * float(rng.standard_normal())
        self._noise = Noise(rng, 1, 0)
        a = math.exp(-dt / params.tau_s)
        self._a, self._b = a, params.sigma_v * math.sqrt(1.0 - a * a)  # exact OU discretisation

    def step(self) -> float:
        nominal = self.p.nominal_v
        self.voltage = nominal + (self.voltage - nominal) * self._a + self._b * self._noise.next()[0][0]
        return self.voltage


class EnergyMeter:
    """Reads one machine's feeder."""

    def __init__(self, name: str, params: MeterParams, seed: int, dt: float) -> None:
        self.name = name
        self.p = params
        self.dt = dt
        self.signals = meter_signals(params.rated_kw)
        rng = machine_rng(seed, name)
        self.energy = float(rng.uniform(1e3, 5e4))  # installed long ago
        self._noise = Noise(rng, 3, 1)
        self.p_glitch = per_step(params.glitch_mtbf_h, dt)

    def step(self, power_kw: float, grid_v: float) -> list[float]:
        """Advance one step with the machine's true power. Returns the signal values."""
        p = self.p
        z, u = self._noise.next()
        self.energy += power_kw * self.dt / 3600.0
        x = power_kw / p.rated_kw
        if u[0] < self.p_glitch:
            return [math.nan, self.energy, math.nan, math.nan]
        pf = p.pf_no_load + (p.pf_full_load - p.pf_no_load) * -math.expm1(-4.0 * x) + 0.003 * z[2]
        return [power_kw * (1.0 + 0.005 * z[0]), self.energy, grid_v - p.voltage_drop_v * x + 0.2 * z[1], pf]
