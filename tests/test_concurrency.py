"""Concurrent commands on one real SQLite event store (api.md: "Without If-Match, concurrent commands are
still safe: none is lost and none overwrites another"; domain.md rule 5 "also under concurrent requests").

Threads start together on a barrier; each acts as its own actor (context variables do not cross threads).
The last tests replay one dangerous interleaving deterministically: a competing command lands between the
service's reads and its save, exactly where a thread race would put it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from uuid import UUID

import pytest
from conftest import days_ago, innovation_fields

from domain.acting import Actor, acting_as
from domain.errors import Rule, RuleViolation
from domain.innovation import Innovation
from service.network import InnovationNetwork, read_records

THREADS = 8
ADOPTERS = ["35.05", "35.06", "35.07", "35.08", "35.09", "35.10", "35.11", "35.12"]


# --- helpers ----------------------------------------------------------------------------------


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` threads released together; each result is a value or the exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def thread(index: int) -> None:
        with acting_as(Actor(f"operator-{index}", "operator", f"req-thread-{index}")):
            barrier.wait()
            try:
                results[index] = work(index)
            except Exception as error:  # collected, and asserted by the test
                results[index] = error

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a command never returned"
    return results


def rules_of(results: list[Any]) -> list[Rule]:
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, RuleViolation)]
    assert not unexpected, f"unexpected errors: {unexpected!r}"
    return [r.rule for r in results if isinstance(r, RuleViolation)]


def successes(results: list[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, Exception)]


def register(network: InnovationNetwork, **overrides: Any) -> Innovation:
    with acting_as(Actor("setup", "admin", "req-setup")):
        innovation: Innovation = network.register_innovation(
            **innovation_fields(started_on=days_ago(400), **overrides)
        ).aggregate
    return innovation


def propose(
    network: InnovationNetwork, innovation_id: UUID, adopting: str, on: date, source: str | None = None
) -> UUID:
    replication_id: UUID = network.propose_replication(
        innovation_id=innovation_id,
        adopting_region=adopting,
        source_region=source,
        rationale="Seen working next door.",
        proposed_on=on,
    ).aggregate.id
    return replication_id


def adopter_at_penerapan(network: InnovationNetwork, innovation_id: UUID, adopting: str) -> UUID:
    with acting_as(Actor("setup", "admin", "req-setup")):
        replication_id = propose(network, innovation_id, adopting, days_ago(300))
        network.sign_agreement(replication_id, document="pks", document_number="1", signed_on=days_ago(290))
        network.advance_adoption(replication_id, stage="uji_coba", effective_on=days_ago(280))
        network.advance_adoption(replication_id, stage="penerapan", effective_on=days_ago(270))
    return replication_id


def all_records(network: InnovationNetwork) -> list[Any]:
    return read_records(network, 0, 100_000)


def proposals_of(network: InnovationNetwork, innovation_id: UUID) -> list[Any]:
    return [
        r
        for r in all_records(network)
        if r.type == "ReplicationProposed" and r.data["innovation_id"] == str(innovation_id)
    ]


def position_of(network: InnovationNetwork, aggregate_id: UUID, event_type: str) -> int:
    (position,) = [
        r.position
        for r in all_records(network)
        if r.aggregate_id == str(aggregate_id) and r.type == event_type
    ]
    return position


# --- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("adopting", ["35.05", "35", "35.71"])
def test_parallel_proposals_by_one_region_store_exactly_one(
    network: InnovationNetwork, adopting: str
) -> None:
    innovation = register(network)
    results = run_together(THREADS, lambda i: propose(network, innovation.id, adopting, days_ago(10)))

    assert len(successes(results)) == 1
    assert rules_of(results) == [Rule.DUPLICATE_OPEN_REPLICATION] * (THREADS - 1)
    (stored,) = proposals_of(network, innovation.id)
    assert stored.aggregate_id == str(successes(results)[0])
    assert [row.adopting_region for row in network.registry_of(innovation.id)] == [adopting]


def test_parallel_proposals_by_different_regions_are_all_stored(network: InnovationNetwork) -> None:
    innovation = register(network)
    results = run_together(THREADS, lambda i: propose(network, innovation.id, ADOPTERS[i], days_ago(10)))

    assert rules_of(results) == []
    assert sorted(r.data["adopting_region"] for r in proposals_of(network, innovation.id)) == ADOPTERS


def test_parallel_modifications_of_one_replication_are_all_stored(network: InnovationNetwork) -> None:
    innovation = register(network)
    with acting_as(Actor("setup", "admin", "req-setup")):
        replication_id = propose(network, innovation.id, "35.05", days_ago(30))
    per_thread = 10

    def record(index: int) -> list[int]:
        versions = []
        for k in range(per_thread):
            outcome = network.record_modification(
                replication_id,
                component="sdm",
                nature="penambahan",
                core=False,
                description=f"{index}/{k}",
                reason="More staff",
                recorded_on=days_ago(5),
            )
            versions.append(outcome.aggregate.version)
        return versions

    results = run_together(THREADS, record)

    assert rules_of(results) == []
    expected_count = 1 + THREADS * per_thread
    records = [r for r in all_records(network) if r.aggregate_id == str(replication_id)]
    assert [r.version for r in records] == list(range(1, expected_count + 1))
    assert sorted(v for versions in results for v in versions) == list(range(2, expected_count + 1))
    modifications = network.replication(replication_id).modifications
    assert sorted(m["description"] for m in modifications) == sorted(
        f"{i}/{k}" for i in range(THREADS) for k in range(per_thread)
    )
    for r in records[1:]:  # each event carries the actor of the thread that caused it
        thread = r.data["description"].split("/")[0]
        assert (r.actor, r.request_id) == (f"operator-{thread}", f"req-thread-{thread}")


@pytest.mark.parametrize("round_", range(4))
def test_retirement_racing_proposals_leaves_no_proposal_after_it(
    network: InnovationNetwork, round_: int
) -> None:
    innovation = register(network)

    def act(index: int) -> Any:
        if index == round_ % THREADS:
            return network.retire_innovation(innovation.id, "Programme ended", days_ago(1))
        return propose(network, innovation.id, ADOPTERS[index], days_ago(1))

    results = run_together(THREADS, act)

    assert not isinstance(results[round_ % THREADS], Exception)
    retired_at = position_of(network, innovation.id, "InnovationRetired")
    stored = proposals_of(network, innovation.id)
    assert all(p.position < retired_at for p in stored)
    assert len(stored) == len(successes(results)) - 1
    assert set(rules_of(results)) <= {Rule.INNOVATION_NOT_REPLICABLE}
    assert len(rules_of(results)) + len(stored) == THREADS - 1


@pytest.mark.parametrize("round_", range(4))
def test_discontinued_source_racing_second_generation_proposals_leaves_none_after_it(
    network: InnovationNetwork, round_: int
) -> None:
    innovation = register(network)
    source_id = adopter_at_penerapan(network, innovation.id, "35.05")
    adopters = [a for a in ADOPTERS if a != "35.05"]

    def act(index: int) -> Any:
        if index == 0:
            return network.discontinue_replication(source_id, reason="Budget cut", effective_on=days_ago(1))
        return propose(network, innovation.id, adopters[index - 1], days_ago(1), source="35.05")

    results = run_together(THREADS, act)

    assert not isinstance(results[0], Exception)
    discontinued_at = position_of(network, source_id, "ReplicationDiscontinued")
    second_generation = [
        p for p in proposals_of(network, innovation.id) if p.data["source_region"] == "35.05"
    ]
    assert all(p.position < discontinued_at for p in second_generation)
    assert set(rules_of(results)) <= {Rule.INVALID_SOURCE}
    assert len(rules_of(results)) + len(second_generation) == THREADS - 1


# --- one interleaving, replayed deterministically ---------------------------------------------


@contextmanager
def landing_after_registry_read(
    network: InnovationNetwork, competing: Callable[[], Any]
) -> Iterator[list[Any]]:
    """Run `competing` (as another actor) right after the first read of the replication registry, i.e.
    after a proposal has read the innovation and the registry but before it is saved."""
    original = network.registry_of
    fired: list[Any] = []
    armed = [True]

    def registry_of(innovation_id: UUID, *args: Any, **kwargs: Any) -> Any:
        rows = original(innovation_id, *args, **kwargs)
        if armed.pop() if armed else False:
            with acting_as(Actor("other-request", "operator", "req-other")):
                fired.append(competing())
        return rows

    network.registry_of = registry_of  # type: ignore[method-assign]
    try:
        yield fired
    finally:
        del network.registry_of


def test_discontinuation_between_reads_and_save_keeps_the_proposal_out(network: InnovationNetwork) -> None:
    innovation = register(network)
    source_id = adopter_at_penerapan(network, innovation.id, "35.05")

    with (
        acting_as(Actor("op", "operator", "req-1")),
        landing_after_registry_read(
            network,
            lambda: network.discontinue_replication(source_id, reason="Stopped", effective_on=days_ago(2)),
        ) as fired,
        pytest.raises(RuleViolation) as caught,
    ):
        propose(network, innovation.id, "35.06", days_ago(1), source="35.05")

    assert fired, "the competing discontinuation did not run"
    assert caught.value.rule == Rule.INVALID_SOURCE
    assert [p.data["adopting_region"] for p in proposals_of(network, innovation.id)] == ["35.05"]


def test_retirement_between_reads_and_save_keeps_the_proposal_out(network: InnovationNetwork) -> None:
    innovation = register(network)

    with (
        acting_as(Actor("op", "operator", "req-1")),
        landing_after_registry_read(
            network, lambda: network.retire_innovation(innovation.id, "Ended", days_ago(2))
        ) as fired,
        pytest.raises(RuleViolation) as caught,
    ):
        propose(network, innovation.id, "35.06", days_ago(1))

    assert fired
    assert caught.value.rule == Rule.INNOVATION_NOT_REPLICABLE
    assert proposals_of(network, innovation.id) == []


def test_competing_proposal_between_reads_and_save_makes_this_one_a_duplicate(
    network: InnovationNetwork,
) -> None:
    innovation = register(network)

    with (
        acting_as(Actor("op", "operator", "req-1")),
        landing_after_registry_read(
            network, lambda: propose(network, innovation.id, "35.06", days_ago(2))
        ) as fired,
        pytest.raises(RuleViolation) as caught,
    ):
        propose(network, innovation.id, "35.06", days_ago(1))

    assert caught.value.rule == Rule.DUPLICATE_OPEN_REPLICATION
    (stored,) = proposals_of(network, innovation.id)
    assert stored.aggregate_id == str(fired[0])
    assert stored.actor == "other-request"


def test_a_worker_starts_while_another_process_holds_the_event_stores_write_lock(tmp_path: Any) -> None:
    """A gunicorn worker (re)booting during a burst of commands must not fail on the embedded store's write lock:
    a failed boot makes gunicorn stop the whole server. Opening reads only when the record is fully chained."""
    import sqlite3

    from app.runtime import Runtime
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path / "var")
    first = Runtime.open(settings)
    with acting_as(Actor("setup", "admin", "req-setup")):
        first.network.register_innovation(**innovation_fields())
    first.close()

    writer = sqlite3.connect(settings.event_store_path, timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of storing commands
        opened = Runtime.open(settings)
        try:
            assert opened.network.head_position() == 1
        finally:
            opened.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_save_waits_for_another_processs_write_lock_and_fails_only_after_the_lock_timeout(
    tmp_path: Any,
) -> None:
    """While another process holds the embedded store's write lock, a save keeps trying (every millisecond,
    service/recorder.py) and is stored once the lock is free; held past the store's lock timeout, the save fails
    and stores nothing."""
    import sqlite3

    from service.store import sqlite_env

    path = tmp_path / "events.sqlite"
    network = InnovationNetwork(env={**sqlite_env(path), "SQLITE_LOCK_TIMEOUT": "1"})
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        saved: list[Any] = []
        failed: list[BaseException] = []

        def register(name: str) -> None:
            try:
                with acting_as(Actor("setup", "admin", f"req-{name}")):
                    saved.append(network.register_innovation(**innovation_fields(name=name)))
            except Exception as error:
                failed.append(error)

        waiting = threading.Thread(target=register, args=("Menunggu",))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive() and not saved  # still trying, nothing stored yet
        other.execute("COMMIT")
        waiting.join(5)
        assert not failed and len(saved) == 1 and network.head_position() == 1

        other.execute("BEGIN IMMEDIATE")
        register("Terlambat")  # the lock is never let go within the 1 s timeout
        assert len(failed) == 1 and "locked" in str(failed[0])
        other.execute("ROLLBACK")
        assert network.head_position() == 1
    finally:
        other.close()
        network.close()


def test_postgres_saves_send_no_notify_and_the_store_offers_no_subscription(
    network: InnovationNetwork,
) -> None:
    """Nothing listens: projections and the relay read the notification log from their tracked positions."""
    from service.postgres import PostgresStoreRecorder

    recorder = network.recorder
    if not isinstance(recorder, PostgresStoreRecorder):
        pytest.skip("PostgreSQL only")
    register(network)
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE proname LIKE %s",
            (f"{recorder.events_table_name}_%append%",),
        )
        functions = {row["proname"]: row["prosrc"] for row in curs.fetchall()}
    assert len(functions) == 3
    assert all("LOCK TABLE" in source or "try_append" in name for name, source in functions.items())
    assert not any("NOTIFY" in source.upper() for source in functions.values())
    with pytest.raises(NotImplementedError):
        recorder.subscribe()
