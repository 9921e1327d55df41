"""Keeps projections up to date with the record.

The runner knows nothing of where records come from: `read(after, limit)` returns the records after a global
position in position order, `head()` the last stored position. Each batch a projection applies commits together
with its tracked position, so a crash or a stop never leaves a view and its position apart: a new runner goes on
from the tracked position. A record that fails is rolled back with its batch and retried on the next round; the
projection never moves past it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from domain.published import EventRecord
from projections.loading import LOAD_WITHOUT_INDEXES_FROM, restore_indexes, start_load
from projections.store import ViewStore
from projections.tracking import Applies, Projection, read_tracked, register

log = logging.getLogger(__name__)

Read = Callable[[int, int], list[EventRecord]]
Head = Callable[[], int]

POLL_INTERVAL = 0.2
GATHER = 0.1
FOLLOW_INTERVAL = 0.02  # how often a reader waiting for a position reads it again
APPLY_READS = (
    4  # reads of `batch_size` records a catch-up applies in one transaction when that many are waiting
)
REPEAT_FAILURE_LOG_AFTER = 60.0


class ProjectionRunner:
    def __init__(
        self,
        store: ViewStore,
        read: Read,
        head: Head,
        projections: Sequence[Applies],
        batch_size: int = 500,
        *,
        apply_reads: int = APPLY_READS,
        poll_interval: float = POLL_INTERVAL,
        leads: Callable[[], bool] = lambda: True,
        gather: float = GATHER,
        load_without_indexes_from: int = LOAD_WITHOUT_INDEXES_FROM,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size is at least 1")
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValueError(f"Projection names repeat: {names}")
        self.store = store
        self.read = read
        self.head = head
        self.projections = list(projections)
        self.batch_size = batch_size
        self.apply_reads = max(1, apply_reads)
        self.poll_interval = poll_interval
        self.leads = leads
        self.gather = gather
        self.load_without_indexes_from = load_without_indexes_from
        self._applied = threading.Condition()
        self._positions: dict[str, int] = {}
        self._failures: dict[str, tuple[tuple[int | None, str], float]] = {}
        self._catching_up = threading.Lock()
        self._registered = False
        self._loading: list[Projection] = []  # projections loaded without their secondary indexes
        self._wakeup = threading.Event()
        self._urgent = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False  # whether the background thread applies (else another process does)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.projections]

    # --- applying ------------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply every record available now; returns the position every projection has reached."""
        return self._catch_up(lambda: False)

    def _catch_up(self, interrupted: Callable[[], bool]) -> int:
        with self._catching_up:
            if not self._registered:
                self._loading = self._start()
            try:
                return self._apply_waiting(interrupted)
            finally:
                # Also when stopped or failed: the tables are queried meanwhile. A build that fails is tried again
                # after the next catch-up.
                while self._loading:
                    restore_indexes(self.store, self._loading[0])
                    self._loading.pop(0)

    def _start(self) -> list[Projection]:
        """Once, before this runner first applies: every projection's tracking row, and its indexes. A projection
        with nothing applied, empty tables and a long log ahead is loaded without its secondary indexes (built at
        the end; projections/loading.py): those returned. Any other gets back the indexes a load cut short (a
        crash) left out."""
        register(self.store.begin, self.names)
        ahead = self.head()
        loading: list[Projection] = []
        for projection in self.projections:
            if not isinstance(projection, Projection) or not projection.tables:
                continue
            if ahead >= self.load_without_indexes_from and start_load(self.store, projection):
                loading.append(projection)
            else:
                restore_indexes(self.store, projection)
        self._registered = True
        return loading

    def _apply_waiting(self, interrupted: Callable[[], bool]) -> int:
        """Apply what is waiting, round after round, until every projection reached the head (or failed, or the
        run is interrupted); returns the position every projection has reached. Called under `_catching_up`."""
        failed: set[str] = set()
        positions = self._refresh_positions()
        while not interrupted():
            pending = [p for p in self.projections if p.name not in failed]
            if not pending or min(positions[p.name] for p in pending) >= self.head():
                break
            progressed = False
            following: dict[int, list[Applies]] = {}  # projections by the position they are at
            for projection in pending:
                following.setdefault(positions[projection.name], []).append(projection)
            for after, group in following.items():
                with collector_held():
                    records = self._read_run(after)
                    if not records:
                        continue
                    if len(group) > 1 and self._apply_together(group, records):
                        progressed = True
                        continue
                    for projection in group:
                        if self._apply_batch(projection, records):
                            progressed = True
                        else:
                            failed.add(projection.name)
            if not progressed:
                break
            # Where this round left each projection (its batches committed them): no need to read it back.
            with self._applied:
                positions = {name: self._positions.get(name, 0) for name in self.names}
        return min((self._positions.get(name, 0) for name in self.names), default=0)

    def _read_run(self, after: int) -> list[EventRecord]:
        """The records after a position: up to `apply_reads` reads of `batch_size` when that many are waiting (a
        catch-up), so that a transaction writes the pages it touches once for more records."""
        records: list[EventRecord] = []
        position = after
        for _ in range(self.apply_reads):
            batch = self.read(position, self.batch_size)
            records.extend(r for r in batch if r.position > position)
            if len(batch) < self.batch_size:
                break
            position = batch[-1].position
        return records

    def _apply_together(self, projections: list[Applies], records: list[EventRecord]) -> bool:
        """Apply records to several projections at the same position in one transaction (each moves its own
        tracked position in it); False, with nothing applied, when one of them fails (each is then applied on
        its own, which finds the failing record)."""
        appliers: list[Any] = [getattr(projection, "apply_all", None) for projection in projections]
        if any(apply_all is None for apply_all in appliers):
            return False
        try:
            with self.store.begin(wait_for_disk=False) as conn:
                for apply_all in appliers:
                    apply_all(conn, records)
        except Exception:
            return False
        for projection in projections:
            self._advanced(projection.name, records[-1].position)
        return True

    def _apply_batch(self, projection: Applies, records: list[EventRecord]) -> bool:
        """Apply records in one transaction with the tracked position (moved once per batch where the
        projection can). On a failure, the records before the failing one are applied on their own, so the view
        stops just before it; returns False."""
        apply_all = getattr(projection, "apply_all", None)
        if apply_all is not None:
            try:
                with self.store.begin(wait_for_disk=False) as conn:
                    apply_all(conn, records)
            except Exception:
                pass  # find the failing record one by one, below
            else:
                self._advanced(projection.name, records[-1].position)
                return True
        done = 0
        try:
            with self.store.begin(wait_for_disk=False) as conn:
                for record in records:
                    projection.apply(conn, record)
                    done += 1
        except Exception:
            self._log_failure(projection.name, records[done] if done < len(records) else None)
            if 0 < done < len(records):
                self._apply_batch(projection, records[:done])
            return False
        self._advanced(projection.name, records[-1].position)
        return True

    def _log_failure(self, name: str, record: EventRecord | None) -> None:
        """The first failure at a record is logged with its traceback; repeats only once a minute."""
        where = (record.position, record.type) if record else (None, "commit")
        now = time.monotonic()
        last = self._failures.get(name)
        if last is not None and last[0] == where and now - last[1] < REPEAT_FAILURE_LOG_AFTER:
            return
        self._failures[name] = (where, now)
        repeated = last is not None and last[0] == where
        log.log(
            logging.WARNING if repeated else logging.ERROR,
            "projection %s %s at position %s (%s); it is retried and does not move past it",
            name,
            "is still failing" if repeated else "failed",
            where[0],
            where[1],
            exc_info=not repeated,
        )

    def _advanced(self, name: str, position: int) -> None:
        with self._applied:
            self._positions[name] = max(position, self._positions.get(name, 0))
            self._applied.notify_all()

    def _refresh_positions(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """Positions as committed (also by other processes). Waiters are told of any progress."""
        wanted = list(names) if names is not None else self.names
        with self.store.connect() as conn:
            tracked = read_tracked(conn, wanted)
        committed = {name: tracked[name].position if name in tracked else 0 for name in wanted}
        with self._applied:
            for name, position in committed.items():
                if position > self._positions.get(name, 0):
                    self._positions[name] = position
                    self._applied.notify_all()
        return committed

    # --- running in the background -------------------------------------------------------------

    def start(self) -> None:
        """Keep catching up in a daemon thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="projection-runner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            leading = False
            try:
                # Only the leader applies. A runner that only follows reads nothing here: whoever needs a position
                # (wait_for, position_of) reads the committed one itself, so polling it would only cost each
                # follower a query five times a second; the loop is kept to take over when the leader ends.
                if self.leads():
                    leading = True
                    self._leading = True
                    self._catch_up(self._stopping.is_set)
            except Exception:
                log.exception("projection runner could not catch up; it will try again")
            self._leading = leading
            if leading:
                if self._wakeup.wait(self.poll_interval) and self.gather > 0:
                    # Woken by a command: the commands served beside it store theirs within moments, and one
                    # batch then applies them all (a batch costs much more than one more record in it). A
                    # reader waiting for a position (wait_for) does not wait for this.
                    self._urgent.wait(self.gather)
            else:
                # Commands of this process do not concern a runner that only follows; readers waiting for a
                # position read it themselves (wait_for).
                self._urgent.wait(self.poll_interval)
            self._wakeup.clear()
            self._urgent.clear()

    def wake(self, urgent: bool = False) -> None:
        """Catch up soon (a command of this process was just stored), or at once when `urgent` (a reader waits
        for a position)."""
        if urgent:
            self._urgent.set()
        self._wakeup.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stopping.set()
        self.wake(urgent=True)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- reading progress ----------------------------------------------------------------------

    def wait_for(self, position: int, names: Sequence[str], timeout: float) -> bool:
        """Whether every named projection has applied `position`, waiting up to `timeout` seconds."""
        names = list(names)
        if position <= 0 or not names:
            return True
        deadline = time.monotonic() + timeout
        if self.running:
            self.wake(urgent=True)
        while True:
            if min(self._refresh_positions(names).values()) >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._applied:
                if all(self._positions.get(n, 0) >= position for n in names):
                    return True
                # This runner's own batches notify; those of the process that leads are seen by reading again.
                step = self.poll_interval if self._leading else min(self.poll_interval, FOLLOW_INTERVAL)
                self._applied.wait(min(remaining, step))

    def position_of(self, names: Sequence[str]) -> int:
        """The position every named projection has applied (the lowest of them)."""
        positions = self._refresh_positions(list(names))
        return min(positions.values(), default=0)


_held = 0
_held_lock = threading.Lock()
_enable_after = False


@contextmanager
def collector_held() -> Iterator[None]:
    """Python's cyclic garbage collector held off for the block (a run of records read and applied), and let run
    once after it.

    A run makes tens of thousands of containers (records, their values, documents, rows) that all live until it
    is applied: the collector would otherwise start every 700 of them and scan them again and again, and every
    so often the whole heap (a fifth of a catch-up's time). Nothing is left uncollected: the allocations counted
    meanwhile start a collection as soon as the collector is on again. Nested and concurrent blocks share one
    hold; a collector switched off by someone else stays off."""
    global _held, _enable_after
    with _held_lock:
        if _held == 0:
            _enable_after = gc.isenabled()
            gc.disable()
        _held += 1
    try:
        yield
    finally:
        with _held_lock:
            _held -= 1
            if _held == 0 and _enable_after:
                gc.enable()
