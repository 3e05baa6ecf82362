"""Opening the warehouse's tables in the MES database: the MES schema first, then the warehouse's own.

The warehouse keeps its own Alembic history and version table (``wh_alembic_version``) beside the
MES's (``mes_alembic_version``): either app can add migrations without ordering against the other,
and the warehouse's first revision simply needs the MES tables it references, which
``open_database`` (MES) creates before the warehouse's scripts run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from shopfloor.apps.mes.db import open_database

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "wh_alembic_version"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def open_warehouse_db(target: str | Path) -> Engine:
    """An engine on the MES database (a URL or a SQLite file), with the MES and warehouse schemas up to date."""
    engine = open_database(target)
    upgrade(engine)
    return engine
