"""The event store's recorder on PostgreSQL: the same guarantees as service/recorder.py on SQLite.

- Positions: the library takes `LOCK TABLE ... IN EXCLUSIVE MODE` before every insert, so commits happen in
  position order. Under that lock we number the new events ourselves (the current maximum + 1, 2, ...) instead of
  drawing from a sequence, so that a rolled-back insert leaves no gap in the notification log.
- Guards of the cross-aggregate rules run inside the same transaction, after the lock: the `expected_versions`
  of the aggregates a decision read, and the replication registry with its partial unique index.
- The hash chain (service/chain.py): under the lock, the last link is read once per transaction (the unique index
  on `notification_id`), and every event is stored with its `hash` and `prev_hash`.
- Reads of an aggregate's events and snapshots take rows in PostgreSQL's binary format: the library's text
  format sends `bytea` as hex, twice its size, which psycopg then decodes (a snapshot of a long replication
  holds megabytes). `PostgresStoreFactory` (the `PERSISTENCE_MODULE`) gives both stores these recorders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from service.chain import GENESIS, LINK_PAGE, CanonicalParts, ChainedNotification, Chaining, Link
from service.group_commit import GroupCommitter, PendingSave
from service.recorder import OPEN_STATUSES, RegistryRow, StaleDecision


def select_events_binary(
    recorder: PostgresAggregateRecorder,
    originator_id: UUID | str,
    *,
    gt: int | None = None,
    lte: int | None = None,
    desc: bool = False,
    limit: int | None = None,
) -> list[StoredEvent]:
    """The library's `select_events` (eventsourcing 9.5.6, pinned), with the rows in binary format."""
    statement = recorder.select_events_statement
    params: list[Any] = [originator_id]
    if gt is not None:
        params.append(gt)
        statement += SQL(" AND originator_version > %s")
    if lte is not None:
        params.append(lte)
        statement += SQL(" AND originator_version <= %s")
    statement += SQL(" ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC")
    if limit is not None:
        params.append(limit)
        statement += SQL(" LIMIT %s")
    with recorder.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
        curs.execute(statement, params, prepare=True)
        return [
            StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=row["state"],
            )
            for row in curs.fetchall()
        ]


class PostgresSnapshotRecorder(PostgresAggregateRecorder):
    """The snapshot store's recorder: the library's, reading in binary format."""

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return select_events_binary(self, originator_id, gt=gt, lte=lte, desc=desc, limit=limit)


