"""Idempotency-Key on POST (api.md): a retry with the same key and body gets the first response again and
stores nothing; the same key with another body is 422; while the first is running, 409. Keys are scoped to
the token's subject and kept for at least 24 hours.

Claims, completions and releases of the requests a process is serving at the same time are written together
(service/group_commit.GroupCommitter) in one transaction; a claim that finds its key taken inserts nothing and
is told so alone, and every request goes on only once the transaction holding its write has committed.

A request can die after its command was stored and before its answer was kept: its process killed, or an error
while answering (500). Its key then stays claimed. A retry finds the claim `abandoned` once it is
ABANDONED_AFTER old, or at once after a 500 that came after the command was stored (`abandon`). The retry
looks in the event store for what the first request stored (its request id, above the position noted with the
claim): when it finds it, it answers with that outcome instead of running the command a second time; when not,
the command was never stored and the retry runs it."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Dialect, Engine, delete, insert, select, tuple_, update

from app.storage import idempotency_keys
from service.group_commit import GroupCommitter, PendingSave
from service.prepared import (
    BINARY_FORMAT,
    BYTEA_OID,
    INT4_OID,
    INT8_OID,
    JSON_OID,
    TEXT_FORMAT,
    TEXT_OID,
    TIMESTAMPTZ_OID,
    Prepared,
    run_simple,
    text_value,
)

KEEP_FOR = timedelta(hours=48)
ABANDONED_AFTER = timedelta(seconds=120)
PURGE_EVERY_SECONDS = 60.0


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The same request, whatever the JSON's whitespace or key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    """What became of an attempt to claim a key: ours to run, a stored response, a conflict, or a claim whose
    request died without an answer (`first_request_id`, `after_position`, `claimed_at` are that claim's)."""

    outcome: str  # "claimed" | "replay" | "in-flight" | "reused" | "abandoned"
    response: StoredResponse | None = None
    first_request_id: str | None = None
    after_position: int | None = None
    claimed_at: datetime | None = None


class IdempotencyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._purged_at = 0.0
        self._writes = GroupCommitter(self._write_batch, name="idempotency-keys")
        self._values = _Values(engine.dialect)
        self._kept = None if self._values.sqlite else _KeptWriter(engine)

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()

    def _write(self, kind: str, params: tuple[Any, ...], *, wait_for_disk: bool) -> int:
        """Execute one write (`kind`: claim, complete or release) together with those of other requests of this
        process; its row count."""
        done = self._writes.save((), kind=kind, params=params, wait_for_disk=wait_for_disk)
        return done[0] if done else 0

    def _write_batch(self, batch: list[PendingSave]) -> None:
        """One transaction: the statements are fixed, so neither SQLAlchemy's compiler nor savepoints are
        needed (a claim of a key taken meanwhile inserts nothing, `ON CONFLICT DO NOTHING`, and is told so by
        its row count). On SQLite on a plain driver connection; on PostgreSQL as statements prepared on a
        connection kept for these writes (`_KeptWriter`)."""
        if self._kept is not None:
            counts = self._kept.write(batch)
        else:
            raw = self.engine.raw_connection()
            try:
                counts = self._write_sqlite(raw, batch)
            finally:
                raw.close()
        for pending, count in zip(batch, counts, strict=True):
            pending.succeed([count])

    @staticmethod
    def _write_sqlite(raw: Any, batch: list[PendingSave]) -> list[int]:
        cursor = raw.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")  # the driver's own transactions are off (ViewStore)
            counts = []
            for pending in batch:
                cursor.execute(SQLITE_WRITES[pending.kwargs["kind"]], pending.kwargs["params"])
                counts.append(cursor.rowcount)
            raw.commit()
            return counts
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()

    def purge_expired(self, now: datetime) -> None:
        """Forget keys older than KEEP_FOR; done at most once a minute per process, not on every command."""
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - KEEP_FOR))

    def claim(
        self, subject: str, key: str, print_: str, request_id: str, after_position: int | None = None
    ) -> Claim:
        """Claim a key for a request; `after_position` is at or below the event store's head, so that whatever
        the request stores lies above it."""
        now = datetime.now(UTC)
        self.purge_expired(now)
        params = (subject, key, print_, self._values.moment(now), request_id, after_position)
        if self._write("claim", params, wait_for_disk=False):
            return Claim("claimed")
        with self.engine.begin() as conn:
            row = conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.subject == subject, idempotency_keys.c.key == key
                )
            ).first()
        if row is None:  # released meanwhile: try once more
            return self.claim(subject, key, print_, request_id, after_position)
        if row.fingerprint != print_:
            return Claim("reused")
        if row.state == "done":
            return Claim("replay", StoredResponse(row.status, dict(row.headers or {}), row.body or b""))
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        if now - created > ABANDONED_AFTER:
            return Claim(
                "abandoned",
                first_request_id=row.request_id,
                after_position=row.after_position,
                claimed_at=row.created_at,
            )
        return Claim("in-flight")

    def take_over(self, subject: str, key: str, abandoned: Claim, request_id: str) -> bool:
        """Make an abandoned claim this request's; False when another retry took it over first. `request_id` is
        the request whose stored command the claim stands for from now on: the first request's, when it had
        stored its command, else this one's."""
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(idempotency_keys)
                .where(
                    idempotency_keys.c.subject == subject,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.state == "in-flight",
                    idempotency_keys.c.created_at == abandoned.claimed_at,
                )
                .values(created_at=datetime.now(UTC), request_id=request_id)
            )
            return taken.rowcount == 1

    def abandon(self, subject: str, key: str) -> None:
        """Leave the claim of a request whose command was stored but that could not answer (500), for its retry
        to take over at once, rather than release it: run again, the command would be stored twice."""
        with self.engine.begin() as conn:
            conn.execute(
                update(idempotency_keys)
                .where(
                    idempotency_keys.c.subject == subject,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.state == "in-flight",
                )
                .values(created_at=datetime.now(UTC) - ABANDONED_AFTER - timedelta(seconds=1))
            )

    def complete(self, subject: str, key: str, response: StoredResponse) -> None:
        params = (response.status, self._values.headers(response.headers), response.body, subject, key)
        self._write("complete", params, wait_for_disk=True)

    def release(self, subject: str, key: str) -> None:
        self._write("release", (subject, key), wait_for_disk=True)


