"""Command line of the MES: ``shopfloor trace verify|backward|forward|export-epcis`` and ``shopfloor oee``.

Heavy imports happen inside the commands, so that ``shopfloor --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

cli = typer.Typer(no_args_is_help=True)
trace_app = typer.Typer(help="Genealogy of serials and lots, and the tamper-evident event record.",
                        no_args_is_help=True)
cli.add_typer(trace_app, name="trace")
console = Console(stderr=True)

DataDir = Annotated[Path, typer.Option(help="The platform's data directory (mes.sqlite and the site key).")]
Url = Annotated[str | None, typer.Option(help="The MES database URL instead (postgresql://...).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _engine(data_dir: Path, url: str | None) -> Any:
    from shopfloor.apps.mes.db import open_database
    from shopfloor.apps.mes.service import DB_FILE

    if url is None and not (data_dir / DB_FILE).exists():
        raise _fail(f"no MES database in {data_dir} (give --data-dir or --url)")
    return open_database(url or data_dir / DB_FILE)


@trace_app.command()
def verify(
    data_dir: DataDir = Path("shopfloor-data"), url: Url = None,
    key: Annotated[Path | None, typer.Option(help="The site's key or its public half (PEM).")] = None,
    as_json: AsJson = False,
) -> None:
    """Check every event's hash link, every signed checkpoint and every genealogy edge; name the first change."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from shopfloor.apps.mes.chain import SiteKey
    from shopfloor.apps.mes.service import KEY_FILE
    from shopfloor.apps.mes.verify import verify as run_verify

    key_path = key or data_dir / KEY_FILE
    if not key_path.exists():
        raise _fail(f"no site key at {key_path} (give --key)")
    site_key = SiteKey.load_public(key_path)
    engine = _engine(data_dir, url)
    with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("verify", total=None)
        report = run_verify(engine, site_key, lambda done, total: progress.update(task, completed=done, total=total))
    engine.dispose()
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(report.as_dict()).decode() + "\n")
    elif report.ok:
        console.print(f"[green]ok[/]: {report.events:,} events, {report.checkpoints:,} signed checkpoints, "
                      f"{report.edges:,} genealogy edges, nothing changed")
    else:
        first = report.first
        assert first is not None
        console.print(f"[bold red]TAMPERED[/]: first altered event {first.seq}: {first.message}")
        for f in report.findings[:20]:
            console.print(f"  {f.what:10} {f.message}", highlight=False)
        if len(report.findings) > 20 or report.more_findings:
            console.print(f"  ... {len(report.findings) - 20 + report.more_findings} more")
    if not report.ok:
        raise typer.Exit(1)


def _trace(code: str, direction: str, data_dir: Path, url: str | None, as_json: bool, depth: int) -> None:
    from rich.tree import Tree

    from shopfloor.apps.mes.errors import NotFound
    from shopfloor.apps.mes.genealogy import trace

    engine = _engine(data_dir, url)
    try:
        tr = trace(engine, code, direction, max_depth=depth)  # type: ignore[arg-type]
    except NotFound as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(tr.as_dict()).decode() + "\n")
        return
    children: dict[int, list[int]] = {}
    for node in tr.nodes.values():
        for via, _ in node.links:
            children.setdefault(via, []).append(node.id)

    def label(node_id: int) -> str:
        n = tr.nodes[node_id]
        made = next((e for e in n.events if e.kind == "produced"), None)
        where = f" on {made.equipment} by {made.operator or '?'}" if made and made.equipment else ""
        checks = [e.payload for e in n.events if e.kind == "inspection"]
        failed = sum(1 for c in checks if not c.get("passed"))
        insp = f", {len(checks)} inspection(s), {failed} failed" if checks else ""
        return f"[bold]{n.code}[/] ({n.kind}){where}{insp}"

    root = tr.root_node
    tree = Tree(label(root.id))
    seen = {root.id}

    def grow(branch: Tree, node_id: int) -> None:
        for child in sorted(children.get(node_id, []), key=lambda c: tr.nodes[c].code):
            if child in seen:
                branch.add(f"{tr.nodes[child].code} (above)")
                continue
            seen.add(child)
            grow(branch.add(label(child)), child)

    grow(tree, root.id)
    Console().print(tree)
    ends = tr.ends()
    what = "raw materials" if direction == "backward" else "finished goods (recall scope)"
    console.print(f"{len(tr.nodes)} items; {what}: {', '.join(n.code for n in ends) or 'none'}; "
                  f"machines: {', '.join(tr.machines()) or 'none'}; operators: {', '.join(tr.operators()) or 'none'}")


