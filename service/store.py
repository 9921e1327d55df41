"""Where the event store lives: the library is configured through its environment keys."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import psycopg

from service.network import InnovationNetwork

SCHEMA_LOCK = 7253010  # pg_advisory_lock key: one process at a time creates the event store's tables


# Aggregates read recently are kept in memory and fast-forwarded with the events stored since (by any process),
# instead of being rebuilt from a snapshot on every command.
CACHE = {"AGGREGATE_CACHE_MAXSIZE": "5000", "AGGREGATE_CACHE_FASTFORWARD": "y"}


def sqlite_env(path: Path | str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "service.recorder:SQLiteStoreFactory",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "service.recorder:StoreRecorder",
        **CACHE,
    }


def postgres_env(url: str) -> dict[str, str]:
    """The library's settings for a `postgresql://user:password@host:port/dbname` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg") or not parts.path.strip("/"):
        raise ValueError(f"Not a PostgreSQL URL: {url!r}")
    query = dict(parse_qsl(parts.query))
    return {
        "PERSISTENCE_MODULE": "service.postgres:PostgresStoreFactory",
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": query.get("schema", "public"),
        "POSTGRES_POOL_SIZE": query.get("pool_size", "10"),
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", "10"),
        "POSTGRES_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "service.postgres:PostgresStoreRecorder",
        **CACHE,
    }


def open_sqlite_network(path: Path | str) -> InnovationNetwork:
    return InnovationNetwork(env=sqlite_env(path))


def open_network(database_url: str | None, sqlite_path: Path | str) -> InnovationNetwork:
    """The event store at `PUJA_DATABASE_URL` (PostgreSQL), or the embedded SQLite file."""
    if database_url and not database_url.startswith("sqlite:"):
        env = postgres_env(database_url)
        # Several processes starting at once (gunicorn workers, compose services) would create the library's
        # tables, types and functions concurrently, which PostgreSQL refuses ("tuple concurrently updated"):
        # they take turns.
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                return InnovationNetwork(env=env)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    return open_sqlite_network(sqlite_path)


def libpq_url(url: str) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver suffix, no options of ours)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", query=""))
