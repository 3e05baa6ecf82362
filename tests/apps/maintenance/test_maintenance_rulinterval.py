"""The calibrated RUL interval: conformal factors from a back-test, on generated families with known noise;
bad input; the simulated lives; the artifact and how the service loads it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from shopfloor.apps import artifacts
from shopfloor.apps.maintenance import rulinterval, simlives, training
from shopfloor.apps.maintenance.config import ModelChoice
from shopfloor.apps.maintenance.degradation import RulFit
from shopfloor.apps.maintenance.rulinterval import Backtest, CalibrationError, Life, TrendSettings
from shopfloor.apps.maintenance.service import load_rul_interval
from shopfloor.core.errors import ShopfloorError
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.machines import CncParams
from shopfloor.sim.vibration import VibrationExtension

Z80 = 1.2815515655446004  # the standard normal's 90 % quantile


def sigma_of(p: np.ndarray) -> np.ndarray:
    """The family's noise: from 0.05 at 0.5 h predicted to 0.25 at 40 h, linear in log p."""
    return np.asarray(0.05 + 0.2 * np.log(p / 0.5) / math.log(80.0))


def family(lives: int, seed: int, fits: int = 30) -> Backtest:
    """Predictions log-uniform over 0.5-40 h; true RUL = predicted x exp(sigma(p) e), e N(0, 1) with a quarter
    of its variance shared by the fits of a life (a life that runs long runs long at every fit)."""
    rng = np.random.default_rng(seed)
    p = np.exp(rng.uniform(math.log(0.5), math.log(40.0), (lives, fits)))
    e = 0.5 * rng.standard_normal((lives, 1)) + math.sqrt(0.75) * rng.standard_normal((lives, fits))
    truth = p * np.exp(sigma_of(p) * e)
    life = np.repeat(np.arange(lives, dtype=np.int64), fits)
    nan = np.full(life.size, math.nan)
    return Backtest(life, nan, p.ravel(), truth.ravel(), nan, nan)


def covered(cal: rulinterval.IntervalCalibration, bt: Backtest) -> np.ndarray:
    _, low, high = rulinterval.apply(cal, bt)
    return np.asarray((low <= bt.truth) & (bt.truth <= high))


def test_on_a_family_with_known_noise_the_interval_covers_80_percent_of_held_out_lives() -> None:
    cal = rulinterval.calibrate(family(100, seed=1))
    assert cal.lives == 100 and sum(cal.fits) == 3000 and len(cal.upper) == 8
    for row in cal.describe():  # the factors are the noise's own 10 % and 90 % quantiles there
        sigma = float(sigma_of(np.array(math.sqrt(max(row["from_h"], 0.5) * min(row["to_h"], 40.0)))))
        assert math.log(row["low_factor"]) == pytest.approx(-Z80 * sigma, rel=0.25)
        assert math.log(row["high_factor"]) == pytest.approx(Z80 * sigma, rel=0.25)
    held_out = family(400, seed=2)
    inside = covered(cal, held_out)
    assert 0.76 <= inside.mean() <= 0.84
    for sel in (held_out.predicted < 10.0, held_out.predicted >= 10.0):
        assert 0.74 <= inside[sel].mean() <= 0.86
    rul, low, high = rulinterval.apply(cal, held_out)  # the calibrated RUL: about the prediction here
    assert np.all((low <= rul) & (rul <= high))
    assert np.median(np.abs(np.log(rul / held_out.predicted))) < 0.05


def test_the_map_flattens_predictions_that_say_no_more_than_long() -> None:
    """Past 20 h predicted the true RUL is 20-30 h whatever the prediction (as early fits of a rise are): the
    calibrated RUL and its bounds stay there instead of growing with the prediction."""
    rng = np.random.default_rng(3)
    p = np.exp(rng.uniform(math.log(1.0), math.log(1000.0), (60, 40)))
    truth = np.where(p < 20.0, p * np.exp(0.1 * rng.standard_normal(p.shape)), rng.uniform(20.0, 30.0, p.shape))
    life = np.repeat(np.arange(60, dtype=np.int64), 40)
    nan = np.full(life.size, math.nan)
    cal = rulinterval.calibrate(Backtest(life, nan, p.ravel(), truth.ravel(), nan, nan))
    for predicted in (100.0, 1000.0):
        est = cal.estimate(RulFit(predicted, 3.0, 0.0, 50))
        assert 20.0 <= est.rul <= 30.0
        assert est.low >= 15.0 and est.high <= 35.0


