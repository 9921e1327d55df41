"""Rebuilding a projection from the record, and checking a live one against a rebuild (index.md: every figure is
derived from the events, can be rebuilt from them, and is the same after a rebuild).

A rebuild lays the whole record down into fresh tables of its own — schema `puja_rebuild_<name>` on PostgreSQL, a
file beside the views on SQLite — with the projection's own code (SQLAlchemy's `schema_translate_map` points its
statements there), while the live tables keep answering and the runner keeps applying to them. Then one
transaction holds the live projection's tracked position (`tracking.hold`: every writer of a projection takes that
lock before it touches the tables), brings the fresh tables up to that position (and to the positions a
stream-fed projection applied out of order), and swaps them in: on PostgreSQL by moving tables between schemas
(`ALTER TABLE ... SET SCHEMA`), on SQLite by replacing the rows from the attached file. Readers see the old tables
or the new ones, never a mixture; nothing the runner applied meanwhile is lost, nothing is applied twice, and the
tracked position does not move: the fresh tables stand for exactly what the live ones stood for.

`verify` builds the same fresh tables, brings them to the live position inside one read snapshot of the live
tables, and compares an order-independent digest of each table (columns marked `wall_clock` left out).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select, text
from sqlalchemy.engine import make_url

from domain.published import EventRecord
from projections.loading import create_missing_indexes, drop_deferred_indexes
from projections.runner import collector_held
from projections.store import ViewStore
from projections.tables import applied_positions, metadata, projection_positions
from projections.tracking import Projection, claim, hold, tracked_position

Read = Callable[[int, int], list[EventRecord]]
Progress = Callable[[int], None]

SCRATCH_PREFIX = "puja_rebuild_"
RETIRED_PREFIX = "puja_retired_"
BATCH_SIZE = 1000
REBUILD_LOCK = (
    7253012  # pg_advisory_lock key (with the projection's name): one rebuild of a projection at a time
)


class RebuildBusy(RuntimeError):
    """Another rebuild or verification of the same projection is running."""


@dataclass(frozen=True)
class Rebuilt:
    name: str
    position: int
    rows: dict[str, int]


@dataclass(frozen=True)
class TableComparison:
    table: str
    live_digest: str
    rebuilt_digest: str
    live_rows: int
    rebuilt_rows: int
    only_live: int
    only_rebuilt: int

    @property
    def equal(self) -> bool:
        return self.live_digest == self.rebuilt_digest


@dataclass(frozen=True)
class Verification:
    name: str
    position: int
    tables: list[TableComparison]

    @property
    def ok(self) -> bool:
        return all(t.equal for t in self.tables)

    @property
    def differing(self) -> list[TableComparison]:
        return [t for t in self.tables if not t.equal]


def rebuild(
    store: ViewStore,
    projection: Projection,
    read: Read,
    *,
    progress: Progress = lambda position: None,
    batch_size: int = BATCH_SIZE,
) -> Rebuilt:
    """Rebuild `projection` from the record into fresh tables and swap them in for the live ones."""
    scratch = Scratch(store, projection)
    with scratch.exclusive():
        scratch.create()
        try:
            _build(scratch, projection, read, batch_size, progress)
            scratch.index()
            position = scratch.swap(read, batch_size)
        finally:
            scratch.drop()
    with store.connect() as conn:
        rows = {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in projection.tables
        }
    return Rebuilt(projection.name, position, rows)


def verify(
    store: ViewStore,
    projection: Projection,
    read: Read,
    *,
    progress: Progress = lambda position: None,
    batch_size: int = BATCH_SIZE,
) -> Verification:
    """Rebuild `projection` into scratch tables and compare their content with the live tables'."""
    scratch = Scratch(store, projection)
    with scratch.exclusive():
        scratch.create()
        try:
            _build(scratch, projection, read, batch_size, progress)
            return scratch.compare(read, batch_size)
        finally:
            scratch.drop()


