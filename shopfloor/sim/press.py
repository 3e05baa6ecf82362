"""A legacy hydraulic press, the kind of machine that only speaks Modbus TCP.

Kept apart from machines.py because it is not on the part flow of the line: it
presses its own blanks at a fixed stroke rate, so adding it leaves every other
machine's values alone (its random numbers come from its own generator).

Physics: a stroke has phases (approach, pressing, hold, return); the press force
rises to its nominal value during pressing and holds it, the hydraulic pressure
is force over piston area plus the circuit's standby pressure, and the oil
temperature follows the pump's heat with a first-order lag of many minutes.
Breakdowns are a Poisson process while running (log-normal repair), short
material stops one while running too (idle, exponential duration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from shopfloor.sim.machines import DOWN, IDLE, RUNNING, STATES, Noise, Signal, lag, machine_rng, per_step


@dataclass(frozen=True, slots=True)
class PressParams:
    """One hydraulic press."""

    stroke_time_s: float = 6.0
    nominal_force_kn: float = 800.0
    piston_area_m2: float = 0.045  # 800 kN on 0.045 m2: about 178 bar
    standby_bar: float = 12.0  # circulating pressure with the pump on
    ambient_c: float = 24.0
    oil_running_c: float = 48.0  # steady-state oil temperature while stroking
    oil_idle_c: float = 34.0  # ... with the pump on, not stroking
    oil_tau_s: float = 1200.0
    breakdown_mtbf_h: float = 10.0  # of running time
    breakdown_repair_s: float = 1200.0  # median, log-normal
    stop_mtbf_h: float = 3.0
    stop_s: float = 180.0  # mean, exponential


PUMP_STATES: Final = {0: "off", 1: "on"}

PRESS_SIGNALS: Final = (
    Signal("state", "", "enum", None, "Press state", STATES, 0),
    Signal("stroke_count", "strokes", "int64", None, "Strokes completed (monotonic)", None, 0),
    Signal("press_force", "kN", "float64", (0.0, 1200.0), "Press force", None, 1),
    Signal("hydraulic_pressure", "bar", "float64", (0.0, 300.0), "Hydraulic pressure", None, 1),
    Signal("oil_temperature", "°C", "float64", (-20.0, 120.0), "Hydraulic oil temperature", None, 1),
    Signal("pump_on", "", "enum", None, "Hydraulic pump running (a discrete input)", PUMP_STATES, 0),
    Signal("pressure_setpoint", "bar", "float64", (0.0, 300.0), "Pressure limit (a writable holding register)",
           None, 1),
)


class Press:
    """Strokes while running; the pump stays on when idle and stops when the press is down."""

    signals = PRESS_SIGNALS

    def __init__(self, name: str, params: PressParams, seed: int, dt: float) -> None:
        self.name = name
        self.p = params
        self.dt = dt
        rng = machine_rng(seed, name)
        self.count = float(rng.integers(100_000, 2_000_000))  # a press with a past
        self._noise = Noise(rng, 5, 2)
        self.a_oil = lag(params.oil_tau_s, dt)
        self.p_break = per_step(params.breakdown_mtbf_h, dt)
        self.p_stop = per_step(params.stop_mtbf_h, dt)
        self.state = RUNNING
        self.timer = 0.0
        self.phase = 0.0  # seconds into the current stroke
        self.oil = params.oil_idle_c
        self.pressure_setpoint = 200.0  # bar; written over Modbus (remote control): caps the press force

    def step(self) -> list[float]:
        """Advance one step. Returns the signal values."""
        p, dt = self.p, self.dt
        z, u = self._noise.next()
        if self.state != RUNNING:
            self.timer -= dt
            if self.timer <= 0.0:
                self.state = RUNNING
        elif u[0] < self.p_break:
            self.state = DOWN
            self.timer = max(p.breakdown_repair_s * math.exp(0.6 * z[3]), dt)
        elif u[1] < self.p_stop:
            self.state = IDLE
            self.timer = max(p.stop_s * -math.log1p(-min(u[1] / self.p_stop, 0.999999)), dt)
        force = 0.0
        if self.state == RUNNING:
            self.phase += dt
            strokes = math.floor(self.phase / p.stroke_time_s)
            self.count += strokes
            self.phase -= strokes * p.stroke_time_s
            phi = self.phase / p.stroke_time_s
            if 0.25 <= phi < 0.45:  # pressing: force builds up
                force = p.nominal_force_kn * (phi - 0.25) / 0.2
            elif 0.45 <= phi < 0.7:  # hold
                force = p.nominal_force_kn * (1.0 + 0.01 * z[0])
        cap = max(self.pressure_setpoint - p.standby_bar, 0.0) * 100.0 * p.piston_area_m2
        force = min(force, cap)
        pump = self.state != DOWN
        target = p.oil_running_c if self.state == RUNNING else p.oil_idle_c if pump else p.ambient_c
        self.oil += (target - self.oil) * self.a_oil
        pressure = force / (100.0 * p.piston_area_m2) + (p.standby_bar if pump else 0.0)
        if pump:
            pressure *= 1.0 + 0.005 * z[1]
        return [float(self.state), self.count, force, pressure, self.oil + 0.05 * z[2], float(pump),
                self.pressure_setpoint]


__all__ = ["PRESS_SIGNALS", "PUMP_STATES", "Press", "PressParams"]
