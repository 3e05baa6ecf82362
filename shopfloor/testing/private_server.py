"""A server process of our own for tests and benchmarks: a temp dir, a free loopback port, ready when it serves.

The private InfluxDB, PostgreSQL and Mosquitto differ in their command line and in what "serving" means
(``/ping`` answers, a connection is accepted, the port is open); everything around that is here once:
the directory and its log, the wait that fails fast when the process dies, stopping with a signal and
killing only when it hangs, and deleting the directory. Never the machine's own instances: their data
and settings are not ours.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from shopfloor.core.errors import NotReady
from shopfloor.core.net import free_port


def find_binary(name: str, paths: Iterable[str]) -> str | None:
    """``name`` on PATH, else the first of ``paths`` that exists (sbin is often not on a user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    return next((p for p in paths if Path(p).exists()), None)


class PrivateServer:
    """One server process in a temp dir of its own, listening on ``host:port``; a context manager.

    Subclasses say how to start it (``_command``, which may write config files first) and, when an open
    port is not enough, what serving means (``_probe``). ``shutdown`` keeps the directory (a restart on the
    same data), ``stop`` deletes it."""

    program: ClassVar[str]  # names the log file and the errors
    ready_timeout_s: ClassVar[float] = 30.0
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout_s: ClassVar[float] = 30.0  # then SIGKILL

    def __init__(self, dir_prefix: str, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix=dir_prefix, ignore_cleanup_errors=True)
        self._dir = Path(self._tmp.name)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the process's stdout and stderr go (appended across restarts)."""
        return self._dir / f"{self.program}.log"

    def _command(self) -> list[str]:
        """The command line; called at every start, so it may write (or rewrite) config files first."""
        raise NotImplementedError

    def _popen_options(self) -> dict[str, Any]:
        """More ``subprocess.Popen`` arguments (env, the user to run as)."""
        return {}

    def _probe(self) -> str | None:
        """None when the server serves, else why not (for the error); called once the port is open."""
        return None

    def start(self) -> Self:
        """Start the process and wait until it serves; NotReady (with its log) if it does not, and stopped."""
        command = self._command()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self._dir, **self._popen_options()
            )
        try:
            self._wait_ready(self.ready_timeout_s)
        except NotReady:
            self.stop()
            raise
        return self

    def _listening(self) -> str | None:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return None
        except OSError:
            return f"nothing listens on {self.host}:{self.port}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            why = self._listening() or self._probe()
            if why is None:
                return
            if self._proc is not None and (code := self._proc.poll()) is not None:
                raise NotReady(f"{self.program} exited with {code}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise NotReady(f"{self.program} not ready after {timeout} s ({why}): {self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self, n: int = 2000) -> str:
        """The end of the process's log, for error messages."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def shutdown(self) -> None:
        """Stop the process (``stop_signal``, SIGKILL if it hangs); keep the directory."""
        if self._proc is not None:
            self._proc.send_signal(self.stop_signal)
            try:
                self._proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None

    def stop(self) -> None:
        """Stop the process and delete its directory."""
        self.shutdown()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["PrivateServer", "find_binary"]
