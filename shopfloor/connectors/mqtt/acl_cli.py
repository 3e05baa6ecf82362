"""`shopfloor mqtt-acl`: Mosquitto's password_file, acl_file and a mosquitto.conf snippet from plant.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def mqtt_acl(
    config: Annotated[Path, typer.Option("--config", "-c", help="plant.yaml with mqtt.devices")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for password_file, acl_file, mosquitto.conf")],
    secrets: Annotated[
        Path | None,
        typer.Option(help="YAML mapping of MQTT username to password (else SHOPFLOOR_MQTT_PASSWORD_<USERNAME>)."),
    ] = None,
) -> None:
    """Write Mosquitto's password_file and acl_file for the devices of plant.yaml: each may publish only its topics.

    Include the written mosquitto.conf in the broker's configuration and restart (or
    SIGHUP) Mosquitto. Passwords come from --secrets or the environment, never from
    plant.yaml in clear (docs/mqtt-security.md).
    """
    from shopfloor.config import ConfigError, load_plant_config
    from shopfloor.connectors.mqtt.acl import (
        AccessError,
        build_access,
        load_secrets,
        readable_by_others,
        write_mosquitto_files,
    )

    def fail(message: str, code: int) -> typer.Exit:
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        return typer.Exit(code)

    try:
        plant = load_plant_config(config)
    except ConfigError as exc:
        raise fail(f"invalid configuration\n{exc}", 2) from None
    try:
        usernames = [d.username for d in plant.mqtt.devices] + [plant.mqtt.username or ""]
        clear = load_secrets(secrets, os.environ, usernames)
        if secrets is not None and readable_by_others(secrets):
            console.print(f"[yellow]warning:[/] {escape(str(secrets))} can be read by others: chmod 600 it")
        access = build_access(plant, clear, for_mosquitto=True)
        files = write_mosquitto_files(access, out)
    except AccessError as exc:
        raise fail(str(exc), 2) from None
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc}", 1) from None
    devices = sum(g.role == "device" for g in access.users.values())
    console.print(f"{devices} device user(s) and the platform's user {plant.mqtt.username!r}:")
    for path in (files.password_file, files.acl_file, files.conf):
        typer.echo(str(path))
