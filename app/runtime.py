"""Everything one process of the service holds: the event store, the view store, the projection runner,
tokens and idempotency keys."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from app.auth import TokenStore
from app.idempotency import IdempotencyStore, move_keys
from app.leadership import AdvisoryLeadership, FileLeadership
from app.migrate import upgrade
from app.names import InnovationNames
from app.settings import Settings
from projections.audit import AuditProjection
from projections.index import IndexProjection
from projections.runner import ProjectionRunner
from projections.store import ViewStore
from service.network import InnovationNetwork, read_records
from service.store import open_network


@dataclass
class Runtime:
    settings: Settings
    network: InnovationNetwork
    views: ViewStore
    runner: ProjectionRunner
    tokens: TokenStore
    idempotency: IdempotencyStore
    leadership: FileLeadership | AdvisoryLeadership
    innovation_names: InnovationNames = field(default_factory=InnovationNames)
    _stream_lag: Any = None  # consumers.lag.StreamLag, made on first use in streaming mode
    _stream_lag_made: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        if not settings.uses_postgres:
            settings.event_store_path.parent.mkdir(parents=True, exist_ok=True)
        network = open_network(settings.database_url, settings.event_store_path, settings.cipher_key)
        views = ViewStore(settings.views_url)
        upgrade(views.engine)
        keys = views if settings.keys_url == settings.views_url else _own_keys_file(settings, views)
        leadership: FileLeadership | AdvisoryLeadership
        if settings.uses_postgres:
            assert settings.database_url is not None
            leadership = AdvisoryLeadership(settings.database_url)
        else:
            leadership = FileLeadership(settings.event_store_path.with_suffix(".runner.lock"))
        runner = ProjectionRunner(
            views,
            read=lambda after, limit: read_records(network, after, limit),
            head=network.head_position,
            projections=[IndexProjection(), AuditProjection()],
            leads=leadership,
            gather=settings.projection_gather,
        )
        return cls(
            settings=settings,
            network=network,
            views=views,
            runner=runner,
            tokens=TokenStore(views.engine, settings.bootstrap_admin_token),
            idempotency=IdempotencyStore(keys.engine),
            leadership=leadership,
        )

    def start(self) -> None:
        if self.settings.project_in_process:
            self.runner.start()

    def stream_lag(self) -> Any:
        """The consumer groups' lag probe (None unless streaming), shared by the requests of this process."""
        if not self.settings.kafka_bootstrap:
            return None
        with self._stream_lag_made:
            if self._stream_lag is None:
                from consumers.lag import probe_of

                self._stream_lag = probe_of(self.settings.kafka_bootstrap, self.settings.kafka_topic_prefix)
        return self._stream_lag

    def close(self) -> None:
        if self._stream_lag is not None:
            self._stream_lag.close()
        self.runner.stop()
        self.leadership.release()
        self.idempotency.close()
        if self.idempotency.engine is not self.views.engine:
            self.idempotency.engine.dispose()
        self.views.dispose()
        self.network.close()


def _own_keys_file(settings: Settings, views: ViewStore) -> ViewStore:
    """SQLite: the keys' own file (Settings.keys_url), brought to its latest migration; keys a previous version
    kept with the views are moved into it."""
    keys = ViewStore(settings.keys_url)
    upgrade(keys.engine, tree="keys")
    move_keys(views.engine, keys.engine)
    return keys
