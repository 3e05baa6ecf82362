"""The edge gateway: field connectors near the machines, a bounded disk buffer, a Sparkplug B uplink."""

from shopfloor.edge.buffer import DiskBuffer
from shopfloor.edge.config import EdgeConfig, load_edge_config, parse_edge_config
from shopfloor.edge.gateway import EdgeGateway, plant_equipment_yaml

__all__ = ["DiskBuffer", "EdgeConfig", "EdgeGateway", "load_edge_config", "parse_edge_config", "plant_equipment_yaml"]
