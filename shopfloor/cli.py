"""The command line: demo, serve, sim, export, edge."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from shopfloor.apps.maintenance.cli import app as maintenance_app
from shopfloor.apps.mes.cli import cli as mes_cli
from shopfloor.apps.scheduling.cli import app as schedule_app
from shopfloor.connectors.mqtt.acl_cli import mqtt_acl

app = typer.Typer(
    name="shopfloor", help="An industrial internet platform: connect, record, watch, act.", no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(schedule_app, name="schedule")
app.add_typer(mes_cli)  # shopfloor trace ..., shopfloor oee
app.add_typer(maintenance_app, name="maintenance")
app.command("mqtt-acl")(mqtt_acl)  # Mosquitto password and ACL files for the plant's devices
console = Console(stderr=True)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "transitions", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _quiet_server_class() -> type:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn re-raises Ctrl-C after its graceful shutdown; a stopped platform is a clean exit here."""

        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            self._captured_signals.clear()

    return QuietServer


def _serve_api(platform: object, host: str, port: int, on_start: list[object], on_stop: list[object]) -> None:
    import uvicorn

    from shopfloor.api import create_app
    from shopfloor.platform import Platform

    assert isinstance(platform, Platform)
    faulthandler.enable()  # a native crash (SIGSEGV, SIGABRT) prints every thread's Python stack first
    api = create_app(platform, on_start=on_start, on_stop=on_stop)  # type: ignore[arg-type]
    config = uvicorn.Config(api, host=host, port=port, log_level="warning", lifespan="on", ws="websockets-sansio")
    server = _quiet_server_class()(config)
    server.run()
    if not server.started:
        raise _fail(f"the API could not start on {host}:{port} (see the log above)")


