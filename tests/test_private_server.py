"""The private-server base of the test servers (Mosquitto, PostgreSQL, InfluxDB): ready only when it serves,
a fast and readable failure when the process dies, restart on the same port, nothing left behind.

Real processes on loopback: Python's own HTTP server stands in for a server, and a small fake ``influxd``
(the real one is often not installed) checks that InfluxDB's command line, config and readiness probe fit.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from shopfloor.core.errors import NotReady
from shopfloor.testing.influxdb import InfluxDB
from shopfloor.testing.private_server import PrivateServer


class HttpServer(PrivateServer):
    """``python -m http.server`` in its own dir; serves once / answers 200."""

    program = "http-server"
    ready_timeout_s = 10.0
    stop_timeout_s = 5.0

    def __init__(self, port: int | None = None) -> None:
        super().__init__("shopfloor-test-http-", port)
        self.probes = 0

    def _command(self) -> list[str]:
        (self._dir / "index.html").write_text("hello")
        return [sys.executable, "-m", "http.server", "--bind", self.host, str(self.port)]

    def _probe(self) -> str | None:
        self.probes += 1
        try:
            status = httpx.get(f"http://{self.host}:{self.port}/", timeout=2).status_code
        except httpx.HTTPError as exc:
            return repr(exc)
        return None if status == 200 else f"answered {status}"


class Crashing(PrivateServer):
    """A server whose process dies at once, saying why."""

    program = "crashing"

    def __init__(self) -> None:
        super().__init__("shopfloor-test-crash-")

    def _command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; print('bad config line 3', flush=True); sys.exit(3)"]


class NeverReady(HttpServer):
    """Listens, but its probe never passes."""

    ready_timeout_s = 0.5

    def _probe(self) -> str | None:
        return "still recovering"


def test_start_waits_until_it_serves_and_stop_removes_everything() -> None:
    with HttpServer() as server:
        assert server.probes >= 1
        assert httpx.get(f"http://{server.host}:{server.port}/index.html").text == "hello"
        directory, proc = server._dir, server._proc
        assert proc is not None and proc.poll() is None
        assert server.log_path.parent == directory
    assert proc.poll() is not None
    assert not directory.exists()


def test_shutdown_keeps_the_directory_and_start_serves_again_on_the_same_port() -> None:
    with HttpServer() as server:
        port = server.port
        server.shutdown()
        assert server._dir.exists()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{server.host}:{port}/", timeout=1)
        server.start()
        assert server.port == port
        assert httpx.get(f"http://{server.host}:{port}/index.html").text == "hello"


def test_a_process_that_dies_fails_at_once_with_its_exit_code_and_log() -> None:
    server = Crashing()
    directory = server._dir
    t0 = time.monotonic()
    with pytest.raises(NotReady, match=r"crashing exited with 3: bad config line 3"):
        server.start()
    assert time.monotonic() - t0 < server.ready_timeout_s / 2  # not a wait for the port to time out
    assert not directory.exists()


def test_a_server_that_never_serves_fails_after_its_timeout_naming_why() -> None:
    server = NeverReady()
    with pytest.raises(NotReady, match=r"http-server not ready after 0.5 s \(still recovering\)"):
        server.start()
    assert server._proc is None
    assert not server._dir.exists()


FAKE_INFLUXD = """\
#!{python}
# influxd stand-in: `influxd run -config FILE` serves /ping (204) on the [http] bind-address of FILE.
import http.server, re, sys
text = open(sys.argv[sys.argv.index("-config") + 1]).read()
host, port = re.search(r'\\[http\\][^\\[]*bind-address = "([^:]+):(\\d+)"', text).groups()
class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(204 if self.path == "/ping" else 404)
        self.end_headers()
http.server.HTTPServer((host, int(port)), Ping).serve_forever()
"""


def test_influxdb_starts_its_binary_with_its_config_and_waits_for_ping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "influxd"
    fake.write_text(textwrap.dedent(FAKE_INFLUXD.format(python=sys.executable)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with InfluxDB() as influx:
        assert influx.binary == str(fake)
        assert httpx.get(f"{influx.url}/ping").status_code == 204
        conf = (influx._dir / "influxdb.conf").read_text()
        assert f'bind-address = "127.0.0.1:{influx.rpc_port}"' in conf and influx.rpc_port != influx.port
        directory = influx._dir
    assert not directory.exists()
