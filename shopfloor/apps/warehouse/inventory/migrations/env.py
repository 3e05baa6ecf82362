"""Alembic environment of the warehouse tables (``wh_*``); run by ``inventory.db.open_warehouse_db``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import shopfloor.apps.warehouse.inventory.models  # noqa: F401 (registers the wh_ tables)
from shopfloor.apps.mes.models import Base

VERSION_TABLE = "wh_alembic_version"


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=lambda name, type_, parent: type_ != "table" or (name or "").startswith("wh_"),
        include_object=lambda obj, name, type_, reflected, other: type_ != "table" or (name or "").startswith("wh_"),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the warehouse migrations run through open_warehouse_db (no alembic.ini)")
run_migrations(connection)
