"""Platform services: the scenario apps that run inside the platform beside ingest and the historian.

A service (maintenance inference, the MES event recorder, the fleet manager, the command service, ...)
is started after the historian, writer, alarms and connectors are up, and stopped before them, so
whatever it writes reaches the historian. It reads the plant through the platform (bus, historian,
tag index), writes derived tags with ``Platform.write`` and may open its own MQTT client to
``platform.broker_url``. Which services run is decided by the plant config: ``default_services`` has
one line per app, each switched on by the app's own config section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.core.net import no_delay

if TYPE_CHECKING:
    from shopfloor.config.schema import PlantConfig
    from shopfloor.platform import Platform


@runtime_checkable
class PlatformService(Protocol):
    """One app running in the platform. ``name`` is unique; the API finds it with ``platform.service(name)``."""

    name: str

    def start(self, platform: Platform) -> None:
        """Start (threads, subscriptions, clients). Raise to fail the platform's start."""

    def stop(self) -> None:
        """Stop and release everything; idempotent; called even if start raised half-way."""

    def health(self) -> dict[str, object]:
        """A small JSON-able status for /health (counters, state, last error)."""


def broker_client(
    client_id: str, *, username: str | None = None, password: str | None = None, tls: bool = False,
    clean_session: bool = True, manual_ack: bool = False, max_reconnect_s: int = 10,
) -> mqtt.Client:
    """A paho client (callback API 2) with login, TLS and reconnect back-off set, not yet connected: one
    place builds the clients of services and of rigs that reach a broker without a platform (drive bench)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, manual_ack=manual_ack
    )
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    client.reconnect_delay_set(1, max_reconnect_s)
    return no_delay(client)  # commands and their answers are small packets: no Nagle wait


def service_client(
    platform: Platform, client_id: str, *, clean_session: bool = True, manual_ack: bool = False,
    max_reconnect_s: int = 10,
) -> tuple[mqtt.Client, str, int]:
    """A paho client for a service on the platform's broker, with the platform's credentials and TLS, and
    the broker's host and port. The caller sets its callbacks, then ``connect_async`` and ``loop_start``."""
    from shopfloor.connectors.mqtt.ingest import parse_broker_url

    host, port, tls = parse_broker_url(platform.broker_url)
    cfg = platform.config.mqtt
    client = broker_client(
        client_id, username=cfg.username, password=cfg.password, tls=tls, clean_session=clean_session,
        manual_ack=manual_ack, max_reconnect_s=max_reconnect_s,
    )
    return client, host, port


def default_services(config: PlantConfig) -> list[PlatformService]:
    """The services the plant config asks for, in start order (each app appends its own line here)."""
    services: list[PlatformService] = []
    if config.mes is not None:  # the MES recorder (docs/mes.md)
        from shopfloor.apps.mes.ingest import MesService

        services.append(MesService(config.mes))
    if config.control.commands:
        from shopfloor.control.service import CommandService

        services.append(CommandService(config.control))
    if config.scheduling is not None:  # the plant's planner (docs/scheduling.md)
        from shopfloor.apps.scheduling.service import PlantScheduler

        services.append(PlantScheduler(config.scheduling))
    if config.inspection is not None:  # the inspection station (docs/inspection.md)
        from shopfloor.apps.inspection.service import InspectionService

        services.append(InspectionService(config.inspection))
    if config.warehouse is not None:  # warehouse, line-side replenishment, AGV fleet (docs/warehouse.md)
        from shopfloor.apps.warehouse.service import WarehouseService

        services.append(WarehouseService(config.warehouse))
    if config.maintenance is not None:  # bearing diagnosis, RUL, work orders (docs/maintenance.md)
        from shopfloor.apps.maintenance.service import MaintenanceService

        services.append(MaintenanceService(config.maintenance))
    if config.anomaly is not None:  # streaming anomaly scores of live tags (docs/maintenance.md)
        from shopfloor.apps.maintenance.live_anomaly import AnomalyService

        services.append(AnomalyService(config.anomaly))
    if config.drive is not None and config.drive.vehicles:  # remotely driven vehicles (docs/drive.md)
        from shopfloor.control.drive import DriveService

        services.append(DriveService(config.drive))
    return services


__all__ = ["PlatformService", "broker_client", "default_services", "service_client"]
