"""``python -m shopfloor.auth``: manage users and tokens in a data directory, e.g. the first admin of a plant.

    python -m shopfloor.auth add-user ann --role admin --data-dir /var/lib/shopfloor   (asks for the password)
    python -m shopfloor.auth token ann --label nightly-export --data-dir /var/lib/shopfloor
    python -m shopfloor.auth list --data-dir /var/lib/shopfloor

The platform may be running: the store is SQLite in WAL mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.auth.store import AuthError, Role, UserStore

app = typer.Typer(add_completion=False, help="Users and API tokens of a shopfloor data directory.")
DataDir = Annotated[Path, typer.Option(help="The platform's data_dir.")]


def _store(data_dir: Path) -> UserStore:
    if not data_dir.is_dir():
        raise typer.BadParameter(f"{data_dir} is not a directory", param_hint="--data-dir")
    return UserStore(data_dir / "auth.sqlite")


@app.command("add-user")
def add_user(
    name: str,
    role: Annotated[Role, typer.Option(help="viewer, operator, engineer or admin.")] = Role.VIEWER,
    data_dir: DataDir = Path("shopfloor-data"),
    password: Annotated[str, typer.Option(prompt=True, confirmation_prompt=True, hide_input=True)] = "",
) -> None:
    """Add a user (the password is asked for, or given with --password)."""
    store = _store(data_dir)
    try:
        store.add_user(name, password, role)
    except AuthError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"user {name} ({role.value}) added")


@app.command()
def token(name: str, label: str = "", days: float | None = None, data_dir: DataDir = Path("shopfloor-data")) -> None:
    """Print a new API token for a user (shown once; send it as 'Authorization: Bearer <token>')."""
    store = _store(data_dir)
    try:
        secret, _ = store.create_token(name, label=label, ttl_s=days * 86400 if days else None)
    except AuthError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(secret)


@app.command("list")
def list_users(data_dir: DataDir = Path("shopfloor-data")) -> None:
    """Users and their roles."""
    store = _store(data_dir)
    try:
        for u in store.users():
            state = "\tdisabled" if u["disabled"] else ""
            typer.echo(f"{u['name']}\t{u['role']}{state}")
    finally:
        store.close()


if __name__ == "__main__":
    app()
