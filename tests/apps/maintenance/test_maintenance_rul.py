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
