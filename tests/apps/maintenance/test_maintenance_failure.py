"""AI4I failure model: physics features, bad rows, and the train command end to end on generated data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shopfloor.apps.maintenance import failure
from shopfloor.cli import app

HEADER = ("UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],Torque [Nm],"
          "Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF")


def write_ai4i(path: Path, n: int = 300, seed: int = 0) -> None:
    """Rows drawn like the AI4I generator; failures by its power and overstrain rules."""
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for i in range(n):
        kind = "LMH"[int(rng.integers(3))]
        air = 300 + rng.normal(scale=2)
        proc = air + 10 + rng.normal()
        torque = max(rng.normal(40, 10), 3.0)
        rpm = 2860 * 60 / (2 * math.pi * torque) + rng.normal(scale=100)
        wear = float(rng.integers(0, 250))
        power = torque * rpm * 2 * math.pi / 60
        pwf = int(power < 3500 or power > 9000)
        osf = int(wear * torque > {"L": 11000, "M": 12000, "H": 13000}[kind])
        fail = int(pwf or osf)
        lines.append(f"{i + 1},{kind}{i},{kind},{air:.1f},{proc:.1f},{rpm:.0f},{torque:.1f},{wear:.0f},"
                     f"{fail},0,0,{pwf},{osf},0")
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")


def test_physics_features() -> None:
    x = failure.physics_features(np.array([[1.0, 300.0, 310.5, 1500.0, 40.0, 100.0]]))
    assert x[0, 6] == pytest.approx(40 * 1500 * 2 * math.pi / 60)
    assert x[0, 7] == pytest.approx(10.5)
    assert x[0, 8] == pytest.approx(4000.0)
    with pytest.raises(failure.Ai4iFormatError):
        failure.physics_features(np.ones((2, 5)))


def test_bad_rows_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "\n1,L1,L,300,310,1500,40,0,0,0,0,0,0,0\n2,X2,X,300,310,1500,40,0,0,0,0,0,0,0\n")
    with pytest.raises(failure.Ai4iFormatError, match=":3:"):
        failure.read_ai4i(path)
    path.write_text("UDI,Type\n1,L\n")
    with pytest.raises(failure.Ai4iFormatError, match="missing columns"):
        failure.read_ai4i(path)


def test_mode_flags_are_not_inputs(tmp_path: Path) -> None:
    write_ai4i(tmp_path / "a.csv")
    d = failure.read_ai4i(tmp_path / "a.csv")
    assert d.inputs.shape[1] == 6 and d.modes.shape[1] == 5
    assert failure.physics_features(d.inputs).shape[1] == len(failure.FEATURES)


def test_train_command_saves_a_versioned_artifact(tmp_path: Path) -> None:
    (tmp_path / "data" / "ai4i2020").mkdir(parents=True)
    write_ai4i(tmp_path / "data" / "ai4i2020" / "ai4i2020.csv")
    runner = CliRunner()
    args = ["maintenance", "train", "failure", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "models")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "failure-ai4i v1" in result.output
    meta = (tmp_path / "models" / "failure-ai4i" / "v1" / "meta.json").read_text()
    assert '"data_sha256"' in meta and '"f1"' in meta
    listed = runner.invoke(app, ["maintenance", "list", "--out", str(tmp_path / "models")])
    assert "failure-ai4i v1" in listed.output
    missing = runner.invoke(app, ["maintenance", "train", "rul", "--data", str(tmp_path / "data"),
                                  "--out", str(tmp_path / "models")])
    assert missing.exit_code == 2 and "cmapss data not found" in missing.output
