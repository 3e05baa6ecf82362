#!/usr/bin/env bash
# Regenerate the Sparkplug B protobuf module (sparkplug_b_pb2.py/.pyi) from sparkplug_b.proto.
# Run from anywhere; uses the project's venv. protoc runs from the repository root so the schema
# registers under its package path and cannot clash with another library's sparkplug_b.proto.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
cd "$root"
"$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. shopfloor/connectors/mqtt/sparkplug/sparkplug_b.proto
# the generated stub is not strict-clean (untyped protobuf base classes, bare Mapping): keep mypy out of it
pyi=shopfloor/connectors/mqtt/sparkplug/sparkplug_b_pb2.pyi
{ echo "# mypy: ignore-errors"; cat "$pyi"; } > "$pyi.tmp" && mv "$pyi.tmp" "$pyi"
"$python" -c "import shopfloor.connectors.mqtt.sparkplug.sparkplug_b_pb2 as m; print('ok:', m.DESCRIPTOR.name)"
