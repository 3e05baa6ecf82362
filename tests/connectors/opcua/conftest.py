"""Fixtures of the OPC UA connector tests (helpers live in opcua_testkit)."""

from opcua_testkit import opcua_server, sink

__all__ = ["opcua_server", "sink"]
