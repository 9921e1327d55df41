"""A projection caught up into empty tables without its secondary indexes (projections/loading.py), on SQLite and
PostgreSQL: the indexes are all back at the end, also after a crash in the middle of the load, and the views are
the same as a load with every index kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, event, func, select
from sqlalchemy.exc import OperationalError
from test_rebuild import digests, random_commands, reading

from app.runtime import Runtime
from consumers.projector import TopicProjector
from projections import all_projections
from projections import runner as runner_module
from projections.audit import AuditProjection
from projections.index import IndexProjection
from projections.loading import deferred_indexes, drop_deferred_indexes, present_indexes
from projections.rebuild import rebuild, verify
from projections.runner import ProjectionRunner
from projections.tables import AUDIT_TABLES, INDEX_TABLES, projection_positions, replications
from projections.tracking import Projection
from service.network import read_records

ROOT = Path(__file__).resolve().parent.parent
VIEW_TABLES = (*INDEX_TABLES, *AUDIT_TABLES)
DEFERRED = {str(i.name) for p in all_projections() for i in deferred_indexes(p)}


def indexes(conn: Connection) -> dict[str, set[str]]:
    """The secondary (non-unique) indexes each view table has in the database."""
    return {t.name: present_indexes(conn, t) & {str(i.name) for i in t.indexes} for t in VIEW_TABLES}


def declared() -> dict[str, set[str]]:
    """The indexes each view table's metadata (and so the migrations) declares."""
    return {t.name: {str(i.name) for i in t.indexes} for t in VIEW_TABLES}


def runner_of(runtime: Runtime, load_from: int, projections: list[Any] | None = None) -> ProjectionRunner:
    return ProjectionRunner(
        runtime.views,
        lambda after, limit: read_records(runtime.network, after, limit),
        runtime.network.head_position,
        projections if projections is not None else all_projections(),
        batch_size=40,
        apply_reads=1,
        load_without_indexes_from=load_from,
    )


class Watching(Projection):
    """A projection that notes, at each batch it applies, which indexes its tables have."""

    def __init__(self, inner: Projection, seen: list[set[str]]) -> None:
        self.inner, self.seen = inner, seen
        self.name, self.tables = inner.name, inner.tables
        self.indexes_read_while_applying = inner.indexes_read_while_applying

    def project_all(self, conn: Connection, records: Any) -> None:
        self.seen.append(set().union(*indexes(conn).values()))
        self.inner.project_all(conn, records)


def forget_views(runtime: Runtime) -> None:
    """Empty view tables and no tracked positions: a fresh view store, on either backend."""
    with runtime.views.begin() as conn:
        for table in VIEW_TABLES:
            conn.execute(delete(table))
        conn.execute(delete(projection_positions))


def test_a_long_log_is_loaded_without_the_secondary_indexes_and_every_index_is_back_at_the_end(
    runtime: Runtime,
) -> None:
    random_commands(runtime.network, seed=31, count=250)
    head = runtime.network.head_position()
    seen: list[set[str]] = []
    runner = runner_of(runtime, head, [Watching(p, seen) for p in all_projections()])

    assert runner.catch_up() == head

    assert len(seen) > 2  # several batches, each without the deferred indexes
    assert all(not (present & DEFERRED) for present in seen)
    assert all(
        present >= {"replications_by_innovation_status", "evaluations_by_subject_year"} for present in seen
    )
    with runtime.views.connect() as conn:
        assert indexes(conn) == declared()


def test_a_short_log_or_a_projection_that_holds_rows_keeps_every_index_while_applying(
    runtime: Runtime,
) -> None:
    random_commands(runtime.network, seed=32, count=120)
    head = runtime.network.head_position()
    seen: list[set[str]] = []
    short = runner_of(runtime, head + 1, [Watching(p, seen) for p in all_projections()])
    assert short.catch_up() == head
    assert seen and all(present == set().union(*declared().values()) for present in seen)

    random_commands(runtime.network, seed=33, count=60)
    seen.clear()
    later = runner_of(runtime, 1, [Watching(p, seen) for p in all_projections()])  # position > 0, rows held
    assert later.catch_up() == runtime.network.head_position()
    assert seen and all(present == set().union(*declared().values()) for present in seen)


def test_the_views_of_a_load_without_indexes_equal_those_of_a_load_with_them(runtime: Runtime) -> None:
    random_commands(runtime.network, seed=34, count=400)
    head = runtime.network.head_position()
    assert runner_of(runtime, head + 1).catch_up() == head  # every index kept
    kept = digests(runtime)

    forget_views(runtime)
    assert runner_of(runtime, 1).catch_up() == head
    assert digests(runtime) == kept
    for projection in all_projections():
        assert verify(runtime.views, projection, **reading(runtime)).ok
    with runtime.views.connect() as conn:
        assert indexes(conn) == declared()


def test_a_rebuild_fills_its_fresh_tables_without_the_secondary_indexes_and_swaps_in_every_index(
    runtime: Runtime,
) -> None:
    random_commands(runtime.network, seed=35, count=200)
    assert runtime.runner.catch_up() == runtime.network.head_position()
    before = digests(runtime)
    for projection in all_projections():
        rebuild(runtime.views, projection, batch_size=33, **reading(runtime))
    assert digests(runtime) == before
    with runtime.views.connect() as conn:
        assert indexes(conn) == declared()


