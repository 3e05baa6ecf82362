"""The fault proxy on its own, against a TCP echo server: delay, order under jitter, loss as stalls, cut."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from shopfloor.testing.faultproxy import FaultProxy, LinkFaults


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def round_trip(sock: socket.socket, payload: bytes) -> float:
    t0 = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    assert got == payload
    return time.monotonic() - t0


def test_delay_applies_each_way_and_jitter_keeps_the_order(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port, faults=LinkFaults(delay_s=0.05), seed=3) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        assert round_trip(sock, b"ping") >= 0.1  # 50 ms there and 50 ms back
        proxy.set_faults(LinkFaults(), direction="down")  # only the way up is slow now
        assert round_trip(sock, b"pong") >= 0.05
        proxy.set_faults(LinkFaults(delay_s=0.02, jitter_s=0.02))
        for i in range(20):  # small writes, each a chunk with its own random delay: still in order
            sock.sendall(b"%03d" % i)
            time.sleep(0.002)
        got = b""
        while len(got) < 60:
            got += sock.recv(65536)
        assert got == b"".join(b"%03d" % i for i in range(20))


def test_loss_stalls_the_stream_until_the_retransmission(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port, faults=LinkFaults(loss=1.0, retransmit_s=0.1)) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        assert round_trip(sock, b"x") >= 0.2  # lost both ways, nothing missing
        assert proxy.chunks_lost >= 2


def test_a_cut_blackholes_and_a_closing_cut_closes(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        round_trip(sock, b"before")
        cut_at = proxy.cut()
        assert proxy.cut_at == cut_at and proxy.is_cut
        sock.settimeout(0.3)
        sock.sendall(b"during")
        with pytest.raises(TimeoutError):
            sock.recv(100)  # nothing comes back, and nobody says so
        proxy.cut(close=True)
        sock.settimeout(5)
        deadline = time.monotonic() + 5
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                closed = sock.recv(100) == b""
            except ConnectionResetError:
                closed = True
        assert closed
        proxy.restore()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as again:
            round_trip(again, b"after")
