"""Remote control benchmark: command round trip per protocol on loopback.

Section "round trip": a real Mosquitto, the platform (DuckDB) with the command service, and one
device per protocol that obeys commands (shopfloor.control.peers): a Sparkplug B edge node that
applies a DCMD and reports the new value in its next DDATA, asyncua's server (a node write and a
method call), pymodbus's server (a holding register write). Each command is issued through
``CommandService.request`` exactly as the API does it (role, range and interlock checks, the send,
the device's answer, the audit row) with values that alternate so every command is a real change.
Two figures per protocol: ``answer`` is what the audit records as the round trip (send to the
device's answer: for Sparkplug the device's report arriving through the platform's ingest, for OPC
UA and Modbus the write response); ``request`` is the whole call, checks and audit included.

More sections (e.g. the drive helper's link-loss-to-stop) add a ``Section`` to ``SECTIONS``: each
runs with the parsed arguments and returns a JSON-able dict plus a rich Table.

Run: python benchmarks/control.py [--json] [--commands 200] [--sections round_trip,...]
Needs the mosquitto binary; without it the benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from shopfloor.auth.store import Principal, Role
from shopfloor.config import parse_plant_config
from shopfloor.control.drive_bench import stop_benchmark
from shopfloor.control.peers import FieldPeers, SparkplugCnc, plant_yaml
from shopfloor.control.service import CommandService
from shopfloor.platform import Platform
from shopfloor.testing.machine import cpu_model
from shopfloor.testing.mosquitto import Mosquitto, find_mosquitto

console = Console(stderr=True)
USER = Principal("bench", Role.ENGINEER, "token")

#: command -> (protocol label, two values to alternate)
CASES: dict[str, tuple[str, tuple[float, float]]] = {
    "cnc-feed": ("Sparkplug B DCMD -> DDATA report", (80.0, 90.0)),
    "robot-mode": ("OPC UA write", (1.0, 0.0)),
    "robot-speed": ("OPC UA method call", (30.0, 40.0)),
    "press-pump": ("Modbus write coil", (1.0, 0.0)),
    "press-setpoint": ("Modbus write register", (120.0, 130.0)),
}


@dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[argparse.Namespace], tuple[dict[str, Any], Table]]


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 2) if values else float("nan")


def round_trip(args: argparse.Namespace) -> tuple[dict[str, Any], Table]:
    """Command round trip per protocol (see the module docstring)."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        field = FieldPeers()
        field.start()
        cnc = SparkplugCnc("127.0.0.1", broker.port)
        text = plant_yaml(broker.port, field).replace(
            "    - name: press-pump\n",
            "    - name: press-setpoint\n      equipment: plant/shop/line1/press\n      kind: setpoint\n"
            "      send: {protocol: modbus, tag: pressure_setpoint}\n      value: {type: float, min: 50, max: 300}\n"
            "    - name: press-pump\n",
        )
        config = parse_plant_config(text)
        service = CommandService(config.control)
        platform = Platform(config, data_dir=Path(tmp) / "data", services=[service])
        platform.start()
        cnc.start()
        try:
            deadline = time.monotonic() + 30
            while not all(c["ready"] for c in service.describe() if c["name"] in CASES):
                if time.monotonic() > deadline:
                    raise RuntimeError("the devices' values did not arrive")
                time.sleep(0.1)
            for name, (label, values) in CASES.items():
                for i in range(3):  # connect the clients, warm the paths
                    service.request(USER, name, values[i % 2])
                answer, whole, failed = [], [], 0
                for i in range(args.commands):
                    t0 = time.perf_counter()
                    out = service.request(USER, name, values[i % 2])
                    elapsed = (time.perf_counter() - t0) * 1000
                    if out.decision != "executed" or out.round_trip_ms is None:
                        failed += 1
                        continue
                    answer.append(out.round_trip_ms)
                    whole.append(elapsed)
                results[name] = {
                    "protocol": label, "commands": args.commands, "failed": failed,
                    "answer_ms_p50": _pct(answer, 50), "answer_ms_p99": _pct(answer, 99),
                    "request_ms_p50": _pct(whole, 50), "request_ms_p99": _pct(whole, 99),
                }
            audited = service.audit.count()
        finally:
            cnc.stop()
            platform.stop()
            field.stop()
    table = Table(title=f"Command round trip on loopback ({args.commands} commands each)")
    for col in ("command", "protocol", "answer p50 ms", "answer p99 ms", "request p50 ms", "request p99 ms",
                "failed"):
        table.add_column(col, justify="left" if col in ("command", "protocol") else "right")
    for name, r in results.items():
        table.add_row(name, r["protocol"], f"{r['answer_ms_p50']:.2f}", f"{r['answer_ms_p99']:.2f}",
                      f"{r['request_ms_p50']:.2f}", f"{r['request_ms_p99']:.2f}", str(r["failed"]))
    return {"cases": results, "audit_rows": audited}, table


SECTIONS: list[Section] = [Section("round_trip", round_trip)]
SECTIONS.append(Section("link_loss_to_stop", stop_benchmark))  # the deadman (shopfloor/control/drive_bench.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of tables")
    parser.add_argument("--commands", type=int, default=200, help="commands per protocol (round trip)")
    parser.add_argument("--drive-trials", type=int, default=20, help="link cuts per link condition (link loss to stop)")
    parser.add_argument("--sections", default=",".join(s.name for s in SECTIONS),
                        help="comma-separated sections to run")
    args = parser.parse_args(argv)
    if find_mosquitto() is None:
        console.print("the mosquitto binary is missing: nothing measured")
        return 0
    wanted = [s for s in args.sections.split(",") if s]
    unknown = set(wanted) - {s.name for s in SECTIONS}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {[s.name for s in SECTIONS]}")
    out: dict[str, Any] = {"benchmark": "control", "cpu": cpu_model(), "sections": {}}
    for section in SECTIONS:
        if section.name not in wanted:
            continue
        data, table = section.run(args)
        out["sections"][section.name] = data
        if not args.json:
            Console(width=150).print(table)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
