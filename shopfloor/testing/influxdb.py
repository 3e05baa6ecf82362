"""Start a private InfluxDB 1.x server (influxd, a temp config and data dir, free loopback ports).

For benchmarks and tests only: never the machine's own instance (Debian's package installs a
service on 8086/8088 whose data and settings are not ours). Both the HTTP port and the backup
(RPC) port are free loopback ports of our own; meta, data and WAL live in a temp dir that
``stop()`` deletes. The WAL is fsynced on every write (``wal-fsync-delay = "0s"``, the default),
so a 204 from ``/write`` means the points are on disk in the WAL, not yet in a TSM file.

Monitoring (the ``_internal`` database), the HTTP access log, the query log, subscriptions,
continuous queries and usage reporting are off: they cost CPU on a small machine and are no
part of what a benchmark measures.

Debian package: ``influxdb`` (1.6.7 on bookworm).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from shopfloor.core.errors import NotReady
from shopfloor.core.net import free_port
from shopfloor.testing.private_server import PrivateServer, find_binary

INFLUXD_PATHS = ("/usr/bin/influxd", "/usr/local/bin/influxd", "/usr/sbin/influxd")


def find_influxd() -> str | None:
    """The influxd binary, or None when InfluxDB is not installed."""
    return find_binary("influxd", INFLUXD_PATHS)


def influxd_version(binary: str) -> str:
    """``influxd version`` output, e.g. ``InfluxDB v1.6.7~rc0 (git: ...)``; empty if it fails."""
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


class InfluxDB(PrivateServer):
    """An influxd process of our own; use as a context manager. ``url`` is its HTTP API."""

    program = "influxd"

    def __init__(self, *, cache_max_memory: str = "1g", cold: str = "10s") -> None:
        """``cold``: idle time after which the cache is written to TSM and shards are fully compacted
        (stock: 10 m and 4 h), so that ``settle()`` can wait for the state a long-running server reaches."""
        binary = find_influxd()
        if binary is None:
            raise NotReady("influxd is not installed (Debian package 'influxdb')")
        super().__init__("shopfloor-influxdb-")
        self.binary = binary
        self.rpc_port = free_port()
        while self.rpc_port == self.port:
            self.rpc_port = free_port()
        self.cache_max_memory = cache_max_memory
        self.cold = cold
        self.data_dir = self._dir / "data"
        self.wal_dir = self._dir / "wal"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_text(self) -> str:
        return (
            "reporting-disabled = true\n"
            f'bind-address = "{self.host}:{self.rpc_port}"\n'
            "[meta]\n"
            f'  dir = "{self._dir / "meta"}"\n'
            "[data]\n"
            f'  dir = "{self.data_dir}"\n'
            f'  wal-dir = "{self.wal_dir}"\n'
            '  wal-fsync-delay = "0s"\n'
            "  query-log-enabled = false\n"
            f'  cache-snapshot-write-cold-duration = "{self.cold}"\n'
            f'  compact-full-write-cold-duration = "{self.cold}"\n'
            f'  cache-max-memory-size = "{self.cache_max_memory}"\n'
            "[http]\n"
            "  enabled = true\n"
            f'  bind-address = "{self.host}:{self.port}"\n'
            "  auth-enabled = false\n"
            "  log-enabled = false\n"
            "[monitor]\n"
            "  store-enabled = false\n"
            "[subscriber]\n"
            "  enabled = false\n"
            "[continuous_queries]\n"
            "  enabled = false\n"
        )

    def _command(self) -> list[str]:
        conf = self._dir / "influxdb.conf"
        conf.write_text(self.config_text())
        return [self.binary, "run", "-config", str(conf)]

    def _probe(self) -> str | None:
        """The port opens once the HTTP service starts; /ping answers 204 when it serves."""
        import httpx

        try:
            status = httpx.get(f"{self.url}/ping", timeout=2).status_code
        except httpx.HTTPError as exc:
            return f"/ping: {exc!r}"
        return None if status == 204 else f"/ping answered {status}"

    def query(self, q: str, db: str | None = None, *, post: bool = False) -> list[dict[str, object]]:
        """Run InfluxQL; returns the ``results`` list. Raises RuntimeError on an error in the answer."""
        import httpx

        params = {"q": q, **({"db": db} if db else {})}
        if post:
            resp = httpx.post(f"{self.url}/query", data=params, timeout=120)
        else:
            resp = httpx.get(f"{self.url}/query", params=params, timeout=120)
        resp.raise_for_status()
        results: list[dict[str, object]] = resp.json().get("results", [])
        for r in results:
            if "error" in r:
                raise RuntimeError(f"InfluxQL error: {r['error']}")
        return results

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', post=True)

    def disk_bytes(self) -> int:
        """Bytes under the data and WAL dirs."""
        return sum(f.stat().st_size for d in (self.data_dir, self.wal_dir) if d.exists()
                   for f in d.rglob("*") if f.is_file())  # fmt: skip

    def settle(self, timeout: float = 120.0) -> bool:
        """Wait until the WAL is written out to TSM and every shard is one TSM file (compacted);
        False if that did not happen within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wal = sum(f.stat().st_size for f in self.wal_dir.rglob("*.wal") if f.is_file())
            shards: dict[Path, int] = {}
            for f in self.data_dir.rglob("*.tsm"):
                shards[f.parent] = shards.get(f.parent, 0) + 1
            if wal < 1 << 20 and shards and all(n == 1 for n in shards.values()):
                return True
            time.sleep(0.5)
        return False
