"""Group commit: concurrent saves of one process share one database transaction.

Both backends serialise writers (SQLite has one writer; on PostgreSQL every insert takes the events table's
EXCLUSIVE lock so that positions commit in order), so one command per transaction is bounded by the commit
latency. Here the saves that wait while a transaction is being written are written together in the next one,
each inside its own savepoint: the guards of one save (expected versions, the
registry's unique index, the aggregate's own version) are checked exactly as before, a save that breaks one is
rolled back to its savepoint and told so, and the others commit together. Positions are still assigned under
the lock, in commit order, so the notification log keeps its order and has no gaps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent

log = logging.getLogger(__name__)

MAX_BATCH = 128


@dataclass
class PendingSave:
    stored_events: Sequence[StoredEvent]
    kwargs: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    positions: Sequence[int] | None = None
    error: BaseException | None = None

    def succeed(self, positions: Sequence[int] | None) -> None:
        """Record the outcome; the caller is told only by `release`, once the transaction has ended."""
        self.positions = positions

    def fail(self, error: BaseException) -> None:
        self.error = error

    def release(self) -> None:
        self.done.set()


WriteBatch = Callable[[list[PendingSave]], None]
"""Writes the saves in one transaction and records each one's outcome (succeed or fail); raising means the
transaction did not commit, and fails them all."""


class GroupCommitter:
    """Leader and followers: a save that finds no transaction being written writes one itself (so a lone
    client pays nothing extra), taking along every save that is waiting; saves that arrive meanwhile wait and
    are written by the leader's next round, in one transaction."""

    def __init__(self, write_batch: WriteBatch, name: str = "group-commit") -> None:
        self._write_batch = write_batch
        self._name = name
        self._mutex = threading.Lock()
        self._waiting: list[PendingSave] = []
        self._writing = False

    def save(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        pending = PendingSave(stored_events, kwargs)
        with self._mutex:
            self._waiting.append(pending)
            lead = not self._writing
            self._writing = True
        if lead:
            self._lead()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.positions

    def _lead(self) -> None:
        while True:
            with self._mutex:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                if not batch:
                    self._writing = False
                    return
            try:
                self._write_batch(batch)
            except BaseException as error:  # the transaction failed as a whole: nothing of it is stored
                log.warning("group commit of %d saves failed: %s", len(batch), error)
                for pending in batch:
                    pending.positions = None
                    pending.error = error
            for pending in batch:
                pending.release()
