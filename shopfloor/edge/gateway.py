"""The edge gateway: field connectors -> disk buffer -> Sparkplug B uplink, with link metrics and health.

Start order is the data's path backwards (buffer, uplink, then the connectors), stop is
the reverse: the connectors stop reading, what they read is committed to disk, the uplink
forwards what it can within ``drain_s``, and the rest waits on disk for the next start.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import yaml

from shopfloor.config.schema import ModbusPoint, ModbusSource
from shopfloor.connectors.base import ConnectorRuntime, FieldConnector
from shopfloor.connectors.mqtt.sparkplug import DataType
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.edge.buffer import DiskBuffer
from shopfloor.edge.catalog import NODE, MetricCatalog
from shopfloor.edge.config import LINK_METRICS, EdgeConfig, EdgeDevice
from shopfloor.edge.spool import Spool
from shopfloor.edge.uplink import Uplink

log = logging.getLogger(__name__)

BUFFER_FILE = "buffer.sqlite"
HEALTH_FILE = "health.json"

LINK_TYPES: dict[str, DataType] = {
    "link_up": DataType.Boolean, "link_rtt_ms": DataType.Double, "link_outages": DataType.Int64,
    "link_outage_s": DataType.Double, "backlog_samples": DataType.Int64, "backlog_bytes": DataType.Int64,
    "dropped_samples": DataType.Int64, "samples_read": DataType.Int64,
}

_MODBUS_TYPES = {
    "int16": DataType.Int16, "uint16": DataType.UInt16, "int32": DataType.Int32, "uint32": DataType.UInt32,
    "float32": DataType.Float, "float64": DataType.Double, "bool": DataType.Boolean,
}
_PLANT_TYPES = {
    DataType.Int16: "int16", DataType.UInt16: "uint16", DataType.Int32: "int32", DataType.UInt32: "uint32",
    DataType.Int64: "int64", DataType.Float: "float32", DataType.Double: "float64", DataType.Boolean: "bool",
}


def metric_datatype(point: ModbusPoint | None) -> DataType:
    """The Sparkplug type a tag is born with: the register's type, Double once scaled, Double for OPC UA."""
    if point is None:
        return DataType.Double
    if point.type != "bool" and (point.scale != 1.0 or point.offset != 0.0):
        return DataType.Double
    return _MODBUS_TYPES[point.type]


def wanted_metrics(config: EdgeConfig) -> list[tuple[str, str, DataType]]:
    """(device, name, datatype) of every metric: the link metrics of the node first, then each device's tags."""
    out = [(NODE, name, datatype) for name, datatype in LINK_TYPES.items()]
    for device in config.devices:
        out.extend((device.name, tag.name, metric_datatype(tag.modbus)) for tag in device.tags)
    return out


