"""Tables the API keeps for itself beside the projections: hashed tokens and idempotency keys."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("regions", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("status", Integer, nullable=True),
    Column("headers", JSON, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("request_id", Text, nullable=True),
    # A position at or below the event store's head when the key was claimed: a request that died after its
    # command was stored stored it above this (app/idempotency.py, `abandoned`).
    Column("after_position", BigInteger().with_variant(Integer(), "sqlite"), nullable=True),
)

# On SQLite the keys live in a file of their own (Settings.keys_url), with its own line of migrations.
keys_metadata = MetaData()
idempotency_keys.to_metadata(keys_metadata)
