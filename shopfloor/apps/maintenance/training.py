"""Train a maintenance model on its public data set, measure it, and save it as a versioned artifact.

Each trainer measures the model under the benchmark's protocol first (the figures go into the artifact's
metadata), then fits the production model on all the data it may use, and saves it with the data hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from shopfloor.apps import artifacts
from shopfloor.apps.artifacts import ArtifactMeta
from shopfloor.apps.maintenance import cwru, failure, rul


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


TRAINERS: dict[str, Callable[[Path | None, Path], ArtifactMeta]] = {
    "bearing": train_bearing, "rul": train_rul, "failure": train_failure, "sim-bearing": train_sim_bearing,
}


def summary(meta: ArtifactMeta) -> str:
    """One line per artifact for the CLI."""
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in meta.metrics.items()
             if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)}
    return f"{meta.name} v{meta.version} ({meta.train_seconds:.1f} s, data {meta.data_sha256[:12]}): {shown}"
