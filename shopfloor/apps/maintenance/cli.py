"""`shopfloor maintenance ...`: train the maintenance models into versioned artifacts, list them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(name="maintenance", help="Maintenance models: train, list.", no_args_is_help=True)
console = Console(stderr=True)
DEFAULT_MODELS = Path("shopfloor-data/models")


class Model(StrEnum):
    bearing = "bearing"
    rul = "rul"
    failure = "failure"
    sim_bearing = "sim-bearing"
    rul_interval = "rul-interval"


@app.command()
def train(
    model: Annotated[Model, typer.Argument(help="bearing (CWRU), rul (C-MAPSS), failure (AI4I 2020), sim-bearing "
                                              "(the virtual factory's spindle bearings, from generated windows), "
                                              "rul-interval (calibration of the spindle bearings' RUL interval, "
                                              "from simulated bearing lives).")],
    data: Annotated[Path | None, typer.Option(help="Data root holding cwru/, cmapss/, ai4i2020/ "
                                              "(default: $SHOPFLOOR_DATA or ../shared/data).")] = None,
    out: Annotated[Path, typer.Option(help="Artifact root; each model gets <name>/v<N>/.")] = DEFAULT_MODELS,
    subset: Annotated[str, typer.Option(help="C-MAPSS subset for rul.")] = "FD001",
) -> None:
    """Measure a model under its benchmark protocol, fit it, and save a new version with metadata."""
    from shopfloor.apps.artifacts import ArtifactError
    from shopfloor.apps.maintenance import training
    from shopfloor.apps.maintenance.data import DataMissing
    from shopfloor.core.errors import ShopfloorError

    try:
        with console.status(f"training {model.value} ..."):
            if model is Model.rul:
                meta = training.train_rul(data, out, subset=subset)
            else:
                meta = training.TRAINERS[model.value](data, out)
    except DataMissing as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except (ArtifactError, ShopfloorError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"saved {out / meta.name / f'v{meta.version}'}")
    typer.echo(training.summary(meta))


@app.command("list")
def list_models(
    out: Annotated[Path, typer.Option(help="Artifact root.")] = DEFAULT_MODELS,
) -> None:
    """Every saved model version with its metrics."""
    from shopfloor.apps import artifacts
    from shopfloor.apps.maintenance import training

    names = sorted(p.name for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    if not names:
        console.print(f"no models under {out}")
        return
    for name in names:
        for version in artifacts.versions(out, name):
            try:
                typer.echo(training.summary(artifacts.read_meta(out, name, version)))
            except artifacts.ArtifactError as exc:
                console.print(f"[yellow]{name} v{version}: {exc}[/]")
