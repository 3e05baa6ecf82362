"""`shopfloor edge`: run the gateway until Ctrl-C or SIGTERM, print its health, or print the platform's mapping."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shopfloor.config import ConfigError
from shopfloor.edge.config import EdgeConfig, load_edge_config
from shopfloor.edge.gateway import HEALTH_FILE, EdgeGateway, plant_equipment_yaml


def run_edge(config_path: Path, console: Console, *, health: bool = False, print_plant: bool = False) -> int:
    """The `edge` command; returns the exit code (2: bad configuration, 1: no health to show)."""
    try:
        config = load_edge_config(config_path)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] invalid configuration\n{escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    if print_plant:
        print(plant_equipment_yaml(config), end="")
        return 0
    if health:
        return show_health(config, console)
    gateway = EdgeGateway(config)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        gateway.start()
    except (OSError, sqlite3.Error) as exc:  # an unwritable or broken data directory
        gateway.stop()
        console.print(f"[bold red]error:[/] cannot open the buffer in {escape(str(gateway.data_dir))}: "
                      f"{escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    previous = signal.signal(signal.SIGTERM, on_term)
    console.print(f"[bold green]shopfloor edge[/] {config.gateway.group}/{config.gateway.node} forwarding to "
                  f"{config.mqtt.broker}; buffer in {gateway.data_dir.resolve()}; Ctrl-C stops it",
                  highlight=False, soft_wrap=True)
    try:
        next_health = 0.0
        while not stop.wait(min(0.25, config.link.interval_s)):
            gateway.tick()
            if time.monotonic() >= next_health:
                gateway.write_health()
                next_health = time.monotonic() + 1.0
    except KeyboardInterrupt:
        pass
    finally:
        gateway.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def show_health(config: EdgeConfig, console: Console) -> int:
    """Print the health summary the running gateway of this config writes every second."""
    path = Path(config.buffer.data_dir) / HEALTH_FILE
    try:
        health = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[bold red]error:[/] no health summary at {escape(str(path))}: {escape(str(exc))}",
                      highlight=False, soft_wrap=True)
        return 1
    age = (time.time_ns() - int(health.get("written_ns") or 0)) / 1e9
    uplink, buffer, samples = health["uplink"], health["buffer"], health["samples"]
    table = Table(title=f"edge gateway {health['gateway']['group']}/{health['gateway']['node']}: {health['status']}"
                  + (f" (written {age:.0f} s ago: not running?)" if age > 5 else ""))
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("uplink", f"{'up' if uplink['up'] else 'DOWN'} to {uplink['broker']}"),
        ("round trip (median, ms)", "-" if uplink["rtt_ms_recent_median"] is None else
         str(uplink["rtt_ms_recent_median"])),
        ("outages / current outage (s)", f"{uplink['outages']} / {uplink['outage_s']}"),
        ("backlog samples / bytes", f"{buffer['samples']:,} / {buffer['bytes']:,} of {buffer['max_bytes']:,}"),
        ("dropped samples (all time, policy)", f"{buffer['dropped_total']:,} ({buffer['when_full']})"),
        ("samples read / acknowledged", f"{samples['read']:,} / {uplink['samples_acknowledged']:,}"),
    ]
    for device in health["devices"]:
        rows.append((str(device.get("name")), f"{device.get('state', '?')}: {device.get('last_error') or 'ok'}"))
    for what, value in rows:
        table.add_row(what, value)
    Console().print(table)
    return 0 if health["status"] == "ok" and age <= 5 else 1
