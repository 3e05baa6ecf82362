"""Remaining useful life from multivariate run-to-failure histories (NASA C-MAPSS), CPU only.

The method, the same for every subset:
1. Operating conditions are found from the three operational settings by k-means, k chosen by the data
   (`find_conditions`): settings that are noise around one point give one condition (FD001/FD003), six
   tight clusters give six (FD002/FD004). Each sensor is then standardised per condition with training
   statistics, which removes the regime from the signal and leaves the degradation.
2. Sensors that carry nothing after that (constant within every condition) are dropped.
3. Each cycle gets causal features from its engine's history up to that cycle only: smoothed levels over
   several spans, slopes, the drift from the engine's own first cycles, and the cycle count.
4. A LightGBM ensemble (several seeds and feature-fraction draws) regresses RUL capped at 125 (piecewise
   linear target). Hyper-parameters were chosen by grouped cross-validation over training engines only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans

from shopfloor.apps.maintenance.data import DataMissing, dataset_dir, files_sha256
from shopfloor.apps.maintenance.metrics import rul_rmse, rul_score
from shopfloor.core.errors import ShopfloorError

FloatArray = NDArray[np.float64]
RUL_CAP = 125.0
N_SETTINGS = 3
N_SENSORS = 21
SPANS = (5, 10, 20, 30, 60)
SLOPE_SPANS = (10, 20, 40, 80, 400)  # 400: in practice the whole history
BASELINE_CYCLES = 15


class CmapssFormatError(ShopfloorError, ValueError):
    """A C-MAPSS file that does not have 26 numeric columns, or whose units/cycles are out of order."""


@dataclass
class Fleet:
    """Engines of one file: unit id and cycle per row, 3 settings, 21 sensors."""

    unit: NDArray[np.int64]
    cycle: NDArray[np.int64]
    settings: FloatArray
    sensors: FloatArray

    def units(self) -> NDArray[np.int64]:
        """Unit ids in file order."""
        _, first = np.unique(self.unit, return_index=True)
        return self.unit[np.sort(first)]


def read_fleet(path: Path) -> Fleet:
    """Parse a train_/test_FDxxx.txt file (space separated, 26 columns, no header)."""
    try:
        raw = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise CmapssFormatError(f"{path}: not a numeric table ({exc})") from None
    if raw.shape[1] != 2 + N_SETTINGS + N_SENSORS:
        raise CmapssFormatError(f"{path}: expected 26 columns, found {raw.shape[1]}")
    unit = raw[:, 0].astype(np.int64)
    cycle = raw[:, 1].astype(np.int64)
    starts = np.r_[True, unit[1:] != unit[:-1]]
    expected = np.ones_like(cycle)
    for i in range(1, len(cycle)):
        expected[i] = 1 if starts[i] else expected[i - 1] + 1
    if not np.array_equal(cycle, expected):
        raise CmapssFormatError(f"{path}: cycles must count 1, 2, ... within each unit")
    return Fleet(unit, cycle, raw[:, 2:5], raw[:, 5:])


def read_truth(path: Path) -> FloatArray:
    """RUL_FDxxx.txt: one true remaining life per test unit."""
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise CmapssFormatError(f"{path}: not a column of numbers ({exc})") from None


def training_targets(fleet: Fleet, cap: float = RUL_CAP) -> FloatArray:
    """Piecewise-linear target: cycles to failure, capped (early life counts as healthy)."""
    out = np.empty(len(fleet.unit))
    for u in fleet.units():
        rows = fleet.unit == u
        out[rows] = fleet.cycle[rows].max() - fleet.cycle[rows]
    return np.minimum(out, cap)


@dataclass
class Conditions:
    """Operating conditions: k-means over the settings, standardised by `offset` and `scale`."""

    kmeans: KMeans
    offset: FloatArray
    scale: FloatArray

    def predict(self, settings: FloatArray) -> NDArray[np.int64]:
        return np.asarray(self.kmeans.predict((settings - self.offset) / self.scale), dtype=np.int64)


def find_conditions(settings: FloatArray, max_k: int = 8, tight: float = 0.02, seed: int = 0) -> Conditions:
    """K-means on the standardised settings with the smallest k whose clusters are tight.

    Tight: the within-cluster RMS is below `tight` of the total. Settings that are only noise around one
    point never get tight clusters, and then there is one condition.
    """
    scale = settings.std(axis=0)
    scale[scale == 0] = 1.0
    z = (settings - settings.mean(axis=0)) / scale
    rng = np.random.default_rng(seed)
    probe = z[rng.choice(len(z), size=min(len(z), 4000), replace=False)]  # k is chosen on a sample: fast
    total = float(np.sum(probe**2))
    for k in range(2, max_k + 1):
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(probe)
        if total > 0 and float(km.inertia_) / total < tight**2:
            return Conditions(KMeans(n_clusters=k, n_init=3, random_state=seed).fit(z), settings.mean(axis=0), scale)
    return Conditions(KMeans(n_clusters=1, n_init=1, random_state=seed).fit(z), settings.mean(axis=0), scale)


@dataclass
class ConditionNormaliser:
    """Per-condition standardisation of the sensors, fitted on training engines."""

    clusters: Conditions
    mean: FloatArray
    std: FloatArray
    keep: NDArray[np.bool_]

    @classmethod
    def fit(cls, fleet: Fleet) -> ConditionNormaliser:
        found = find_conditions(fleet.settings)
        cond = found.predict(fleet.settings)
        k = int(found.kmeans.n_clusters)
        mean = np.zeros((k, N_SENSORS))
        std = np.ones((k, N_SENSORS))
        for c in range(k):
            rows = fleet.sensors[cond == c]
            mean[c] = rows.mean(axis=0)
            sd = rows.std(axis=0)
            std[c] = np.where(sd > 1e-9 * np.maximum(np.abs(mean[c]), 1.0), sd, np.inf)
        keep = np.asarray(np.isfinite(std).all(axis=0), dtype=np.bool_)
        std[~np.isfinite(std)] = 1.0
        return cls(found, mean, std, keep)

    def condition(self, settings: FloatArray) -> NDArray[np.int64]:
        return self.clusters.predict(settings)

    def transform(self, fleet: Fleet) -> FloatArray:
        cond = self.condition(fleet.settings)
        z = (fleet.sensors - self.mean[cond]) / self.std[cond]
        return np.asarray(z[:, self.keep], dtype=np.float64)

    @property
    def n_conditions(self) -> int:
        return int(self.clusters.kmeans.n_clusters)


def _trailing_mean(x: FloatArray, span: int) -> FloatArray:
    """Mean over the last `span` rows (fewer at the start), per column."""
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - span, 0)
    return np.asarray((c[idx] - c[lo]) / (idx - lo)[:, None], dtype=np.float64)


def _trailing_slope(x: FloatArray, span: int) -> FloatArray:
    """Least-squares slope over the last `span` rows (0 with fewer than 3), per column."""
    n = len(x)
    t = np.arange(n, dtype=np.float64)[:, None]
    ct = np.cumsum(np.vstack([np.zeros((1, 1)), t]), axis=0)
    ctt = np.cumsum(np.vstack([np.zeros((1, 1)), t * t]), axis=0)
    cx = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    ctx = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), t * x]), axis=0)
    idx = np.arange(1, n + 1)
    lo = np.maximum(idx - span, 0)
    m = (idx - lo)[:, None].astype(np.float64)
    st, stt = ct[idx] - ct[lo], ctt[idx] - ctt[lo]
    sx, stx = cx[idx] - cx[lo], ctx[idx] - ctx[lo]
    den = m * stt - st * st
    slope = np.where(den > 0, (m * stx - st * sx) / np.where(den > 0, den, 1.0), 0.0)
    slope[m[:, 0] < 3] = 0.0
    return slope


def unit_features(z: FloatArray, cycles: NDArray[np.int64]) -> FloatArray:
    """Causal features of every cycle of one engine from its normalised sensors (rows = cycles)."""
    parts = [cycles[:, None].astype(np.float64)]
    health = z.mean(axis=1, keepdims=True)  # sensors share the degradation direction only loosely; kept as one
    for span in SPANS:
        parts.append(_trailing_mean(z, span))
    for span in SLOPE_SPANS:
        parts.append(_trailing_slope(z, span))
    baseline = np.cumsum(z, axis=0) / np.arange(1, len(z) + 1)[:, None]
    baseline[BASELINE_CYCLES:] = baseline[BASELINE_CYCLES - 1]
    parts.append(_trailing_mean(z, 10) - baseline)
    parts.append(_trailing_mean(health, 10))
    parts.append(_trailing_slope(health, 30))
    return np.hstack(parts)


def fleet_features(fleet: Fleet, normaliser: ConditionNormaliser) -> FloatArray:
    """unit_features for every engine, rows in file order."""
    z = normaliser.transform(fleet)
    out: FloatArray | None = None
    for u in fleet.units():
        rows = np.flatnonzero(fleet.unit == u)
        f = unit_features(z[rows], fleet.cycle[rows])
        if out is None:
            out = np.empty((len(fleet.unit), f.shape[1]))
        out[rows] = f
    assert out is not None
    return out


def last_rows(fleet: Fleet) -> NDArray[np.int64]:
    """Index of each unit's last cycle, in unit order."""
    return np.array([np.flatnonzero(fleet.unit == u)[-1] for u in fleet.units()], dtype=np.int64)


DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.04,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
}


@dataclass
class RulModel:
    """Condition normaliser plus a seed ensemble of LightGBM regressors."""

    normaliser: ConditionNormaliser
    models: list[Any] = field(default_factory=list)
    cap: float = RUL_CAP

    @classmethod
    def train(cls, fleet: Fleet, seeds: int = 5, params: dict[str, Any] | None = None) -> RulModel:
        import lightgbm as lgb

        normaliser = ConditionNormaliser.fit(fleet)
        x = fleet_features(fleet, normaliser)
        y = training_targets(fleet)
        models = []
        for seed in range(seeds):
            m = lgb.LGBMRegressor(**(params or DEFAULT_PARAMS), random_state=seed, n_jobs=1, verbose=-1)
            models.append(m.fit(x, y))
        return cls(normaliser, models)

    def predict_rows(self, fleet: Fleet) -> FloatArray:
        """Predicted RUL at every row (each from its history up to that cycle)."""
        x = fleet_features(fleet, self.normaliser)
        pred = np.mean([m.predict(x) for m in self.models], axis=0)
        return np.asarray(np.clip(pred, 0.0, self.cap), dtype=np.float64)

    def predict_last(self, fleet: Fleet) -> FloatArray:
        """Predicted RUL at each unit's last cycle, in unit order."""
        return self.predict_rows(fleet)[last_rows(fleet)]


