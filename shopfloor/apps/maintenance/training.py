"""Train a maintenance model on its public data set, measure it, and save it as a versioned artifact.

Each trainer measures the model under the benchmark's protocol first (the figures go into the artifact's
metadata), then fits the production model on all the data it may use, and saves it with the data hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shopfloor.apps import artifacts
from shopfloor.apps.artifacts import ArtifactMeta
from shopfloor.apps.maintenance import cwru, failure, rul

if TYPE_CHECKING:
    from shopfloor.apps.maintenance.rulinterval import TrendSettings
    from shopfloor.apps.maintenance.simlives import SimLivesParams


def train_bearing(data: Path | None, out: Path) -> ArtifactMeta:
    """CWRU 10-class diagnoser; metrics: cross-load 0->1 and 1->0 accuracy (seed 0); fitted on loads 0 and 1."""
    recs = cwru.load_recordings(data)
    scores = {}
    for a, b in ((0, 1), (1, 0)):
        r = cwru.evaluate_split(cwru.cross_load_split(recs, a, b), seeds=(0,))
        scores[f"cross_load_{a}_to_{b}_accuracy"] = r.accuracy[0]
    x, y = cwru.all_windows(recs)
    t0 = time.perf_counter()
    model = cwru.BearingDiagnoser.train(x, y)
    seconds = time.perf_counter() - t0
    return artifacts.save(
        out, "bearing-cwru", model, dataset="cwru (12 kHz DE, loads 0-1 HP)", data_sha256=cwru.data_hash(data),
        train_seconds=seconds, metrics=scores, params={"window": cwru.WINDOW, "classes": list(cwru.CLASSES)},
    )


def train_rul(data: Path | None, out: Path, subset: str = "FD001", seeds: int = 5) -> ArtifactMeta:
    """C-MAPSS RUL ensemble trained on a subset's training engines; metrics on its test engines."""
    model, r = rul.evaluate_subset(subset, data, seeds=seeds)
    metrics = {k: v for k, v in asdict(r).items() if k not in ("truth", "predicted", "train_seconds")}
    return artifacts.save(
        out, f"rul-{subset.lower()}", model, dataset=f"cmapss/{subset}", data_sha256=rul.data_hash(subset, data),
        train_seconds=r.train_seconds, metrics=metrics,
        params={"cap": rul.RUL_CAP, "seeds": seeds, "lightgbm": rul.DEFAULT_PARAMS},
    )


def train_failure(data: Path | None, out: Path) -> ArtifactMeta:
    """AI4I failure classifier; metrics from stratified 5-fold CV; fitted on all 10,000 runs."""
    d = failure.read_ai4i(failure.data_path(data))
    r = failure.cross_validate(d)
    t0 = time.perf_counter()
    model = failure.FailureModel.train(d.inputs, d.failure)
    seconds = time.perf_counter() - t0
    metrics = {k: v for k, v in asdict(r).items() if k != "train_seconds"}
    return artifacts.save(
        out, "failure-ai4i", model, dataset="ai4i2020", data_sha256=failure.data_hash(data), train_seconds=seconds,
        metrics=metrics, params=failure.PARAMS | {"threshold": failure.THRESHOLD, "features": list(failure.FEATURES)},
    )


def train_sim_bearing(data: Path | None, out: Path) -> ArtifactMeta:
    """Classifier of the virtual factory's spindle bearings, on generated windows (no data folder needed)."""
    from shopfloor.apps.maintenance import simbearing

    return simbearing.train(out)


RUL_INTERVAL_CALIBRATION_SEEDS = tuple(range(101, 111))
RUL_INTERVAL_HELD_OUT_SEEDS = tuple(range(1, 11))


