"""The relay against a real Kafka broker: stored events reach their topics as CloudEvents, in order, and the
relay's position moves only past what the broker acknowledged."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from conftest import days_ago, innovation_fields
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from consumers.relay import (
    CloudEventSerializer,
    KeySerializer,
    Relay,
    ensure_topics,
    make_producer,
    run_relay,
    topics,
)
from domain.acting import Actor, acting_as
from projections.store import ViewStore
from service.network import InnovationNetwork, read_records


@pytest.fixture
def relay_store(tmp_path: Any) -> Any:
    store = ViewStore(f"sqlite:///{tmp_path / 'relay.sqlite'}")
    store.create_all()
    yield store
    store.dispose()


def record_a_life(network: InnovationNetwork) -> None:
    with acting_as(Actor("op", "admin", "req-relay")):
        innovation = network.register_innovation(**innovation_fields()).aggregate
        replication = network.propose_replication(
            innovation_id=innovation.id, adopting_region="35.05", rationale="x", proposed_on=days_ago(10)
        ).aggregate
        network.sign_agreement(replication.id, document="pks", document_number="1", signed_on=days_ago(9))
        network.record_modification(
            replication.id,
            component="teknologi",
            nature="penyesuaian",
            core=False,
            description="d",
            reason="r",
            recorded_on=days_ago(8),
        )


def consume(bootstrap: str, prefix: str, expected: int, timeout: float = 30.0) -> list[Any]:
    consumer = KafkaConsumer(
        *topics(prefix),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"test-{uuid.uuid4().hex}",
    )
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                messages.extend(batch)
    finally:
        consumer.close()
    return messages


def test_every_stored_event_reaches_its_topic_as_a_cloudevent_in_order(
    network: InnovationNetwork, relay_store: Any, kafka_bootstrap: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, prefix)
    record_a_life(network)
    stored = read_records(network, 0, 100)
    producer = make_producer(kafka_bootstrap)
    try:
        relay = Relay(relay_store, lambda after, limit: read_records(network, after, limit), producer, prefix)
        assert relay.publish_all() == len(stored) == 4
        assert relay.position == stored[-1].position
        assert relay.publish_all() == 0, "nothing is published twice once acknowledged"
    finally:
        producer.close()

    messages = consume(kafka_bootstrap, prefix, len(stored))
    events = {json.loads(m.value)["id"]: m for m in messages}
    assert set(events) == {r.id for r in stored}
    for record in stored:
        message = events[record.id]
        body = json.loads(message.value)
        assert message.topic == f"{prefix}.{record.aggregate_type.lower()}s.v1"
        assert message.key.decode() == record.aggregate_id
        assert dict(message.headers)["ce_type"].decode() == body["type"]
        assert body["specversion"] == "1.0"
        assert body["type"] == f"id.go.kemendagri.pujaindah.{record.aggregate_type.lower()}.{record.type}.v1"
        assert (body["subject"], body["sequence"], body["position"]) == (
            record.aggregate_id,
            record.version,
            record.position,
        )
        assert body["actor"] == "op" and body["data"] == record.data
    replication_positions = [
        json.loads(m.value)["position"]
        for m in sorted(messages, key=lambda m: m.offset)
        if "replications" in m.topic
    ]
    assert replication_positions == sorted(replication_positions), "one aggregate, one partition, in order"


def test_the_relay_does_not_move_past_what_the_broker_did_not_acknowledge(
    network: InnovationNetwork, relay_store: Any, kafka_bootstrap: str
) -> None:
    record_a_life(network)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        max_block_ms=1500,
        key_serializer=KeySerializer(),
        value_serializer=CloudEventSerializer(),
    )
    try:
        relay = Relay(
            relay_store,
            lambda after, limit: read_records(network, after, limit),
            producer,
            prefix=f"missing{uuid.uuid4().hex[:8]}",  # topics that do not exist: nothing is acknowledged
        )
        with pytest.raises(KafkaError):
            relay.publish_available()
        assert relay.position == 0
    finally:
        producer.close(timeout=1)


def test_the_relay_position_and_lag_are_shown_beside_the_projections(api: Any, kafka_bootstrap: str) -> None:
    network = api.runtime.network
    record_a_life(network)
    prefix = f"s{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, prefix)
    producer = make_producer(kafka_bootstrap)
    try:
        Relay(
            api.runtime.views, lambda after, limit: read_records(network, after, limit), producer, prefix
        ).publish_all()
    finally:
        producer.close()
    relay = {p["name"]: p for p in api.get("/api/v1/projections").get_json()["items"]}["relay"]
    assert (relay["position"], relay["head_position"], relay["lag"], relay["status"]) == (4, 4, 0, "ok")


class RecordingStop(threading.Event):
    """A stop event that remembers how long the relay chose to wait each time (the waits are real)."""

    def __init__(self, network: InnovationNetwork, stop_after: int) -> None:
        super().__init__()
        self.network = network
        self.stop_after = stop_after
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if len(self.waits) == 8:
            record_a_life(self.network)  # events arrive after a quiet spell
        if len(self.waits) >= self.stop_after:
            self.set()
        return super().wait(timeout)


def test_an_idle_relay_looks_less_often_and_at_once_again_when_events_come(
    network: InnovationNetwork, relay_store: Any, kafka_bootstrap: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    stop = RecordingStop(network, stop_after=11)

    published = run_relay(
        relay_store,
        lambda after, limit: read_records(network, after, limit),
        kafka_bootstrap,
        prefix,
        stop,
        idle_poll=0.001,
        idle_poll_max=0.008,
    )

    assert published == 4  # the life recorded during the quiet spell
    assert stop.waits[:7] == [0.001, 0.002, 0.004, 0.008, 0.008, 0.008, 0.008]
    # After publishing, the next look comes soon again.
    assert stop.waits[8] == 0.001
