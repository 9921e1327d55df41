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
from typing import Any

from kafka import TopicPartition
from sqlalchemy.exc import OperationalError

from consumers.envelope import TYPE_PREFIX
from domain.published import EventRecord
from projections.store import ViewStore
from projections.tracking import advance_watermark, hold, register

log = logging.getLogger(__name__)


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

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Apply one poll's messages and commit their offsets; returns how many events were applied."""
        messages = [m for batch in self.consumer.poll(timeout_ms=timeout_ms).values() for m in batch]
        if not messages:
            return 0
        try:
            try:
                with self.store.begin() as conn:
                    records = [record_from_message(message.value) for message in messages]
                    hold(conn, self.projection.name)  # before the tables: the order every writer keeps
                    for record in records:
                        self.projection.project(conn, record)
                    advance_watermark(conn, self.projection.name, [r.position for r in records])
                applied = len(messages)
            except OperationalError:
                raise
            except Exception:  # find the poison message(s), apply the others
                applied = self._one_by_one(messages)
        except OperationalError as error:
            log.warning("projection store unavailable; the poll will be delivered again: %s", error)
            self._rewind(messages)
            return 0
        self.consumer.commit()
        return applied

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
                self._dead_letter(message, error)
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
        self.dead_letters.send(f"{message.topic}.dlq", key=message.key, value=message.value, headers=headers)
        self.dead_letters.flush()

    def _rewind(self, messages: list[Any]) -> None:
        first: dict[Any, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            first[tp] = min(first.get(tp, m.offset), m.offset)
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)