def train_rul_interval_sim(
    out: Path, *, calibration: SimLivesParams | None = None, held_out: SimLivesParams | None = None,
    settings: TrendSettings | None = None, every_h: float = 0.5, bins: int = 8, coverage: float = 0.8,
    report_edges_h: tuple[float, ...] = (10.0, 20.0), alarm_h: float = 8.0, name: str = "rul-interval-sim",
) -> ArtifactMeta:
    """RUL interval calibration (rulinterval.py) from simulated run-to-failure lives of the line's CNCs.

    Learnt on the lives of the ``calibration`` seeds (default 101-110), measured on those of the ``held_out``
    seeds (default 1-10, none shared): coverage of the true RUL per range of it (``report_edges_h``) goes
    into the metrics, and the alarm's lead (true RUL when the lower bound first falls under ``alarm_h``, at
    the back-test's ``every_h`` resolution; the service fits every trend point, so its alarm comes at the
    same fit or earlier). The simulation's and the back-test's parameters stand in for the data hash. ``bins``
    (8) was chosen by a 5-fold cross-validation over the calibration seeds, not on the held-out lives.
    """
    from shopfloor.apps.maintenance import rulinterval, simlives

    settings = settings or rulinterval.TrendSettings()
    bucket_s, min_frac = settings.bucket_s, settings.min_speed_frac
    calibration = calibration or simlives.SimLivesParams(RUL_INTERVAL_CALIBRATION_SEEDS, bucket_s=bucket_s,
                                                         min_speed_frac=min_frac)
    held_out = held_out or simlives.SimLivesParams(RUL_INTERVAL_HELD_OUT_SEEDS, bucket_s=bucket_s,
                                                   min_speed_frac=min_frac)
    if not report_edges_h or any(not b > a for a, b in zip((0.0, *report_edges_h), report_edges_h, strict=False)):
        raise ValueError(f"report_edges_h must be rising positive hours, got {report_edges_h}")
    shared = set(calibration.seeds) & set(held_out.seeds)
    if shared:
        raise ValueError(f"calibration and held-out lives share seeds {sorted(shared)}: nothing would be held out")
    for p in (calibration, held_out):
        if (p.bucket_s, p.min_speed_frac) != (settings.bucket_s, settings.min_speed_frac):
            raise ValueError("the simulated trend (bucket_s, min_speed_frac) must be the one the settings say")
    t0 = time.perf_counter()
    lives = simlives.simulate_lives(calibration)
    bt = rulinterval.backtest(lives, settings, every_h=every_h)
    cal = rulinterval.calibrate(bt, coverage=coverage, bins=bins, settings=settings)
    seconds = time.perf_counter() - t0
    test_lives = simlives.simulate_lives(held_out)
    hb = rulinterval.backtest(test_lives, settings, every_h=every_h)
    centre, low, high = rulinterval.apply(cal, hb)
    err = centre / hb.truth - 1.0
    metrics: dict[str, float | int] = {
        "calibration_lives": cal.lives, "calibration_fits": len(bt),
        "held_out_lives": int(np.unique(hb.life).size), "held_out_fits": len(hb),
        "coverage_held_out": float(np.mean((low <= hb.truth) & (hb.truth <= high))),
    }
    for name_, sel in (("under", hb.truth < report_edges_h[-1]), ("from", hb.truth >= report_edges_h[-1])):
        if sel.any():  # the calibrated RUL's relative error, median and 10-90 %, with the true RUL under / over
            q10, q50, q90 = np.quantile(err[sel], [0.1, 0.5, 0.9])
            metrics |= {f"rul_error_median_{name_}_{report_edges_h[-1]:g}h": float(q50),
                        f"rul_error_p10_{name_}_{report_edges_h[-1]:g}h": float(q10),
                        f"rul_error_p90_{name_}_{report_edges_h[-1]:g}h": float(q90)}
    for row in rulinterval.coverage_by_truth(hb, low, high, report_edges_h):
        span = f"{row['from_h']:g}_{row['to_h']:g}h" if math.isfinite(row["to_h"]) else f"from_{row['from_h']:g}h"
        metrics[f"coverage_{span}"] = row["coverage"]
        metrics[f"below_low_{span}"] = row["below"]
        metrics[f"fits_{span}"] = int(row["fits"])
    leads = rulinterval.alarm_leads(hb, low, alarm_h)
    found = leads[np.isfinite(leads)]
    metrics |= {
        "alarm_h": alarm_h, "alarm_missed_lives": int(np.count_nonzero(~np.isfinite(leads))),
        "alarm_lead_h_min": float(found.min()) if found.size else math.nan,
        "alarm_lead_h_median": float(np.median(found)) if found.size else math.nan,
        "alarm_lead_h_max": float(found.max()) if found.size else math.nan,
    }
    params = {
        "calibration": calibration.as_dict(), "held_out": held_out.as_dict(), "settings": settings.as_dict(),
        "every_h": every_h, "bins": bins, "coverage": coverage,
    }
    data_sha256 = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    params["factors"] = cal.describe()
    return artifacts.save(
        out, name, cal, dataset="simulated spindle bearing lives (virtual factory CNCs, shopfloor.sim.machines)",
        data_sha256=data_sha256, train_seconds=seconds, metrics=metrics, params=params,
    )


def train_rul_interval(data: Path | None, out: Path) -> ArtifactMeta:
    """RUL interval calibration of the virtual factory's spindle bearings (generated lives, no data folder)."""
    return train_rul_interval_sim(out)


TRAINERS: dict[str, Callable[[Path | None, Path], ArtifactMeta]] = {
    "bearing": train_bearing, "rul": train_rul, "failure": train_failure, "sim-bearing": train_sim_bearing,
    "rul-interval": train_rul_interval,
}


def summary(meta: ArtifactMeta) -> str:
    """One line per artifact for the CLI."""
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in meta.metrics.items()
             if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)}
    return f"{meta.name} v{meta.version} ({meta.train_seconds:.1f} s, data {meta.data_sha256[:12]}): {shown}"
