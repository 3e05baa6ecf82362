"""Sockets: find a free loopback port, wait until one listens (the demo's embedded servers, tests,
benchmarks), and switch Nagle's algorithm off on an MQTT client's connection."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any, TypeVar

from shopfloor.core.errors import NotReady


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise NotReady(f"nothing listens on {host}:{port} after {timeout} s")


C = TypeVar("C")


def no_delay(client: C) -> C:
    """Set TCP_NODELAY on each connection a paho client opens (paho leaves Nagle's algorithm on).

    With Nagle on, a small packet waits while an earlier one is unacknowledged, and the peer's delayed ACK
    holds that for up to 40 ms: a command and its answer (small PUBLISH and PUBACK packets both ways) then
    take tens of ms on loopback instead of one. Returns the client.
    """

    def opened(_client: Any, _userdata: Any, sock: Any) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not a TCP socket (Unix socket, websocket wrapper)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = opened  # type: ignore[attr-defined]
    return client
