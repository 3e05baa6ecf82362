"""The historian interface that every backend implements.

Backends keep SQL-engine specifics to themselves; callers see only SampleBatch
columns in and columns out. One writer thread calls ``write``; any number of
threads may read concurrently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shopfloor.core.samples import SampleBatch


@dataclass(frozen=True, slots=True)
class Buckets:
    """Time-bucketed aggregates of one tag; ``start`` is each bucket's start (ns). Empty buckets are absent."""

    start: npt.NDArray[np.int64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]
    first: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.start)


class Historian(ABC):
    """Stores raw samples durably and answers latest, raw, bucketed and retention requests."""

    @abstractmethod
    def ensure_tags(self, paths: Sequence[str]) -> dict[str, int]:
        """Stable integer ids for tag paths, creating ids for new paths (kept across restarts)."""

    @abstractmethod
    def tag_ids(self) -> dict[str, int]:
        """Every tag path the historian knows, with its id."""

    @abstractmethod
    def write(self, batch: SampleBatch) -> None:
        """Store a batch; durable (committed) when this returns. Called from one writer thread.
        Idempotent on (tag_id, ts): a sample written again replaces the earlier one, never adds a row."""

    @abstractmethod
    def latest(self, tag_ids: Sequence[int] | None = None) -> SampleBatch:
        """The newest sample of each tag (of the given tags, or of all), one row per tag that has one,
        sorted by tag_id. A sample replaces the stored one only if its ts is >= (late data never does)."""

    @abstractmethod
    def raw(self, tag_id: int, start_ns: int, end_ns: int, limit: int | None = None) -> SampleBatch:
        """Samples of one tag with start_ns <= ts < end_ns, oldest first."""

    @abstractmethod
    def buckets(self, tag_id: int, start_ns: int, end_ns: int, bucket_ns: int) -> Buckets:
        """Aggregates (min, max, mean, count, first, last) per bucket; buckets align to the epoch.
        Only good and uncertain samples with a non-NaN value are aggregated."""

    @abstractmethod
    def delete_before(self, cutoff_ns: int) -> int:
        """Retention: drop raw samples older than cutoff_ns; returns how many went. ``latest`` keeps
        each tag's newest sample however old: it is the tag's current value, not history."""

    @abstractmethod
    def count(self) -> int:
        """Number of raw samples stored."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the store."""


def open_historian(
    backend: str, data_dir: str | Path, url: str | None = None, *, write_connections: int = 2
) -> Historian:
    """Open the configured backend: DuckDB in data_dir, or PostgreSQL at url."""
    if backend == "duckdb":
        from shopfloor.historian.duckdb_store import DuckDBHistorian

        return DuckDBHistorian(Path(data_dir) / "historian.duckdb")
    if backend == "postgres":
        if not url:
            raise ValueError("the postgres historian needs a postgresql:// URL")
        from shopfloor.historian.postgres_store import PostgresHistorian

        return PostgresHistorian(url, write_connections=write_connections)
    raise ValueError(f"unknown historian backend {backend!r}")