def _life(seed: int, bucket_h: float) -> Life:
    """A power-law rise (m = 3) driven by work done, whose rate changes every 2 h (duty 0.5-1.5): the trend
    says nothing about the rate to come, as a plant's stoppages and speeds."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.5, 1.5, 40)
    t = np.arange(bucket_h / 2, 80.0, bucket_h)
    work = np.cumsum(rate[(t // 2.0).astype(int)]) * bucket_h
    total = rng.uniform(25.0, 35.0)
    d = 8.0 * (work / total) ** 3 * np.exp(0.05 * rng.standard_normal(t.size))
    fail = float(t[np.argmax(work >= total)])
    keep = t <= fail
    return Life(f"synthetic {seed}", t[keep], d[keep], fail, 8.0)


def test_back_test_and_calibration_on_generated_lives_cover_held_out_lives() -> None:
    settings = TrendSettings(bucket_s=900.0)
    bucket_h = settings.bucket_s / 3600.0
    train = rulinterval.backtest([_life(s, bucket_h) for s in range(40)], settings, every_h=1.5)
    test = rulinterval.backtest([_life(s, bucket_h) for s in range(100, 140)], settings, every_h=1.5)
    assert np.all(test.truth > 0) and np.all(np.isfinite(test.predicted))
    cal = rulinterval.calibrate(train, bins=4, min_fits=30, settings=settings)
    inside = covered(cal, test)
    assert 0.7 <= inside.mean() <= 0.9
    leads = rulinterval.alarm_leads(test, rulinterval.apply(cal, test)[1], 3.0)
    assert np.all(leads > 0)  # every life's lower bound fell under 3 h before its failure


def test_bad_input_is_refused_with_a_reason() -> None:
    bt = family(20, seed=4)
    with pytest.raises(CalibrationError, match=r"5 lives .* at least 10"):
        rulinterval.calibrate(bt.select(bt.life < 5))
    nan = Backtest(bt.life, bt.now_h, bt.predicted.copy(), bt.truth.copy(), bt.boot_low, bt.boot_high)
    nan.truth[7] = math.nan
    with pytest.raises(CalibrationError, match="NaN"):
        rulinterval.calibrate(nan)
    nan.truth[7] = -1.0
    with pytest.raises(CalibrationError, match="true RUL > 0"):
        rulinterval.calibrate(nan)
    with pytest.raises(CalibrationError, match="fewer bins or more lives"):
        rulinterval.calibrate(bt, bins=20)
    with pytest.raises(CalibrationError, match="coverage"):
        rulinterval.calibrate(bt, coverage=1.2)
    cal = rulinterval.calibrate(bt, bins=2)
    with pytest.raises(ValueError, match="finite"):
        cal.interval(math.nan)
    with pytest.raises(CalibrationError, match="max_points: 720 != 100"):
        cal.check(TrendSettings(max_points=100))
    with pytest.raises(ValueError, match="1-D"):
        Life("bad", np.zeros(3), np.zeros(4), 1.0, 8.0)
    with pytest.raises(ValueError, match="no seeds"):
        simlives.SimLivesParams(seeds=())


SHORT = CncParams(bearing_life_h=0.3, bearing_repair_s=600.0)


def test_simulated_lives_end_at_the_failure_and_are_reproducible() -> None:
    params = simlives.SimLivesParams((1,), hours=6.0, cncs=(SHORT,))
    lives = simlives.simulate_lives(params)
    assert len(lives) >= 5
    for life in lives:
        assert life.t_h.size and life.t_h[-1] <= life.failure_h and life.failure_level == SHORT.vib_wear_mm_s
        assert np.median(life.d[-3:]) > 0.7 * life.failure_level  # the indicator is near the level at the end
    again = simlives.simulate_lives(params)
    assert [x.failure_h for x in again] == [x.failure_h for x in lives]
    assert np.array_equal(again[2].d, lives[2].d)
    assert params.sha256() == simlives.SimLivesParams((1,), hours=6.0, cncs=(SHORT,)).sha256()
    assert params.sha256() != simlives.SimLivesParams((2,), hours=6.0, cncs=(SHORT,)).sha256()


def test_trained_calibration_is_a_versioned_artifact_the_service_loads(tmp_path: Path) -> None:
    out = tmp_path / "models"
    meta = training.train_rul_interval_sim(
        out, calibration=simlives.SimLivesParams((1, 2), hours=8.0, cncs=(SHORT,)),
        held_out=simlives.SimLivesParams((3,), hours=8.0, cncs=(SHORT,)), every_h=1 / 60, bins=2,
        report_edges_h=(0.1,), alarm_h=0.1, name="rul-interval-test")
    assert meta.version == 1 and meta.metrics["calibration_lives"] >= 10 and meta.metrics["held_out_fits"] > 0
    assert 0.0 <= meta.metrics["coverage_held_out"] <= 1.0 and "coverage_0_0.1h" in meta.metrics
    saved = artifacts.read_meta(out, "rul-interval-test")
    assert saved.params["calibration"]["seeds"] == [1, 2] and len(saved.params["factors"]) == 2
    assert saved.data_sha256 == meta.data_sha256 and len(saved.data_sha256) == 64
    with pytest.raises(ValueError, match="share seeds"):
        training.train_rul_interval_sim(out, calibration=simlives.SimLivesParams((1,)),
                                        held_out=simlives.SimLivesParams((1,)))

    cnc = CncParams()
    config = VirtualFactory(seed=1, cncs=(cnc,), extensions=[VibrationExtension(1, cncs=(cnc,))]).plant_config()
    m = config.maintenance
    assert m is not None
    assert load_rul_interval(m, tmp_path) == (None, {"kind": "bootstrap", "calibrated": False})
    choice = ModelChoice(name="rul-interval-test", root=str(out))
    cal, info = load_rul_interval(m.model_copy(update={"rul_interval": choice}), tmp_path)
    assert isinstance(cal, rulinterval.IntervalCalibration) and info["calibrated"] and info["version"] == 1
    default_root = m.model_copy(update={"rul_interval": ModelChoice(name="rul-interval-test", version=1)})
    assert load_rul_interval(default_root, tmp_path)[0] == cal  # no root: <data_dir>/models
    with pytest.raises(ShopfloorError, match="max_points: 720 != 360"):
        load_rul_interval(m.model_copy(update={"rul_interval": choice, "max_points": 360}), tmp_path)
    artifacts.save(out, "not-a-calibration", {"a": 1}, dataset="-", data_sha256="-", train_seconds=0.0)
    with pytest.raises(ShopfloorError, match="not an RUL interval calibration"):
        load_rul_interval(m.model_copy(update={"rul_interval": ModelChoice(name="not-a-calibration", root=str(out))}),
                          tmp_path)
