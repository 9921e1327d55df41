"""What the streaming tests share: `puja relay` / `puja consume` as real subprocesses, a burst of stored events,
waiting on tracked positions (bounded, never on time alone), reading a topic with a raw consumer, and a fresh
in-process rebuild to compare the streamed views with."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import PUJA, ROOT, days_ago, free_port, innovation_fields
from kafka import KafkaConsumer
from sqlalchemy import func, select

from consumers.relay import topics
from domain import regions
from domain.acting import Actor, acting_as
from domain.innovation import Innovation
from domain.replication import Replication
from projections import queries
from projections.audit import AuditProjection
from projections.index import IndexProjection
from projections.runner import ProjectionRunner
from projections.store import ViewStore
from projections.tables import audit_events as audit_table
from projections.tracking import read_tracked
from service.network import InnovationNetwork, read_records, registry_rows

BROKER = str(ROOT / "scripts" / "kafka-broker")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `condition` until it returns something true (returned), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)  # polling a condition, bounded by the deadline


class Puja:
    """One `puja ...` command in its own process, with the streaming environment of a test."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:
        self.args = args
        self.log = log
        with open(log, "a") as out:
            self.process = subprocess.Popen(
                [PUJA, *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish a batch, commit an offset or close a connection."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class Stream:
    """A store in a temporary directory streamed through one broker under a topic prefix of its own."""

    def __init__(self, tmp_path: Path, bootstrap: str, **extra_env: str) -> None:
        self.tmp_path = tmp_path
        self.bootstrap = bootstrap
        self.prefix = f"s{uuid.uuid4().hex[:10]}"
        self.data_dir = tmp_path / "var"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PUJA_DATA_DIR": str(self.data_dir),
            "PUJA_KAFKA_BOOTSTRAP": bootstrap,
            "PUJA_KAFKA_TOPIC_PREFIX": self.prefix,
            "PUJA_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        self.processes: list[Puja] = []

    def settings(self) -> Any:
        from app.settings import Settings

        return Settings.from_env(self.env)

    def start(self, *args: str) -> Puja:
        process = Puja(self.env, *args, log=self.tmp_path / f"{'-'.join(args)}.log")
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log.name}\n{p.log.read_text()[-3000:]}" for p in self.processes if p.log.exists()
        )


def tracked(views: ViewStore, name: str) -> int:
    with views.connect() as conn:
        found = read_tracked(conn, [name]).get(name)
    return found.position if found else 0


def wait_for_position(
    views: ViewStore, names: list[str], position: int, timeout: float, logs: Any = None
) -> None:
    try:
        wait_until(
            lambda: all(tracked(views, n) >= position for n in names),
            timeout,
            f"{names} to reach position {position}",
        )
    except AssertionError as error:
        now = {n: tracked(views, n) for n in names}
        raise AssertionError(f"{error}; positions {now}\n{logs() if logs else ''}") from None


def record_burst(network: InnovationNetwork, events: int, seed: int = 3) -> int:
    """At least `events` events, saved a few innovations and their replications at a time; returns how many."""
    rng = random.Random(seed)
    kabkota = [r.code for r in regions.all_regions() if not r.is_province]
    stored = 0
    with acting_as(Actor("burst", "admin", uuid.uuid4().hex)):
        while stored < events:
            aggregates: list[Any] = []
            for _ in range(5):
                region = rng.choice(kabkota)
                innovation = Innovation.register(**innovation_fields(region=region))
                aggregates.append(innovation)
                for adopter in rng.sample([c for c in kabkota if c != region], 9):
                    replication = Replication.propose(
                        innovation=innovation,
                        adopting_region=adopter,
                        facilitator="Kementerian Dalam Negeri",
                        rationale="Kebutuhan layanan serupa.",
                        proposed_on=days_ago(60),
                    )
                    replication.sign_agreement(document="pks", document_number="1", signed_on=days_ago(50))
                    replication.advance_adoption(stage="uji_coba", effective_on=days_ago(40))
                    aggregates.append(replication)
            registry = [row for a in aggregates for row in registry_rows(a)]
            stored += len(network.save(*aggregates, registry=registry))
    return stored


def read_topics(bootstrap: str, prefix: str, wanted: set[str], timeout: float = 60.0) -> list[Any]:
    """Every message of the prefix's topics from the start (a raw consumer of a group of its own), until
    each wanted event id was seen."""
    consumer = KafkaConsumer(
        *topics(prefix),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"reader-{uuid.uuid4().hex}",
    )
    messages: list[Any] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not wanted <= seen and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                messages.extend(batch)
                seen.update(dict(m.headers)["ce_id"].decode() for m in batch)
    finally:
        consumer.close()
    return messages


def rebuilt(network: InnovationNetwork, path: Path) -> ViewStore:
    """A fresh in-process rebuild of both projections from the whole record."""
    store = ViewStore(f"sqlite:///{path}")
    store.create_all()
    ProjectionRunner(
        store,
        lambda after, limit: read_records(network, after, limit),
        network.head_position,
        [IndexProjection(), AuditProjection()],
    ).catch_up()
    return store


def assert_views_hold_every_event_once(
    network: InnovationNetwork, streamed: ViewStore, tmp_path: Path
) -> None:
    """Audit rows = stored events, no id twice; index views equal a fresh in-process rebuild."""
    head = network.head_position()
    stored = {r.id for r in read_records(network, 0, head + 1)}
    with streamed.connect() as conn:
        rows, distinct = conn.execute(
            select(func.count(), func.count(audit_table.c.event_id.distinct()))
        ).one()
        ids = set(conn.execute(select(audit_table.c.event_id)).scalars())
    assert rows == distinct == len(stored) == head, (rows, distinct, len(stored), head)
    assert ids == stored
    local = rebuilt(network, tmp_path / f"rebuilt-{uuid.uuid4().hex[:6]}.sqlite")
    try:
        for query in (queries.list_replications, queries.list_innovations):
            theirs, ours = query(streamed, limit=head + 10).items, query(local, limit=head + 10).items
            differing = [(a, b) for a, b in zip(theirs, ours, strict=False) if a != b][:1]
            assert len(theirs) == len(ours) and not differing, (
                query.__name__,
                len(theirs),
                len(ours),
                differing,
            )
        assert (
            queries.audit_events(streamed, limit=head + 10).items
            == queries.audit_events(local, limit=head + 10).items
        )
    finally:
        local.dispose()


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)
