"""Start a private Mosquitto broker on a free loopback port (tests and benchmarks).

Queues are sized for bursts: stock limits (max_queued_messages 1000) drop most
of a fast stream to a slow subscriber (see shared PERFORMANCE.md).
"""

from __future__ import annotations

import os

from shopfloor.core.errors import NotReady
from shopfloor.testing.private_server import PrivateServer, find_binary

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    return find_binary("mosquitto", MOSQUITTO_PATHS)


class Mosquitto(PrivateServer):
    """A mosquitto process of our own; use as a context manager. Ready when its port is open."""

    program = "mosquitto"
    ready_timeout_s = 10.0
    stop_timeout_s = 5.0

    def __init__(self, port: int | None = None, extra_config: str = "", *, allow_anonymous: bool = True) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise NotReady("mosquitto is not installed (Debian package 'mosquitto')")
        super().__init__("shopfloor-mosquitto-", port)
        self.binary = binary
        self.extra_config = extra_config
        self.allow_anonymous = allow_anonymous  # False: clients log in (e.g. with `shopfloor mqtt-acl` files)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        conf = self._dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            # as root, mosquitto drops to user 'mosquitto', which cannot read a test's private files
            f"{'user root' if not self.allow_anonymous and os.geteuid() == 0 else ''}\n"
            "persistence false\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 1000\n"
            "max_packet_size 16777216\n"
            "set_tcp_nodelay true\n"  # as docs/control.md advises: commands are answered in ms, not tens
            f"{self.extra_config}\n"
        )
        return [self.binary, "-c", str(conf)]
