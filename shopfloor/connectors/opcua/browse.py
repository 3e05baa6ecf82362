"""Browse a server's address space, so an integrator can map nodes to tags."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError

from shopfloor.config.schema import OpcUaSource
from shopfloor.connectors.opcua._client import OpcUaError, close_client, make_client, parse_node_id, translate_error

_CONCURRENCY = 32  # browse requests in flight at once, so a wide level does not flood the server


@dataclass(frozen=True, slots=True)
class BrowsedNode:
    """One node found under the browse root; data_type and access_level only for variables."""

    node_id: str
    browse_path: str  # "2:Machine/2:Spindle.Speed", relative to the root
    node_class: str  # Object, Variable, Method, ...
    data_type: str | None  # "Double", or the data type's browse name for custom types
    access_level: tuple[str, ...]  # ("CurrentRead", "CurrentWrite")


def _access_names(bits: int) -> tuple[str, ...]:
    return tuple(level.name for level in ua.AccessLevel if bits & (1 << level.value))


async def browse(
    endpoint: str | OpcUaSource,
    *,
    root: str = "i=85",
    depth: int = 5,
    timeout: float = 4.0,
) -> list[BrowsedNode]:
    """Nodes below ``root`` (Objects by default) down to ``depth`` levels, breadth first.

    Pass an OpcUaSource instead of an endpoint to browse with its security and login.
    """
    source = endpoint if isinstance(endpoint, OpcUaSource) else OpcUaSource(protocol="opcua", endpoint=endpoint)
    try:
        root_id = parse_node_id(root)
    except ValueError as exc:
        raise OpcUaError(str(exc)) from exc
    what = f"browse {source.endpoint}"
    try:
        client = await make_client(source, timeout=timeout, watchdog_interval=max(timeout, 1.0))
        await client.connect()
    except (UaError, OSError, TimeoutError) as exc:
        raise translate_error(exc, what) from exc
    try:
        return await _walk(client, root_id, depth)
    except (UaError, OSError, TimeoutError) as exc:
        raise translate_error(exc, what) from exc
    finally:
        await close_client(client, timeout)


async def _walk(client: Client, root: ua.NodeId, depth: int) -> list[BrowsedNode]:
    found: list[tuple[ua.NodeId, str, ua.NodeClass]] = []
    seen = {root}
    level: list[tuple[ua.NodeId, str]] = [(root, "")]
    for _ in range(depth):
        children: list[list[ua.ReferenceDescription]] = []
        for start in range(0, len(level), _CONCURRENCY):
            chunk = level[start:start + _CONCURRENCY]
            children += await asyncio.gather(*(client.get_node(nid).get_children_descriptions() for nid, _ in chunk))
        next_level: list[tuple[ua.NodeId, str]] = []
        for (_, parent_path), refs in zip(level, children, strict=True):
            for ref in refs:
                nid = ref.NodeId
                if nid in seen:
                    continue
                seen.add(nid)
                path = f"{parent_path}/{ref.BrowseName.to_string()}" if parent_path else ref.BrowseName.to_string()
                found.append((nid, path, ref.NodeClass))
                next_level.append((nid, path))
        level = next_level
        if not level:
            break
    variables = [nid for nid, _, cls in found if cls == ua.NodeClass.Variable]
    info: dict[ua.NodeId, tuple[str | None, tuple[str, ...]]] = {}
    if variables:
        nodes = [client.get_node(nid) for nid in variables]
        types = await client.read_attributes(nodes, AttributeIds.DataType)
        levels = await client.read_attributes(nodes, AttributeIds.AccessLevel)
        names = await _type_names(client, [dv.Value.Value if dv.Value is not None else None for dv in types])
        for nid, name, level_dv in zip(variables, names, levels, strict=True):
            bits = level_dv.Value.Value if level_dv.Value is not None else None
            info[nid] = (name, _access_names(bits) if isinstance(bits, int) else ())
    return [
        BrowsedNode(nid.to_string(), path, cls.name, *info.get(nid, (None, ())))
        for nid, path, cls in found
    ]


async def _type_names(client: Client, type_ids: list[object]) -> list[str | None]:
    """Data type names, read once per distinct type (the display name of the data type node)."""
    distinct = list({t for t in type_ids if isinstance(t, ua.NodeId)})
    names: dict[ua.NodeId, str] = {}
    if distinct:
        results = await client.read_attributes([client.get_node(t) for t in distinct], AttributeIds.BrowseName)
        for type_id, dv in zip(distinct, results, strict=True):
            qname = dv.Value.Value if dv.Value is not None else None
            names[type_id] = qname.Name if isinstance(qname, ua.QualifiedName) else type_id.to_string()
    return [names.get(t) if isinstance(t, ua.NodeId) else None for t in type_ids]
