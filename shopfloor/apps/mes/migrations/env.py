"""Alembic environment of the MES schema; run programmatically by ``shopfloor.apps.mes.db.open_database``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shopfloor.apps.mes.models import Base

VERSION_TABLE = "mes_alembic_version"  # its own version table: the MES may share a database with other apps


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=lambda name, type_, parent: type_ != "table" or (name or "").startswith("mes_"),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the MES migrations run through shopfloor.apps.mes.db.open_database (no alembic.ini)")
run_migrations(connection)
