"""The connector against one in-process asyncua server: types, quality, deadband, health, writes, calls, browse."""

from __future__ import annotations

import math

import numpy as np
import pytest
from asyncua.ua.status_codes import StatusCodes
from opcua_testkit import VARIABLES, Sink, UaTestServer, node_id, running, wait_for

from shopfloor.config.schema import OpcUaPoint, OpcUaSource
from shopfloor.connectors.opcua import OpcUaConnector, OpcUaError, browse
from shopfloor.core.errors import NotReady
from shopfloor.core.samples import Quality

pytestmark = pytest.mark.asyncio(loop_scope="module")

NUMERIC = ["Double", "Float", "Int16", "Int32", "UInt16", "Int64", "Boolean"]


def source(server: UaTestServer, **kw: object) -> OpcUaSource:
    return OpcUaSource.model_validate({"protocol": "opcua", "endpoint": server.endpoint,
                                       "publishing_interval_ms": 20, "sampling_interval_ms": 10, **kw})


def connector(server: UaTestServer, points: list[tuple[int, str, OpcUaPoint | None]]) -> OpcUaConnector:
    return OpcUaConnector("press", source(server), points, flush_interval=0.05, watchdog_interval=0.5)


async def test_subscription_delivers_every_numeric_type(opcua_server: UaTestServer, sink: Sink) -> None:
    points: list[tuple[int, str, OpcUaPoint | None]] = [(i + 10, node_id(n), None) for i, n in enumerate(NUMERIC)]
    for name in NUMERIC:
        await opcua_server.set(name, VARIABLES[name][1])
    async with running(connector(opcua_server, points), sink) as conn:
        await wait_for(lambda: all(sink.values(i + 10) for i in range(len(NUMERIC))), what="a value per tag")
        for i, name in enumerate(NUMERIC):
            assert sink.values(i + 10)[0] == float(VARIABLES[name][1]), name  # type: ignore[arg-type]
            assert sink.qualities(i + 10)[0] == Quality.GOOD
        batch = sink.all()
        assert batch.tag_id.dtype == np.int32 and batch.value.dtype == np.float64
        assert len(sink.batches) < len(batch)  # notifications are batched, not one batch each
        assert (batch.ts > 1_600_000_000 * 10**9).all()  # source timestamps, in ns

        await opcua_server.set("Int16", -123)
        await opcua_server.set("Boolean", False)
        await wait_for(lambda: sink.has(12, -123) and sink.has(16, 0.0), what="changed values")

        health = conn.health()
        assert health["connected"] is True and health["state"] == "connected"
        assert health["protocol"] == "opcua" and health["endpoint"] == opcua_server.endpoint
        assert health["subscribed"] == len(NUMERIC) and health["failed_nodes"] == {}
        assert isinstance(health["notifications"], int) and health["notifications"] >= len(NUMERIC) + 2
        assert health["last_data_ns"] is not None and health["reconnects"] == 0


async def test_bad_nodes_reported_while_others_work(opcua_server: UaTestServer, sink: Sink) -> None:
    points: list[tuple[int, str, OpcUaPoint | None]] = [
        (1, node_id("Double"), None),
        (2, "ns=2;s=Machine.DoesNotExist", None),
        (3, node_id("Text"), None),
        (4, "this is no node id", None),
        (5, "ns=2;s=Machine", None),  # an object, not a variable
    ]
    await opcua_server.set("Double", 3.25)
    async with running(connector(opcua_server, points), sink) as conn:
        await wait_for(lambda: sink.has(1, 3.25), what="the good node's value")
        health = conn.health()
        failed = health["failed_nodes"]
        assert isinstance(failed, dict)
        assert set(failed) == {"ns=2;s=Machine.DoesNotExist", node_id("Text"), "this is no node id", "ns=2;s=Machine"}
        assert failed["ns=2;s=Machine.DoesNotExist"] == "BadNodeIdUnknown"
        assert "non-numeric" in failed[node_id("Text")]
        assert "invalid node id" in failed["this is no node id"]
        assert health["subscribed"] == 1
        assert set(sink.all().tag_id.tolist()) == {1}