def test_indexes_whose_build_failed_at_the_end_of_a_load_are_built_after_the_next_catch_up(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    random_commands(runtime.network, seed=38, count=120)
    head = runtime.network.head_position()
    runner = runner_of(runtime, 1)
    build = runner_module.restore_indexes
    failures = iter([OperationalError("CREATE INDEX", {}, Exception("the store went away"))])

    def failing_once(store: Any, projection: Projection) -> list[str]:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return build(store, projection)

    monkeypatch.setattr(runner_module, "restore_indexes", failing_once)
    with pytest.raises(OperationalError):
        runner.catch_up()
    with runtime.views.connect() as conn:
        assert set().union(*indexes(conn).values()) & DEFERRED != DEFERRED  # some still missing
    assert runner.catch_up() == head
    with runtime.views.connect() as conn:
        assert indexes(conn) == declared()


# --- a load cut short ---------------------------------------------------------------------------

CRASHING_LOAD = """
import sys, time
from pathlib import Path
from app.runtime import Runtime
from app.settings import Settings

runtime = Runtime.open(Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2] or None))
runner = runtime.runner
runner.load_without_indexes_from, runner.batch_size, runner.apply_reads = 1, 25, 1
read, reads = runner.read, []

def read_then_hang(after, limit):
    reads.append(after)
    if len(reads) == 4:  # three batches committed: tell the test, which kills this process
        print("loading", flush=True)
        time.sleep(600)
    return read(after, limit)

runner.read = read_then_hang
runner.catch_up()
"""


def test_a_load_killed_midway_gets_its_indexes_back_on_the_next_start_and_ends_with_the_same_views(
    runtime: Runtime, tmp_path: Path
) -> None:
    random_commands(runtime.network, seed=36, count=300)
    head = runtime.network.head_position()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CRASHING_LOAD,
            str(runtime.settings.data_dir),
            runtime.settings.database_url or "",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert loader.stdout is not None
        assert loader.stdout.readline().strip() == "loading"
    finally:
        loader.send_signal(signal.SIGKILL)
        loader.wait(30)

    with runtime.views.connect() as conn:  # what the killed load left: rows, and no deferred index
        applied = dict(
            conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all()
        )
        assert 0 < applied["index"] < head
        assert not set().union(*indexes(conn).values()) & DEFERRED
        # Queries stay correct meanwhile (only slower): a filter on a column whose index is missing.
        by_column = conn.execute(
            select(func.count()).select_from(replications).where(replications.c.status == "diusulkan")
        ).scalar_one()
        documents = conn.execute(select(replications.c.doc)).scalars()
        assert by_column == sum(doc["status"] == "diusulkan" for doc in documents) > 0

    # The next start: the runner's first catch-up restores them before it applies anything.
    assert runtime.runner.catch_up() == head
    with runtime.views.connect() as conn:
        assert indexes(conn) == declared()
    for projection in all_projections():
        assert verify(runtime.views, projection, **reading(runtime)).ok


def test_a_topic_consumer_restores_the_indexes_a_load_left_out_when_it_starts(runtime: Runtime) -> None:
    with runtime.views.begin() as conn:
        for projection in all_projections():
            drop_deferred_indexes(conn, projection)
    with runtime.views.connect() as conn:
        assert not set().union(*indexes(conn).values()) & DEFERRED

    TopicProjector(runtime.views, IndexProjection(), consumer=None, dead_letters=None, group="g")
    TopicProjector(runtime.views, AuditProjection(), consumer=None, dead_letters=None, group="g")

    with runtime.views.connect() as conn:
        assert indexes(conn) == declared()


# --- the reads of the load ----------------------------------------------------------------------


def test_what_applying_reads_without_the_deferred_indexes_searches_an_index_and_never_scans_a_table(
    tmp_path: Path, backend: str, network: Any
) -> None:
    """On SQLite: every statement the load ran that has a WHERE, planned again over tables without the deferred
    indexes, searches by a key or a kept index (a scan would make the load quadratic)."""
    if backend != "sqlite":
        pytest.skip("query plans are read on SQLite")
    from projections.store import ViewStore

    random_commands(network, seed=37, count=300)
    views = ViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
    views.create_all()
    statements: list[str] = []

    @event.listens_for(views.engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    views.engine.dispose()  # connections from here on are traced
    runner = ProjectionRunner(
        views,
        lambda after, limit: read_records(network, after, limit),
        network.head_position,
        all_projections(),
        batch_size=50,
        load_without_indexes_from=1,
    )
    assert runner.catch_up() == network.head_position()

    shapes: dict[str, str] = {}
    for sql in statements:
        if re.search(r"\sWHERE\s", sql) and sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            shapes.setdefault(re.sub(r"'[^']*'|\b\d+\b", "?", sql), sql)
    assert any("replications" in sql for sql in shapes.values())
    tables = {t.name for t in VIEW_TABLES}
    with views.connect() as conn:
        for projection in all_projections():
            drop_deferred_indexes(conn, projection)
        for sql in shapes.values():
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
            scans = [step for step in plan if re.match(r"SCAN (\w+)", step) and step.split()[1] in tables]
            assert not scans, (sql, plan)
        conn.rollback()
    views.dispose()
