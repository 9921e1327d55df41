"""Configuration, only from the environment (operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str | None = None
    bootstrap_admin_token: str | None = None
    log_level: str = "INFO"
    project_in_process: bool = True
    kafka_bootstrap: str | None = None
    kafka_topic_prefix: str = "puja"
    min_position_timeout: float = 5.0
    stall_seconds: float = 60.0
    projection_gather: float = 0.1
    max_body_bytes: int = 1024 * 1024
    cipher_key: str | None = field(default=None, repr=False)  # PUJA_CIPHER_KEY: events encrypted at rest
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return cls(
            data_dir=Path(env.get("PUJA_DATA_DIR") or "var"),
            database_url=env.get("PUJA_DATABASE_URL") or None,
            bootstrap_admin_token=env.get("PUJA_BOOTSTRAP_ADMIN_TOKEN") or None,
            log_level=(env.get("PUJA_LOG_LEVEL") or "INFO").upper(),
            kafka_bootstrap=env.get("PUJA_KAFKA_BOOTSTRAP") or None,
            kafka_topic_prefix=env.get("PUJA_KAFKA_TOPIC_PREFIX") or "puja",
            # /readyz: a projection (or, streaming, the relay) behind and not moving this long has stalled
            stall_seconds=float(env.get("PUJA_STALL_SECONDS") or 60),
            # The in-process runner, woken by a command, waits this long so that one batch carries several commands
            projection_gather=float(env.get("PUJA_PROJECTION_GATHER_SECONDS") or 0.1),
            # Streaming mode: `puja consume index|audit` feed the projections; the API only reads them.
            project_in_process=not env.get("PUJA_KAFKA_BOOTSTRAP"),
            cipher_key=env.get("PUJA_CIPHER_KEY") or None,
        )

    @property
    def event_store_path(self) -> Path:
        if self.database_url and self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.data_dir / "events.sqlite"

    @property
    def uses_postgres(self) -> bool:
        return bool(self.database_url) and not str(self.database_url).startswith("sqlite:")

    @property
    def views_url(self) -> str:
        """Projections and tokens (and, on PostgreSQL, idempotency keys): in the same PostgreSQL database as
        the events, or on SQLite beside the event store in their own file, so that projecting never contends
        with recording for SQLite's single writer."""
        return self._beside_the_events("views")

    @property
    def keys_url(self) -> str:
        """Idempotency keys: on SQLite in a file of their own too, so that every keyed command's claim and
        answer never wait for the projections' write lock, nor the projections for them."""
        return self._beside_the_events("keys")

    def _beside_the_events(self, what: str) -> str:
        if self.uses_postgres:
            assert self.database_url is not None
            return self.database_url
        path = self.event_store_path
        return f"sqlite:///{path.with_name(f'{path.stem}-{what}.sqlite')}"
