"""Warehouse tables: locations, stock by lot (never negative), the append-only move ledger, orders, tasks.

Revision ID: wh0001
Revises:
Create Date: 2026-11-23 02:28:15.144076
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "wh0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wh_location",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "rack", "bin", "dock", "line_side", "vehicle", name="wh_location_kind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("x", sa.Integer(), nullable=True),
        sa.Column("y", sa.Integer(), nullable=True),
        sa.Column("equipment", sa.String(length=400), nullable=True),
        sa.Column("material_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("min_qty", sa.Float(), nullable=True),
        sa.Column("max_qty", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["mes_material.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "wh_order",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("inbound", "outbound", "replenishment", name="wh_order_kind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum("open", "done", "failed", name="wh_order_status", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("material_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("done_ns", sa.BigInteger(), nullable=True),
        sa.Column("user", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["wh_location.id"],
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["mes_material.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_table(
        "wh_stock",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("material_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("since_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity >= 0", name="ck_wh_stock_nonnegative"),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["wh_location.id"],
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"],
            ["mes_item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["mes_material.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("location_id", "material_id", "lot_id"),
    )
    with op.batch_alter_table("wh_stock", schema=None) as batch_op:
        batch_op.create_index("ix_wh_stock_material", ["material_id", "location_id"], unique=False)

    op.create_table(
        "wh_task",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("material_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("from_location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("to_location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "assigned", "carrying", "done", "failed", name="wh_task_status", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("vehicle", sa.String(length=64), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("done_ns", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_location_id"],
            ["wh_location.id"],
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"],
            ["mes_item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["mes_material.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["wh_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_location_id"],
            ["wh_location.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("wh_task", schema=None) as batch_op:
        batch_op.create_index("ix_wh_task_status", ["status"], unique=False)

    op.create_table(
        "wh_move",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("material_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("from_location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("to_location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("user", sa.String(length=64), nullable=True),
        sa.CheckConstraint("quantity > 0", name="ck_wh_move_positive"),
        sa.ForeignKeyConstraint(
            ["from_location_id"],
            ["wh_location.id"],
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"],
            ["mes_item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["mes_material.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["wh_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["wh_task.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_location_id"],
            ["wh_location.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("wh_move", schema=None) as batch_op:
        batch_op.create_index("ix_wh_move_material_ts", ["material_id", "ts_ns"], unique=False)
        batch_op.create_index("ix_wh_move_ts", ["ts_ns"], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":  # the ledger is append-only: the database refuses edits
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER wh_move_no_{verb.lower()} BEFORE {verb} ON wh_move "
                "BEGIN SELECT RAISE(ABORT, 'wh_move is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION wh_move_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'wh_move is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER wh_move_no_edit BEFORE UPDATE OR DELETE ON wh_move "
            "FOR EACH ROW EXECUTE FUNCTION wh_move_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS wh_move_no_update")
        op.execute("DROP TRIGGER IF EXISTS wh_move_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS wh_move_no_edit ON wh_move")
        op.execute("DROP FUNCTION IF EXISTS wh_move_append_only()")
    with op.batch_alter_table("wh_move", schema=None) as batch_op:
        batch_op.drop_index("ix_wh_move_ts")
        batch_op.drop_index("ix_wh_move_material_ts")

    op.drop_table("wh_move")
    with op.batch_alter_table("wh_task", schema=None) as batch_op:
        batch_op.drop_index("ix_wh_task_status")

    op.drop_table("wh_task")
    with op.batch_alter_table("wh_stock", schema=None) as batch_op:
        batch_op.drop_index("ix_wh_stock_material")

    op.drop_table("wh_stock")
    op.drop_table("wh_order")
    op.drop_table("wh_location")
