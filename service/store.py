"""Where the event store lives: the library is configured through its environment keys.

Encryption at rest (`PUJA_CIPHER_KEY`): the library's AESCipher (AES-256-GCM) encrypts the state of every stored
event and snapshot; topics, aggregate ids, versions and positions stay readable. Everything that reads events
goes through the application's mapper (`service.network.read_records`), so readers see plaintext
`EventRecord`s. A store opened with the wrong key, without its key, or with a key for a plaintext store is refused
at start-up (`CipherMismatch`).
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import psycopg

from service.network import InnovationNetwork

SCHEMA_LOCK = 7253010  # pg_advisory_lock key: one process at a time creates the event store's tables


# Aggregates read recently are kept in memory and fast-forwarded with the events stored since (by any process),
# instead of being rebuilt from a snapshot on every command.
CACHE = {"AGGREGATE_CACHE_MAXSIZE": "5000", "AGGREGATE_CACHE_FASTFORWARD": "y"}

CIPHER_TOPIC = "eventsourcing.cipher:AESCipher"
KEY_SIZES = (16, 24, 32)


class CipherKeyError(ValueError):
    """PUJA_CIPHER_KEY is not a key the cipher can use."""


class CipherMismatch(RuntimeError):
    """The stored events cannot be read with the configured key (or lack of one)."""


def cipher_env(cipher_key: str | None) -> dict[str, str]:
    """The library's cipher settings for `PUJA_CIPHER_KEY` (base64 of 16, 24 or 32 random bytes).

    They are given under the application's own prefix, which the library reads before the plain `CIPHER_*`
    names, so that nothing else in the process environment can switch the cipher on, off or to another key."""
    prefix = InnovationNetwork.name.upper() + "_"
    if not cipher_key:
        return {prefix + "CIPHER_TOPIC": "", prefix + "CIPHER_KEY": ""}
    try:
        size = len(b64decode(cipher_key.encode(), validate=True))
    except (binascii.Error, ValueError):
        size = -1
    if size not in KEY_SIZES:
        raise CipherKeyError(
            "PUJA_CIPHER_KEY is not a valid key: it must be base64 of 16, 24 or 32 random bytes "
            "(make one with `puja cipher-key`)."
        )
    return {prefix + "CIPHER_TOPIC": CIPHER_TOPIC, prefix + "CIPHER_KEY": cipher_key}


def new_cipher_key() -> str:
    """A fresh 256-bit key for PUJA_CIPHER_KEY."""
    from eventsourcing.cipher import AESCipher

    return AESCipher.create_key(32)


def check_cipher(network: InnovationNetwork) -> None:
    """Read the first and the last stored event; refuse a store the configured key does not open."""
    recorder = network.recorder
    head = recorder.max_notification_id()
    if not head:
        return
    first = recorder.select_notifications(start=None, limit=1)
    last = recorder.select_notifications(start=head, limit=1)
    for notification in [*first, *last]:
        try:
            network.mapper.to_domain_event(notification)
        except Exception as error:
            raise CipherMismatch(_mismatch(network, notification.state)) from error


def _mismatch(network: InnovationNetwork, state: bytes) -> str:
    try:
        json.loads(state)
        plaintext = True
    except ValueError:
        plaintext = False
    if network.mapper.cipher is None:
        return (
            "The event store holds encrypted events: set PUJA_CIPHER_KEY to the key they were written with."
        )
    if plaintext:
        return (
            "PUJA_CIPHER_KEY is set, but the event store holds unencrypted events: unset it, or start a new "
            "store (an existing store is not encrypted in place)."
        )
    return "PUJA_CIPHER_KEY does not decrypt the stored events: they were written with another key."


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


def open_sqlite_network(path: Path | str, cipher_key: str | None = None) -> InnovationNetwork:
    network = InnovationNetwork(env={**sqlite_env(path), **cipher_env(cipher_key)})
    _checked(network)
    return network


def open_network(
    database_url: str | None, sqlite_path: Path | str, cipher_key: str | None = None
) -> InnovationNetwork:
    """The event store at `PUJA_DATABASE_URL` (PostgreSQL), or the embedded SQLite file; encrypted at rest
    with `cipher_key` (PUJA_CIPHER_KEY) when one is given."""
    if database_url and not database_url.startswith("sqlite:"):
        env = {**postgres_env(database_url), **cipher_env(cipher_key)}
        # Several processes starting at once (gunicorn workers, compose services) would create the library's
        # tables, types and functions concurrently, which PostgreSQL refuses ("tuple concurrently updated"):
        # they take turns.
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                network = InnovationNetwork(env=env)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        _checked(network)
        return network
    return open_sqlite_network(sqlite_path, cipher_key)


def _checked(network: InnovationNetwork) -> None:
    try:
        check_cipher(network)
    except CipherMismatch:
        network.close()
        raise


def libpq_url(url: str) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver suffix, no options of ours)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", query=""))
