"""evaluations of practices, for the region score

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 20:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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
        batch_op.create_index(
            "evaluations_counted", ["year", "latest", "region", "subject_id", "total"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_evaluations_region"), ["region"], unique=False)
    # Covering indexes of the figures "as of a date" (projections/scores.py).
    with op.batch_alter_table("innovations", schema=None) as batch_op:
        batch_op.create_index(
            "innovations_as_of", ["region", "started_on", "penerapan_on", "retired_on"], unique=False
        )
        batch_op.create_index(
            "innovations_practice", ["innovation_id", "penerapan_on", "retired_on"], unique=False
        )
    with op.batch_alter_table("replications", schema=None) as batch_op:
        batch_op.create_index(
            "replications_as_of_adopter",
            [
                "adopting_region",
                "proposed_on",
                "signed_on",
                "rejected_on",
                "uji_coba_on",
                "penerapan_on",
                "discontinued_on",
            ],
            unique=False,
        )
        batch_op.create_index(
            "replications_as_of_source",
            [
                "source_region",
                "adopting_region",
                "proposed_on",
                "rejected_on",
                "penerapan_on",
                "discontinued_on",
            ],
            unique=False,
        )
        batch_op.create_index(
            "replications_practice", ["replication_id", "penerapan_on", "discontinued_on"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("replications", schema=None) as batch_op:
        batch_op.drop_index("replications_practice")
        batch_op.drop_index("replications_as_of_source")
        batch_op.drop_index("replications_as_of_adopter")
    with op.batch_alter_table("innovations", schema=None) as batch_op:
        batch_op.drop_index("innovations_practice")
        batch_op.drop_index("innovations_as_of")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_region"))
        batch_op.drop_index("evaluations_counted")
        batch_op.drop_index("evaluations_by_subject_year")
    op.drop_table("evaluations")