class PostgresStoreRecorder(Chaining, PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.registry_table = SQL("{0}.replication_registry").format(schema)
        # Positions and links are computed under the lock from the last link: the events take positions
        # last + 1, 2, ... and the hashes given in the same order.
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} AS t "
            "(originator_id, originator_version, topic, state, notification_id, hash, prev_hash) "
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, %s::bigint + e.n, "
            "(%s::text[])[e.n], (%s::text[])[e.n] "
            "FROM unnest(%s::{schema}.{stored_event_type}[]) WITH ORDINALITY "
            "AS e(originator_id, originator_version, topic, state, n)"
        ).format(
            schema=schema,
            table=table,
            stored_event_type=Identifier(self.stored_event_type_name),
        )
        self.last_link_statement = SQL(
            "SELECT notification_id, hash FROM {0}.{1} ORDER BY notification_id DESC LIMIT 1"
        ).format(schema, table)
        self.has_chain_statement = SQL(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name = 'hash'"
        )
        self.add_chain_statement = SQL(
            "ALTER TABLE {0}.{1} ADD COLUMN IF NOT EXISTS hash text, ADD COLUMN IF NOT EXISTS prev_hash text"
        ).format(schema, table)
        select = "SELECT * FROM {0}.{1} WHERE notification_id >= %s AND notification_id <= %s "
        self.select_notifications_statement = SQL(select + "ORDER BY notification_id LIMIT %s").format(
            schema, table
        )
        self.select_notifications_of_topics_statement = SQL(
            select + "AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
        ).format(schema, table)
        self.max_version_statement = SQL(
            "SELECT MAX(originator_version) AS v FROM {0}.{1} WHERE originator_id = %s"
        ).format(schema, table)
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0} ("
                    "replication_id text PRIMARY KEY, innovation_id text NOT NULL, "
                    "source_region text NOT NULL, adopting_region text NOT NULL, status text NOT NULL, "
                    "generation integer NOT NULL, penerapan_on text, closed_on text)"
                ).format(self.registry_table),
                SQL(
                    "CREATE UNIQUE INDEX IF NOT EXISTS one_open_replication ON {0} "
                    "(innovation_id, adopting_region) WHERE status IN ({1})"
                ).format(self.registry_table, SQL(", ").join(SQL(repr(s)) for s in OPEN_STATUSES)),
                SQL("CREATE INDEX IF NOT EXISTS registry_by_innovation ON {0} (innovation_id)").format(
                    self.registry_table
                ),
            ]
        )

        self.committer = GroupCommitter(self._write_batch, name="postgres-group-commit")

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        super()._create_table(curs)
        # The library creates the events table; the links of the chain are columns of ours.
        curs.execute(self.has_chain_statement, (self.datastore.schema, self.events_table_name))
        if curs.fetchone() is None:
            curs.execute(self.add_chain_statement)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # Decoded here, in the caller's thread; only the positions and SHA-256s are left for the lock.
        parts = self.canonical_parts(stored_events)
        return self.committer.save(stored_events, canonical_parts=parts, **kwargs)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return select_events_binary(self, originator_id, gt=gt, lte=lte, desc=desc, limit=limit)

    def _write_batch(self, batch: list[PendingSave]) -> None:
        """Concurrent saves in one transaction under one table lock, each in its own savepoint
        (service/group_commit.py)."""
        try:
            with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
                self._lock_table(curs)
                self._notify_channel(curs)
                last = self._last_link(curs)
                for pending in batch:
                    try:
                        with conn.transaction():  # a savepoint
                            positions, linked = self._save(curs, pending.stored_events, pending.kwargs, last)
                    except (psycopg.IntegrityError, IntegrityError) as error:
                        pending.fail(
                            error if isinstance(error, IntegrityError) else IntegrityError(str(error))
                        )
                    else:
                        last = linked
                        pending.succeed(positions)
        except psycopg.OperationalError as error:
            raise OperationalError(str(error)) from error

    def link_unchained(self) -> int:
        linked = 0
        schema, table = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            last = self._last_link(curs)
            if last.position == 0 or last.hash is not None:
                return 0  # events are linked as they are stored: when the last one is, all are
            curs.execute(
                SQL("SELECT MIN(notification_id) AS p FROM {0}.{1} WHERE hash IS NULL").format(schema, table)
            )
            first = curs.fetchone()
            curs.execute(
                SQL(
                    "SELECT notification_id, hash FROM {0}.{1} WHERE notification_id < %s "
                    "ORDER BY notification_id DESC LIMIT 1"
                ).format(schema, table),
                (first["p"] if first else 0,),
            )
            row = curs.fetchone()
            last = GENESIS if row is None else Link(row["notification_id"], row["hash"])
            while True:
                curs.execute(self.select_notifications_statement, (last.position + 1, 2**63 - 1, LINK_PAGE))
                rows = curs.fetchall()
                if not rows:
                    return linked
                stored = [
                    StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                    for r in rows
                ]
                links, _ = self.links(self.canonical_parts(stored), last)
                if [position for position, _, _ in links] != [r["notification_id"] for r in rows]:
                    raise OperationalError(
                        f"The store has a gap after position {last.position}: it cannot be linked."
                    )
                curs.executemany(
                    SQL("UPDATE {0}.{1} SET hash = %s, prev_hash = %s WHERE notification_id = %s").format(
                        schema, table
                    ),
                    [(digest, prev, position) for position, digest, prev in links],
                )
                linked += len(links)
                last = Link(links[-1][0], links[-1][1])

    def _last_link(self, curs: Cursor[DictRow]) -> Link:
        curs.execute(self.last_link_statement, prepare=True)
        row = curs.fetchone()
        return GENESIS if row is None else Link(row["notification_id"], row["hash"])

    def _save(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        kwargs: dict[str, Any],
        last: Link,
    ) -> tuple[list[int], Link]:
        self._check_expected_versions(curs, kwargs.get("expected_versions") or {})
        self._write_registry(curs, kwargs.get("registry") or ())
        parts: Sequence[CanonicalParts] = kwargs["canonical_parts"]
        links, linked = self.links(parts, last)
        pg_stored_events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        curs.execute(
            self.insert_events_statement,
            (last.position, [h for _, h, _ in links], [p for _, _, p in links], pg_stored_events),
            prepare=True,
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
        """The library's notification log, with each event's links of the chain."""
        first = 1 if start is None else start if inclusive_of_start else start + 1
        last = stop if stop is not None else 2**63 - 1
        statement, params = (
            (self.select_notifications_of_topics_statement, (first, last, list(topics), limit))
            if topics
            else (self.select_notifications_statement, (first, last, limit))
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                ChainedNotification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                    hash=row["hash"],
                    prev_hash=row["prev_hash"],
                )
                for row in curs.fetchall()
            ]

    def _check_expected_versions(self, curs: Cursor[DictRow], expected: dict[UUID, int]) -> None:
        for aggregate_id, version in expected.items():
            curs.execute(self.max_version_statement, (aggregate_id,), prepare=True)
            row = curs.fetchone()
            current = row["v"] if row else None
            if current != version:
                raise StaleDecision(f"{aggregate_id} is at version {current}, not {version}")

    def _write_registry(self, curs: Cursor[DictRow], rows: Sequence[RegistryRow]) -> None:
        for row in rows:
            curs.execute(
                SQL(
                    "INSERT INTO {0} VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (replication_id) DO UPDATE SET status=excluded.status, "
                    "penerapan_on=excluded.penerapan_on, closed_on=excluded.closed_on"
                ).format(self.registry_table),
                row.as_params(),
                prepare=True,
            )

    def registry_of(self, innovation_id: UUID) -> list[RegistryRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT * FROM {0} WHERE innovation_id = %s").format(self.registry_table),
                (str(innovation_id),),
                prepare=True,
            )
            return [RegistryRow.from_row(row) for row in curs.fetchall()]


class PostgresStoreFactory(PostgresFactory):
    """The library's PostgreSQL persistence with the recorders above (`PERSISTENCE_MODULE`)."""

    aggregate_recorder_class = PostgresSnapshotRecorder
    application_recorder_class = PostgresStoreRecorder