def _leave(code: int) -> NoReturn:
    """Flush the logs and the console, then end the process at once with this exit code.

    Left to the interpreter, Arrow's and DuckDB's thread pools are torn down by static destructors while a
    worker may still be alive, and now and then that aborts the process ("terminate called without an active
    exception", apache/arrow#34314): a finished command would then report exit code 134 to systemd, cron or
    the operator. Every file and store is closed by the time a command returns.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone (`... | head`): nothing more to lose
            stream.flush()
    os._exit(code)


def _exit_stopped() -> NoReturn:
    """Leave after a clean stop of demo or serve: every service, store and server is stopped and closed."""
    logging.getLogger(__name__).info("stopped")
    _leave(0)


def main() -> NoReturn:
    """The `shopfloor` program: run the command, then leave with its exit code (see `_leave` for why).

    export loads Arrow as demo and serve do; an exception other than an exit still ends through the
    interpreter, with its traceback.
    """
    try:
        app()
    except SystemExit as stop:
        if isinstance(stop.code, str):  # as the interpreter does with sys.exit("message")
            print(stop.code, file=sys.stderr)
        _leave(stop.code if isinstance(stop.code, int) else int(stop.code is not None))
    _leave(0)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address of the HTTP API.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8080,
    data_dir: Annotated[Path, typer.Option(help="Where history and dead letters are kept.")] = Path("shopfloor-data"),
    broker: Annotated[
        str | None, typer.Option(help="Use this MQTT broker (mqtt://host:port) instead of the embedded one.")
    ] = None,
    mqtt_port: Annotated[int, typer.Option(help="Port of the embedded broker (0: a free one).")] = 0,
    opcua_port: Annotated[int, typer.Option(help="Port of the factory's OPC UA server (0: a free one).")] = 0,
    modbus_port: Annotated[int, typer.Option(help="Port of the factory's Modbus TCP server (0: a free one).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the virtual factory.")] = 1,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall-clock second.")] = 1.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run everything in one process: broker, virtual factory (MQTT, OPC UA, Modbus TCP), ingest, historian and API.

    The factory's robot is read over OPC UA and its press over Modbus TCP, from
    servers on loopback ports of this process, so the demo shows all three protocols.
    """
    _logging(verbose)
    if not verbose:  # asyncua's server logs its address space build at INFO, line by line
        logging.getLogger("asyncua").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # and Alembic each migration step of the apps' databases
    from shopfloor.connectors.mqtt.broker import EmbeddedBroker
    from shopfloor.core.errors import NotReady
    from shopfloor.core.net import free_port
    from shopfloor.platform import Platform
    from shopfloor.sim.extension import demo_extensions
    from shopfloor.sim.factory import VirtualFactory
    from shopfloor.sim.field_servers import FieldServers
    from shopfloor.sim.publisher import FactoryPublisher

    embedded: EmbeddedBroker | None = None
    if broker is None:
        embedded = EmbeddedBroker("127.0.0.1", mqtt_port or free_port())
        try:
            embedded.start()
        except NotReady as exc:
            raise _fail(str(exc)) from None
        broker = embedded.url
    from shopfloor.connectors.mqtt.ingest import parse_broker_url

    try:
        mqtt_host, mqtt_port_used, _ = parse_broker_url(broker)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    opcua_endpoint = f"opc.tcp://127.0.0.1:{opcua_port or free_port()}/shopfloor/sim/"
    factory = VirtualFactory(
        seed=seed,
        opcua_endpoint=opcua_endpoint,
        modbus_port=modbus_port or free_port(),
        extensions=demo_extensions(seed),
    )
    field = FieldServers(factory)
    publisher = FactoryPublisher(factory, mqtt_host, mqtt_port_used, speed=speed, field=field)

    def start_publisher() -> None:
        # Starting the servers and the platform took seconds: publish at the wall clock. A step is stamped
        # at its end, so start one step back: the first step, published at once, is stamped now, not ahead.
        factory.restart_clock(time.time_ns() // 1_000_000 * 1_000_000 - factory.step_ns)
        publisher.start()

    def announce() -> None:
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        console.print(
            f"\n[bold green]shopfloor demo[/] is running: [link]http://{shown}:{port}/[/link]\n"
            f"  API docs    http://{shown}:{port}/docs\n"
            f"  MQTT broker {broker} ({'embedded' if embedded else 'external'})\n"
            f"  OPC UA      {opcua_endpoint} (robot1)\n"
            f"  Modbus TCP  {factory.modbus_host}:{factory.modbus_port} unit 1 (press1)\n"
            f"  data        {data_dir.resolve()}\n  Ctrl-C stops it.\n",
            highlight=False,
        )

    try:
        try:
            field.start()  # before the platform, so that its field connectors find the servers up
        except NotReady as exc:
            raise _fail(str(exc)) from None
        platform = Platform(factory.plant_config(), data_dir=data_dir, broker_url=broker)
        _serve_api(platform, host, port, on_start=[start_publisher, announce], on_stop=[publisher.stop])
    finally:
        field.stop()
        if embedded is not None:
            embedded.stop()
    _exit_stopped()


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="plant.yaml")],
    host: Annotated[str | None, typer.Option(help="Overrides api.host of the config.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides api.port of the config.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Overrides data_dir of the config.")] = None,
    broker: Annotated[str | None, typer.Option(help="Overrides mqtt.broker of the config.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the platform for a real plant described by plant.yaml, against a real broker."""
    _logging(verbose)
    from shopfloor.config import ConfigError, load_plant_config
    from shopfloor.platform import Platform

    try:
        plant = load_plant_config(config)
        from shopfloor.core.model import AssetModel

        AssetModel.from_config(plant)
    except ConfigError as exc:
        raise _fail(f"invalid configuration\n{exc}", 2) from None
    except ValueError as exc:
        raise _fail(f"invalid configuration\n{config}: {exc}", 2) from None
    platform = Platform(plant, data_dir=data_dir, broker_url=broker)
    _serve_api(platform, host or plant.api.host, port if port is not None else plant.api.port, [], [])
    _exit_stopped()


@app.command()
def sim(
    broker: Annotated[str, typer.Option(help="MQTT broker to publish to.")] = "mqtt://127.0.0.1:1883",
    seed: Annotated[int, typer.Option(help="Same seed, same plant behaviour.")] = 1,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall-clock second (0: as fast as possible).")
    ] = 1.0,
    steps: Annotated[int, typer.Option(help="Stop after this many steps (0: run until Ctrl-C).")] = 0,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the plant.yaml of the virtual factory and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the virtual factory alone against any MQTT broker."""
    from shopfloor.sim.factory import VirtualFactory

    factory = VirtualFactory(seed=seed)
    if print_config:
        sys.stdout.write(factory.plant_yaml())
        return
    _logging(verbose)
    from shopfloor.connectors.mqtt.ingest import parse_broker_url
    from shopfloor.core.errors import NotReady
    from shopfloor.sim.publisher import FactoryPublisher

    try:
        host, mqtt_port, _ = parse_broker_url(broker)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    publisher = FactoryPublisher(factory, host, mqtt_port, speed=speed)
    try:
        if steps:
            publisher.run_for(steps)
            console.print(f"published {publisher.steps_published} steps to {broker}")
            publisher.stop()
            return
        publisher.start()
        console.print(f"virtual factory publishing to {broker} (seed {seed}, speed {speed}x); Ctrl-C stops it")
        import threading

        threading.Event().wait()
    except NotReady as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        publisher.stop()


@app.command()
def export(
    tag: Annotated[str, typer.Argument(help="Tag path, e.g. virtual-factory/machining/line1/cell1/cnc1/power")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .csv or .parquet")],
    start: Annotated[str, typer.Option(help="ISO-8601, epoch ms or relative (-1d).")] = "-1d",
    end: Annotated[str, typer.Option(help="ISO-8601, epoch ms, relative or now.")] = "now",
    api: Annotated[str | None, typer.Option(help="Read through a running platform's API (http://host:port).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Read the historian files directly (platform stopped).")] = None,
    chunk: Annotated[str, typer.Option(help="Time span read per request.")] = "1h",
) -> None:
    """Export a tag's raw history to CSV or Parquet, with progress."""
    from shopfloor.export import ExportError, export_history

    if (api is None) == (data_dir is None):
        raise _fail("give exactly one of --api URL or --data-dir DIR", 2)
    try:
        rows = export_history(tag, out, start, end, api=api, data_dir=data_dir, chunk=chunk, console=console)
    except ExportError as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {rows:,} samples of {tag} to {out}")


@app.command()
def edge(
    config: Annotated[Path, typer.Option("--config", "-c", help="edge.yaml")],
    health: Annotated[
        bool, typer.Option("--health", help="Print the health summary of the gateway running with this config.")
    ] = False,
    print_plant: Annotated[
        bool, typer.Option("--print-plant", help="Print the plant.yaml equipment that maps this gateway's metrics.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the edge gateway: read Modbus/OPC UA devices, buffer on disk, forward to the platform (docs/edge.md)."""
    if not (health or print_plant):
        _logging(verbose)
    from shopfloor.edge.main import run_edge

    code = run_edge(config, console, health=health, print_plant=print_plant)
    if code:
        raise typer.Exit(code)


if __name__ == "__main__":
    app()
