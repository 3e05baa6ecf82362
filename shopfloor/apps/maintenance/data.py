"""Where the public benchmark data lives, and a content hash that ties a trained model to the data it saw."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from shopfloor.core.errors import ShopfloorError


class DataMissing(ShopfloorError, FileNotFoundError):
    """A benchmark data set is not where SHOPFLOOR_DATA points (benchmarks skip, training stops)."""


def data_root() -> Path:
    """SHOPFLOOR_DATA, or ../shared/data next to the repository (the layout of the project's machines)."""
    env = os.environ.get("SHOPFLOOR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def dataset_dir(name: str, root: Path | None = None, required: Iterable[str] = ()) -> Path:
    """The folder of one data set, checked to hold the files a loader needs."""
    folder = (root or data_root()) / name
    missing = [f for f in required if not (folder / f).exists()]
    if not folder.is_dir() or missing:
        what = f"missing {', '.join(missing)}" if folder.is_dir() else "no such folder"
        raise DataMissing(f"{name} data not found at {folder} ({what}); set SHOPFLOOR_DATA")
    return folder


def files_sha256(paths: Iterable[Path]) -> str:
    """One sha256 over the names and bytes of the files, in sorted order: the data version of a model."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
