"""Projection consumers against a real broker: the topics feed the same projections as the in-process runner,
duplicates change nothing, and a poison message goes to the dead letters while the consumer goes on."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from conftest import days_ago, innovation_fields
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import select

from consumers.projector import TopicProjector
from consumers.relay import Relay, ensure_topics, make_producer, topics
from domain.acting import Actor, acting_as
from projections import queries
from projections.audit import AuditProjection
from projections.index import IndexProjection
from projections.runner import ProjectionRunner
from projections.store import ViewStore
from projections.tables import applied_positions
from projections.tracking import advance_watermark, read_tracked, register
from service.network import InnovationNetwork, read_records


def fresh_store(path: Any) -> ViewStore:
    store = ViewStore(f"sqlite:///{path}")
    store.create_all()
    return store


def record_lives(network: InnovationNetwork, adopters: tuple[str, ...] = ("35.05", "35.06", "32.01")) -> None:
    with acting_as(Actor("op", "admin", "req-consume")):
        innovation = network.register_innovation(**innovation_fields()).aggregate
        for adopter in adopters:
            replication = network.propose_replication(
                innovation_id=innovation.id, adopting_region=adopter, rationale="x", proposed_on=days_ago(10)
            ).aggregate
            network.sign_agreement(replication.id, document="pks", document_number="1", signed_on=days_ago(9))
            network.advance_adoption(replication.id, stage="uji_coba", effective_on=days_ago(8))


def consumer_for(bootstrap: str, prefix: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        *topics(prefix),
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


def project_until(projector: TopicProjector, count: int, timeout: float = 30.0) -> int:
    """Poll until `count` events were applied (bounded): waiting on delivered messages, not on time."""
    applied = 0
    deadline = time.monotonic() + timeout
    while applied < count and time.monotonic() < deadline:
        applied += projector.poll_once()
    return applied


@pytest.fixture
def published(network: InnovationNetwork, tmp_path: Any, kafka_bootstrap: str) -> tuple[str, int]:
    prefix = f"c{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, prefix)
    record_lives(network)
    producer = make_producer(kafka_bootstrap)
    try:
        relay = Relay(
            fresh_store(tmp_path / "relay.sqlite"), lambda a, n: read_records(network, a, n), producer, prefix
        )
        count = relay.publish_all()
        # a relay that crashed before recording its position publishes everything again: duplicates
        relay2 = Relay(
            fresh_store(tmp_path / "relay2.sqlite"),
            lambda a, n: read_records(network, a, n),
            producer,
            prefix,
        )
        assert relay2.publish_all() == count
    finally:
        producer.close()
    return prefix, count


def test_topics_feed_the_same_views_as_the_in_process_runner_and_duplicates_change_nothing(
    network: InnovationNetwork, tmp_path: Any, kafka_bootstrap: str, published: tuple[str, int]
) -> None:
    prefix, count = published
    dead_letters = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    streamed = fresh_store(tmp_path / "streamed.sqlite")
    try:
        for projection in (IndexProjection(), AuditProjection()):
            consumer = consumer_for(kafka_bootstrap, prefix, f"{prefix}-{projection.name}")
            try:
                projector = TopicProjector(
                    streamed, projection, consumer, dead_letters, f"{prefix}-{projection.name}"
                )
                assert project_until(projector, 2 * count) == 2 * count  # every event twice
            finally:
                consumer.close()
    finally:
        dead_letters.close()

    with streamed.connect() as conn:
        tracked = read_tracked(conn, ["index", "audit"])
    assert {name: t.position for name, t in tracked.items()} == {
        "index": network.head_position(),
        "audit": network.head_position(),
    }, "the watermark covers every position once all arrived, whatever their order"

    local = fresh_store(tmp_path / "local.sqlite")
    runner = ProjectionRunner(
        local,
        lambda a, n: read_records(network, a, n),
        network.head_position,
        [IndexProjection(), AuditProjection()],
    )
    runner.catch_up()
    for query in (queries.list_replications, queries.list_innovations):
        assert query(streamed, limit=500).items == query(local, limit=500).items
    assert queries.audit_events(streamed, limit=500).items == queries.audit_events(local, limit=500).items


def test_a_poison_message_goes_to_the_dead_letters_and_the_consumer_goes_on(
    network: InnovationNetwork, tmp_path: Any, kafka_bootstrap: str, published: tuple[str, int]
) -> None:
    prefix, count = published
    replications_topic = f"{prefix}.replications.v1"
    poison = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    poison.send(replications_topic, key=b"not-an-aggregate", value=b"{not json")
    poison.flush()
    poison.close()
    group = f"{prefix}-audit"
    dead_letters = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    streamed = fresh_store(tmp_path / "streamed.sqlite")
    consumer = consumer_for(kafka_bootstrap, prefix, group)
    try:
        projector = TopicProjector(streamed, AuditProjection(), consumer, dead_letters, group)
        assert project_until(projector, 2 * count) == 2 * count
    finally:
        consumer.close()
        dead_letters.close()
    assert len(queries.audit_events(streamed, limit=500).items) == count

    reader = KafkaConsumer(
        f"{replications_topic}.dlq",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{prefix}-dlq-reader",
    )
    try:
        found: list[Any] = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            found = [m for batch in reader.poll(timeout_ms=500).values() for m in batch]
    finally:
        reader.close()
    (letter,) = found
    headers = {k: v.decode() for k, v in letter.headers}
    assert (letter.key, letter.value) == (b"not-an-aggregate", b"{not json")
    assert headers["consumer_group"] == group
    assert headers["original_topic"] == replications_topic
    assert headers["error"].startswith("ValueError")
    assert {"original_partition", "original_offset"} <= set(headers)
    assert json.loads(json.dumps(headers))  # plain text headers


def test_the_watermark_moves_only_over_contiguous_positions(tmp_path: Any) -> None:
    store = fresh_store(tmp_path / "views.sqlite")
    register(store.begin, ["index"])
    seen = []
    for arriving in ([3], [1], [2, 2], [5], [4]):
        with store.begin() as conn:
            seen.append(advance_watermark(conn, "index", arriving))
    assert seen == [0, 1, 3, 3, 5]


def test_in_streaming_mode_the_api_reads_what_the_consumers_projected(
    tmp_path: Any, kafka_bootstrap: str
) -> None:
    from app import create_app
    from app.runtime import Runtime
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path / "var", project_in_process=False, min_position_timeout=0.3)
    runtime = Runtime.open(settings)
    try:
        client = create_app(runtime=runtime).test_client()
        token = runtime.tokens.create("admin", "admin")
        body = {**innovation_fields(), "started_on": days_ago(400).isoformat()}
        created = client.post("/api/v1/innovations", json=body, headers={"Authorization": f"Bearer {token}"})
        position = created.headers["X-Event-Position"]
        url = f"/api/v1/innovations/{created.get_json()['id']}?min_position={position}"
        assert client.get(url).status_code == 503, "nothing projects in-process in streaming mode"

        prefix = f"m{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka_bootstrap, prefix)
        producer = make_producer(kafka_bootstrap)
        dead_letters = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        try:
            read = lambda after, limit: read_records(runtime.network, after, limit)  # noqa: E731
            assert Relay(runtime.views, read, producer, prefix).publish_all() == 1
            for projection in (IndexProjection(), AuditProjection()):
                consumer = consumer_for(kafka_bootstrap, prefix, f"{prefix}-{projection.name}")
                try:
                    projector = TopicProjector(
                        runtime.views, projection, consumer, dead_letters, projection.name
                    )
                    assert project_until(projector, 1) == 1
                finally:
                    consumer.close()
        finally:
            producer.close()
            dead_letters.close()

        read_back = client.get(url)
        assert read_back.status_code == 200
        assert int(read_back.headers["X-Projection-Position"]) >= int(position)
        assert read_back.get_json()["name"] == body["name"]
    finally:
        runtime.close()


def test_the_watermark_moves_over_more_contiguous_positions_than_it_reads_at_once(tmp_path: Any) -> None:
    store = fresh_store(tmp_path / "views.sqlite")
    register(store.begin, ["audit"])
    with store.begin() as conn:
        assert advance_watermark(conn, "audit", range(2, 2_600)) == 0  # position 1 has not arrived
        assert advance_watermark(conn, "audit", [2_601]) == 0
    with store.begin() as conn:
        assert advance_watermark(conn, "audit", [1]) == 2_599, "up to the gap at 2,600, over chunks"
        assert advance_watermark(conn, "audit", [2_600]) == 2_601


def test_the_watermark_agrees_with_a_plain_model_over_random_arrivals(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positions arriving in random batches, out of order and again (as several partitions, redeliveries and
    consumers of one group bring them), with the held positions read a few at a time: the tracked position is
    always the end of the contiguous run from the start, and what is held is exactly what arrived above it."""
    import random

    from projections import tracking

    monkeypatch.setattr(tracking, "WATERMARK_CHUNK", 3)
    store = fresh_store(tmp_path / "views.sqlite")
    register(store.begin, ["audit"])
    rng = random.Random(4)
    positions = list(range(1, 301))
    arrivals = positions + rng.sample(positions, 60)  # every position, and some of them twice
    rng.shuffle(arrivals)
    arrived: set[int] = set()
    while arrivals:
        size = rng.randint(1, 12)
        batch, arrivals = arrivals[:size], arrivals[size:]
        arrived.update(batch)
        expected = 0
        while expected + 1 in arrived:
            expected += 1
        with store.begin() as conn:
            current = tracking.hold(conn, "audit") if rng.random() < 0.5 else None
            assert advance_watermark(conn, "audit", batch, current) == expected
        with store.connect() as conn:
            held = set(conn.execute(select(applied_positions.c.position)).scalars())
            assert read_tracked(conn, ["audit"])["audit"].position == expected
        assert held == {p for p in arrived if p > expected}
    assert expected == 300 and not held


def test_two_consumers_holding_the_same_position_at_once_do_not_fail_on_postgresql(
    postgres_server: str,
) -> None:
    """While partitions move between the members of a group, two of them may apply the same message at once:
    the second waits for the first and leaves its applied position (no error, so no dead letter)."""
    import threading

    import psycopg
    from conftest import _with_database

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store = ViewStore(_with_database(postgres_server, name))
    try:
        store.create_all()
        register(store.begin, ["index"])
        outcome: list[Any] = []
        with store.begin() as first:
            advance_watermark(first, "index", [5])

            def second() -> None:
                try:
                    with store.begin() as conn:
                        outcome.append(advance_watermark(conn, "index", [5, 6]))
                except Exception as error:  # pragma: no cover - the failure this test is about
                    outcome.append(error)

            other = threading.Thread(target=second)
            other.start()
            other.join(1.0)
            assert other.is_alive(), "the second waits for the first's row"
        other.join(10)
        assert outcome == [0], outcome
        with store.connect() as conn:
            held = sorted(conn.execute(select(applied_positions.c.position)).scalars())
        assert held == [5, 6]
    finally:
        store.dispose()
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
