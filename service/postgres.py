"""The event store's recorder on PostgreSQL: the same guarantees as service/recorder.py on SQLite.

- Positions: the library takes `LOCK TABLE ... IN EXCLUSIVE MODE` before every insert, so commits happen in
  position order. Under that lock we number the new events ourselves (the current maximum + 1, 2, ...) instead of
  drawing from a sequence, so that a rolled-back insert leaves no gap in the notification log.
- Guards of the cross-aggregate rules run inside the same transaction, after the lock: the `expected_versions`
  of the aggregates a decision read, and the replication registry with its partial unique index.
- The hash chain (service/chain.py): under the lock, the last link is read (the unique index on
  `notification_id`), and every event is stored with its `hash` and `prev_hash`.
- One round trip per save: the lock, the last link, the guards, the registry upsert, the links and
  the insert run in one server-side function (`<events table>_append`, created at start-up with the tables), so a
  lone save is a single autocommitted `SELECT`. A lone save of one event with at most one registry row (nearly
  every command) calls `<events table>_append_one`, the same steps with scalar parameters, sent through libpq
  directly as a statement prepared once per connection (service/prepared.py; so are the registry reads of
  proposals and evaluations). The group commit's writer keeps one connection of the pool for itself (one batch
  is written at a time), and so do the registry reads, one at a time (a read that finds the kept one in use
  takes one of the pool): each goes to one server process busy on every command, without a round of the pool,
  instead of the pool's connections handed out in turn (`KeptConnection`). A registry row that a command leaves as it is (a modification, an evaluation) is not rewritten. The function computes each link as `link_hash` in
  domain/published.py does (SHA-256 of `prev_hash + "\n" + canonical`, the canonical form put together from the
  parts the caller decoded, `head + position + tail`). A group-commit batch of several saves is one transaction
  with one call per save of `<events table>_try_append`, sent together in one pipelined round trip; each runs
  its save in a subtransaction (PL/pgSQL's exception block, the savepoint of before) and answers a broken guard
  instead of raising.
- No `NOTIFY`: nothing listens (projections, the relay and followers read the notification log from their
  tracked positions, woken within their process or polling), and a notifying commit queues its message and
  takes a cluster-wide lock. The library's LISTEN-based `subscribe()` is therefore not offered, as on SQLite.
- Reads of an aggregate's events and snapshots take rows in PostgreSQL's binary format: the library's text
  format sends `bytea` as hex, twice its size, which psycopg then decodes (a snapshot of a long replication
  holds megabytes). `PostgresStoreFactory` (the `PERSISTENCE_MODULE`) gives both stores these recorders.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    Notification,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg import Cursor, pq
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from service.chain import GENESIS, LINK_PAGE, CanonicalParts, ChainedNotification, Chaining, Link
from service.group_commit import GroupCommitter, PendingSave
from service.prepared import (
    BINARY_FORMAT,
    BYTEA_OID,
    INT4_ARRAY_OID,
    INT4_OID,
    TEXT_ARRAY_OID,
    TEXT_FORMAT,
    TEXT_OID,
    UUID_ARRAY_OID,
    UUID_OID,
    Prepared,
    rows,
    text_array,
    text_value,
)
from service.recorder import ADOPTIONS_OF, OPEN_STATUSES, Adoption, RegistryRow, StaleDecision

STALE_DECISION = "PJ001"
"""The SQLSTATE that the append function raises when an aggregate a decision read has moved since."""

ERRORS: tuple[tuple[type[psycopg.Error], type[PersistenceError]], ...] = (
    (psycopg.InterfaceError, InterfaceError),
    (psycopg.OperationalError, OperationalError),
    (psycopg.DataError, DataError),
    (psycopg.IntegrityError, IntegrityError),
    (psycopg.InternalError, InternalError),
    (psycopg.ProgrammingError, ProgrammingError),
    (psycopg.NotSupportedError, NotSupportedError),
    (psycopg.DatabaseError, DatabaseError),
    (psycopg.Error, PersistenceError),
)
"""psycopg's errors as the library's datastore translates them (`PostgresDatastore.get_connection`)."""

REGISTRY_COLUMNS = (
    "replication_id, innovation_id, source_region, adopting_region, status, generation, penerapan_on, "
    "closed_on"
)


class BinaryReads(PostgresAggregateRecorder):
    """The library's `select_events` (eventsourcing 9.5.6, pinned), with the rows in binary format, each shape of
    the statement composed once."""

    _select_events_statements: dict[tuple[bool, bool, bool, bool], str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._select_events_statements = {}

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        params: list[Any] = [originator_id]
        if gt is not None:
            params.append(gt)
        if lte is not None:
            params.append(lte)
        if limit is not None:
            params.append(limit)
        shape = (gt is not None, lte is not None, desc, limit is not None)
        statement = self._select_events_statements.get(shape)
        if statement is None:
            composed = self.select_events_statement
            if gt is not None:
                composed += SQL(" AND originator_version > %s")
            if lte is not None:
                composed += SQL(" AND originator_version <= %s")
            composed += SQL(
                " ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC"
            )
            if limit is not None:
                composed += SQL(" LIMIT %s")
            statement = self._select_events_statements[shape] = composed.as_string(None)
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
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


class PostgresSnapshotRecorder(BinaryReads):
    """The snapshot store's recorder: the library's, reading in binary format."""


class KeptConnection:
    """One connection of the pool, taken and kept for one use at a time (whoever holds `in_use`): the statements
    of the command path then go to a server process that is busy on every command, without a round of the pool.
    A connection that failed, was left in a transaction, or is as old as the pool lets its connections get
    (`max_lifetime`) goes back to the pool (which closes, replaces or keeps it) and the next use takes another.
    psycopg's errors are raised as the library's."""

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore
        self.in_use = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self._renew_at = 0.0

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self.conn
        if conn is not None and (conn.closed or time.monotonic() >= self._renew_at):
            self.release()  # closed, or as old as the pool lets its connections get (`max_lifetime`)
            conn = None
        if conn is None:
            datastore = self.datastore
            try:
                datastore.pool.open(
                    datastore.pool_open_timeout is not None, datastore.pool_open_timeout or 30.0
                )
                conn = self.conn = datastore.pool.getconn()
                self._renew_at = time.monotonic() + datastore.pool.max_lifetime
            except psycopg.Error as error:
                raise OperationalError(str(error)) from error
        try:
            yield conn
        except BaseException as error:
            if (
                isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
                or conn.broken
                or conn.pgconn.transaction_status != pq.TransactionStatus.IDLE
            ):
                self.release()
            if isinstance(error, psycopg.Error):
                for psycopg_error, persistence_error in ERRORS:
                    if isinstance(error, psycopg_error):
                        raise persistence_error(str(error)) from error
            raise

    def release(self) -> None:
        """Give the connection back to the pool."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                self.datastore.pool.putconn(conn)
            except Exception:  # a pool that is closing: the connection only needs closing
                conn.close()


