"""The guarantees of events.md under failure, with `puja relay` and `puja consume` as real processes on a real
broker: a relay or a consumer killed with SIGKILL in the middle of a stream and started again, a broker stopped
and started under running processes, a poison message, two consumers sharing a group. Afterwards every stored
event is on its topic (duplicates allowed) and the projections hold each exactly once."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from sqlalchemy import func, select
from streaming import (
    BROKER,
    Stream,
    assert_views_hold_every_event_once,
    free_ports,
    read_topics,
    record_burst,
    tracked,
    wait_for_position,
    wait_until,
)

from app.runtime import Runtime
from consumers.relay import ensure_topics
from projections.store import ViewStore
from projections.tables import applied_positions
from service.network import InnovationNetwork, read_records

BURST = 5_000
POSITIONS = ["relay", "index", "audit"]


@pytest.fixture
def stream(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Stream]:
    stream = Stream(tmp_path, kafka_bootstrap)
    yield stream
    stream.stop_all()


@pytest.fixture
def runtime(stream: Stream) -> Iterator[Runtime]:
    rt = Runtime.open(stream.settings())  # the store and views the processes share; nothing projects here
    assert not rt.settings.project_in_process
    yield rt
    rt.close()


def applied(views: ViewStore, name: str) -> int:
    """How many events a streamed projection has applied: its watermark and the positions it holds above."""
    with views.connect() as conn:
        above = conn.execute(
            select(func.count()).select_from(applied_positions).where(applied_positions.c.name == name)
        ).scalar_one()
    return tracked(views, name) + int(above)


def assert_every_stored_event_is_on_its_topic(stream: Stream, network: InnovationNetwork) -> list[Any]:
    stored = {r.id: r for r in read_records(network, 0, network.head_position() + 1)}
    messages = read_topics(stream.bootstrap, stream.prefix, set(stored))
    published = {json.loads(m.value)["id"] for m in messages}
    assert published == set(stored), (
        f"missing {len(set(stored) - published)}, never stored {len(published - set(stored))}"
    )
    for message in messages:  # each on the partition of its aggregate, whatever run of the relay sent it
        body = json.loads(message.value)
        assert message.key.decode() == body["subject"] == stored[body["id"]].aggregate_id
    return messages


def test_a_relay_killed_in_the_middle_of_a_burst_publishes_everything_once_restarted(
    stream: Stream, runtime: Runtime, tmp_path: Path
) -> None:
    network, views = runtime.network, runtime.views
    relay = stream.start("relay")
    stream.start("consume", "index")
    stream.start("consume", "audit")
    burst = threading.Thread(target=record_burst, args=(network, BURST))
    burst.start()
    try:
        wait_until(lambda: tracked(views, "relay") >= 500, 60, "the relay to publish the first events")
        relay.kill()
        killed_at = tracked(views, "relay")
    finally:
        burst.join()
    head = network.head_position()
    assert head >= BURST
    assert killed_at < head, "the relay was killed before it had published the whole burst"
    wait_until(lambda: applied(views, "audit") >= killed_at, 60, "the consumers to apply what came before")
    assert tracked(views, "relay") == killed_at, "a killed relay moves nothing"

    stream.start("relay")
    wait_for_position(views, POSITIONS, head, 120, stream.logs)

    messages = assert_every_stored_event_is_on_its_topic(stream, network)
    assert len(messages) >= head
    assert_views_hold_every_event_once(network, views, tmp_path)


def test_a_consumer_killed_mid_stream_applies_everything_exactly_once_restarted_and_poison_goes_to_the_dlq(
    stream: Stream, runtime: Runtime, tmp_path: Path
) -> None:
    network, views = runtime.network, runtime.views
    ensure_topics(stream.bootstrap, stream.prefix)
    poison = KafkaProducer(bootstrap_servers=stream.bootstrap, acks="all")
    poison.send(f"{stream.prefix}.replications.v1", key=b"no-aggregate", value=b'{"type": "nonsense"}').get(
        30
    )
    poison.close()
    record_burst(network, BURST)
    head = network.head_position()
    stream.start("relay")
    wait_for_position(views, ["relay"], head, 60, stream.logs)

    index, audit = stream.start("consume", "index"), stream.start("consume", "audit")
    wait_until(lambda: applied(views, "index") >= 300, 60, "the index consumer to be under way")
    index.kill()
    wait_until(lambda: applied(views, "audit") >= 300, 60, "the audit consumer to be under way")
    audit.kill()
    at_kill = {name: applied(views, name) for name in ("index", "audit")}
    assert all(n < head for n in at_kill.values()), f"killed mid-stream: {at_kill} of {head}"

    stream.start("consume", "index")
    stream.start("consume", "audit")
    wait_for_position(views, ["index", "audit"], head, 120, stream.logs)
    assert_views_hold_every_event_once(network, views, tmp_path)

    letters = dead_letters(stream, expected=2)
    assert {h["consumer_group"] for h in letters} == {f"{stream.prefix}-index", f"{stream.prefix}-audit"}
    for headers in letters:
        assert headers["original_topic"] == f"{stream.prefix}.replications.v1"
        assert headers["error"].startswith("ValueError")
        assert headers["original_partition"].isdigit() and headers["original_offset"].isdigit()


def dead_letters(stream: Stream, expected: int) -> list[dict[str, str]]:
    reader = KafkaConsumer(
        f"{stream.prefix}.replications.v1.dlq",
        bootstrap_servers=stream.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"dlq-{uuid.uuid4().hex}",
    )
    found: list[Any] = []
    try:
        wait_until(
            lambda: found.extend(m for b in reader.poll(timeout_ms=500).values() for m in b)
            or len(found) >= expected,
            30,
            "the dead letters",
            every=0,
        )
    finally:
        reader.close()
    return [{k: v.decode() for k, v in m.headers} for m in found]


@pytest.fixture
def stream_on_backend(tmp_path: Path, kafka_bootstrap: str, database_url: str | None) -> Iterator[Stream]:
    """A stream on each backend: the embedded SQLite store, and a PostgreSQL database (where two consumers of a
    group really write at the same time)."""
    stream = Stream(
        tmp_path, kafka_bootstrap, **({"PUJA_DATABASE_URL": database_url} if database_url else {})
    )
    yield stream
    stream.stop_all()


def test_two_consumers_of_one_group_share_the_partitions_and_apply_everything_exactly_once(
    stream_on_backend: Stream, tmp_path: Path
) -> None:
    stream = stream_on_backend
    runtime = Runtime.open(stream.settings())
    try:
        share_one_group(stream, runtime, tmp_path)
    finally:
        stream.stop_all()
        runtime.close()


def share_one_group(stream: Stream, runtime: Runtime, tmp_path: Path) -> None:
    network, views = runtime.network, runtime.views
    record_burst(network, 2_000)
    head = network.head_position()
    stream.start("relay")
    stream.start("consume", "audit")
    first = stream.start("consume", "index")
    second = stream.start("consume", "index")
    group = f"{stream.prefix}-index"
    admin = KafkaAdminClient(bootstrap_servers=stream.bootstrap)
    try:

        def shared() -> Any:
            try:
                description = admin.describe_groups([group])[group]
            except KafkaError:  # no coordinator yet (a new broker creates its offsets topic on first use)
                return False
            members = description.get("members") or []
            assignments = [assigned_partitions(m) for m in members]
            everything = sum(len(a) for a in assignments) == 12
            return (
                description.get("group_state") == "Stable"
                and len(members) == 2
                and everything
                and assignments
            )

        assignments = wait_until(shared, 60, "two members of the index group with partitions", every=0.2)
    finally:
        admin.close()
    one, other = (set(a) for a in assignments)
    assert one and other, f"each instance has partitions: {assignments}"
    assert not one & other, "no partition is read by both"
    assert one | other == {
        TopicPartition(f"{stream.prefix}.{kind}.v1", p)
        for kind in ("innovations", "replications")
        for p in range(6)
    }
    wait_for_position(views, POSITIONS, head, 120, stream.logs)
    assert first.alive() and second.alive()
    assert_views_hold_every_event_once(network, views, tmp_path)


def assigned_partitions(member: dict[str, Any]) -> list[TopicPartition]:
    assignment = member.get("member_assignment") or {}
    if hasattr(assignment, "to_dict"):
        assignment = assignment.to_dict()
    partitions = assignment.get("assigned_partitions") or assignment.get("partitions") or []
    found = []
    for entry in partitions:
        if isinstance(entry, dict):
            found += [TopicPartition(entry["topic"], p) for p in entry["partitions"]]
        else:  # (topic, [partitions])
            found += [TopicPartition(entry[0], p) for p in entry[1]]
    return found


@pytest.fixture
def own_broker() -> Iterator[tuple[str, str]]:
    """A broker of this test alone, so that stopping it disturbs no other test: (directory, bootstrap)."""
    directory = tempfile.mkdtemp(prefix="puja-test-kafka-restart-")
    port, controller = free_ports(2)
    started = subprocess.run(
        [BROKER, "start", directory, str(port), str(controller)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if started.returncode != 0:
        raise RuntimeError(f"Kafka did not start:\n{started.stderr}")
    try:
        yield directory, f"127.0.0.1:{port}", str(port), str(controller)  # type: ignore[misc]
    finally:
        subprocess.run([BROKER, "stop", directory], stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
        shutil.rmtree(directory, ignore_errors=True)


def test_relay_and_consumers_recover_by_themselves_when_the_broker_restarts(
    own_broker: Any, tmp_path: Path
) -> None:
    directory, bootstrap, port, controller = own_broker
    stream = Stream(tmp_path, bootstrap)
    runtime = Runtime.open(stream.settings())
    network, views = runtime.network, runtime.views
    try:
        processes = [
            stream.start("relay"),
            stream.start("consume", "index"),
            stream.start("consume", "audit"),
        ]
        record_burst(network, 500)
        wait_for_position(views, POSITIONS, network.head_position(), 60, stream.logs)

        stopped = subprocess.run([BROKER, "stop", directory], capture_output=True, text=True, timeout=90)
        assert stopped.returncode == 0, stopped.stderr
        record_burst(network, 500, seed=11)  # stored while the broker is away
        head = network.head_position()
        restarted = subprocess.run(
            [BROKER, "start", directory, port, controller], capture_output=True, text=True, timeout=120
        )
        assert restarted.returncode == 0, restarted.stderr

        wait_for_position(views, POSITIONS, head, 120, stream.logs)
        assert all(p.alive() for p in processes), "nobody restarted them"
        assert_every_stored_event_is_on_its_topic(stream, network)
        assert_views_hold_every_event_once(network, views, tmp_path)
    finally:
        stream.stop_all()
        runtime.close()
