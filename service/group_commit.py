"""Group commit: concurrent saves of one process share one database transaction.

Both backends serialise writers (SQLite has one writer; on PostgreSQL every insert takes the events table's
EXCLUSIVE lock so that positions commit in order), so one command per transaction is bounded by the commit
latency. Here every save is handed to one writer thread, which takes whatever saves are waiting and writes
them in a single transaction, each inside its own savepoint: the guards of one save (expected versions, the
registry's unique index, the aggregate's own version) are checked exactly as before, a save that breaks one is
rolled back to its savepoint and told so, and the others commit together. Positions are still assigned under
the lock, in commit order, so the notification log keeps its order and has no gaps.
"""

from __future__ import annotations

import logging
import queue
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
    def __init__(self, write_batch: WriteBatch, name: str = "group-commit") -> None:
        self._write_batch = write_batch
        self._queue: queue.SimpleQueue[PendingSave] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()

    def save(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        pending = PendingSave(stored_events, kwargs)
        self._ensure_writer()
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.positions

    def _ensure_writer(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._started:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_batch(batch)
            except BaseException as error:  # the transaction failed as a whole: nothing of it is stored
                log.warning("group commit of %d saves failed: %s", len(batch), error)
                for pending in batch:
                    pending.positions = None
                    pending.error = error
            for pending in batch:
                pending.release()