async def test_deadband_suppresses_small_changes(opcua_server: UaTestServer, sink: Sink) -> None:
    await opcua_server.set("Float", 100.0)
    await opcua_server.set("Int32", 0)
    points: list[tuple[int, str, OpcUaPoint | None]] = [
        (1, node_id("Float"), OpcUaPoint(deadband=1.0)),
        (2, node_id("Int32"), None),  # no deadband: the marker that the server has sampled
    ]
    async with running(connector(opcua_server, points), sink):
        await wait_for(lambda: sink.has(1, 100.0) and sink.has(2, 0), what="initial values")
        await opcua_server.set("Float", 100.5)
        await opcua_server.set("Int32", 1)
        await wait_for(lambda: sink.has(2, 1), what="marker 1")
        await opcua_server.set("Float", 102.0)
        await wait_for(lambda: sink.has(1, 102.0), what="the large change")
        assert sink.values(1) == [100.0, 102.0]


async def test_bad_status_becomes_bad_quality(opcua_server: UaTestServer, sink: Sink) -> None:
    await opcua_server.set("Double", 1.0)
    async with running(connector(opcua_server, [(7, node_id("Double"), None)]), sink):
        await wait_for(lambda: sink.has(7, 1.0), what="good value")
        await opcua_server.set("Double", 2.0, status=StatusCodes.BadSensorFailure)
        await wait_for(lambda: Quality.BAD in sink.qualities(7), what="bad quality")
        await opcua_server.set("Double", 3.0, status=StatusCodes.UncertainLastUsableValue)
        await wait_for(lambda: Quality.UNCERTAIN in sink.qualities(7), what="uncertain quality")
        assert sink.qualities(7)[0] == Quality.GOOD


WRITES: dict[str, float | int | bool] = {
    "Double": 6.5, "Float": -1.25, "Int16": -1234, "Int32": 70000, "UInt16": 65535, "Int64": -(2**50),
    "Boolean": True,
}


async def test_write_uses_the_nodes_type(opcua_server: UaTestServer, sink: Sink) -> None:
    conn = connector(opcua_server, [(1, node_id("Double"), None)])
    with pytest.raises(NotReady):
        await conn.write(node_id("Double"), 1.0)
    async with running(conn, sink):
        await wait_for(lambda: conn.health()["connected"] is True, what="connected")
        for name, value in WRITES.items():
            await conn.write(node_id(name), value)
            dv = await opcua_server.nodes[name].read_data_value()
            assert dv.Value is not None
            assert dv.Value.VariantType == VARIABLES[name][0], name
            assert dv.Value.Value == value, name
        await conn.write(node_id("Int16"), 7.0)  # an integral float is fine for an integer node
        assert await opcua_server.nodes["Int16"].read_value() == 7
        with pytest.raises(OpcUaError, match="out of range"):
            await conn.write(node_id("Int16"), 40000)
        with pytest.raises(OpcUaError, match="not an integer"):
            await conn.write(node_id("Int32"), 1.5)
        with pytest.raises(OpcUaError) as unknown:
            await conn.write("ns=2;s=Machine.Nope", 1)
        assert unknown.value.status == "BadNodeIdUnknown"


async def test_call_method(opcua_server: UaTestServer, sink: Sink) -> None:
    conn = connector(opcua_server, [(1, node_id("Double"), None)])
    async with running(conn, sink):
        await wait_for(lambda: conn.health()["connected"] is True, what="connected")
        assert await conn.call("ns=2;s=Machine", "ns=2;s=Machine.Add", 2, 3.5) == [5.5]
        with pytest.raises(OpcUaError) as missing:
            await conn.call("ns=2;s=Machine", "ns=2;s=Machine.Add", 2)
        assert missing.value.status is not None and missing.value.status.startswith("Bad")
        with pytest.raises(OpcUaError) as unknown:
            await conn.call("ns=2;s=Machine", "ns=2;s=Machine.Nope", 1, 2)
        assert unknown.value.status is not None and unknown.value.status.startswith("Bad")


async def test_browse_finds_the_nodes(opcua_server: UaTestServer) -> None:
    nodes = await browse(opcua_server.endpoint, depth=2)
    by_path = {n.browse_path: n for n in nodes}
    assert by_path["2:Machine"].node_class == "Object"
    double = by_path["2:Machine/2:Double"]
    assert double.node_id == node_id("Double") and double.node_class == "Variable"
    assert double.data_type == "Double"
    assert "CurrentRead" in double.access_level and "CurrentWrite" in double.access_level
    assert by_path["2:Machine/2:Int16"].data_type == "Int16"
    assert by_path["2:Machine/2:Add"].node_class == "Method"

    under = await browse(opcua_server.endpoint, root="ns=2;s=Machine", depth=1)
    assert {n.browse_path for n in under} >= {f"2:{name}" for name in VARIABLES} | {"2:Add"}
    assert all(not math.isnan(len(n.node_id)) for n in under)
