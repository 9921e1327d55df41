"""Projection consumers (`puja consume index|audit`): the topics of events.md into the same projection code the
in-process runner uses.

Each poll is applied in one database transaction and the consumer group's offsets are committed only after it,
so a crash re-delivers, and the projections, which skip an event they already hold (by event id, or by aggregate
version), apply each event once in effect. A message that cannot be decoded or applied goes to `<topic>.dlq`
with the headers of events.md, and the consumer goes on; a database that cannot be reached is not the message's
fault: nothing is committed and the poll is retried.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from sqlalchemy.exc import OperationalError

from consumers.envelope import TYPE_PREFIX
from domain.published import EventRecord
from projections.loading import restore_indexes
from projections.store import ViewStore
from projections.tracking import Projection, advance_watermark, hold, register

log = logging.getLogger(__name__)

MAX_POLL_RECORDS = 2000  # one view transaction per poll: fewer, larger transactions when behind
RETRY_SECONDS = 1.0
# A consumer stopping with the broker away does not wait longer than this for its last commit.
LAST_COMMIT_TIMEOUT_MS = 5_000


def group_of(prefix: str, projection: str) -> str:
    """The consumer group of a projection's consumers."""
    return f"{prefix}-{projection}"


def make_consumer(bootstrap: str, topic_names: list[str], group: str) -> KafkaConsumer:
    return KafkaConsumer(
        *topic_names,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,  # committed after the view transaction
        max_poll_records=MAX_POLL_RECORDS,
        fetch_max_wait_ms=100,
        # A consumer that died (SIGKILL, a lost host) gives its partitions to the others after 10 s, not 45.
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )


def make_dead_letters(bootstrap: str) -> KafkaProducer:
    """A producer of raw bytes (messages go to the dead letters as they came)."""
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=10_000)


def record_from_message(value: bytes) -> EventRecord:
    """The EventRecord a CloudEvents message carries; ValueError when it carries none."""
    try:
        body = json.loads(value)
        kind, event_type, suffix = body["type"].removeprefix(TYPE_PREFIX + ".").split(".")
        if suffix != "v1" or kind not in ("innovation", "replication"):
            raise ValueError(f"not an event of this service: {body['type']}")
        return EventRecord(
            position=int(body["position"]),
            aggregate_id=str(body["subject"]),
            aggregate_type=kind.capitalize(),
            version=int(body["sequence"]),
            type=event_type,
            recorded_at=str(body["time"]),
            actor=str(body.get("actor", "")),
            actor_role=str(body.get("actor_role", "")),
            request_id=str(body.get("request_id", "")),
            data=dict(body["data"]),
            hash=body.get("hash"),
            prev_hash=body.get("prev_hash"),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"undecodable message: {error!r}") from error


