"""the index projection's modification log (replication metrics: adaptation profiles)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 20:35:17.467221

The log is filled from the modifications already in the replication documents, so that a view store upgraded
in place answers the same figures as one rebuilt from the events.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    modifications = op.create_table(
        "modifications",
        sa.Column("modification_id", sa.String(length=36), nullable=False),
        sa.Column("replication_id", sa.String(length=36), nullable=False),
        sa.Column("component", sa.String(length=60), nullable=False),
        sa.Column("nature", sa.String(length=60), nullable=False),
        sa.Column("core", sa.Boolean(), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("modification_id"),
    )
    with op.batch_alter_table("modifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_modifications_replication_id"), ["replication_id"], unique=False)

    replications = sa.table("replications", sa.column("replication_id", sa.String), sa.column("doc", sa.JSON))
    rows: list[dict[str, Any]] = [
        {
            "modification_id": m["modification_id"],
            "replication_id": replication_id,
            "component": m["component"],
            "nature": m["nature"],
            "core": bool(m["core"]),
            "recorded_on": date.fromisoformat(m["recorded_on"]),
        }
        for replication_id, doc in op.get_bind().execute(
            sa.select(replications.c.replication_id, replications.c.doc)
        )
        for m in (doc or {}).get("modifications", [])
    ]
    if rows:
        op.bulk_insert(modifications, rows)


def downgrade() -> None:
    with op.batch_alter_table("modifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_modifications_replication_id"))
    op.drop_table("modifications")