@trace_app.command()
def backward(
    code: Annotated[str, typer.Argument(help="Serial or lot code.")], data_dir: DataDir = Path("shopfloor-data"),
    url: Url = None, as_json: AsJson = False, depth: Annotated[int, typer.Option(min=1, max=1000)] = 64,
) -> None:
    """Where a serial or lot came from: materials and lots in, machines, operators, inspections."""
    _trace(code, "backward", data_dir, url, as_json, depth)


@trace_app.command()
def forward(
    code: Annotated[str, typer.Argument(help="Serial or lot code.")], data_dir: DataDir = Path("shopfloor-data"),
    url: Url = None, as_json: AsJson = False, depth: Annotated[int, typer.Option(min=1, max=1000)] = 64,
) -> None:
    """What a lot or serial went into: every item down to the finished goods (the recall scope)."""
    _trace(code, "forward", data_dir, url, as_json, depth)


@trace_app.command("export-epcis")
def export_epcis(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.jsonld or .json); '-' for stdout.")],
    data_dir: DataDir = Path("shopfloor-data"), url: Url = None,
    code: Annotated[str | None, typer.Option(help="Only the events of this item's trace.")] = None,
    direction: Annotated[str, typer.Option(help="backward or forward (with --code).")] = "backward",
    site: Annotated[str, typer.Option(help="Site name in shopfloor URNs.")] = "site",
) -> None:
    """Export traceability events as a GS1 EPCIS 2.0 JSON-LD document, validated against the GS1 schema."""
    import orjson

    from shopfloor.apps.mes.epcis import export_document, validate
    from shopfloor.apps.mes.errors import NotFound
    from shopfloor.apps.mes.genealogy import trace

    if direction not in ("backward", "forward"):
        raise _fail("--direction must be backward or forward", 2)
    engine = _engine(data_dir, url)
    try:
        ids = trace(engine, code, direction, events=False).nodes.keys() if code else None  # type: ignore[arg-type]
        doc = export_document(engine, site=site, item_ids=ids)
    except NotFound as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    errors = validate(doc)
    if errors:
        raise _fail("the export does not validate against the EPCIS 2.0 schema:\n" + "\n".join(errors[:20]))
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    if str(out) == "-":
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        console.print(f"wrote {len(doc['epcisBody']['eventList']):,} EPCIS events to {out} (schema-valid)")


@cli.command()
def oee(
    asset: Annotated[str, typer.Argument(help="A machine or line path, e.g. virtual-factory/machining/line1")],
    api: Annotated[str, typer.Option(help="A running platform's API (http://host:port).")] = "http://127.0.0.1:8080",
    start: Annotated[str, typer.Option(help="ISO-8601, epoch ms or relative (-8h).")] = "-8h",
    end: Annotated[str, typer.Option(help="ISO-8601, epoch ms, relative or now.")] = "now",
    pri: Annotated[list[str] | None, typer.Option(help="machine/path=seconds (repeat); default: routings.")] = None,
    emission_factor: Annotated[float | None, typer.Option(help="kg CO2e per kWh.")] = None,
    planned: Annotated[list[str] | None, typer.Option(help="Planned downtime 'start/end' (repeat).")] = None,
    by_shift: Annotated[bool, typer.Option("--by-shift", help="One row per shift.")] = False,
    as_json: AsJson = False,
) -> None:
    """ISO 22400 OEE and lean KPIs of a machine or line, from a running platform."""
    import httpx
    import orjson
    from rich.table import Table

    params: list[tuple[str, str | int | float | bool | None]] = [("asset", asset), ("start", start), ("end", end)]
    params += [("pri", p) for p in pri or []]
    params += [("planned", p) for p in planned or []]
    if emission_factor is not None:
        params.append(("emission_factor", emission_factor))
    path = "/api/mes/oee/shifts" if by_shift else "/api/mes/oee"
    try:
        r = httpx.get(api.rstrip("/") + path, params=params, timeout=120)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {api}: {exc}") from None
    if r.status_code != 200:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise _fail(f"{r.status_code}: {detail}")
    body = r.json()
    if as_json:
        sys.stdout.write(orjson.dumps(body).decode() + "\n")
        return
    rows = [(s["shift"], s) for s in body["shifts"]] if by_shift else [(asset, body)]
    table = Table(title=f"OEE (ISO 22400) of {asset}")
    for col in ("period", "availability", "effectiveness", "quality", "OEE", "GQ", "SQ", "bottleneck", "kWh/part"):
        table.add_column(col, justify="right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    for name, row in rows:
        per_part = row.get("energy_per_good_part_kwh")
        table.add_row(name, pct(row["availability"]), pct(row["effectiveness"]), pct(row["quality_ratio"]),
                      pct(row["oee_index"]), f"{row['GQ']:,.0f}", f"{row['SQ']:,.0f}", str(row["bottleneck"]),
                      "-" if per_part is None else f"{per_part:.3f}")
    Console().print(table)
