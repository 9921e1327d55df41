"""evaluations of practices, for the region score

Revision ID: 0003_index_scores
Revises: 0002
Create Date: 2026-11-27 20:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_index_scores"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("evaluation_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject_kind", sa.String(length=60), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("region", sa.String(length=5), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("catalogue", sa.String(length=60), nullable=False),
        sa.Column("evaluated_on", sa.Date(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("score", sa.String(length=12), nullable=False),
        sa.Column("category", sa.String(length=60), nullable=False),
        sa.Column("latest", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("evaluation_id"),
        sa.UniqueConstraint("position"),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index("evaluations_by_subject_year", ["subject_id", "year"], unique=False)
        batch_op.create_index("evaluations_by_year_latest", ["year", "latest", "region"], unique=False)
        batch_op.create_index(batch_op.f("ix_evaluations_region"), ["region"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_region"))
        batch_op.drop_index("evaluations_by_year_latest")
        batch_op.drop_index("evaluations_by_subject_year")
    op.drop_table("evaluations")
