"""The read model's tables (SQLAlchemy Core, portable between SQLite and PostgreSQL).

Every listing has a `created_position` column: the global position of the event that created the item. It only
grows, so cursor iteration in that order never skips or repeats an item while new ones arrive. The business dates
of every step are columns, so that figures "as of a date" can be computed from the tables alone.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

# A 64-bit position that is also SQLite's rowid when it is the primary key.
Position = BigInteger().with_variant(Integer(), "sqlite")

ID = 36  # a UUID as text
REGION = 5  # "35" or "35.04"
ENUM = 60

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Position, nullable=False),
    # A moment of the wall clock, not of the record: left out of content digests (projections/rebuild.py).
    Column("last_advanced_at", DateTime(timezone=True), nullable=True, info={"wall_clock": True}),
)

innovations = Table(
    "innovations",
    metadata,
    Column("innovation_id", String(ID), primary_key=True),
    Column("created_position", Position, nullable=False, unique=True),
    Column("region", String(REGION), nullable=False, index=True),
    Column("province", String(REGION), nullable=False, index=True),
    Column("name", String, nullable=False),
    Column("name_folded", String, nullable=False),
    Column("form", String(ENUM), nullable=False, index=True),
    Column("stage", String(ENUM), nullable=False, index=True),
    Column("retired", Boolean, nullable=False, index=True),
    Column("started_on", Date, nullable=False),
    Column("uji_coba_on", Date, nullable=True),
    Column("penerapan_on", Date, nullable=True),
    Column("retired_on", Date, nullable=True),
    Column("version", Integer, nullable=False),
    Column("doc", JSON, nullable=False),
    # Covering indexes of the figures "as of a date" (projections/scores.py): the region score reads them
    # without touching the documents.
    Index("innovations_as_of", "region", "started_on", "penerapan_on", "retired_on"),
    Index("innovations_practice", "innovation_id", "penerapan_on", "retired_on"),
)

innovation_urusan = Table(
    "innovation_urusan",
    metadata,
    Column("innovation_id", String(ID), primary_key=True),
    Column("urusan", String(ENUM), primary_key=True),
    Index("innovation_urusan_by_urusan", "urusan", "innovation_id"),
)

replications = Table(
    "replications",
    metadata,
    Column("replication_id", String(ID), primary_key=True),
    Column("created_position", Position, nullable=False, unique=True),
    Column("innovation_id", String(ID), nullable=False, index=True),
    Column("source_region", String(REGION), nullable=False, index=True),
    Column("source_province", String(REGION), nullable=False, index=True),
    Column("adopting_region", String(REGION), nullable=False, index=True),
    Column("adopting_province", String(REGION), nullable=False, index=True),
    Column("status", String(ENUM), nullable=False, index=True),
    # The innovation's form and urusan; null / empty until the innovation's registration is applied.
    Column("form", String(ENUM), nullable=True, index=True),
    Column("urusan", JSON, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("proposed_on", Date, nullable=False),
    Column("signed_on", Date, nullable=True),
    Column("rejected_on", Date, nullable=True),
    Column("uji_coba_on", Date, nullable=True),
    Column("penerapan_on", Date, nullable=True),
    Column("discontinued_on", Date, nullable=True),
    Column("version", Integer, nullable=False),
    Column("doc", JSON, nullable=False),
    Index("replications_by_innovation_status", "innovation_id", "status", "adopting_region"),
    Index(
        "replications_as_of_adopter",
        "adopting_region",
        "proposed_on",
        "signed_on",
        "rejected_on",
        "uji_coba_on",
        "penerapan_on",
        "discontinued_on",
    ),
    Index(
        "replications_as_of_source",
        "source_region",
        "adopting_region",
        "proposed_on",
        "rejected_on",
        "penerapan_on",
        "discontinued_on",
    ),
    Index("replications_practice", "replication_id", "penerapan_on", "discontinued_on"),
)

# One row per evaluation of a practice (an innovation in its own region, or a replication in the adopting
# region), for the region score (index.md): `latest` marks the evaluation that counts for its (subject, year) —
# the latest by `evaluated_on`, then by position.
evaluations = Table(
    "evaluations",
    metadata,
    Column("evaluation_id", String(ID), primary_key=True),
    Column("position", Position, nullable=False, unique=True),
    Column("subject_kind", String(ENUM), nullable=False),  # "innovation" | "replication"
    Column("subject_id", String(ID), nullable=False),
    Column("region", String(REGION), nullable=False, index=True),
    Column("year", Integer, nullable=False),
    Column("catalogue", String(ENUM), nullable=False),
    Column("evaluated_on", Date, nullable=False),
    Column("total", Integer, nullable=False),
    Column("score", String(12), nullable=False),  # the exact decimal, e.g. "81.08"
    Column("category", String(ENUM), nullable=False),
    Column("latest", Boolean, nullable=False),
    Index("evaluations_by_subject_year", "subject_id", "year"),
    Index("evaluations_counted", "year", "latest", "region", "subject_id", "total"),
)

# The adaptation log of replications (ModificationRecorded): one row per modification, with its business date, so
# that adaptation profiles can be counted "as of" a date (projections/diffusion.py). Part of the index projection.
modifications = Table(
    "modifications",
    metadata,
    Column("modification_id", String(ID), primary_key=True),
    Column("replication_id", String(ID), nullable=False, index=True),
    Column("component", String(ENUM), nullable=False),
    Column("nature", String(ENUM), nullable=False),
    Column("core", Boolean, nullable=False),
    Column("recorded_on", Date, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("event_id", String(ID), nullable=False, unique=True),
    Column("aggregate_id", String(ID), nullable=False),
    Column("aggregate_type", String(ENUM), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(ENUM), nullable=False, index=True),
    Column("recorded_at", String(40), nullable=False),
    Column("actor", String, nullable=False),
    Column("actor_role", String(ENUM), nullable=False),
    Column("request_id", String, nullable=False),
    Column("data", JSON, nullable=False),
    # The event's links of the hash chain (api.md "Audit"), as stored; null only for records that carry none.
    Column("hash", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=True),
    Index("audit_events_by_aggregate", "aggregate_id", "version"),
)

# Positions a projection fed from Kafka has applied above its contiguous watermark (`projection_positions`):
# topics are ordered per aggregate only, so events arrive out of global order; the watermark moves up over the
# positions found here and they are then forgotten.
applied_positions = Table(
    "applied_positions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Position, primary_key=True, autoincrement=False),
)

# The tables each projection owns (rebuilt and swapped together by projections/rebuild.py). A table added to a
# projection belongs in its tuple.
INDEX_TABLES = (innovations, innovation_urusan, replications, evaluations, modifications)
AUDIT_TABLES = (audit_events,)
