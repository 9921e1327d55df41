"""A short memory of what was read, for reads on the path of every request whose answer may be a moment old."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

KEEP_AT_MOST = 10_000


class ShortMemory(Generic[K, V]):
    """Remembers `read(key)` for `fresh_for` seconds; `put` replaces an answer at once (a change made by this
    process), `clear` forgets everything. With `remember_absent`, a read that found nothing (None) is remembered
    too."""

    def __init__(
        self, fresh_for: float, *, remember_absent: bool = True, keep_at_most: int = KEEP_AT_MOST
    ) -> None:
        self.fresh_for = fresh_for
        self.remember_absent = remember_absent
        self.keep_at_most = keep_at_most
        self._answers: dict[K, tuple[float, V | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, read: Callable[[K], V | None]) -> V | None:
        """The remembered answer while fresh, else `read(key)`."""
        now = time.monotonic()
        remembered = self._answers.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        answer = read(key)
        if answer is not None or self.remember_absent:
            self.put(key, answer, now)
        return answer

    def put(self, key: K, answer: V | None, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        with self._lock:
            if len(self._answers) >= self.keep_at_most:
                self._answers.clear()
            self._answers[key] = (moment + self.fresh_for, answer)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
