"""Supervision: the server goes away and comes back on the same endpoint."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from opcua_testkit import Sink, free_port, node_id, running, start_server, wait_for

from shopfloor.config.schema import OpcUaPoint, OpcUaSource
from shopfloor.connectors.opcua import OpcUaConnector
from shopfloor.core.samples import Quality


async def test_server_restart_marks_bad_once_and_resubscribes(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/shopfloor/"
    server = await start_server(endpoint)
    src = OpcUaSource(protocol="opcua", endpoint=endpoint, publishing_interval_ms=20, sampling_interval_ms=10)
    points: list[tuple[int, str, OpcUaPoint | None]] = [(1, node_id("Double"), None), (2, node_id("Int16"), None)]
    conn = OpcUaConnector("press", src, points, flush_interval=0.05, watchdog_interval=0.2,
                          backoff_initial=0.1, backoff_max=0.4, request_timeout=1.0)

    def bad_batches() -> int:
        return sum(1 for b in sink.batches if len(b) == 2 and (b.quality == Quality.BAD).all()
                   and np.isnan(b.value).all())

    caplog.set_level(logging.INFO, logger="shopfloor.connectors.opcua")
    try:
        async with running(conn, sink):
            await server.set("Double", 1.0)
            await wait_for(lambda: sink.has(1, 1.0), what="first value")

            await server.server.stop()
            await wait_for(lambda: bad_batches() == 1, timeout=5, what="the BAD batch")
            assert set(sink.batches[-1].tag_id.tolist()) == {1, 2}
            assert conn.health()["connected"] is False
            assert conn.health()["state"] in ("connecting", "reconnecting", "backoff")
            assert conn.health()["last_error"] is not None

            server = await start_server(endpoint)
            await wait_for(lambda: conn.health()["connected"] is True, timeout=10, what="reconnect")
            await server.set("Double", 42.0)
            await wait_for(lambda: sink.has(1, 42.0), what="values after the restart")
            health = conn.health()
            assert health["reconnects"] == 1 and health["subscribed"] == 2 and health["state"] == "connected"
            assert bad_batches() == 1  # one BAD batch per outage, however many retries
            assert not math.isnan(sink.values(1)[-1])
    finally:
        await server.server.stop()
    ours = [r for r in caplog.records if r.name.startswith("shopfloor.connectors.opcua")]
    assert sum("lost" in r.getMessage() for r in ours) == 1
    assert sum("again" in r.getMessage() for r in ours) == 1
