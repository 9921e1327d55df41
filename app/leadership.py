"""Which process of a deployment runs the in-process projection runner: one at a time, so that several gunicorn
workers do not all apply the same records and throw away each other's transactions. The others follow the
tracked positions (for `min_position` and status) and take over when the leader's process ends."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Any

import psycopg

from service.store import libpq_url

RUNNER_LOCK = 7253012  # pg_try_advisory_lock key


class FileLeadership:
    """An exclusive flock beside the SQLite files; the kernel releases it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._mutex = threading.Lock()

    def __call__(self) -> bool:
        with self._mutex:
            if self._fd is not None:
                return True
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def release(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class AdvisoryLeadership:
    """A session-level advisory lock on a connection of its own; PostgreSQL releases it when the session ends.
    A process that does not lead keeps its connection and only tries the lock again on it (not a new session
    for every try)."""

    def __init__(self, database_url: str) -> None:
        self.url = libpq_url(database_url)
        self._conn: Any = None
        self._leading = False
        self._mutex = threading.Lock()

    def __call__(self) -> bool:
        with self._mutex:
            if self._conn is not None and not self._conn.closed:
                try:
                    return self._try(self._conn)
                except psycopg.Error:
                    self._drop()
            self._conn = psycopg.connect(self.url, autocommit=True)
            try:
                return self._try(self._conn)
            except psycopg.Error:
                self._drop()
                raise

    def _try(self, conn: Any) -> bool:
        if self._leading:
            conn.execute("SELECT 1")  # still the session holding the lock
            return True
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (RUNNER_LOCK,)).fetchone()
        self._leading = bool(row and row[0])
        return self._leading

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self._leading = False

    def release(self) -> None:
        with self._mutex:
            self._drop()
