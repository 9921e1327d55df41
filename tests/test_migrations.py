"""Versioned migrations of the projection and service tables."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from app.migrate import alembic_config, upgrade
from app.storage import keys_metadata
from app.storage import metadata as service_metadata
from projections.tables import metadata as projection_metadata


def test_migrations_build_exactly_the_tables_the_code_declares(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'views.sqlite'}")
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"render_as_batch": True})
        differences = compare_metadata(context, [projection_metadata, service_metadata])
    assert differences == []


def test_upgrading_twice_changes_nothing_and_records_the_head(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'views.sqlite'}")
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) == tables
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head
    assert {
        "innovations",
        "replications",
        "audit_events",
        "api_tokens",
        "idempotency_keys",
        "applied_positions",
    } <= tables


def test_the_keys_files_own_line_builds_exactly_the_keys_table(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}")
    upgrade(engine, tree="keys")
    upgrade(engine, tree="keys")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"render_as_batch": True})
        assert compare_metadata(context, keys_metadata) == []
        head = ScriptDirectory.from_config(alembic_config("keys")).get_current_head()
        assert context.get_current_revision() == head == "k0001"
    assert set(inspect(engine).get_table_names()) == {"alembic_version", "idempotency_keys"}
