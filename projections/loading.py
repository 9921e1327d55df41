"""Loading a projection into empty tables without its secondary indexes, which are built once at the end.

A projection laid down from position 0 into empty tables (a fresh view store, a rebuild's scratch tables) keeps
every secondary index up to date row by row: most of SQLite's own work per event, and a good part of the
catch-up's. Building an index once over the loaded rows (one sort) costs much less. Only the indexes that the
projection's own reads while applying do not need are left out (`Projection.indexes_read_while_applying` names
the others, which would otherwise make those reads scan a growing table); primary keys and unique constraints
stay, they are what keeps an event from being laid down twice.

A load that is cut short (a crash, a kill) leaves the tables without those indexes: correct, only slower to
query. Whoever applies the projection next restores them before it applies anything (`restore_indexes`, by the
runner's first catch-up and by a topic consumer's start), and so does the end of every load. The indexes are
the ones the metadata (and so the migrations) declare, so the schema never differs from the migrations' once they
are back; but migrations run at start-up before the runner restores them, so a migration that drops or changes
one of these indexes should do so `if_exists`, for a store whose first load was killed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Index, Table, inspect, select
from sqlalchemy.schema import CreateIndex, DropIndex

from projections.store import ViewStore
from projections.tracking import Projection, hold

# How many events ahead of an empty projection make a load without its secondary indexes worth it. On SQLite no
# difference could be measured at 20,000-50,000 events (the indexes still fit SQLite's page cache), while at 100,000
# and 200,000 a catch-up took 20-35 % less time. Below it the live behaviour is kept: every index there from the first
# row, so queries served meanwhile stay fast.
LOAD_WITHOUT_INDEXES_FROM = 50_000


def deferred_indexes(projection: Projection) -> list[Index]:
    """The projection's secondary indexes that a load leaves out: not unique, not read while applying."""
    kept = projection.indexes_read_while_applying
    return [
        index
        for table in projection.tables
        for index in sorted(table.indexes, key=lambda i: str(i.name))
        if not index.unique and index.name not in kept
    ]


def start_load(store: ViewStore, projection: Projection) -> bool:
    """Drop the projection's deferred indexes if it has applied nothing and its tables are empty, in one
    transaction under its tracked position (so no writer of it comes between); whether it did."""
    with store.begin() as conn:
        if hold(conn, projection.name) != 0 or not tables_empty(conn, projection.tables):
            return False
        drop_deferred_indexes(conn, projection)
    return True


def drop_deferred_indexes(conn: Connection, projection: Projection) -> None:
    for index in deferred_indexes(projection):
        conn.execute(DropIndex(index, if_exists=True))


def restore_indexes(store: ViewStore, projection: Projection) -> list[str]:
    """Build every index of the projection's tables that is missing (after a load, or a load cut short); the
    names built. Under the tracked position, as every writer of its tables."""
    with store.begin() as conn:
        hold(conn, projection.name)
        return create_missing_indexes(conn, projection.tables)


def create_missing_indexes(conn: Connection, tables: Iterable[Table], schema: str | None = None) -> list[str]:
    """`CREATE INDEX IF NOT EXISTS` for each index of the tables' metadata that `schema` (the connection's
    default when None) lacks; the names built."""
    built = []
    for table in tables:
        present = present_indexes(conn, table, schema)
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name not in present:
                conn.execute(CreateIndex(index, if_not_exists=True))
                built.append(str(index.name))
    return built


def present_indexes(conn: Connection, table: Table, schema: str | None = None) -> set[str]:
    """The names of the indexes the table has in the database."""
    return {str(found["name"]) for found in inspect(conn).get_indexes(table.name, schema=schema)}


def tables_empty(conn: Connection, tables: Iterable[Table]) -> bool:
    return all(conn.execute(select(1).select_from(table).limit(1)).first() is None for table in tables)
