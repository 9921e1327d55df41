"""The relay (`puja relay`): every stored event, in position order, to its topic, at least once.

It reads the notification log from its own tracked position (no dual write: only what was stored is published),
sends each event with the aggregate id as key (one aggregate, one partition, in order) through an idempotent
producer with `acks=all`, and advances its position only after the broker has acknowledged every message of
the batch. Killed at any moment, it publishes again from the last acknowledged position: duplicates, which
consumers recognise by the CloudEvents `id`, but never a gap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.serializer import Serializer

from consumers.envelope import cloudevent, headers_of, topic_of
from domain.published import EventRecord
from projections.store import ViewStore
from projections.tracking import claim, read_tracked, register

log = logging.getLogger(__name__)

RELAY = "relay"
AGGREGATE_TYPES = ("Innovation", "Replication")
PARTITIONS = 6
IDLE_POLL_SECONDS = 0.005  # how soon a relay that found nothing looks again, while events keep coming
IDLE_POLL_MAX_SECONDS = (
    0.1  # the longest it waits once the log has been quiet for a while (doubling up to it)
)
RETRY_SECONDS = 1.0
PUBLISH_BATCH = 1000  # events read, sent and acknowledged together before the position moves


def topics(prefix: str) -> list[str]:
    return [f"{prefix}.{kind.lower()}s.v1" for kind in AGGREGATE_TYPES]


def ensure_topics(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="puja-relay-admin", bootstrap_timeout_ms=10_000
    )
    try:
        for name in [*topics(prefix), *(f"{t}.dlq" for t in topics(prefix))]:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


class KeySerializer(Serializer):
    def serialize(self, topic: str, headers: Any, data: Any) -> bytes:
        return str(data).encode()


class CloudEventSerializer(Serializer):
    def serialize(self, topic: str, headers: Any, data: Any) -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """The relay's producer (`overrides`: other settings, e.g. no serializers for bytes already serialised)."""
    settings: dict[str, Any] = {
        "client_id": "puja-relay",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,  # fuller batches, fewer requests and wake-ups of the sender: a burst goes out faster
        "batch_size": 256 * 1024,
        "max_block_ms": 10_000,  # a broker that is down fails the batch soon; the relay retries it whole
        "key_serializer": KeySerializer(),
        "value_serializer": CloudEventSerializer(),
    }
    return KafkaProducer(bootstrap_servers=bootstrap, **{**settings, **overrides})


class Relay:
    """Publishes batches from its position; the position is written by a keeper thread of its own, so that a
    busy view store (SQLite: one writer at a time, the consumers' transactions) never holds back the next batch.
    The tracked position may therefore trail what was acknowledged: after a crash, more duplicates, never a gap
    (only acknowledged positions are ever written)."""

    def __init__(
        self,
        store: ViewStore,
        read: Callable[[int, int], Sequence[EventRecord]],
        producer: Any,
        prefix: str = "puja",
        batch_size: int = PUBLISH_BATCH,
    ) -> None:
        self.store = store
        self.read = read
        self.producer = producer
        self.prefix = prefix
        self.batch_size = batch_size
        register(store.begin, [RELAY])
        self._acknowledged: int | None = None  # the last position the broker acknowledged, this run
        self._kept = 0  # the last position the keeper wrote
        self._keeping = threading.Condition()
        self._keeper: threading.Thread | None = None
        self._closing = False

    @property
    def position(self) -> int:
        """The tracked position (where a restarted relay goes on from)."""
        with self.store.connect() as conn:
            tracked = read_tracked(conn, [RELAY]).get(RELAY)
        return tracked.position if tracked else 0

    def publish_available(self) -> int:
        """Publish one batch after the last acknowledged position; returns how many events were published."""
        after = self._acknowledged if self._acknowledged is not None else self.position
        records = self.read(after, self.batch_size)
        if not records:
            return 0
        futures = []
        for record in records:
            event = cloudevent(record)
            futures.append(
                self.producer.send(
                    topic_of(record, self.prefix),
                    key=record.aggregate_id,
                    value=event,
                    headers=headers_of(event),
                )
            )
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises when the broker did not acknowledge: the position stays
        self._acknowledge(records[-1].position)
        return len(records)

    def publish_all(self) -> int:
        """Publish everything stored now, and wait until the tracked position says so."""
        total = 0
        while published := self.publish_available():
            total += published
        self.keep_position()
        return total

    def keep_position(self, timeout: float | None = 30.0) -> bool:
        """Wait until the tracked position holds every acknowledged batch; False on a timeout."""
        with self._keeping:
            return self._keeping.wait_for(
                lambda: self._acknowledged is None or self._kept >= self._acknowledged, timeout
            )

    def close(self) -> None:
        """Write the last acknowledged position, and stop the keeper."""
        self.keep_position()
        with self._keeping:
            self._closing = True
            self._keeping.notify_all()
        if self._keeper is not None:
            self._keeper.join(5)

    def _acknowledge(self, position: int) -> None:
        with self._keeping:
            self._acknowledged = position
            self._keeping.notify_all()
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep, name="relay-position", daemon=True)
                self._keeper.start()

    def _keep(self) -> None:
        while True:
            with self._keeping:
                self._keeping.wait_for(lambda: self._closing or (self._acknowledged or 0) > self._kept)
                if (self._acknowledged or 0) <= self._kept:
                    return  # closing, and nothing left to write
                position = self._acknowledged or 0
            try:
                with self.store.begin() as conn:
                    claim(conn, RELAY, position)
            except Exception:
                log.exception("the relay's position could not be written; trying again")
                time.sleep(RETRY_SECONDS)
                continue
            with self._keeping:
                self._kept = max(self._kept, position)
                self._keeping.notify_all()


def run_relay(
    store: ViewStore,
    read: Callable[[int, int], Sequence[EventRecord]],
    bootstrap: str,
    prefix: str,
    stop: threading.Event,
    *,
    once: bool = False,
    idle_poll: float = IDLE_POLL_SECONDS,
    idle_poll_max: float = IDLE_POLL_MAX_SECONDS,
) -> int:
    """`puja relay`: publish until `stop` is set (or, with `once`, until nothing is left). While events keep
    coming it looks again `idle_poll` after finding none; a quiet log is looked at less and less often, down to
    every `idle_poll_max`. A broker that is down
    or restarting only delays it: the failed batch stays unacknowledged, the producer is made anew, and the
    batch is sent again from the last acknowledged position. Returns how many events were published."""
    producer: Any = None
    relay: Relay | None = None
    total = 0
    wait = idle_poll
    try:
        while not stop.is_set():
            try:
                if producer is None:
                    ensure_topics(bootstrap, prefix)
                    producer = make_producer(bootstrap)
                if relay is None:
                    relay = Relay(store, read, producer, prefix)
                relay.producer = producer
                published = relay.publish_available()
                total += published
                if published:
                    wait = idle_poll
                else:
                    if once:
                        relay.keep_position()
                        return total
                    stop.wait(wait)
                    wait = min(idle_poll_max, wait * 2)
            except KafkaError as error:
                log.warning("Kafka is not reachable or did not acknowledge; retrying: %r", error)
                if producer is not None:
                    with contextlib.suppress(Exception):
                        producer.close(timeout=0)
                producer = None
                stop.wait(RETRY_SECONDS)
            except Exception:
                log.exception("the relay failed; retrying from its last acknowledged position")
                stop.wait(RETRY_SECONDS)
    finally:
        if relay is not None:
            relay.close()
        if producer is not None:
            producer.close(timeout=5)
    return total
