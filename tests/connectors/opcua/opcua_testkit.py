"""An in-process asyncua server on a free loopback port, and a sink that collects emitted batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.common.methods import uamethod
from asyncua.common.node import Node
from asyncua.server.server import Server

from shopfloor.connectors.opcua import OpcUaConnector
from shopfloor.core.net import free_port
from shopfloor.core.samples import SampleBatch

NS_URI = "urn:shopfloor:test"
VARIABLES: dict[str, tuple[ua.VariantType, object]] = {
    "Double": (ua.VariantType.Double, 1.5),
    "Float": (ua.VariantType.Float, 2.5),
    "Int16": (ua.VariantType.Int16, -3),
    "Int32": (ua.VariantType.Int32, 40000),
    "UInt16": (ua.VariantType.UInt16, 5),
    "Int64": (ua.VariantType.Int64, 2**40),
    "Boolean": (ua.VariantType.Boolean, True),
    "Text": (ua.VariantType.String, "not a number"),
}


def node_id(name: str) -> str:
    return f"ns=2;s=Machine.{name}"


def sid(name: str) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns=2;s={name}")



@dataclass
class UaTestServer:
    endpoint: str
    server: Server
    nodes: dict[str, Node] = field(default_factory=dict)

    async def set(self, name: str, value: Any, status: int | None = None) -> None:
        vtype = VARIABLES[name][0]
        if status is None:
            await self.nodes[name].write_value(ua.Variant(value, vtype))
        else:
            await self.nodes[name].write_value(
                ua.DataValue(ua.Variant(value, vtype), StatusCode=ua.StatusCode(ua.UInt32(status))))


async def start_server(
    endpoint: str, configure: Callable[[Server], Any] | None = None, user_manager: Any = None
) -> UaTestServer:
    """The same small address space every time, so a restarted server has the same node ids."""
    server = Server(user_manager=user_manager)
    await server.init()
    server.set_endpoint(endpoint)
    if configure is not None:
        await configure(server)
    idx = await server.register_namespace(NS_URI)
    assert idx == 2
    machine = await server.nodes.objects.add_object(sid("Machine"), ua.QualifiedName("Machine", idx))
    nodes: dict[str, Node] = {}
    for name, (vtype, value) in VARIABLES.items():
        var = await machine.add_variable(sid(f"Machine.{name}"), ua.QualifiedName(name, idx),
                                         ua.Variant(value, vtype))
        await var.set_writable()
        nodes[name] = var

    @uamethod
    def add(parent: object, a: float, b: float) -> float:
        return a + b

    await machine.add_method(sid("Machine.Add"), ua.QualifiedName("Add", idx), add,
                             [ua.VariantType.Double, ua.VariantType.Double], [ua.VariantType.Double])
    await server.start()
    return UaTestServer(endpoint, server, nodes)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def opcua_server() -> AsyncIterator[UaTestServer]:
    """One server per module: asyncua's server takes about 2 s to start."""
    srv = await start_server(f"opc.tcp://127.0.0.1:{free_port()}/shopfloor/")
    try:
        yield srv
    finally:
        await srv.server.stop()


@asynccontextmanager
async def running(connector: OpcUaConnector, emit: Sink) -> AsyncIterator[OpcUaConnector]:
    """Run the connector as a task; on exit it must end by cancellation, not swallow it."""
    task = asyncio.create_task(connector.run(emit))
    try:
        yield connector
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert connector.health()["state"] == "stopped"


class Sink:
    """Collects emitted batches; ``wait`` polls a condition with a deadline instead of sleeping."""

    def __init__(self) -> None:
        self.batches: list[SampleBatch] = []

    async def __call__(self, batch: SampleBatch) -> None:
        self.batches.append(batch)

    def all(self) -> SampleBatch:
        return SampleBatch.concat(self.batches)

    def values(self, tag_id: int) -> list[float]:
        b = self.all()
        return [float(v) for v in b.value[b.tag_id == tag_id]]

    def qualities(self, tag_id: int) -> list[int]:
        b = self.all()
        return [int(q) for q in b.quality[b.tag_id == tag_id]]

    def has(self, tag_id: int, value: float) -> bool:
        return bool(np.any(np.isclose(self.values(tag_id), value)))


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def sink() -> Sink:
    return Sink()
