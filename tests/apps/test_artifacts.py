"""Versioned artifacts: versions grow, metadata travels with the model, a changed file is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopfloor.apps import artifacts


def test_save_load_and_versions(tmp_path: Path) -> None:
    m1 = artifacts.save(tmp_path, "rul-fd001", {"w": [1, 2]}, dataset="cmapss/FD001", data_sha256="ab" * 32,
                        train_seconds=1.5, metrics={"rmse": 11.8}, params={"seeds": 5})
    m2 = artifacts.save(tmp_path, "rul-fd001", {"w": [3]}, dataset="cmapss/FD001", data_sha256="ab" * 32,
                        train_seconds=1.0)
    assert (m1.version, m2.version) == (1, 2)
    assert artifacts.versions(tmp_path, "rul-fd001") == [1, 2]
    model, meta = artifacts.load(tmp_path, "rul-fd001")
    assert model == {"w": [3]} and meta.version == 2
    model, meta = artifacts.load(tmp_path, "rul-fd001", version=1)
    assert model == {"w": [1, 2]} and meta.metrics == {"rmse": 11.8} and meta.params == {"seeds": 5}
    assert meta.environment["lightgbm"]


def test_changed_model_file_is_refused(tmp_path: Path) -> None:
    artifacts.save(tmp_path, "m", [1], dataset="d", data_sha256="0", train_seconds=0.0)
    path = tmp_path / "m" / "v1" / artifacts.MODEL_FILE
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(artifacts.ArtifactError, match="sha256"):
        artifacts.load(tmp_path, "m")


def test_unknown_names_and_versions(tmp_path: Path) -> None:
    with pytest.raises(artifacts.ArtifactError, match="no saved versions"):
        artifacts.load(tmp_path, "nothing")
    artifacts.save(tmp_path, "m", 1, dataset="d", data_sha256="0", train_seconds=0.0)
    with pytest.raises(artifacts.ArtifactError, match="no version 7"):
        artifacts.load(tmp_path, "m", version=7)
    with pytest.raises(artifacts.ArtifactError, match="bad model name"):
        artifacts.save(tmp_path, "../escape", 1, dataset="d", data_sha256="0", train_seconds=0.0)
    (tmp_path / "m" / "v1" / artifacts.META_FILE).write_text("{not json")
    with pytest.raises(artifacts.ArtifactError, match="unreadable"):
        artifacts.load(tmp_path, "m")