class TopicProjector:
    def __init__(
        self, store: ViewStore, projection: Any, consumer: Any, dead_letters: Any, group: str
    ) -> None:
        self.store = store
        self.projection = projection
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.group = group
        register(store.begin, [projection.name])
        if isinstance(projection, Projection):  # indexes a load cut short left out (projections/loading.py)
            restore_indexes(store, projection)

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Apply one poll's messages and commit their offsets; returns how many events were applied.

        The offsets are committed after the view transaction without waiting for the broker's answer (the next
        poll takes it): a commit that is lost (a rebalance, a broker away, a crash) only makes the group read
        again what the views already hold, which they skip, and a later commit covers it."""
        messages = [m for batch in self.consumer.poll(timeout_ms=timeout_ms).values() for m in batch]
        if not messages:
            return 0
        try:
            try:
                records = [record_from_message(message.value) for message in messages]  # before the lock
                with self.store.begin() as conn:
                    # before the tables: the order every writer keeps
                    current = hold(conn, self.projection.name)
                    self.projection.project_all(conn, records)  # in the poll's order
                    advance_watermark(conn, self.projection.name, [r.position for r in records], current)
                applied = len(messages)
            except OperationalError:
                raise
            except Exception:  # find the poison message(s), apply the others
                applied = self._one_by_one(messages)
        except OperationalError as error:
            log.warning("projection store unavailable; the poll will be delivered again: %s", error)
            self._rewind(messages)
            return 0
        except KafkaError as error:  # a dead letter was not acknowledged: nothing of this poll is committed
            log.warning("the dead letters are not reachable; the poll will be delivered again: %r", error)
            self._rewind(messages)
            return 0
        self._done()
        return applied

    def _done(self) -> None:
        """Commit the offsets after the poll (its messages applied, or gone to the dead letters), without
        waiting for the broker's answer."""
        try:
            self.consumer.commit_async(callback=self._committed)
        except KafkaError as error:
            self._committed({}, error)

    def _committed(self, offsets: dict[Any, Any], response: Any) -> None:
        if isinstance(response, Exception):
            # The views hold the poll already; a later commit covers it, and what comes again is skipped.
            log.warning(
                "offsets not committed (the group is rebalancing or the broker is away): %r", response
            )

    def commit(self) -> None:
        """Commit the offsets after every poll, and wait for the broker's answer (when the consumer stops, every
        poll having been applied or rewound: a restart then reads nothing again). A broker that does not answer
        within LAST_COMMIT_TIMEOUT_MS does not hold the stop up: what it misses is read again and skipped."""
        self.consumer.commit(timeout_ms=LAST_COMMIT_TIMEOUT_MS)

    def _one_by_one(self, messages: list[Any]) -> int:
        applied = 0
        for message in messages:
            try:
                record = record_from_message(message.value)
                with self.store.begin() as conn:
                    hold(conn, self.projection.name)
                    self.projection.project(conn, record)
                    advance_watermark(conn, self.projection.name, [record.position])
                applied += 1
            except OperationalError:
                raise
            except Exception as error:
                self._dead_letter(message, error)  # raises KafkaError when not acknowledged
        return applied

    def _dead_letter(self, message: Any, error: Exception) -> None:
        """The message as it came (raw key and value bytes: `dead_letters` has no serializers)."""
        log.error(
            "message %s/%s/%s goes to the dead letters: %s",
            message.topic,
            message.partition,
            message.offset,
            error,
        )
        headers = [
            ("error", f"{type(error).__name__}: {error}".encode()),
            ("consumer_group", self.group.encode()),
            ("original_topic", message.topic.encode()),
            ("original_partition", str(message.partition).encode()),
            ("original_offset", str(message.offset).encode()),
        ]
        sent = self.dead_letters.send(
            f"{message.topic}.dlq", key=message.key, value=message.value, headers=headers
        )
        self.dead_letters.flush()
        sent.get(timeout=30)

    def _rewind(self, messages: list[Any]) -> None:
        first: dict[Any, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            first[tp] = min(first.get(tp, m.offset), m.offset)
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)


def run_consumer(
    store: Any,
    projection: Any,
    bootstrap: str,
    prefix: str,
    stop: threading.Event,
    *,
    group: str | None = None,
) -> None:
    """`puja consume <projection>`: poll and apply until `stop` is set. The client reconnects by itself when
    the broker restarts; an error of the poll is logged and the poll retried."""
    from consumers.relay import ensure_topics, topics

    group = group or group_of(prefix, projection.name)
    while True:  # a broker that is not up yet is waited for
        consumer: KafkaConsumer | None = None
        try:
            # The topics exist before the group forms, whoever starts first: else the first assignment would
            # leave out a topic the relay had not created yet, until the next metadata refresh.
            ensure_topics(bootstrap, prefix)
            consumer = make_consumer(bootstrap, topics(prefix), group)
            dead_letters = make_dead_letters(bootstrap)
            break
        except KafkaError as error:
            log.warning("Kafka is not reachable; retrying: %r", error)
            if consumer is not None:
                consumer.close()
            if stop.wait(RETRY_SECONDS):
                return
    try:
        projector = TopicProjector(store, projection, consumer, dead_letters, group)
        while not stop.is_set():
            try:
                projector.poll_once(timeout_ms=500)
            except KafkaError as error:
                log.warning("polling %s failed; retrying: %r", group, error)
                stop.wait(RETRY_SECONDS)
        try:
            projector.commit()
        except KafkaError as error:
            log.warning("the last offsets of %s were not committed: %r", group, error)
    finally:
        consumer.close()
        dead_letters.close(timeout=5)
