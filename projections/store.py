"""Where the read model lives: a SQLAlchemy engine over SQLite (embedded) or PostgreSQL.

On SQLite the pysqlite driver's own transaction handling is switched off, so that SQLAlchemy's `begin()` is a
real `BEGIN`: writers take the write lock up front (`BEGIN IMMEDIATE`, waiting up to the busy timeout for other
processes) and every read sees one consistent snapshot (WAL journal mode).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from projections.bulk import json_text, json_value
from projections.tables import metadata

SQLITE_BUSY_TIMEOUT_MS = 30_000
WAL_AUTOCHECKPOINT = 10_000  # pages (of 4 KiB)
WAL_SIZE_LIMIT = 64 * 1024 * 1024
WRITE_LOCK_RETRY_SECONDS = 0.001  # how often a writer waiting for SQLite's write lock tries again
_BEGIN_MODE = "sqlite_begin"


class ViewStore:
    """The read model's database: its tables, and transactions to read or write them."""

    metadata = metadata

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, as the event store uses
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        options: dict[str, Any] = {}
        if self.is_sqlite:
            options["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            }
            if parsed.database in (None, "", ":memory:"):
                options["poolclass"] = StaticPool
        self.engine: Engine = create_engine(
            parsed, json_serializer=json_text, json_deserializer=json_value, **options
        )
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    def create_all(self) -> None:
        self.metadata.create_all(self.engine)

    @contextmanager
    def begin(
        self, *, wait_for_disk: bool = True, attach: Mapping[str, str] | None = None
    ) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back when it raises.

        `wait_for_disk=False` lets PostgreSQL acknowledge the commit before its WAL reaches the disk
        (`synchronous_commit = off`, never inconsistent, at worst the last fraction of a second lost in a crash
        of the database server). For writes that can be redone: projection batches, whose tracked position is
        in the same transaction, are applied again from the event store. SQLite's view store already commits
        with `synchronous = NORMAL`."""
        with self._connection(attach) as conn:
            if self.is_sqlite:
                conn.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
            with conn.begin():
                if not wait_for_disk and not self.is_sqlite:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield conn

    @contextmanager
    def connect(self, attach: Mapping[str, str] | None = None) -> Iterator[Connection]:
        """A read-only connection; its reads share one snapshot until the block ends.

        `attach` (SQLite): other database files to reach in the same transaction, as `{schema name: path}`."""
        with self._connection(attach) as conn:
            yield conn

    @contextmanager
    def _connection(self, attach: Mapping[str, str] | None) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if not attach:
                yield conn
                return
            if not self.is_sqlite:
                raise ValueError("attaching database files is for SQLite")
            raw: Any = conn.connection.dbapi_connection
            for alias, path in attach.items():  # outside a transaction, where SQLite allows it
                raw.execute("ATTACH DATABASE ? AS " + _quoted(alias), (path,))
            try:
                yield conn
            finally:
                if conn.in_transaction():
                    conn.rollback()
                for alias in attach:
                    raw.execute("DETACH DATABASE " + _quoted(alias))

    def scalar(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first column of the first row of one fixed query (`?` placeholders), straight on a pooled driver
        connection: for small reads on the path of every command, where building and compiling a SQLAlchemy
        statement and the `BEGIN` of a connection would cost several times the read itself."""
        if not self.is_sqlite:
            sql = sql.replace("?", "%s")
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            raw.close()
        return None if row is None else row[0]

    def dispose(self) -> None:
        self.engine.dispose()


def _quoted(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a schema name: {name!r}")
    return f'"{name}"'


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Copy the WAL into the database file every WAL_AUTOCHECKPOINT pages rather than SQLite's 1,000: a
            # catch-up writes that many pages in a few transactions, and each copy re-writes the pages the
            # transactions share (the upper levels of every index) and syncs both files. Commits are written to
            # the WAL as before; a file grown this far is cut back to WAL_SIZE_LIMIT once it is copied.
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
        if mode == "IMMEDIATE" and _try_begin_immediate(conn.connection.dbapi_connection):
            return
        conn.exec_driver_sql(f"BEGIN {mode}")


def _try_begin_immediate(raw: Any) -> bool:
    """Take the write lock, trying again every millisecond for up to the busy timeout; False when it did not
    come (the caller then waits once more in SQLite's own way, and fails as SQLite does).

    SQLite's own busy handler sleeps longer and longer between tries, up to 100 ms each: a writer that has
    waited a while keeps missing the moments the lock is free while other processes commit one short
    transaction after another (two stream consumers and the relay on one view store), and waits seconds."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    return False
            time.sleep(WRITE_LOCK_RETRY_SECONDS)
    finally:
        raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
