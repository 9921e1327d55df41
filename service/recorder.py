"""The event store's recorder on SQLite, extended for what the library does not do by itself.

1. Positions are public (cursors, `X-Event-Position`, the audit log), so `stored_events` keeps them in an explicit
   `position INTEGER PRIMARY KEY AUTOINCREMENT` column: never renumbered by VACUUM, never reused.
2. Cross-aggregate rules are guarded in the same transaction as the events (hooking the library's private
   `_insert_events`, hence the exact pin of `eventsourcing` in setup.cfg and tests/test_recorder.py):
   - `expected_versions`: aggregates a decision was based on must still be at the version that was read;
   - `registry`: rows of the replication registry, a table kept inline with the events whose partial unique
     index allows at most one open replication per (innovation, adopting region) (domain.md rule 5).
   A broken guard raises `IntegrityError`; the application re-reads and decides again.
3. Every event is stored with its `hash` and `prev_hash` (service/chain.py), computed under the write lock
   from the last stored link, in position order, also across the savepoints of a group commit.
4. Connections map the database file into memory (`PRAGMA mmap_size`), so that reading a row spread over many
   overflow pages (a snapshot of a long replication holds megabytes) copies them from the mapping instead of
   making a read call for each page. `SQLiteStoreFactory` (the `PERSISTENCE_MODULE`) sets up both.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, OperationalError, StoredEvent
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from service.chain import GENESIS, LINK_PAGE, CanonicalParts, ChainedNotification, Chaining, Link
from service.group_commit import GroupCommitter, PendingSave

OPEN_STATUSES = ("diusulkan", "disepakati", "uji_coba", "penerapan")
MMAP_BYTES = 1 << 30
WRITE_LOCK_RETRY_SECONDS = 0.001  # how often a save waiting for another process's write lock tries again


class StaleDecision(IntegrityError):
    """An aggregate that a decision was based on changed before the decision was stored."""


@dataclass(frozen=True)
class RegistryRow:
    replication_id: UUID
    innovation_id: UUID
    source_region: str
    adopting_region: str
    status: str
    generation: int
    penerapan_on: date | None
    closed_on: date | None

    def as_params(self) -> tuple[Any, ...]:
        """The row as the registry table's columns, in order."""
        return (
            str(self.replication_id),
            str(self.innovation_id),
            self.source_region,
            self.adopting_region,
            self.status,
            self.generation,
            self.penerapan_on.isoformat() if self.penerapan_on else None,
            self.closed_on.isoformat() if self.closed_on else None,
        )

    @classmethod
    def from_text(cls, row: Sequence[Any]) -> RegistryRow:
        """A row read as text, its columns in the table's order."""
        replication_id, innovation_id, source, adopting, status, generation, penerapan_on, closed_on = row
        return cls(
            replication_id=UUID(replication_id),
            innovation_id=UUID(innovation_id),
            source_region=source,
            adopting_region=adopting,
            status=status,
            generation=int(generation),
            penerapan_on=date.fromisoformat(penerapan_on) if penerapan_on else None,
            closed_on=date.fromisoformat(closed_on) if closed_on else None,
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RegistryRow:
        return cls(
            replication_id=UUID(row["replication_id"]),
            innovation_id=UUID(row["innovation_id"]),
            source_region=row["source_region"],
            adopting_region=row["adopting_region"],
            status=row["status"],
            generation=row["generation"],
            penerapan_on=date.fromisoformat(row["penerapan_on"]) if row["penerapan_on"] else None,
            closed_on=date.fromisoformat(row["closed_on"]) if row["closed_on"] else None,
        )


ADOPTIONS_OF = (
    "SELECT adopting_region, status, penerapan_on, closed_on FROM replication_registry "
    "WHERE innovation_id = %s AND source_region = %s AND penerapan_on IS NOT NULL"
)
"""The registry columns that the replikasi level of an evaluation counts (`Adoption`)."""


@dataclass(frozen=True)
class Adoption:
    """What the replikasi level needs of a registry row: who adopted, and when it reached penerapan and
    closed."""

    adopting_region: str
    status: str
    penerapan_on: date
    closed_on: date | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Adoption:
        region, status, penerapan_on, closed_on = row
        return cls(
            region,
            status,
            date.fromisoformat(penerapan_on),
            date.fromisoformat(closed_on) if closed_on else None,
        )


ROWS = ("position", "originator_id", "originator_version", "topic", "state", "hash", "prev_hash")


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class StoreRecorder(Chaining, SQLiteApplicationRecorder):
    def __init__(self, datastore: Any, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        table = self.events_table_name
        self.insert_events_statement = (
            f"INSERT INTO {table} (position, originator_id, originator_version, topic, state, hash, prev_hash) "
            "VALUES (?,?,?,?,?,?,?)"
        )
        self.select_max_notification_id_statement = f"SELECT MAX(position) FROM {table}"
        # A write that changes nothing: it takes SQLite's write lock, so that the last link read next is final.
        self.take_write_lock_statement = f"UPDATE {table} SET position=position WHERE position=-1"
        self.last_link_statement = f"SELECT position, hash FROM {table} ORDER BY position DESC LIMIT 1"
        self.select_rows_statement = (
            f"SELECT {', '.join(ROWS)} FROM {table} WHERE position>? ORDER BY position LIMIT ?"
        )
        self.committer = GroupCommitter(self._write_batch, name="sqlite-group-commit")

    def construct_create_table_statements(self) -> list[str]:
        table = self.events_table_name
        return [
            f"CREATE TABLE IF NOT EXISTS {table} ("
            "position INTEGER PRIMARY KEY AUTOINCREMENT, "
            "originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, "
            "topic TEXT NOT NULL, "
            "state BLOB NOT NULL, "
            "hash TEXT NOT NULL, "
            "prev_hash TEXT NOT NULL, "
            "UNIQUE (originator_id, originator_version))",
            "CREATE TABLE IF NOT EXISTS replication_registry ("
            "replication_id TEXT PRIMARY KEY, "
            "innovation_id TEXT NOT NULL, "
            "source_region TEXT NOT NULL, "
            "adopting_region TEXT NOT NULL, "
            "status TEXT NOT NULL, "
            "generation INTEGER NOT NULL, "
            "penerapan_on TEXT, "
            "closed_on TEXT)",
            "CREATE UNIQUE INDEX IF NOT EXISTS one_open_replication "
            "ON replication_registry (innovation_id, adopting_region) "
            f"WHERE status IN ({', '.join(repr(s) for s in OPEN_STATUSES)})",
            "CREATE INDEX IF NOT EXISTS registry_by_source "
            "ON replication_registry (innovation_id, source_region)",
        ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # Decoded here, in the caller's thread; only the position and one SHA-256 are left for the lock.
        parts = self.canonical_parts(stored_events)
        return self.committer.save(stored_events, canonical_parts=parts, **kwargs)

    def _write_batch(self, batch: list[PendingSave]) -> None:
        """Concurrent saves in one transaction, each in its own savepoint (service/group_commit.py)."""
        with self.datastore.transaction(commit=True) as c:
            self._take_write_lock(c)
            last = self._last_link(c)
            for pending in batch:
                c.execute("SAVEPOINT save")
                try:
                    positions, linked = self._insert_chained(c, pending.stored_events, last, **pending.kwargs)
                except (sqlite3.IntegrityError, IntegrityError) as error:
                    c.execute("ROLLBACK TO SAVEPOINT save")
                    c.execute("RELEASE SAVEPOINT save")
                    pending.fail(error if isinstance(error, IntegrityError) else IntegrityError(str(error)))
                    continue
                except sqlite3.OperationalError as error:
                    c.execute("ROLLBACK TO SAVEPOINT save")
                    c.execute("RELEASE SAVEPOINT save")
                    pending.fail(OperationalError(str(error)))
                    continue
                c.execute("RELEASE SAVEPOINT save")
                last = linked
                pending.succeed(positions)

    def _take_write_lock(self, c: SQLiteCursor) -> None:
        """Take SQLite's write lock, trying again every millisecond while another process holds it, for up to
        the store's lock timeout. SQLite's own busy handler sleeps longer and longer between tries (up to 100 ms
        each): a writer that has waited a while keeps missing the moments the lock is free while the other
        server processes commit one short batch after another."""
        timeout = self.datastore.pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT
        deadline = time.monotonic() + timeout
        c.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    c.execute(self.take_write_lock_statement)
                    return
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                        raise
                time.sleep(WRITE_LOCK_RETRY_SECONDS)
        finally:
            c.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")

    def chain_complete(self) -> bool:
        """Whether the last stored event is linked (events are linked as they are stored: when the last one is,
        all are). Reads only, so that a process starting while others write never waits for the write lock."""
        table = self.events_table_name
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"PRAGMA table_info({table})")
            if "hash" not in {row["name"] for row in c.fetchall()}:
                return False
            c.execute(self.last_link_statement)
            row = c.fetchone()
            return row is None or row["hash"] is not None

    def link_unchained(self) -> int:
        if self.chain_complete():
            return 0
        table = self.events_table_name
        linked = 0
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"PRAGMA table_info({table})")
            if "hash" not in {row["name"] for row in c.fetchall()}:
                c.execute(f"ALTER TABLE {table} ADD COLUMN hash TEXT")
                c.execute(f"ALTER TABLE {table} ADD COLUMN prev_hash TEXT")
            c.execute(self.take_write_lock_statement)
            c.execute(self.last_link_statement)
            row = c.fetchone()
            if row is None or row["hash"] is not None:
                return 0  # events are linked as they are stored: when the last one is, all are
            c.execute(f"SELECT MIN(position) FROM {table} WHERE hash IS NULL")
            position = c.fetchone()[0]
            c.execute(
                f"SELECT position, hash FROM {table} WHERE position < ? ORDER BY position DESC LIMIT 1",
                (position,),
            )
            row = c.fetchone()
            last = GENESIS if row is None else Link(row["position"], row["hash"])
            while True:
                c.execute(
                    f"SELECT * FROM {table} WHERE position > ? ORDER BY position LIMIT ?",
                    (last.position, LINK_PAGE),
                )
                rows = c.fetchall()
                if not rows:
                    return linked
                stored = [
                    StoredEvent(
                        self.convert_originator_id(r["originator_id"]),
                        r["originator_version"],
                        r["topic"],
                        r["state"],
                    )
                    for r in rows
                ]
                links, _ = self.links(self.canonical_parts(stored), last)
                if [position for position, _, _ in links] != [r["position"] for r in rows]:
                    raise OperationalError(
                        f"The store has a gap after position {last.position}: it cannot be linked."
                    )
                c.executemany(
                    f"UPDATE {table} SET hash=?, prev_hash=? WHERE position=?",
                    [(digest, prev, position) for position, digest, prev in links],
                )
                linked += len(links)
                last = Link(links[-1][0], links[-1][1])

    def _last_link(self, c: SQLiteCursor) -> Link:
        """The last stored link (one lookup on the primary key), read under the write lock."""
        c.execute(self.last_link_statement)
        row = c.fetchone()
        return GENESIS if row is None else Link(row["position"], row["hash"])

    def _insert_chained(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        last: Link,
        *,
        canonical_parts: Sequence[CanonicalParts],
        **kwargs: Any,
    ) -> tuple[list[int], Link]:
        """Insert after `last` with the next positions and their links; then check the guards, which read the
        latest committed state since the write lock is held."""
        links, linked = self.links(canonical_parts, last)
        c.executemany(
            self.insert_events_statement,
            [
                (position, _hex(s.originator_id), s.originator_version, s.topic, s.state, digest, prev)
                for s, (position, digest, prev) in zip(stored_events, links, strict=True)
            ],
        )
        for aggregate_id, version in (kwargs.get("expected_versions") or {}).items():
            c.execute(
                f"SELECT MAX(originator_version) FROM {self.events_table_name} WHERE originator_id=?",
                (_hex(aggregate_id),),
            )
            current = c.fetchone()[0]
            if current != version:
                raise StaleDecision(f"{aggregate_id} is at version {current}, not {version}")
        for row in kwargs.get("registry") or ():
            c.execute(
                "INSERT INTO replication_registry VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT (replication_id) DO UPDATE SET status=excluded.status, "
                "penerapan_on=excluded.penerapan_on, closed_on=excluded.closed_on",
                row.as_params(),
            )
        return [position for position, _, _ in links], linked

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        clauses: list[str] = []
        params: list[Any] = []
        if start is not None:
            clauses.append("position>=?" if inclusive_of_start else "position>?")
            params.append(start)
        if stop is not None:
            clauses.append("position<=?")
            params.append(stop)
        if topics:
            clauses.append(f"topic IN ({','.join('?' * len(topics))})")
            params.extend(topics)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        params.append(limit)
        statement = f"SELECT * FROM {self.events_table_name} {where}ORDER BY position LIMIT ?"
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [
                ChainedNotification(
                    id=row["position"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                    hash=row["hash"],
                    prev_hash=row["prev_hash"],
                )
                for row in c.fetchall()
            ]

    def select_rows(self, after: int, limit: int) -> list[Any]:
        """The log after a position as the rows stored, `ROWS` in their order: for readers that make their own
        records from them (service/records.py) without a Notification and a UUID object per event."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.select_rows_statement, (after, limit))
            return c.fetchall()

    def notification_of(self, row: Sequence[Any]) -> ChainedNotification:
        """The notification `select_notifications` gives for a row of `select_rows`."""
        position, originator_id, originator_version, topic, state, hash, prev_hash = row
        return ChainedNotification(
            id=position,
            originator_id=self.convert_originator_id(originator_id),
            originator_version=originator_version,
            topic=topic,
            state=state,
            hash=hash,
            prev_hash=prev_hash,
        )

    # --- the replication registry ------------------------------------------------------------

    def registry_of(
        self, innovation_id: UUID, adopting_regions: Sequence[str] | None = None
    ) -> list[RegistryRow]:
        """The replications of one innovation, as committed: all of them, or those adopted by some regions."""
        with self.datastore.transaction(commit=False) as c:
            if adopting_regions is None:
                c.execute("SELECT * FROM replication_registry WHERE innovation_id=?", (str(innovation_id),))
            else:
                regions = list(dict.fromkeys(adopting_regions))
                c.execute(
                    "SELECT * FROM replication_registry WHERE innovation_id=? "
                    f"AND adopting_region IN ({', '.join('?' * len(regions))})",
                    (str(innovation_id), *regions),
                )
            return [RegistryRow.from_row(row) for row in c.fetchall()]

    def adoptions_of(self, innovation_id: UUID, source_region: str) -> list[Adoption]:
        """The replications of an innovation from one source region that reached penerapan, as committed."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(ADOPTIONS_OF.replace("%s", "?"), (str(innovation_id), source_region))
            return [Adoption.from_row(tuple(row)) for row in c.fetchall()]


class MappedConnectionPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        if not self.is_sqlite_memory_mode:
            connection.cursor().execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        return connection


class SQLiteStoreFactory(SQLiteFactory):
    """The library's SQLite persistence with StoreRecorder and memory-mapped connections."""

    application_recorder_class = StoreRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool  # not connected yet: connections are made on first use
        self.datastore.pool = MappedConnectionPool(db_name=pool.db_name, lock_timeout=pool.lock_timeout)
