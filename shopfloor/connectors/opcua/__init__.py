"""OPC UA: a subscribing field connector, remote writes and method calls, and an address-space browser."""

from shopfloor.connectors.opcua._client import OpcUaError
from shopfloor.connectors.opcua.browse import BrowsedNode, browse
from shopfloor.connectors.opcua.connector import OpcUaConnector

__all__ = ["BrowsedNode", "OpcUaConnector", "OpcUaError", "browse"]
