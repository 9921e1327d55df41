"""Alembic environment: versioned migrations of the projection tables and the API's own tables, one code path
for SQLite and PostgreSQL. Run on start-up by app/migrate.py (and by `alembic` for authors of migrations)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from app.storage import keys_metadata
from app.storage import metadata as service_metadata
from projections.tables import metadata as projection_metadata

# The main line, or the keys file's own (app/migrate.py)
if context.config.attributes.get("tree") == "keys":
    target_metadata = [keys_metadata]
else:
    target_metadata = [projection_metadata, service_metadata]
MIGRATION_LOCK = 7253011  # pg_advisory_xact_lock key: one migrating process at a time


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = create_engine(
        context.config.get_main_option("sqlalchemy.url") or "sqlite:///var/events-views.sqlite"
    )
    with engine.connect() as conn:
        run(conn)
