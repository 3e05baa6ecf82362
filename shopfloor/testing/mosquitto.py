"""Start a private Mosquitto broker on a free loopback port (tests and benchmarks).

Queues are sized for bursts: stock limits (max_queued_messages 1000) drop most
of a fast stream to a slow subscriber (see shared PERFORMANCE.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from shopfloor.core.errors import NotReady
from shopfloor.core.net import free_port, wait_for_port

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if Path(p).exists()), None)


class Mosquitto:
    """A mosquitto process of our own; use as a context manager."""

    def __init__(self, port: int | None = None, extra_config: str = "", *, allow_anonymous: bool = True) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise NotReady("mosquitto is not installed (Debian package 'mosquitto')")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_config = extra_config
        self.allow_anonymous = allow_anonymous  # False: clients log in (e.g. with `shopfloor mqtt-acl` files)
        self._dir = tempfile.TemporaryDirectory(prefix="shopfloor-mosquitto-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> Mosquitto:
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            # as root, mosquitto drops to user 'mosquitto', which cannot read a test's private files
            f"{'user root' if not self.allow_anonymous and os.geteuid() == 0 else ''}\n"
            "persistence false\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 1000\n"
            "max_packet_size 16777216\n"
            f"{self.extra_config}\n"
        )
        with open(Path(self._dir.name) / "mosquitto.log", "wb") as log:
            self._proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.host, self.port)
        except NotReady:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        self._dir.cleanup()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