class EdgeGateway:
    """One running gateway."""

    def __init__(self, config: EdgeConfig, *, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir if data_dir is not None else config.buffer.data_dir)
        self.started_ns: int | None = None
        self._buffer: DiskBuffer | None = None
        self._catalog: MetricCatalog | None = None
        self._spool: Spool | None = None
        self._uplink: Uplink | None = None
        self._runtime: ConnectorRuntime | None = None
        self._next_link = 0.0
        self._link_ids: list[int] = []
        self._devices_at_stop: list[dict[str, object]] = []

    @property
    def buffer(self) -> DiskBuffer:
        assert self._buffer is not None, "gateway not started"
        return self._buffer

    @property
    def catalog(self) -> MetricCatalog:
        assert self._catalog is not None, "gateway not started"
        return self._catalog

    @property
    def spool(self) -> Spool:
        assert self._spool is not None, "gateway not started"
        return self._spool

    @property
    def uplink(self) -> Uplink:
        assert self._uplink is not None, "gateway not started"
        return self._uplink

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        path = self.data_dir / BUFFER_FILE
        self._buffer = DiskBuffer(path, int(cfg.buffer.max_mb * 1024 * 1024), cfg.buffer.when_full)
        self._catalog = MetricCatalog(path, wanted_metrics(cfg))
        self._link_ids = [self._catalog.id_of(NODE, name) for name in LINK_TYPES]
        stats = self._buffer.stats()
        if stats.samples:
            log.info("edge buffer holds %d samples from before this start; they go first", stats.samples)
        self._spool = Spool(self._buffer, self._catalog, commit_s=cfg.buffer.commit_s)
        self._spool.start()
        self._uplink = Uplink(cfg, self._buffer, self._catalog, self.link_values)
        self._uplink.start()
        self._runtime = ConnectorRuntime(self._connectors(), self._spool.submit_nowait, self._spool.submit_blocking)
        self._runtime.start()
        self.started_ns = time.time_ns()
        self._next_link = time.monotonic() + cfg.link.interval_s
        log.info("edge gateway %s/%s started: %d devices, uplink %s, buffer %s (%.0f MB, %s)",
                 cfg.gateway.group, cfg.gateway.node, len(cfg.devices), cfg.mqtt.broker, path,
                 cfg.buffer.max_mb, cfg.buffer.when_full)

    def _connectors(self) -> list[FieldConnector]:
        out: list[FieldConnector] = []
        for device in self.config.devices:
            out.append(self._connector(device))
        return out

    def _connector(self, device: EdgeDevice) -> FieldConnector:
        ids = [self.catalog.id_of(device.name, t.name) for t in device.tags]
        source = device.source
        if isinstance(source, ModbusSource):
            from shopfloor.connectors.modbus import ModbusConnector

            points = [(i, t.modbus) for i, t in zip(ids, device.tags, strict=True) if t.modbus is not None]
            return ModbusConnector(device.name, source, points)  # its logs and health add the endpoint
        from shopfloor.connectors.opcua import OpcUaConnector

        nodes = [(i, t.address or "", t.opcua) for i, t in zip(ids, device.tags, strict=True)]
        return OpcUaConnector(device.name, source, nodes)

    def tick(self) -> None:
        """Called now and then by the owner: samples the link metrics when due and saves the last values."""
        now = time.monotonic()
        if now < self._next_link:
            return
        self._next_link = now + self.config.link.interval_s
        self.sample_link()
        self.catalog.save()

    def sample_link(self) -> None:
        values = self.link_values()
        values["link_rtt_ms"] = self.uplink.link.take_rtt_ms()
        present = [i for i, name in enumerate(LINK_TYPES) if not np.isnan(values[name])]
        names = list(LINK_TYPES)
        ids = np.array([self._link_ids[i] for i in present], np.int32)
        vals = np.array([values[names[i]] for i in present], np.float64)
        self.spool.submit_own(SampleBatch.of(ids, np.full(len(ids), time.time_ns(), np.int64), vals, Quality.GOOD))

    def link_values(self) -> dict[str, float]:
        """The link metrics now; the round trip is NaN here (it is a median over an interval, see sample_link)."""
        link = self.uplink.link
        stats = self.buffer.stats()
        return {
            "link_up": 1.0 if link.up else 0.0,
            "link_rtt_ms": float("nan"),
            "link_outages": float(link.outages),
            "link_outage_s": link.outage_s(),
            "backlog_samples": float(stats.samples),
            "backlog_bytes": float(stats.bytes),
            "dropped_samples": float(stats.dropped_total),
            "samples_read": float(self.spool.samples_read),
        }

    def stop(self) -> None:
        if self._runtime is not None:
            self._runtime.stop()
            self._devices_at_stop = self._runtime.health()
            self._runtime = None
        if self._spool is not None:
            if self._uplink is not None:
                self.sample_link()  # the last word on the link, forwarded with the rest if time allows
            self._spool.stop()
        if self._uplink is not None:
            self._uplink.stop(self.config.mqtt.drain_s)
        if self._catalog is not None:
            if self._uplink is not None and self._spool is not None:
                self.write_health()
            self._catalog.close()
            self._catalog = None
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
        self._spool = self._uplink = None
        self.started_ns = None

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, object]:
        """A summary for people and scripts: link, buffer, devices; status ok only when all is up."""
        uplink = self.uplink.health()
        connectors = self._runtime.health() if self._runtime is not None else self._devices_at_stop
        spool = self.spool
        devices_up = all(c.get("state") in ("up", "connected") for c in connectors)  # Modbus, OPC UA
        ok = bool(uplink["up"]) and devices_up and not spool.commit_errors
        return {
            "status": "ok" if ok else "degraded",
            "gateway": {"group": self.config.gateway.group, "node": self.config.gateway.node},
            "started_ns": self.started_ns,
            "written_ns": time.time_ns(),
            "uplink": uplink,
            "buffer": {**self.buffer.stats().as_dict(), "path": str(self.buffer.path)},
            "samples": {
                "read": spool.samples_read, "stored": spool.samples_stored, "rows_committed": spool.rows_committed,
                "commit_errors": spool.commit_errors,
            },
            "devices": connectors,
        }

    def write_health(self) -> None:
        """health.json in the data directory, replaced atomically, for `shopfloor edge --health`."""
        target = self.data_dir / HEALTH_FILE
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.health(), indent=1, default=str))
        os.replace(tmp, target)


def plant_equipment_yaml(config: EdgeConfig) -> str:
    """The equipment entries a platform's plant.yaml needs to map this gateway's metrics (Sparkplug sources)."""
    group, node = config.gateway.group, config.gateway.node
    equipment: list[dict[str, object]] = [{
        "name": node, "type": "edge_gateway",
        "source": {"protocol": "sparkplug", "group": group, "node": node},
        "tags": [{"name": n, "type": _PLANT_TYPES[t], "description": LINK_METRICS[n]} for n, t in LINK_TYPES.items()],
    }]
    for device in config.devices:
        tags = []
        for tag in device.tags:
            entry: dict[str, object] = {"name": tag.name, "type": _PLANT_TYPES[metric_datatype(tag.modbus)]}
            if tag.description:
                entry["description"] = tag.description
            tags.append(entry)
        equipment.append({
            "name": device.name,
            "source": {"protocol": "sparkplug", "group": group, "node": node, "device": device.name},
            "tags": tags,
        })
    text: str = yaml.safe_dump({"equipment": equipment}, sort_keys=False, width=120)
    return text
