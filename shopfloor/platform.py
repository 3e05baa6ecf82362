"""The platform: wires config, asset model, historian, writer, bus, dead letters and connectors.

Start order is dependency order (store before writer before connectors); stop is
the reverse, so everything a connector received is committed and acknowledged
before the historian closes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy.typing as npt

from shopfloor.alarms.engine import AlarmEngine
from shopfloor.auth.store import UserStore, open_user_store
from shopfloor.config.schema import ModbusSource, OpcUaSource, PlantConfig
from shopfloor.connectors.base import ConnectorRuntime, FieldConnector
from shopfloor.connectors.mqtt.acl import password_from_env
from shopfloor.connectors.mqtt.ingest import MqttIngest
from shopfloor.core.bus import SampleBus
from shopfloor.core.deadletters import DeadLetterStore
from shopfloor.core.model import AssetModel, Tag, TagIndex
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian.base import Historian, open_historian
from shopfloor.historian.writer import HistorianWriter
from shopfloor.services import PlatformService, default_services

log = logging.getLogger(__name__)


class Platform:
    """One running shopfloor instance."""

    def __init__(
        self,
        config: PlantConfig,
        *,
        data_dir: str | Path | None = None,
        broker_url: str | None = None,
        services: Sequence[PlatformService] | None = None,
    ):
        """``services``: the apps to run inside the platform; by default those the config asks for."""
        self.config = config
        self.model = AssetModel.from_config(config)
        self.data_dir = Path(data_dir if data_dir is not None else config.data_dir)
        self.broker_url = broker_url or config.mqtt.broker
        self.started_ns: int | None = None
        self._historian: Historian | None = None
        self._tag_index: TagIndex | None = None
        self._writer: HistorianWriter | None = None
        self._dead_letters: DeadLetterStore | None = None
        self._ingest: MqttIngest | None = None
        self._field: ConnectorRuntime | None = None
        self._alarms: AlarmEngine | None = None
        self._users: UserStore | None = None
        self.bus = SampleBus()
        self.intake = SampleBus()  # batches as the writer accepts them, before commit: the alarm engine's feed
        self.services: tuple[PlatformService, ...] = tuple(
            default_services(config) if services is None else services
        )
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"platform services need unique names, got {names}")
        self._started_services: list[PlatformService] = []

    # Typed accessors: the parts exist only between start() and stop().
    @property
    def historian(self) -> Historian:
        assert self._historian is not None, "platform not started"
        return self._historian

    @property
    def tag_index(self) -> TagIndex:
        assert self._tag_index is not None, "platform not started"
        return self._tag_index

    @property
    def writer(self) -> HistorianWriter:
        assert self._writer is not None, "platform not started"
        return self._writer

    @property
    def dead_letters(self) -> DeadLetterStore:
        assert self._dead_letters is not None, "platform not started"
        return self._dead_letters

    @property
    def ingest(self) -> MqttIngest:
        assert self._ingest is not None, "platform not started"
        return self._ingest

    @property
    def alarms(self) -> AlarmEngine:
        assert self._alarms is not None, "platform not started"
        return self._alarms

    @property
    def users(self) -> UserStore:
        assert self._users is not None, "platform not started"
        return self._users

    def start(self, connect_timeout: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        h = self.config.historian
        self._historian = open_historian(h.backend, self.data_dir, h.url, write_connections=h.write_connections)
        ids = self._historian.ensure_tags([t.path for t in self.model.tags])
        self._tag_index = TagIndex(self.model, ids)
        self._users = open_user_store(self.data_dir / "auth.sqlite", self.config.auth.bootstrap_admin)
        self._alarms = AlarmEngine(self.config.alarms, self.model, self._tag_index, self.intake, self.data_dir)
        self._alarms.start()  # subscribed before anything is ingested
        self._dead_letters = DeadLetterStore(self.data_dir / "deadletters.sqlite")
        self._writer = HistorianWriter(self._historian, self.bus, self._tag_index, housekeeping=self._housekeeping,
                                       intake=self.intake)
        self._writer.start()
        mqtt_cfg = self.config.mqtt
        self._ingest = MqttIngest(
            self.broker_url, self.model, self._tag_index, self._writer, self._dead_letters,
            client_id=mqtt_cfg.client_id, qos=mqtt_cfg.qos, sparkplug_groups=mqtt_cfg.sparkplug_groups,
            json_prefix=mqtt_cfg.json_prefix, host_id=mqtt_cfg.host_id, username=mqtt_cfg.username,
            password=mqtt_cfg.password if mqtt_cfg.password is not None else password_from_env(mqtt_cfg.username),
        )
        try:
            self._ingest.start(connect_timeout)
        except Exception:
            self._ingest = None
            self.stop()
            raise
        writer = self._writer
        self._field = ConnectorRuntime(
            self._field_connectors(), lambda batch: writer.submit(batch, timeout=0), writer.submit
        )
        self._field.start()
        try:
            for service in self.services:
                self._started_services.append(service)
                service.start(self)
        except Exception:
            self.stop()
            raise
        self.started_ns = time.time_ns()
        log.info("platform started: %d tags, data in %s", len(self.model.tags), self.data_dir)

    def _field_connectors(self) -> list[FieldConnector]:
        """One connector per Modbus device and per OPC UA server named by the tags' sources."""
        groups: dict[ModbusSource | OpcUaSource, list[Tag]] = {}
        for tag in self.model.tags:
            if isinstance(tag.source, ModbusSource | OpcUaSource):
                groups.setdefault(tag.source, []).append(tag)
        connectors: list[FieldConnector] = []
        for source, tags in groups.items():
            ids = [self.tag_index.id_of(t.path) for t in tags]
            if isinstance(source, ModbusSource):
                from shopfloor.connectors.modbus import ModbusConnector

                points = [(i, t.modbus) for i, t in zip(ids, tags, strict=True) if t.modbus is not None]
                name = f"modbus {source.host}:{source.port}/{source.unit}"
                connectors.append(ModbusConnector(name, source, points))
            else:
                from shopfloor.connectors.opcua import OpcUaConnector

                nodes = [(i, t.address, t.opcua) for i, t in zip(ids, tags, strict=True)]
                connectors.append(OpcUaConnector(f"opcua {source.endpoint}", source, nodes))
        return connectors

    def service(self, name: str) -> PlatformService:
        """The running service of that name; KeyError if the platform does not run it."""
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(f"the platform runs no service {name!r}")

    def write(
        self, paths: Sequence[str], ts_ns: npt.ArrayLike, values: npt.ArrayLike, quality: int = Quality.GOOD
    ) -> None:
        """Write samples of platform-computed tags (``source: {protocol: derived}``) to the historian and bus.

        ``paths[i]`` is the tag of ``ts_ns[i]``/``values[i]``. Blocks while the writer's queue is full.
        """
        index = self.tag_index
        ids = [index.id_of(p) for p in paths]  # UnknownTag for a path not in the model
        self.writer.submit(SampleBatch.of(ids, ts_ns, values, quality))

    def stop(self) -> None:
        while self._started_services:  # reverse start order, before anything they write to
            service = self._started_services.pop()
            try:
                service.stop()
            except Exception:
                log.exception("platform service %s failed to stop", service.name)
        if self._field is not None:
            self._field.stop()
            self._field = None
        if self._ingest is not None:
            self._ingest.stop()
            self._ingest = None
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._alarms is not None:
            self._alarms.stop()  # after the writer: evaluates the last batches it accepted
            self._alarms = None
        if self._users is not None:
            self._users.close()
            self._users = None
        if self._dead_letters is not None:
            self._dead_letters.close()
            self._dead_letters = None
        if self._historian is not None:
            self._historian.close()
            self._historian = None
        self.started_ns = None

    def _housekeeping(self) -> None:
        days = self.config.historian.retention_days
        if days is not None:
            removed = self.historian.delete_before(time.time_ns() - int(days * 86_400e9))
            if removed:
                log.info("retention removed %d samples older than %s days", removed, days)

    def health(self) -> dict[str, object]:
        writer = self.writer
        p50, p99 = writer.latency.percentiles_ms(50, 99)
        connectors = self.connectors_health()
        ok = bool(connectors[0]["connected"]) and writer.last_error is None
        ok = ok and all(c.get("state", "up") != "down" for c in connectors[1:])
        return {
            "status": "ok" if ok else "degraded",
            "started_ns": self.started_ns,
            "tags": len(self.model.tags),
            "historian": {
                "backend": self.config.historian.backend,
                "rows_committed": writer.rows_committed,
                "commits": writer.commits,
                "pending_rows": writer.pending_rows,
                "write_errors": writer.write_errors,
                "last_error": writer.last_error,
                "last_commit_ns": writer.last_commit_ns or None,
                "latency_ms_p50": p50,
                "latency_ms_p99": p99,
            },
            "dead_letters": {"since_start": dict(self.dead_letters.counts), "kept": self.dead_letters.total()},
            "live_subscribers": self.bus.subscribers,
            "connectors": connectors,
            "alarms": self._alarms.health() if self._alarms is not None else None,
            "services": {s.name: s.health() for s in self._started_services},
        }

    def connectors_health(self) -> list[dict[str, object]]:
        """The MQTT ingest first, then each field connector."""
        field = self._field.health() if self._field is not None else []
        return [self.ingest.health(), *field]
