"""The event store's recorder on PostgreSQL: the same guarantees as service/recorder.py on SQLite.

- Positions: the library takes `LOCK TABLE ... IN EXCLUSIVE MODE` before every insert, so commits happen in
  position order. Under that lock we number the new events ourselves (the current maximum + 1, 2, ...) instead of
  drawing from a sequence, so that a rolled-back insert leaves no gap in the notification log.
- Guards of the cross-aggregate rules run inside the same transaction, after the lock: the `expected_versions`
  of the aggregates a decision read, and the replication registry with its partial unique index.
- Reads of an aggregate's events and snapshots take rows in PostgreSQL's binary format: the library's text
  format sends `bytea` as hex, twice its size, which psycopg then decodes (a snapshot of a long replication
  holds megabytes). `PostgresStoreFactory` (the `PERSISTENCE_MODULE`) gives both stores these recorders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

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


class PostgresStoreRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.registry_table = SQL("{0}.replication_registry").format(schema)
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} AS t "
            "(originator_id, originator_version, topic, state, notification_id) "
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, "
            "(SELECT COALESCE(MAX(notification_id), 0) FROM {schema}.{table}) + e.n "
            "FROM unnest(%s::{schema}.{stored_event_type}[]) WITH ORDINALITY "
            "AS e(originator_id, originator_version, topic, state, n) "
            "RETURNING notification_id"
        ).format(
            schema=schema,
            table=table,
            stored_event_type=Identifier(self.stored_event_type_name),
        )
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

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return self.committer.save(stored_events, **kwargs)

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
                for pending in batch:
                    try:
                        with conn.transaction():  # a savepoint
                            pending.succeed(self._save(conn, curs, pending.stored_events, pending.kwargs))
                    except (psycopg.IntegrityError, IntegrityError) as error:
                        pending.fail(
                            error if isinstance(error, IntegrityError) else IntegrityError(str(error))
                        )
        except psycopg.OperationalError as error:
            raise OperationalError(str(error)) from error

    def _save(
        self,
        conn: Connection[DictRow],
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        kwargs: dict[str, Any],
    ) -> list[int]:
        self._check_expected_versions(curs, kwargs.get("expected_versions") or {})
        self._write_registry(curs, kwargs.get("registry") or ())
        pg_stored_events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        curs.execute(self.insert_events_statement, (pg_stored_events,), prepare=True)
        return [row["notification_id"] for row in curs.fetchall()]

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