@dataclass
class SubsetResult:
    """Test-set figures of one C-MAPSS subset."""

    subset: str
    n_conditions: int
    rmse: float
    score: float
    rmse_capped_truth: float
    score_capped_truth: float
    train_seconds: float
    truth: list[float]
    predicted: list[float]


def subset_files(subset: str, root: Path | None = None) -> tuple[Path, Path, Path]:
    """train/test/RUL files of a subset such as FD001 (DataMissing if absent)."""
    names = [f"train_{subset}.txt", f"test_{subset}.txt", f"RUL_{subset}.txt"]
    folder = dataset_dir("cmapss", root, required=names)
    return folder / names[0], folder / names[1], folder / names[2]


def data_hash(subset: str, root: Path | None = None) -> str:
    """sha256 over a subset's three files."""
    return files_sha256(subset_files(subset, root))


def evaluate_subset(subset: str, root: Path | None = None, seeds: int = 5) -> tuple[RulModel, SubsetResult]:
    """Train on a subset's training engines, score each test engine once at its last cycle."""
    train_path, test_path, truth_path = subset_files(subset, root)
    train, test, truth = read_fleet(train_path), read_fleet(test_path), read_truth(truth_path)
    if len(truth) != len(test.units()):
        raise CmapssFormatError(f"{truth_path}: {len(truth)} values for {len(test.units())} test units")
    t0 = time.perf_counter()
    model = RulModel.train(train, seeds=seeds)
    seconds = time.perf_counter() - t0
    pred = model.predict_last(test)
    capped = np.minimum(truth, RUL_CAP)
    return model, SubsetResult(
        subset, model.normaliser.n_conditions, rul_rmse(pred, truth), rul_score(pred, truth),
        rul_rmse(pred, capped), rul_score(pred, capped), seconds, truth.tolist(), pred.tolist(),
    )


def available_subsets(root: Path | None = None) -> list[str]:
    """The FD00x subsets whose three files are present."""
    out = []
    for subset in ("FD001", "FD002", "FD003", "FD004"):
        try:
            subset_files(subset, root)
        except DataMissing:
            continue
        out.append(subset)
    return out
