"""Loopback ports: find a free one, wait until one listens (the demo's embedded servers, tests, benchmarks)."""

from __future__ import annotations

import socket
import time

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
