"""How far the projection consumers' groups are behind the topics, in messages: committed offsets against the
topics' end offsets, as the broker sees them.

Looked up by a background thread with short client timeouts and kept for a few seconds, so that a status page
asked often costs the broker one lookup per few seconds, and a broker that is down makes the page say so
instead of making it wait: a reader waits at most `wait` seconds for a fresh reading, else gets the last one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import KafkaError

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
WAIT_SECONDS = 1.0
CLIENT_TIMEOUT_MS = 2_000


@dataclass(frozen=True)
class GroupLag:
    """One consumer group over the topics it reads, summed over their partitions."""

    group: str
    committed_offset: int  # a partition the group has not committed counts as 0
    end_offset: int
    lag_messages: int
    error: str | None = None


@dataclass(frozen=True)
class LagReading:
    groups: dict[str, GroupLag] = field(default_factory=dict)
    checked_at: datetime | None = None
    error: str | None = None


class StreamLag:
    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        groups: Sequence[str],
        *,
        cache_seconds: float = CACHE_SECONDS,
        wait: float = WAIT_SECONDS,
        timeout_ms: int = CLIENT_TIMEOUT_MS,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.groups = list(groups)
        self.cache_seconds = cache_seconds
        self.wait = wait
        self.timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._reading = LagReading(error="not looked up yet")
        self._read_at: float | None = None
        self._thread: threading.Thread | None = None
        self._admin: Any = None
        self._closed = False

    def reading(self) -> LagReading:
        """The latest reading, refreshed when older than `cache_seconds` (waiting at most `wait` seconds)."""
        with self._lock:
            fresh = self._read_at is not None and time.monotonic() - self._read_at < self.cache_seconds
            if not fresh and not self._closed and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._refresh, name="stream-lag", daemon=True)
                self._thread.start()
            thread = self._thread
        if not fresh and thread is not None:
            thread.join(self.wait)
        return self._reading

    def close(self) -> None:
        self._closed = True
        self._drop_client()

    def _drop_client(self) -> None:
        with self._lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()

    def _refresh(self) -> None:
        try:
            reading = LagReading(self._look_up(), datetime.now(UTC))
        except Exception as error:  # the broker is down or slow: say so, and try again after the cache time
            log.info("consumer group lag could not be looked up: %r", error)
            self._drop_client()
            reading = LagReading(checked_at=datetime.now(UTC), error=f"{type(error).__name__}: {error}")
        self._reading = reading
        self._read_at = time.monotonic()

    def _client(self) -> Any:
        if self._closed:
            raise RuntimeError("closed")
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="puja-lag",
                bootstrap_timeout_ms=self.timeout_ms,
                request_timeout_ms=self.timeout_ms,
            )
        return self._admin

    def _look_up(self) -> dict[str, GroupLag]:
        admin = self._client()
        partitions = [
            TopicPartition(topic["name"], p["partition_index"])
            for topic in admin.describe_topics(self.topics)
            for p in topic["partitions"]
        ]
        ends = {
            tp: found.offset
            for tp, found in admin.list_partition_offsets(
                {tp: OffsetSpec.LATEST for tp in partitions}, timeout_ms=self.timeout_ms
            ).items()
        }
        end_total = sum(ends.values())
        answers = {}
        for group in self.groups:
            try:
                committed = admin.list_group_offsets({group: partitions}).get(group, {})
            except KafkaError as error:  # e.g. no group has ever committed on a new broker
                answers[group] = GroupLag(group, 0, end_total, end_total, f"{type(error).__name__}")
                continue
            offsets = {
                tp: max(meta.offset, 0) for tp, meta in committed.items() if meta is not None and tp in ends
            }
            answers[group] = GroupLag(
                group,
                committed_offset=sum(offsets.values()),
                end_offset=end_total,
                lag_messages=sum(max(end - offsets.get(tp, 0), 0) for tp, end in ends.items()),
            )
        return answers


def probe_of(bootstrap: str, prefix: str, projections: Sequence[str] = ("index", "audit")) -> StreamLag:
    """A lag probe of a deployment's consumer groups: one per projection, over the topics of `prefix`."""
    from consumers.projector import group_of
    from consumers.relay import topics

    return StreamLag(bootstrap, topics(prefix), [group_of(prefix, p) for p in projections])
