"""Versioned model artifacts: the trained object, its metrics, and the hash of the data it was trained on.

Layout: `<root>/<name>/v<N>/model.pkl` and `meta.json`. Versions only grow; `save` never overwrites. The
metadata carries the sha256 of model.pkl, checked on `load`, so a damaged or swapped file is refused instead
of unpickled. Pickle runs code when loaded: load only artifacts this platform wrote itself.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from shopfloor.core.errors import ShopfloorError

_VERSION = re.compile(r"^v(\d+)$")


class ArtifactError(ShopfloorError):
    """An artifact that is missing, incomplete, or whose model file does not match its recorded hash."""


@dataclass(frozen=True)
class ArtifactMeta:
    """What is known about a saved model."""

    name: str
    version: int
    created: str
    data_hash: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    model_sha256: str
    environment: dict[str, str]


def _versions(root: Path, name: str) -> list[int]:
    base = root / name
    if not base.is_dir():
        return []
    found = (_VERSION.match(p.name) for p in base.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def save(root: Path, name: str, model: object, data_hash: str, metrics: dict[str, Any],
         params: dict[str, Any] | None = None) -> ArtifactMeta:
    """Store `model` as the next version of `name`, with its metrics and data hash."""
    versions = _versions(root, name)
    version = (versions[-1] + 1) if versions else 1
    folder = root / name / f"v{version}"
    folder.mkdir(parents=True, exist_ok=False)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / "model.pkl").write_bytes(blob)
    meta = ArtifactMeta(
        name=name, version=version, created=datetime.now(UTC).isoformat(timespec="seconds"),
        data_hash=data_hash, metrics=metrics, params=params or {},
        model_sha256=hashlib.sha256(blob).hexdigest(),
        environment={"python": platform.python_version(), "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__},
    )
    (folder / "meta.json").write_text(json.dumps(meta.__dict__, indent=2, default=float))
    return meta


def read_meta(root: Path, name: str, version: int | None = None) -> ArtifactMeta:
    """Metadata of one version (the latest if None)."""
    versions = _versions(root, name)
    if not versions:
        raise ArtifactError(f"no artifact named {name!r} under {root}")
    v = versions[-1] if version is None else version
    path = root / name / f"v{v}" / "meta.json"
    if not path.is_file():
        raise ArtifactError(f"{name} v{v}: no meta.json at {path}")
    try:
        return ArtifactMeta(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ArtifactError(f"{name} v{v}: unreadable meta.json ({exc})") from exc


def load(root: Path, name: str, version: int | None = None) -> tuple[Any, ArtifactMeta]:
    """The model and metadata of one version (latest if None); refuses a model file whose hash differs."""
    meta = read_meta(root, name, version)
    path = root / name / f"v{meta.version}" / "model.pkl"
    if not path.is_file():
        raise ArtifactError(f"{name} v{meta.version}: model.pkl missing")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.model_sha256:
        raise ArtifactError(f"{name} v{meta.version}: model.pkl does not match the hash in meta.json")
    return pickle.loads(blob), meta
