"""Initial production model: master data, orders, items, hash-chained events, genealogy edges, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 23:39:12.343867
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mes_checkpoint",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("merkle_root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("head_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_ns", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("fingerprints", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("first_seq"),
        sa.UniqueConstraint("last_seq"),
    )
    op.create_table(
        "mes_equipment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path"),
    )
    op.create_table(
        "mes_event",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "produced",
                "count",
                "state",
                "logon",
                "logoff",
                "material_load",
                "inspection",
                "packed",
                name="mes_event_kind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("equipment_id", sa.BigInteger(), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("work_order_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("mes_event", schema=None) as batch_op:
        batch_op.create_index("ix_mes_event_equipment_ts", ["equipment_id", "ts_ns"], unique=False)
        batch_op.create_index("ix_mes_event_item_ts", ["item_id", "ts_ns"], unique=False)

    op.create_table(
        "mes_genealogy_edge",
        sa.Column("output_id", sa.BigInteger(), nullable=False),
        sa.Column("input_id", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("output_id", "input_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("mes_genealogy_edge", schema=None) as batch_op:
        batch_op.create_index("ix_mes_genealogy_input_output", ["input_id", "output_id"], unique=False)

    op.create_table(
        "mes_material",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "mes_product",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "mes_routing",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["mes_product.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("product_id", "version"),
    )
    op.create_table(
        "mes_routing_step",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("routing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("equipment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("planned_run_time_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["equipment_id"],
            ["mes_equipment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["routing_id"],
            ["mes_routing.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("routing_id", "seq"),
    )
    op.create_table(
        "mes_work_order",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("routing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "released",
                "running",
                "done",
                "cancelled",
                name="mes_order_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("planned_start_ns", sa.BigInteger(), nullable=True),
        sa.Column("planned_end_ns", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["mes_product.id"],
        ),
        sa.ForeignKeyConstraint(
            ["routing_id"],
            ["mes_routing.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_table(
        "mes_item",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.Enum("lot", "serial", name="mes_item_kind", native_enum=False, length=16), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("material_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("work_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["mes_material.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["mes_product.id"],
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["mes_work_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "mes_operation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("work_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("equipment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "released",
                "running",
                "done",
                "cancelled",
                name="mes_op_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("good_quantity", sa.Float(), nullable=False),
        sa.Column("scrap_quantity", sa.Float(), nullable=False),
        sa.Column("started_ns", sa.BigInteger(), nullable=True),
        sa.Column("ended_ns", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["equipment_id"],
            ["mes_equipment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["mes_work_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("work_order_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("mes_operation")
    op.drop_table("mes_item")
    op.drop_table("mes_work_order")
    op.drop_table("mes_routing_step")
    op.drop_table("mes_routing")
    op.drop_table("mes_product")
    op.drop_table("mes_material")
    with op.batch_alter_table("mes_genealogy_edge", schema=None) as batch_op:
        batch_op.drop_index("ix_mes_genealogy_input_output")

    op.drop_table("mes_genealogy_edge")
    with op.batch_alter_table("mes_event", schema=None) as batch_op:
        batch_op.drop_index("ix_mes_event_item_ts")
        batch_op.drop_index("ix_mes_event_equipment_ts")

    op.drop_table("mes_event")
    op.drop_table("mes_equipment")
    op.drop_table("mes_checkpoint")