def move_keys(source: Engine, target: Engine, page: int = 1000) -> int:
    """Move the keys kept in `source` into `target` (on upgrade to a SQLite keys file of their own), page by
    page: each page is written to the target before it leaves the source, so that a move cut short is taken up
    again at the next start and no key is lost (one found in both is kept as the target has it)."""
    moved = 0
    table = idempotency_keys
    key = tuple_(table.c.subject, table.c.key)
    while True:
        with source.connect() as conn:
            rows = [
                row._asdict()
                for row in conn.execute(select(table).order_by(table.c.subject, table.c.key).limit(page))
            ]
        if not rows:
            return moved
        with target.begin() as conn:
            conn.execute(insert(table).prefix_with("OR IGNORE"), rows)
        with source.begin() as conn:
            conn.execute(delete(table).where(key.in_([(row["subject"], row["key"]) for row in rows])))
        moved += len(rows)


# The three writes of every keyed request, with PostgreSQL's numbered placeholders, in the order of their values.
WRITES = {
    "claim": 'INSERT INTO idempotency_keys (subject, "key", fingerprint, state, created_at, request_id, '
    "after_position) VALUES ($1, $2, $3, 'in-flight', $4, $5, $6) ON CONFLICT (subject, \"key\") DO NOTHING",
    "complete": "UPDATE idempotency_keys SET state = 'done', status = $1, headers = $2, body = $3 "
    'WHERE subject = $4 AND "key" = $5',
    "release": "DELETE FROM idempotency_keys WHERE subject = $1 AND \"key\" = $2 AND state = 'in-flight'",
}
SQLITE_WRITES = {kind: re.sub(r"\$\d+", "?", sql) for kind, sql in WRITES.items()}


