"""Innovation names shown in command answers beside a replication (api.md: names that belong to other
aggregates may come from projections), remembered for a moment instead of read for every command.

A name changes only by a revision. A revision made by this process puts the new name here at once (read from the
aggregate); one made by another process shows here after at most `fresh_for` seconds more than the projection
takes to apply it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from uuid import UUID

FRESH_FOR = 1.0
KEEP_AT_MOST = 10_000


class InnovationNames:
    def __init__(self, fresh_for: float = FRESH_FOR) -> None:
        self.fresh_for = fresh_for
        self._names: dict[UUID, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, innovation_id: UUID, read: Callable[[UUID], str | None]) -> str | None:
        """The remembered name while fresh, else `read(innovation_id)` (remembered when it found one)."""
        now = time.monotonic()
        remembered = self._names.get(innovation_id)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        name = read(innovation_id)
        if name is not None:
            self.put(innovation_id, name, now)
        return name

    def put(self, innovation_id: UUID, name: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        with self._lock:
            if len(self._names) >= KEEP_AT_MOST:
                self._names.clear()
            self._names[innovation_id] = (moment + self.fresh_for, name)
