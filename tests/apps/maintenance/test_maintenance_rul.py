"""RUL method pieces on small generated fleets: condition finding, causal features, training, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopfloor.apps.maintenance import rul

CONDITIONS = np.array([[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100], [42, 0.84, 100]])


def fleet(n_units: int, conditions: np.ndarray, seed: int = 0, truncate: bool = False) -> rul.Fleet:
    return fleet_with_truth(n_units, conditions, seed, truncate)[0]


def fleet_with_truth(
    n_units: int, conditions: np.ndarray, seed: int = 0, truncate: bool = False
) -> tuple[rul.Fleet, np.ndarray]:
    """Engines whose sensors drift exponentially towards failure, offset by their operating condition."""
    rng = np.random.default_rng(seed)
    units, cycles, settings, sensors, remaining = [], [], [], [], []
    gains = np.random.default_rng(99).normal(size=(len(conditions), 21)) * 5  # same plant for every fleet
    for u in range(1, n_units + 1):
        life = int(rng.integers(120, 220))
        end = int(rng.integers(40, life - 5)) if truncate else life
        remaining.append(life - end)
        for c in range(1, end + 1):
            k = int(rng.integers(len(conditions)))
            wear = np.exp((c - life) / 40.0)
            row = gains[k] + wear * np.linspace(1, 3, 21) + rng.normal(scale=0.05, size=21)
            row[[0, 4]] = gains[k, [0, 4]]  # constant within a condition: carries nothing
            units.append(u)
            cycles.append(c)
            settings.append(conditions[k] + rng.normal(scale=1e-3, size=3))
            sensors.append(row)
    f = rul.Fleet(np.array(units), np.array(cycles), np.array(settings), np.array(sensors))
    return f, np.array(remaining, dtype=float)


def test_conditions_are_found_from_the_settings() -> None:
    assert rul.find_conditions(fleet(1, CONDITIONS).settings).kmeans.n_clusters == 6
    assert rul.find_conditions(fleet(1, CONDITIONS[:1]).settings).kmeans.n_clusters == 1


def test_normaliser_removes_the_regime_and_drops_empty_sensors() -> None:
    f = fleet(6, CONDITIONS)
    norm = rul.ConditionNormaliser.fit(f)
    z = norm.transform(f)
    assert norm.n_conditions == 6
    assert z.shape[1] == 19 and not norm.keep[0] and not norm.keep[4]
    assert abs(z.mean()) < 1e-9 and z.std() == pytest.approx(1.0, rel=1e-6)


def test_trailing_statistics_are_causal_and_exact() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    slope = rul._trailing_slope(x, 10)
    mean = rul._trailing_mean(x, 5)
    for t in (9, 30, 49):
        seg = x[t - 9:t + 1, 0]
        assert slope[t, 0] == pytest.approx(np.polyfit(np.arange(10), seg, 1)[0])
        assert mean[t, 1] == pytest.approx(x[t - 4:t + 1, 1].mean())
    assert slope[1, 0] == 0.0  # fewer than three points: no slope
    changed = x.copy()
    changed[40:] += 100.0  # the future must not move the past
    assert np.array_equal(rul._trailing_slope(changed, 10)[:40], slope[:40])


def test_piecewise_linear_target() -> None:
    f = fleet(2, CONDITIONS[:1])
    y = rul.training_targets(f)
    last = rul.last_rows(f)
    assert np.all(y[last] == 0) and y.max() == rul.RUL_CAP


def test_model_learns_the_drift_on_a_generated_fleet() -> None:
    train = fleet(30, CONDITIONS, seed=2)
    test, truth = fleet_with_truth(15, CONDITIONS, seed=3, truncate=True)
    model = rul.RulModel.train(train, seeds=1, params=rul.DEFAULT_PARAMS | {"n_estimators": 80})
    pred = model.predict_last(test)
    capped = np.minimum(truth, rul.RUL_CAP)
    assert pred.shape == (15,) and np.all((pred >= 0) & (pred <= rul.RUL_CAP))
    # far better than knowing only the average remaining life
    assert np.sqrt(np.mean((pred - capped) ** 2)) < 0.5 * capped.std()


def test_bad_files_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("1 1 0 0 100 " + " ".join(["1"] * 10) + "\n")
    with pytest.raises(rul.CmapssFormatError, match="26 columns"):
        rul.read_fleet(short)
    gap = tmp_path / "gap.txt"
    row = " ".join(["0"] * 24)
    gap.write_text(f"1 1 {row}\n1 3 {row}\n")
    with pytest.raises(rul.CmapssFormatError, match="cycles"):
        rul.read_fleet(gap)
    text = tmp_path / "text.txt"
    text.write_text("a b c\n")
    with pytest.raises(rul.CmapssFormatError):
        rul.read_fleet(text)


def fd002_like(n_units: int, seed: int) -> tuple[rul.Fleet, np.ndarray, np.ndarray]:
    """A fleet flown at FD002's six operating points (altitude kft, Mach, throttle angle, with the settings'
    jitter), each cycle at a random one. Each sensor reads an offset of its condition (up to 50 sensor
    standard deviations apart, as FD002's are) plus wear towards failure plus noise. Returns the fleet, each
    row's true condition and its wear."""
    points = np.array([[0.0, 0.0, 100.0], [10.0, 0.25, 100.0], [20.0, 0.70, 100.0], [25.0, 0.62, 60.0],
                       [35.0, 0.84, 100.0], [42.0, 0.84, 100.0]])
    offsets = np.random.default_rng(7).normal(scale=50.0, size=(6, rul.N_SENSORS))  # the same engines every fleet
    rng = np.random.default_rng(seed)
    units, cycles, settings, sensors, labels, wears = [], [], [], [], [], []
    for u in range(1, n_units + 1):
        life = int(rng.integers(130, 250))
        for c in range(1, life + 1):
            k = int(rng.integers(6))
            wear = float(np.exp((c - life) / 30.0))
            units.append(u)
            cycles.append(c)
            settings.append(points[k] + rng.normal(scale=[2e-3, 3e-4, 0.0]))
            sensors.append(offsets[k] + 3.0 * wear * np.linspace(0.5, 1.5, rul.N_SENSORS)
                           + rng.normal(size=rul.N_SENSORS))
            labels.append(k)
            wears.append(wear)
    fleet = rul.Fleet(np.array(units), np.array(cycles), np.array(settings), np.array(sensors))
    return fleet, np.array(labels), np.array(wears)


def _explained(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Share of each column's variance explained by the label (eta squared)."""
    between = sum((labels == k).sum() * (x[labels == k].mean(axis=0) - x.mean(axis=0)) ** 2 for k in np.unique(labels))
    return np.asarray(between / (len(x) * x.var(axis=0)))


def test_six_operating_conditions_are_found_and_normalised_away_on_held_out_engines() -> None:
    """FD002/FD004 fly six operating points; find_conditions must find exactly them (one cluster per point),
    and the per-condition standardisation learnt on training engines must remove the condition's effect on
    other engines while keeping the wear: raw, the condition explains almost all of a sensor's variance and
    hides the wear; normalised, it explains none of it and the wear shows."""
    train, _, _ = fd002_like(12, seed=1)
    test, labels, wear = fd002_like(8, seed=2)
    norm = rul.ConditionNormaliser.fit(train)
    assert norm.n_conditions == 6
    found = norm.condition(test.settings)
    pairs = set(zip(found.tolist(), labels.tolist(), strict=True))
    assert len(pairs) == 6  # a one-to-one match between clusters and operating points
    z = norm.transform(test)
    assert z.shape[1] == rul.N_SENSORS
    assert _explained(test.sensors, labels).min() > 0.9
    assert _explained(z, labels).max() < 0.02  # by chance alone, 6 groups in 1,400 rows explain about 0.004
    assert abs(np.corrcoef(test.sensors.mean(axis=1), wear)[0, 1]) < 0.3
    assert np.corrcoef(z.mean(axis=1), wear)[0, 1] > 0.9
