"""Sparkplug B (Eclipse Sparkplug 3.0) protocol layer: topics, columnar payload codec, edge node.

``sparkplug_b_pb2.py``/``.pyi`` are generated from ``sparkplug_b.proto``; regenerate them with
``tools/gen_proto.sh`` (grpc_tools.protoc run from the repository root, so the schema registers
as ``shopfloor/connectors/mqtt/sparkplug/sparkplug_b.proto`` and cannot collide with another
library's ``sparkplug_b.proto`` in protobuf's default descriptor pool). The generated module
checks the protobuf runtime: it needs a runtime at least as new as the protoc that wrote it.
"""

from .codec import (
    BDSEQ,
    REBIRTH,
    DecodedBatch,
    DecodedPayload,
    MetricSpec,
    decode_payload,
    decode_payloads,
    encode_birth,
    encode_data,
    encode_death,
    encode_rebirth_request,
    is_rebirth_request,
    quality_from_code,
)
from .datatypes import DataType
from .edge_node import EdgeNode
from .state import decode_state, encode_state, state_topic
from .topic import SparkplugTopic, parse_topic

__all__ = [
    "BDSEQ",
    "REBIRTH",
    "DataType",
    "DecodedBatch",
    "DecodedPayload",
    "EdgeNode",
    "MetricSpec",
    "SparkplugTopic",
    "decode_payload",
    "decode_payloads",
    "decode_state",
    "encode_birth",
    "encode_data",
    "encode_death",
    "encode_rebirth_request",
    "encode_state",
    "is_rebirth_request",
    "parse_topic",
    "quality_from_code",
    "state_topic",
]