class _Values:
    """The writes' values as the driver takes them, converted as SQLAlchemy converts them for the table
    (`created_at`, `headers`), so that the rows read the same either way. On PostgreSQL they go out in
    PostgreSQL's text format (`_KeptWriter`), the headers as their JSON text."""

    def __init__(self, dialect: Dialect) -> None:
        self.sqlite = dialect.name == "sqlite"
        columns = idempotency_keys.c
        self._moment = columns.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._headers = (
            columns.headers.type.dialect_impl(dialect).bind_processor(dialect) if self.sqlite else None
        )

    def moment(self, value: datetime) -> Any:
        return self._moment(value) if self._moment else value

    def headers(self, value: dict[str, str]) -> Any:
        return self._headers(value) if self._headers else json.dumps(value)


class _KeptWriter:
    """PostgreSQL: the group commit's batches written on a connection kept for them (only the batch's leader
    writes, one batch at a time), as statements prepared once there and run through libpq directly
    (service/prepared.py): psycopg's own execute, its pipeline and a round of the pool cost a request more CPU
    than its write costs the server. A lone write is one autocommitted statement; a batch of several is a
    transaction of them.

    A batch of claims only does not wait for the disk (`SET LOCAL synchronous_commit`), nor does a lone claim:
    each claim reaches the disk with its command's own save, whose commit comes after it in the WAL, and waiting
    for it here as well would only add a flush. A connection that fails is closed, and the next batch opens
    another."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Any = None
        # Each statement with RETURNING, so that its row count comes back as rows. A lone claim's own transaction
        # does not wait for the disk: `set_config(..., true)` is `SET LOCAL`, evaluated before the insert.
        lone_claim = "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)) " + WRITES[
            "claim"
        ].replace("VALUES (", "SELECT ").replace(") ON CONFLICT", " FROM unflushed ON CONFLICT")
        claim_types = [TEXT_OID, TEXT_OID, TEXT_OID, TIMESTAMPTZ_OID, TEXT_OID, INT8_OID]
        self._statements = {
            "claim": Prepared("puja_claim_idempotency_key", WRITES["claim"] + " RETURNING 1", claim_types),
            "lone claim": Prepared(
                "puja_claim_idempotency_key_unflushed", lone_claim + " RETURNING 1", claim_types
            ),
            "complete": Prepared(
                "puja_complete_idempotency_key",
                WRITES["complete"] + " RETURNING 1",
                [INT4_OID, JSON_OID, BYTEA_OID, TEXT_OID, TEXT_OID],
                [TEXT_FORMAT, TEXT_FORMAT, BINARY_FORMAT, TEXT_FORMAT, TEXT_FORMAT],
            ),
            "release": Prepared(
                "puja_release_idempotency_key", WRITES["release"] + " RETURNING 1", [TEXT_OID, TEXT_OID]
            ),
        }

    def write(self, batch: list[PendingSave]) -> list[int]:
        """Write a batch in one transaction; the row count of each write."""
        conn = self._connection()
        try:
            if len(batch) == 1:
                (pending,) = batch
                kind = pending.kwargs["kind"]
                return [self._run(conn, "lone claim" if kind == "claim" else kind, pending.kwargs["params"])]
            run_simple(conn, b"BEGIN")
            try:
                if not any(p.kwargs["wait_for_disk"] for p in batch):
                    run_simple(conn, b"SET LOCAL synchronous_commit TO OFF")
                counts = [self._run(conn, p.kwargs["kind"], p.kwargs["params"]) for p in batch]
                run_simple(conn, b"COMMIT")
                return counts
            except BaseException:
                if conn.pgconn.transaction_status != TransactionStatus.UNKNOWN:
                    run_simple(conn, b"ROLLBACK")
                raise
        except psycopg.OperationalError:
            self.close()
            raise

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            raw = self.engine.raw_connection()
            conn = raw.driver_connection
            assert conn is not None
            raw.detach()  # ours from now on, not the pool's
            conn.autocommit = True
            self._conn = conn
        return self._conn

    def _run(self, conn: Any, kind: str, params: tuple[Any, ...]) -> int:
        values = [value if isinstance(value, bytes) else text_value(value) for value in params]
        return int(self._statements[kind].run(conn, values).ntuples)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def replayable_headers(headers: Any) -> dict[str, str]:
    keep = ("Content-Type", "ETag", "Location", "X-Event-Position")
    return {name: headers[name] for name in keep if name in headers}