def _build(scratch: Scratch, projection: Projection, read: Read, batch_size: int, progress: Progress) -> int:
    """Lay the record down in the fresh tables up to the live projection's position, which may move meanwhile
    (never beyond it: the fresh tables stand for what the live ones stand for, and the last step adds the rest)."""
    position = 0
    while True:
        with scratch.store.connect() as conn:
            target = tracked_position(conn, projection.name)
        with collector_held():  # as the runner does (projections/runner.py)
            records = (
                [r for r in read(position, batch_size) if r.position <= target] if position < target else []
            )
            if not records:
                return position
            with scratch.begin() as conn:
                projection.apply_all(conn, records)
        position = records[-1].position
        progress(position)


# --- content digests --------------------------------------------------------------------------


def digested_columns(table: Table) -> list[Any]:
    """Every column but the wall-clock ones (`info={"wall_clock": True}`), which no rebuild reproduces."""
    return [c for c in table.columns if not c.info.get("wall_clock")]


def row_digests(conn: Connection, table: Table) -> Counter[str]:
    """A SHA-256 of each row's canonical JSON, counted (a multiset: order-independent)."""
    columns = digested_columns(table)
    counted: Counter[str] = Counter()
    for row in conn.execute(select(*columns)):
        canonical = json.dumps(
            dict(zip([c.name for c in columns], row, strict=True)),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        counted[hashlib.sha256(canonical.encode()).hexdigest()] += 1
    return counted


def content_digest(counted: Counter[str]) -> str:
    return hashlib.sha256("\n".join(sorted(counted.elements())).encode()).hexdigest()


# --- the fresh tables -------------------------------------------------------------------------


@contextmanager
def translated(conn: Connection, schema: str) -> Iterator[Connection]:
    """The connection's statements aimed at `schema` (the fresh tables) for the block."""
    before = conn.get_execution_options().get("schema_translate_map")
    conn.execution_options(schema_translate_map={None: schema})
    try:
        yield conn
    finally:
        conn.execution_options(schema_translate_map=before)


class Scratch:
    """Fresh tables for one projection, with a `projection_positions` of their own."""

    def __init__(self, store: ViewStore, projection: Projection) -> None:
        if not projection.tables:
            raise ValueError(f"projection {projection.name!r} names no tables")
        self.store = store
        self.projection = projection
        self.schema = SCRATCH_PREFIX + projection.name
        self.retired = RETIRED_PREFIX + projection.name
        self.tables = [*projection.tables, projection_positions]
        self.own: ViewStore | None = None
        self.path: Path | None = None
        if store.is_sqlite:
            database = make_url(store.url).database
            if not database or database == ":memory:":
                raise ValueError("a rebuild needs the views in a file")
            live = Path(database)
            self.path = live.with_name(f"{live.stem}.{self.schema}.sqlite")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One rebuild or verification of a projection at a time (a file lock, or a PostgreSQL advisory lock)."""
        busy = RebuildBusy(f"Another rebuild or verification of '{self.projection.name}' is running.")
        if self.path is not None:
            with open(
                self.path.with_name(f"{self.path.stem.split('.')[0]}.rebuild-{self.projection.name}.lock"),
                "w",
            ) as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise busy from None
                yield
            return
        key = {"k": REBUILD_LOCK, "n": self.projection.name}
        with self.store.engine.connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k, hashtext(:n))"), key).scalar_one():
                raise busy
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k, hashtext(:n))"), key)
                conn.commit()

    def create(self) -> None:
        """Empty fresh tables (whatever an interrupted run left is dropped first), without the secondary indexes
        that applying does not read (projections/loading.py): they are built once over the loaded rows, where
        the swap needs them (`index`)."""
        self.drop()
        if self.path is not None:
            self.own = ViewStore(f"sqlite:///{self.path}")
            metadata.create_all(self.own.engine, tables=self.tables, checkfirst=False)
            with self.own.begin() as conn:
                drop_deferred_indexes(conn, self.projection)
            return
        with self.store.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{self.schema}"')
            with translated(conn, self.schema):
                metadata.create_all(conn, tables=self.tables, checkfirst=False)
                drop_deferred_indexes(conn, self.projection)

    def index(self) -> None:
        """Build the indexes the fresh tables were filled without, where they are swapped in with them
        (PostgreSQL moves the tables). On SQLite the swap copies the rows into the live tables, whose indexes
        stay, so the fresh file never needs them. Before the swap, so that its transaction (which holds the
        live projection's writers) stays short."""
        if self.path is not None:
            return
        with self.store.begin(wait_for_disk=False) as conn, translated(conn, self.schema):
            create_missing_indexes(conn, self.projection.tables, schema=self.schema)

    def drop(self) -> None:
        if self.path is not None:
            if self.own is not None:
                self.own.dispose()
                self.own = None
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        with self.store.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.retired}" CASCADE')

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction writing to the fresh tables only (the live ones are not locked)."""
        if self.own is not None:
            with self.own.begin(wait_for_disk=False) as conn:
                yield conn
            return
        with self.store.begin(wait_for_disk=False) as conn, translated(conn, self.schema):
            yield conn

    @property
    def attach(self) -> dict[str, str] | None:
        """The fresh tables' file, to reach from a live connection (SQLite)."""
        return {self.schema: str(self.path)} if self.path is not None else None

    # --- the last step, in one transaction with the live tables ----------------------------------

    def _catch_up(self, conn: Connection, live_position: int, read: Read, batch_size: int) -> None:
        """Bring the fresh tables to the live position and to the positions a stream-fed projection applied
        above it (its contiguous watermark)."""
        name = self.projection.name
        out_of_order = set(
            conn.execute(
                select(applied_positions.c.position).where(
                    applied_positions.c.name == name, applied_positions.c.position > live_position
                )
            ).scalars()
        )
        with translated(conn, self.schema):
            built = tracked_position(conn, name)
            until = max([live_position, *out_of_order])
            after = built
            while after < until:
                records = read(after, batch_size)
                if not records:
                    break
                for record in records:
                    if record.position <= live_position or record.position in out_of_order:
                        self.projection.project(conn, record)
                after = records[-1].position
            claim(conn, name, max(live_position, built))

    def swap(self, read: Read, batch_size: int) -> int:
        """Bring the fresh tables level with the live ones and put them in their place, atomically."""
        name = self.projection.name
        with self.store.begin(attach=self.attach) as conn:
            live_position = hold(conn, name)  # the writers of this projection wait from here to the commit
            self._catch_up(conn, live_position, read, batch_size)
            if self.store.is_sqlite:
                for table in self.projection.tables:
                    columns = ", ".join(f'"{c.name}"' for c in table.columns)
                    conn.exec_driver_sql(f'DELETE FROM main."{table.name}"')
                    conn.exec_driver_sql(
                        f'INSERT INTO main."{table.name}" ({columns}) '
                        f'SELECT {columns} FROM "{self.schema}"."{table.name}"'
                    )
            else:
                live = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
                conn.exec_driver_sql(f'CREATE SCHEMA "{self.retired}"')
                for table in self.projection.tables:
                    conn.exec_driver_sql(f'ALTER TABLE "{live}"."{table.name}" SET SCHEMA "{self.retired}"')
                    conn.exec_driver_sql(f'ALTER TABLE "{self.schema}"."{table.name}" SET SCHEMA "{live}"')
        return live_position

    def compare(self, read: Read, batch_size: int) -> Verification:
        """Digests of the live tables and of the fresh ones at the same position, in one snapshot of the live."""
        name = self.projection.name
        with self.store.connect(attach=self.attach) as conn:
            if not self.store.is_sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ")
            live_position = tracked_position(conn, name)  # the snapshot starts here
            self._catch_up(conn, live_position, read, batch_size)
            comparisons = []
            for table in self.projection.tables:
                live = row_digests(conn, table)
                with translated(conn, self.schema):
                    rebuilt = row_digests(conn, table)
                comparisons.append(
                    TableComparison(
                        table=table.name,
                        live_digest=content_digest(live),
                        rebuilt_digest=content_digest(rebuilt),
                        live_rows=sum(live.values()),
                        rebuilt_rows=sum(rebuilt.values()),
                        only_live=sum((live - rebuilt).values()),
                        only_rebuilt=sum((rebuilt - live).values()),
                    )
                )
            conn.rollback()
        return Verification(name, live_position, comparisons)
