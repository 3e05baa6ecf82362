"""The embedded MQTT broker (amqtt) for one-machine setups such as `shopfloor demo`.

It runs on its own thread and event loop so that a busy broker never stalls the
API's loop. A real plant points shopfloor at Mosquitto or another broker instead
(`--broker mqtt://host:1883`); measured limits of the embedded one are in docs.
With ``access`` (acl.py) it enforces the device credentials and topic rules that
`shopfloor mqtt-acl` writes for Mosquitto (broker_auth.py); without, anyone may connect.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from shopfloor.connectors.mqtt.acl import BrokerAccess
from shopfloor.core.errors import NotReady

log = logging.getLogger(__name__)


class _SnapshotSubscriptions(dict[str, Any]):
    """amqtt's subscription table, iterated over a snapshot.

    amqtt 0.12.1 loops over the table across awaits (retained messages when a client connects, every
    broadcast); a client subscribing meanwhile raised "dictionary changed size during iteration" and cut
    the connecting client off. The demo connects a dozen clients at once, so it happened there.
    """

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


class EmbeddedBroker:
    """An amqtt broker on host:port, started and stopped from synchronous code."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, access: BrokerAccess | None = None) -> None:
        self.host = host
        self.port = port
        self.access = access
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: object | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        started: Future[None] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(started,), name="mqtt-broker", daemon=True)
        self._thread.start()
        try:
            started.result(timeout)
        except Exception as exc:
            self.stop()
            raise NotReady(f"embedded MQTT broker failed to start on {self.host}:{self.port}: {exc}") from exc
        log.info("embedded MQTT broker listening on %s", self.url)

    def _run(self, started: Future[None]) -> None:
        from amqtt.broker import Broker

        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        plugins: dict[str, Any] = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        if self.access is not None:
            from shopfloor.connectors.mqtt.broker_auth import plugins_config

            plugins = plugins_config(self.access)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 1000}},
            "plugins": plugins,
        }

        async def boot() -> None:
            broker = Broker(config)
            broker._subscriptions = _SnapshotSubscriptions()  # see the class
            await broker.start()
            self._broker = broker

        try:
            self._loop.run_until_complete(boot())
        except Exception as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        loop, thread, broker = self._loop, self._thread, self._broker
        if loop is None or thread is None:
            return
        if broker is not None and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)  # type: ignore[attr-defined]
            try:
                fut.result(10)
            except Exception:  # a broker that fails to shut down cleanly is still stopped below
                log.warning("embedded MQTT broker did not shut down cleanly", exc_info=True)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = self._broker = None