class PostgresStoreRecorder(Chaining, BinaryReads, PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.registry_table = SQL("{0}.replication_registry").format(schema)
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
        append = Identifier(f"{self.events_table_name}_append")
        try_append = Identifier(f"{self.events_table_name}_try_append")
        id_type = SQL(self.datastore.originator_id_type)
        parameters = SQL(
            "originator_ids {id_type}[], versions integer[], topics text[], states bytea[], "
            "heads text[], tails text[], "
            "expected_ids {id_type}[], expected_versions integer[], "
            "r_replication text[], r_innovation text[], r_source text[], r_adopting text[], r_status text[], "
            "r_generation integer[], r_penerapan text[], r_closed text[]"
        ).format(id_type=id_type)
        arguments = SQL(
            "originator_ids, versions, topics, states, heads, tails, expected_ids, expected_versions, r_replication, r_innovation, r_source, "
            "r_adopting, r_status, r_generation, r_penerapan, r_closed"
        )
        # What the append functions share: under the lock, the last link and the expected versions.
        prologue = (
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "SELECT notification_id, hash INTO last_position, prev FROM {schema}.{table} "
            "ORDER BY notification_id DESC LIMIT 1; "
            "IF NOT FOUND THEN last_position := 0; prev := {genesis}; END IF; "
            "FOR i IN 1 .. coalesce(cardinality(expected_ids), 0) LOOP "
            "SELECT MAX(originator_version) INTO current FROM {schema}.{table} "
            "WHERE originator_id = expected_ids[i]; "
            "IF current IS DISTINCT FROM expected_versions[i] THEN "
            "RAISE EXCEPTION USING ERRCODE = {stale}, MESSAGE = format('%s is at version %s, not %s', "
            "expected_ids[i], coalesce(current::text, 'None'), expected_versions[i]); "
            "END IF; "
            "END LOOP; "
        )
        upsert = (
            "ON CONFLICT (replication_id) DO UPDATE SET status = excluded.status, "
            "penerapan_on = excluded.penerapan_on, closed_on = excluded.closed_on "
            # A command that leaves the row as it is (a modification, an evaluation) writes no new version of it.
            "WHERE ({registry}.status, {registry}.penerapan_on, {registry}.closed_on) "
            "IS DISTINCT FROM (excluded.status, excluded.penerapan_on, excluded.closed_on); "
        )
        names = {
            "schema": schema,
            "table": table,
            "lock_timeout": SQL(str(int(self.datastore.lock_timeout))),
            "genesis": Literal(GENESIS.hash),
            "stale": Literal(STALE_DECISION),
            "registry": self.registry_table,
        }
        append_one = Identifier(f"{self.events_table_name}_append_one")
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE OR REPLACE FUNCTION {schema}.{append}({parameters}) RETURNS bigint[] "
                    "LANGUAGE plpgsql AS $BODY$ "
                    "DECLARE last_position bigint; prev text; current integer; "
                    "hashes text[] := '{{}}'; prevs text[] := '{{}}'; n integer := cardinality(originator_ids); "
                    "BEGIN " + prologue + "IF cardinality(r_replication) > 0 THEN "
                    "INSERT INTO {registry} SELECT * FROM unnest(r_replication, r_innovation, r_source, "
                    "r_adopting, r_status, r_generation, r_penerapan, r_closed) " + upsert + "END IF; "
                    "FOR i IN 1 .. n LOOP "
                    "prevs[i] := prev; "
                    "prev := encode(sha256(convert_to(prev || chr(10) || heads[i] || (last_position + i)::text "
                    "|| tails[i], 'UTF8')), 'hex'); "
                    "hashes[i] := prev; "
                    "END LOOP; "
                    "INSERT INTO {schema}.{table} AS t "
                    "(originator_id, originator_version, topic, state, notification_id, hash, prev_hash) "
                    "SELECT e.originator_id, e.originator_version, e.topic, e.state, last_position + e.n, "
                    "hashes[e.n], prevs[e.n] "
                    "FROM unnest(originator_ids, versions, topics, states) WITH ORDINALITY "
                    "AS e(originator_id, originator_version, topic, state, n); "
                    "RETURN ARRAY(SELECT generate_series(last_position + 1, last_position + n)); "
                    "END; $BODY$"
                ).format(append=append, parameters=parameters, **names),
                # The lone save of one event with at most one registry row (nearly every command): the same
                # steps with scalar parameters, which the driver sends without building arrays.
                SQL(
                    "CREATE OR REPLACE FUNCTION {schema}.{append_one}("
                    "p_originator_id {id_type}, p_version integer, p_topic text, p_state bytea, "
                    "p_head text, p_tail text, expected_ids {id_type}[], expected_versions integer[], "
                    "r_replication text, r_innovation text, r_source text, r_adopting text, r_status text, "
                    "r_generation integer, r_penerapan text, r_closed text) RETURNS bigint "
                    "LANGUAGE plpgsql AS $BODY$ "
                    "DECLARE last_position bigint; prev text; current integer; "
                    "BEGIN " + prologue + "IF r_replication IS NOT NULL THEN "
                    "INSERT INTO {registry} VALUES (r_replication, r_innovation, r_source, r_adopting, "
                    "r_status, r_generation, r_penerapan, r_closed) " + upsert + "END IF; "
                    "last_position := last_position + 1; "
                    "INSERT INTO {schema}.{table} "
                    "(originator_id, originator_version, topic, state, notification_id, hash, prev_hash) "
                    "VALUES (p_originator_id, p_version, p_topic, p_state, last_position, "
                    "encode(sha256(convert_to(prev || chr(10) || p_head || last_position::text || p_tail, "
                    "'UTF8')), 'hex'), prev); "
                    "RETURN last_position; "
                    "END; $BODY$"
                ).format(append_one=append_one, id_type=id_type, **names),
                SQL(
                    "CREATE OR REPLACE FUNCTION {schema}.{try_append}({parameters}) "
                    "RETURNS TABLE (positions bigint[], error_state text, error_message text) "
                    "LANGUAGE plpgsql AS $BODY$ "
                    "BEGIN "
                    "BEGIN "
                    "positions := {schema}.{append}({arguments}); "
                    "EXCEPTION WHEN integrity_constraint_violation OR SQLSTATE {stale} THEN "
                    "GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT; "
                    "END; "
                    "RETURN NEXT; "
                    "END; $BODY$"
                ).format(
                    schema=schema,
                    try_append=try_append,
                    append=append,
                    parameters=parameters,
                    arguments=arguments,
                    stale=Literal(STALE_DECISION),
                ),
            ]
        )
        # The statements of the command path, run through libpq directly (service/prepared.py).
        id_oid, ids_oid = (
            (UUID_OID, UUID_ARRAY_OID)
            if self.datastore.originator_id_type == "uuid"
            else (TEXT_OID, TEXT_ARRAY_OID)
        )
        prefix = f"puja_{self.events_table_name}"
        self.append_one = Prepared(
            f"{prefix}_append_one",
            SQL("SELECT {0}.{1}({2})")
            .format(schema, append_one, SQL(", ").join(SQL(f"${i}") for i in range(1, 17)))
            .as_string(None),
            [id_oid, INT4_OID, TEXT_OID, BYTEA_OID, TEXT_OID, TEXT_OID, ids_oid, INT4_ARRAY_OID]
            + [TEXT_OID] * 5
            + [INT4_OID, TEXT_OID, TEXT_OID],
            # The event's state as raw bytes (binary format); every other parameter as text.
            [TEXT_FORMAT] * 3 + [BINARY_FORMAT] + [TEXT_FORMAT] * 12,
        )
        registry = self.registry_table.as_string(None)
        self.registry_of_innovation = Prepared(
            f"{prefix}_registry_of",
            f"SELECT {REGISTRY_COLUMNS} FROM {registry} WHERE innovation_id = $1",
            [TEXT_OID],
        )
        self.registry_of_regions = Prepared(
            f"{prefix}_registry_of_regions",
            f"SELECT {REGISTRY_COLUMNS} FROM {registry} WHERE innovation_id = $1 AND adopting_region = ANY($2)",
            [TEXT_OID, TEXT_ARRAY_OID],
        )
        self.adoptions_of_innovation = Prepared(
            f"{prefix}_adoptions_of",
            ADOPTIONS_OF.replace("replication_registry", registry)
            .replace("%s", "$1", 1)
            .replace("%s", "$2", 1),
            [TEXT_OID, TEXT_OID],
        )
        placeholders = SQL(", ").join([SQL("%s")] * 16)
        self.append_statement = (
            SQL("SELECT {0}.{1}({2}) AS positions").format(schema, append, placeholders).as_string(None)
        )
        self.try_append_statement = SQL("SELECT * FROM {0}.{1}({2})").format(schema, try_append, placeholders)

        self.committer = GroupCommitter(self._write_batch, name="postgres-group-commit")
        self._writer = KeptConnection(self.datastore)
        self._reader = KeptConnection(self.datastore)

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Any:
        raise NotImplementedError(
            "The event store sends no NOTIFY: read the notification log from a tracked position "
            "(projections/runner.py) instead of subscribing."
        )

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

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection of the group commit's writer: only one batch is written at a time (`GroupCommitter`
        has one leader), so every save goes through the same session, without a round of the pool."""
        with self._writer.in_use, self._writer.connection() as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one registry read of the command path: the readers' own while no other read uses
        it (one busy server process instead of the pool's connections handed out in turn, each one's process
        cold), else one of the pool."""
        if self._reader.in_use.acquire(blocking=False):
            try:
                with self._reader.connection() as conn:
                    yield conn
            finally:
                self._reader.in_use.release()
        else:
            with self.datastore.get_connection() as conn:
                yield conn

    def release_connections(self) -> None:
        """Give the connections kept for the command path back to the pool (when the store closes)."""
        self._writer.release()
        self._reader.release()

    def _write_batch(self, batch: list[PendingSave]) -> None:
        """Concurrent saves (service/group_commit.py): a lone save is one autocommitted call of the append
        function; several are one transaction, each save in its own subtransaction."""
        with self._writing() as conn:
            if len(batch) == 1:
                (pending,) = batch
                one = self._append_one_values(pending)
                try:
                    if one is None:
                        with conn.cursor() as curs:
                            curs.execute(self.append_statement, self._append_params(pending), prepare=True)
                            row = curs.fetchone()
                        assert row is not None
                        positions = row["positions"]
                    else:
                        positions = [int(self.append_one.run(conn, one).get_value(0, 0))]  # type: ignore[arg-type]
                except psycopg.IntegrityError as error:
                    pending.fail(IntegrityError(str(error)))
                except psycopg.DatabaseError as error:
                    if error.sqlstate != STALE_DECISION:
                        raise
                    pending.fail(StaleDecision(error.diag.message_primary or str(error)))
                else:
                    pending.succeed(positions)
                return
            with conn.transaction(), conn.cursor() as curs:
                # One pipelined round trip for all the calls (psycopg's executemany with `returning`).
                curs.executemany(
                    self.try_append_statement,
                    [self._append_params(pending) for pending in batch],
                    returning=True,
                )
                for index, pending in enumerate(batch):
                    if index and not curs.nextset():
                        raise OperationalError("the append function answered fewer saves than it was given")
                    row = curs.fetchone()
                    assert row is not None
                    if row["error_state"] is None:
                        pending.succeed(row["positions"])
                    elif row["error_state"] == STALE_DECISION:
                        pending.fail(StaleDecision(row["error_message"]))
                    else:
                        pending.fail(IntegrityError(row["error_message"]))

    def _append_one_values(self, pending: PendingSave) -> list[bytes | None] | None:
        """The parameters of `<events table>_append_one`, written for libpq (service/prepared.py), for a save
        of one event with at most one registry row; None for any other save."""
        kwargs = pending.kwargs
        registry = kwargs.get("registry") or ()
        if len(pending.stored_events) != 1 or len(registry) > 1:
            return None
        (event,) = pending.stored_events
        (part,) = kwargs["canonical_parts"]
        expected: dict[UUID, int] = kwargs.get("expected_versions") or {}
        return [
            text_value(event.originator_id),
            text_value(event.originator_version),
            text_value(event.topic),
            bytes(event.state),
            text_value(part.head),
            text_value(part.tail),
            text_array(list(expected)),
            text_array(list(expected.values())),
            *[text_value(value) for value in (registry[0].as_params() if registry else (None,) * 8)],
        ]

    def _append_params(self, pending: PendingSave) -> tuple[Any, ...]:
        kwargs = pending.kwargs
        parts: Sequence[CanonicalParts] = kwargs["canonical_parts"]
        expected: dict[UUID, int] = kwargs.get("expected_versions") or {}
        registry = [row.as_params() for row in kwargs.get("registry") or ()]
        columns: list[list[Any]] = [list(column) for column in zip(*registry, strict=True)] or [[]] * 8
        events = pending.stored_events
        return (
            [e.originator_id for e in events],
            [e.originator_version for e in events],
            [e.topic for e in events],
            [e.state for e in events],
            [part.head for part in parts],
            [part.tail for part in parts],
            list(expected),
            list(expected.values()),
            *columns,
        )

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

    def registry_of(
        self, innovation_id: UUID, adopting_regions: Sequence[str] | None = None
    ) -> list[RegistryRow]:
        """The replications of one innovation, as committed: all of them, or those adopted by some regions."""
        with self._reading() as conn:
            if adopting_regions is None:
                result = self.registry_of_innovation.run(conn, [text_value(innovation_id)])
            else:
                result = self.registry_of_regions.run(
                    conn, [text_value(innovation_id), text_array(list(adopting_regions)) or b"{}"]
                )
            return [RegistryRow.from_text(row) for row in rows(result)]

    def adoptions_of(self, innovation_id: UUID, source_region: str) -> list[Adoption]:
        """The replications of an innovation from one source region that reached penerapan, as committed."""
        with self._reading() as conn:
            result = self.adoptions_of_innovation.run(
                conn, [text_value(innovation_id), text_value(source_region)]
            )
            return [Adoption.from_row(row) for row in rows(result)]


class PostgresStoreFactory(PostgresFactory):
    """The library's PostgreSQL persistence with the recorders above (`PERSISTENCE_MODULE`)."""

    aggregate_recorder_class = PostgresSnapshotRecorder
    application_recorder_class = PostgresStoreRecorder

    def application_recorder(self) -> Any:
        recorder = super().application_recorder()
        self._store_recorders = [*getattr(self, "_store_recorders", []), recorder]
        return recorder

    def close(self) -> None:
        for recorder in getattr(self, "_store_recorders", []):
            recorder.release_connections()
        super().close()
