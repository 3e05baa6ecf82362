"""Versioned model artifacts of every app: a trained model saved with its metadata, data hash and metrics.

Layout: ``<root>/<model name>/v<N>/`` holding ``model.pkl`` (the fitted object, pickled) and
``meta.json`` (name, version, created time, library versions, data set and its sha256, parameters,
metrics, training seconds, and the sha256 of ``model.pkl``). Versions only grow; loading checks the
model file against the hash in its metadata, so a file changed or cut short is refused, not used.
Pickle runs code when loaded: load artifacts only from a directory you trust (your own training runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shopfloor.core.errors import ShopfloorError

MODEL_FILE = "model.pkl"
META_FILE = "meta.json"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ArtifactError(ShopfloorError):
    """An artifact that does not exist, has bad metadata, or whose model file fails its hash."""


@dataclass
class ArtifactMeta:
    """What is known about a saved model."""

    name: str
    version: int
    created: str
    dataset: str
    data_sha256: str
    model_sha256: str
    train_seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)


def _environment() -> dict[str, str]:
    import lightgbm
    import numpy
    import sklearn

    return {
        "python": platform.python_version(), "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__, "machine": platform.machine(),
    }


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ArtifactError(f"bad model name {name!r}: lower-case letters, digits, '-' and '_' only")
    return name


def versions(root: Path, name: str) -> list[int]:
    """Saved versions of a model, ascending."""
    folder = root / _check_name(name)
    if not folder.is_dir():
        return []
    found = [int(p.name[1:]) for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"v\d+", p.name)]
    return sorted(found)


def save(
    root: Path, name: str, model: object, *, dataset: str, data_sha256: str, train_seconds: float,
    metrics: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
) -> ArtifactMeta:
    """Save a new version (last + 1). Written to a temporary folder first, then renamed into place."""
    _check_name(name)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    for _ in range(100):  # another trainer may take the same number: retry with the next one
        version = (versions(root, name) or [0])[-1] + 1
        meta = ArtifactMeta(
            name=name, version=version, created=datetime.now(UTC).isoformat(timespec="seconds"), dataset=dataset,
            data_sha256=data_sha256, model_sha256=hashlib.sha256(blob).hexdigest(), train_seconds=train_seconds,
            metrics=metrics or {}, params=params or {}, environment=_environment(),
        )
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))
        (tmp / MODEL_FILE).write_bytes(blob)
        (tmp / META_FILE).write_text(json.dumps(asdict(meta), indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, folder / f"v{version}")
        except OSError:
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
            continue
        return meta
    raise ArtifactError(f"could not allocate a version for {name} under {folder}")


def read_meta(root: Path, name: str, version: int | None = None) -> ArtifactMeta:
    """Metadata of a version (the latest when None)."""
    found = versions(root, name)
    if not found:
        raise ArtifactError(f"no saved versions of {name!r} under {root}")
    v = found[-1] if version is None else version
    if v not in found:
        raise ArtifactError(f"{name!r} has no version {v} (saved: {found})")
    path = root / name / f"v{v}" / META_FILE
    try:
        return ArtifactMeta(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: unreadable metadata ({exc})") from None


def load(root: Path, name: str, version: int | None = None) -> tuple[object, ArtifactMeta]:
    """The model and its metadata; the model file must match the sha256 in the metadata."""
    meta = read_meta(root, name, version)
    path = root / name / f"v{meta.version}" / MODEL_FILE
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    if hashlib.sha256(blob).hexdigest() != meta.model_sha256:
        raise ArtifactError(f"{path}: contents do not match the sha256 in {META_FILE}; refusing to load")
    return pickle.loads(blob), meta
