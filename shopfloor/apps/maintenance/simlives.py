"""Run-to-failure histories of the virtual factory's spindle bearings, as the maintenance service sees them.

What a plant has after some bearing failures: for each bearing life, the trend of the health indicator and
the time the bearing failed. Here the lives are simulated: the line's CNCs (``machines.Cnc``, the same
classes, seeds and step as ``VirtualFactory``) and the conveyor that feeds them run for ``hours`` of sim
time per seed; each step's spindle speed and vibration are rounded as the factory publishes them, and turned
into trend points exactly as the service does (``service.py``: samples at ``min_speed_frac`` of rated speed
or more, ``(vibration - idle) / (speed / rated) - baseline``, the median per ``bucket_s`` bucket of at least
three samples). A life ends at the step the bearing fails; the next starts when the new bearing is in. The
last life of each CNC, unfinished when the run ends, is dropped (no failure time). The first life of each
CNC starts with a part-worn bearing, as the demo's do.

The robot, the meters and the press of the factory draw from their own generators and do not act on the
CNCs, so they are left out: with the same seed and step the CNC streams are the factory's, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.maintenance.rulinterval import Life
from shopfloor.sim.factory import DEFAULT_CNCS
from shopfloor.sim.machines import CNC_SIGNALS, REASON_BEARING, RUNNING, Cnc, CncParams, Conveyor, ConveyorParams

FloatArray = NDArray[np.float64]
_SPEED = next(i for i, s in enumerate(CNC_SIGNALS) if s.name == "spindle_speed")
_VIB = next(i for i, s in enumerate(CNC_SIGNALS) if s.name == "vibration")


@dataclass(frozen=True, slots=True)
class SimLivesParams:
    """What the simulated lives depend on (their hash stands in for a data hash in the artifact)."""

    seeds: tuple[int, ...]
    hours: float = 150.0
    step_s: float = 2.0
    cncs: tuple[CncParams, ...] = field(default_factory=lambda: tuple(DEFAULT_CNCS))
    conveyor: ConveyorParams = field(default_factory=ConveyorParams)
    bucket_s: float = 60.0
    min_speed_frac: float = 0.5

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("no seeds: no lives")
        if not (self.hours > 0 and self.step_s > 0 and self.bucket_s >= 3 * self.step_s and self.min_speed_frac > 0):
            raise ValueError(f"bad simulation parameters: hours {self.hours}, step {self.step_s} s, bucket "
                             f"{self.bucket_s} s (at least three steps), min speed fraction {self.min_speed_frac}")
        if not self.cncs:
            raise ValueError("the line needs at least one CNC")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def sha256(self) -> str:
        """Hash of every parameter, the CNCs' and conveyor's included: the same hash, the same lives."""
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _trend(ts_s: FloatArray, speed: FloatArray, vib: FloatArray, p: CncParams, bucket_s: float,
           min_frac: float) -> tuple[FloatArray, FloatArray]:
    """The service's trend points (bucket middle in s, median indicator) from one CNC's published samples."""
    ratio = speed / p.rated_speed_rpm
    ok = ratio >= min_frac
    d = (vib[ok] - p.vib_idle_mm_s) / ratio[ok] - p.vib_base_mm_s
    bucket = np.floor(ts_s[ok] / bucket_s).astype(np.int64)
    ids, start, count = np.unique(bucket, return_index=True, return_counts=True)
    full = count >= 3
    medians = np.array([np.median(d[s:s + c]) for s, c in zip(start[full], count[full], strict=True)])
    return (ids[full] + 0.5).astype(np.float64) * bucket_s, medians.astype(np.float64).reshape(-1)


def simulate_seed(params: SimLivesParams, seed: int) -> list[Life]:
    """The finished bearing lives of every CNC of the line in one run of ``params.hours``."""
    dt = params.step_s
    cncs = [Cnc(f"cnc{i + 1}", p, seed, dt) for i, p in enumerate(params.cncs)]
    conveyor = Conveyor("conveyor1", params.conveyor, seed, dt)
    n = round(params.hours * 3600.0 / dt)
    k = len(cncs)
    speed: list[float] = []
    vib: list[float] = []
    failures: list[tuple[int, int]] = []  # (CNC, step)
    for s in range(n):
        conveyor.step(any(c.state == RUNNING for c in cncs), 0.0)
        feed_ok = conveyor.feeding
        for j, c in enumerate(cncs):
            was = c.reason
            v = c.step(feed_ok)
            speed.append(v[_SPEED])
            vib.append(v[_VIB])
            if c.reason == REASON_BEARING and was != REASON_BEARING:
                failures.append((j, s))
    # As published: rounded to the signal's resolution, clipped to its range (machines.Quantizer).
    sp_sig, vb_sig = CNC_SIGNALS[_SPEED], CNC_SIGNALS[_VIB]
    sp = np.clip(np.round(np.array(speed).reshape(n, k), sp_sig.decimals), *(sp_sig.range or (-np.inf, np.inf)))
    vb = np.clip(np.round(np.array(vib).reshape(n, k), vb_sig.decimals), *(vb_sig.range or (-np.inf, np.inf)))
    ts = (np.arange(n, dtype=np.float64) + 1.0) * dt  # a step's values carry the time after it, as frames do
    lives: list[Life] = []
    for j, p in enumerate(params.cncs):
        t_pts, d_pts = _trend(ts, sp[:, j], vb[:, j], p, params.bucket_s, params.min_speed_frac)
        begin = 0.0
        for life, (_, step) in enumerate(f for f in failures if f[0] == j):
            fail_s = float(ts[step])
            sel = (t_pts > begin) & (t_pts <= fail_s)
            lives.append(Life(f"seed {seed} cnc{j + 1} life {life + 1}", t_pts[sel] / 3600.0, d_pts[sel],
                              fail_s / 3600.0, p.vib_wear_mm_s))
            begin = fail_s
    return lives


def simulate_lives(params: SimLivesParams) -> list[Life]:
    """The finished lives of every seed, in seed order."""
    return [life for seed in params.seeds for life in simulate_seed(params, seed)]


__all__ = ["Life", "SimLivesParams", "simulate_lives", "simulate_seed"]
