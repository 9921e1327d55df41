"""Idempotency-Key on POST (api.md): a retry with the same key and body gets the first response again and
stores nothing; the same key with another body is 422; while the first is running, 409. Keys are scoped to
the token's subject and kept for at least 24 hours.

Claims, completions and releases of the requests a process is serving at the same time are written together
(service/group_commit.GroupCommitter), each in its own savepoint: a claim that finds its key taken fails alone,
and every request goes on only once the transaction holding its write has committed."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Executable, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.storage import idempotency_keys
from service.group_commit import GroupCommitter, PendingSave

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
    """What became of an attempt to claim a key: ours to run, a stored response, or a conflict."""

    outcome: str  # "claimed" | "replay" | "in-flight" | "reused"
    response: StoredResponse | None = None


class IdempotencyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._purged_at = 0.0
        self._writes = GroupCommitter(self._write_batch, name="idempotency-keys")

    def _write(self, statement: Executable, *, wait_for_disk: bool) -> None:
        """Execute one write, together with those of other requests of this process (IntegrityError if it
        breaks a constraint)."""
        self._writes.save((), statement=statement, wait_for_disk=wait_for_disk)

    def _write_batch(self, batch: list[PendingSave]) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql" and not any(p.kwargs["wait_for_disk"] for p in batch):
                # Only claims: each reaches the disk with its command's own save, whose commit comes after it
                # in the WAL; waiting for it here as well would only add a flush.
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            for pending in batch:
                try:
                    with conn.begin_nested():
                        conn.execute(pending.kwargs["statement"])
                except IntegrityError as error:
                    pending.fail(error)
                else:
                    pending.succeed(None)

    def purge_expired(self, now: datetime) -> None:
        """Forget keys older than KEEP_FOR; done at most once a minute per process, not on every command."""
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - KEEP_FOR))

    def claim(self, subject: str, key: str, print_: str, request_id: str) -> Claim:
        now = datetime.now(UTC)
        self.purge_expired(now)
        try:
            self._write(
                insert(idempotency_keys).values(
                    subject=subject,
                    key=key,
                    fingerprint=print_,
                    state="in-flight",
                    created_at=now,
                    request_id=request_id,
                ),
                wait_for_disk=False,
            )
            return Claim("claimed")
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            row = conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.subject == subject, idempotency_keys.c.key == key
                )
            ).first()
            if row is None:  # released meanwhile: try once more
                return self.claim(subject, key, print_, request_id)
            if row.fingerprint != print_:
                return Claim("reused")
            if row.state == "done":
                return Claim("replay", StoredResponse(row.status, dict(row.headers or {}), row.body or b""))
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            if now - created > ABANDONED_AFTER:
                # The first attempt died without an answer (process killed): this attempt takes it over.
                conn.execute(
                    update(idempotency_keys)
                    .where(idempotency_keys.c.subject == subject, idempotency_keys.c.key == key)
                    .values(created_at=now, request_id=request_id)
                )
                return Claim("claimed")
            return Claim("in-flight")

    def complete(self, subject: str, key: str, response: StoredResponse) -> None:
        self._write(
            update(idempotency_keys)
            .where(idempotency_keys.c.subject == subject, idempotency_keys.c.key == key)
            .values(state="done", status=response.status, headers=response.headers, body=response.body),
            wait_for_disk=True,
        )

    def release(self, subject: str, key: str) -> None:
        self._write(
            delete(idempotency_keys).where(
                idempotency_keys.c.subject == subject,
                idempotency_keys.c.key == key,
                idempotency_keys.c.state == "in-flight",
            ),
            wait_for_disk=True,
        )


def replayable_headers(headers: Any) -> dict[str, str]:
    keep = ("Content-Type", "ETag", "Location", "X-Event-Position")
    return {name: headers[name] for name in keep if name in headers}
