"""The hash chain over the event store (api.md "Audit"), on both backends: every stored event carries `hash`
and `prev_hash` as the spec defines them, the chain follows positions exactly (also through the savepoints of a
group commit), and `verify` finds each kind of tampering done with raw SQL on the stored rows, at the right
position."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from conftest import days_ago, innovation_fields
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.acting import Actor, acting_as
from domain.innovation import Innovation
from domain.published import GENESIS_HASH, EventRecord
from service import audit
from service.chain import CanonicalParts, Link
from service.group_commit import PendingSave
from service.network import InnovationNetwork, read_records
from service.store import libpq_url, open_network

# --- a store with some history ----------------------------------------------------------------


def record_history(network: InnovationNetwork) -> None:
    """Eight events of two innovations and a replication, one with non-ASCII text."""
    with acting_as(Actor("operator-jatim", "operator", "req-history")):
        innovation = network.register_innovation(**innovation_fields()).aggregate
        other = network.register_innovation(**innovation_fields(name="Sekolah Lapang Iklim", region="35.07"))
        replication = network.propose_replication(
            innovation_id=innovation.id, adopting_region="35.05", rationale="x", proposed_on=days_ago(30)
        ).aggregate
        network.sign_agreement(replication.id, document="pks", document_number="1", signed_on=days_ago(20))
        network.revise_innovation(innovation.id, {"name": "Puskesmas Keliling — Désa"}, "rename")
        network.advance_adoption(replication.id, stage="uji_coba", effective_on=days_ago(10))
        network.revise_innovation(other.aggregate.id, {"digital": True}, "online")
        network.retire_innovation(other.aggregate.id, "merged", days_ago(1))


@pytest.fixture
def store(network: InnovationNetwork) -> InnovationNetwork:
    record_history(network)
    assert network.head_position() == 8
    return network


class RawStore:
    """The stored rows, reached behind the service's back: the SQLite file, or the PostgreSQL database."""

    def __init__(self, network: InnovationNetwork, database_url: str | None, sqlite_path: Any) -> None:
        self.postgres = database_url is not None
        self.url = database_url
        self.path = sqlite_path
        self.position = "notification_id" if self.postgres else "position"
        self.table = network.recorder.events_table_name  # type: ignore[attr-defined]

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        statement = statement.replace("{position}", self.position).replace("stored_events", self.table)
        if self.postgres:
            assert self.url is not None
            with psycopg.connect(libpq_url(self.url)) as conn:
                rows = conn.execute(statement.replace("?", "%s"), params)
                return rows.fetchall() if rows.description else []
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                cursor = conn.execute(statement, params)
                return cursor.fetchall()
        finally:
            conn.close()

    def row(self, position: int) -> tuple[Any, ...]:
        (row,) = self.execute(
            "SELECT originator_id, originator_version, topic, state, hash, prev_hash "
            "FROM stored_events WHERE {position} = ?",
            (position,),
        )
        return tuple(row)

    def move(self, source: int, target: int) -> None:
        self.execute("UPDATE stored_events SET {position} = ? WHERE {position} = ?", (target, source))


@pytest.fixture
def raw(store: InnovationNetwork, database_url: str | None, tmp_path: Any) -> RawStore:
    return RawStore(store, database_url, tmp_path / "events.sqlite")


def bad(verdict: audit.Verdict) -> tuple[bool, int | None]:
    return verdict.ok, verdict.first_bad_position


# --- the chain as stored ----------------------------------------------------------------------


def test_every_event_links_to_the_one_before_it_by_the_spec_formula(store: InnovationNetwork) -> None:
    records = read_records(store, 0, 100)
    assert [r.position for r in records] == list(range(1, 9))
    previous = GENESIS_HASH
    for record in records:
        exported = record.to_dict()
        canonical = json.dumps(
            {k: v for k, v in exported.items() if k not in ("hash", "prev_hash")},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert record.prev_hash == previous
        assert record.hash == hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()
        previous = record.hash
    assert "Désa" in records[4].canonical()  # non-ASCII kept as it is, not \u-escaped


def test_canonical_parts_put_together_are_the_canonical_form(store: InnovationNetwork) -> None:
    for record in read_records(store, 0, 100):
        assert CanonicalParts.of(record).canonical(record.position) == record.canonical()


def test_a_whole_store_verifies(store: InnovationNetwork) -> None:
    verdict = audit.verify(store, page=3)
    assert verdict.to_dict() == {
        "ok": True,
        "checked": 8,
        "last_position": 8,
        "first_bad_position": None,
        "problem": None,
    }


def test_an_empty_store_verifies(network: InnovationNetwork) -> None:
    assert bad(audit.verify(network)) == (True, None)
    assert audit.head(network) == Link(0, GENESIS_HASH)


def test_the_head_is_the_last_position_and_its_hash(store: InnovationNetwork) -> None:
    last = read_records(store, 7, 1)[0]
    assert audit.head(store) == Link(8, last.hash or "")


# --- group commit: the chain follows positions through rolled-back savepoints --------------------


def new_innovation_events(network: InnovationNetwork, name: str) -> list[StoredEvent]:
    with acting_as(Actor("batch", "admin", f"req-{name}")):
        innovation = Innovation.register(**innovation_fields(name=name))
    return [network.mapper.to_stored_event(e) for e in innovation.collect_events()]


def test_a_save_rolled_back_inside_a_group_commit_leaves_the_chain_whole(store: InnovationNetwork) -> None:
    recorder: Any = store.recorder
    first = new_innovation_events(store, "First")
    # A second copy of an event already stored: its unique (aggregate, version) breaks, its savepoint rolls back.
    (already,) = store.recorder.select_notifications(start=1, limit=1)
    duplicate = [StoredEvent(already.originator_id, 1, already.topic, already.state)]
    last = new_innovation_events(store, "Last")
    batch = [
        PendingSave(events, {"canonical_parts": recorder.canonical_parts(events)})
        for events in (first, duplicate, last)
    ]
    recorder._write_batch(batch)

    assert [p.positions for p in batch] == [[9], None, [10]]
    assert isinstance(batch[1].error, IntegrityError)
    assert bad(audit.verify(store)) == (True, None)
    assert read_records(store, 9, 1)[0].prev_hash == read_records(store, 8, 1)[0].hash


def test_concurrent_commands_with_conflicts_keep_one_unbroken_chain(network: InnovationNetwork) -> None:
    import threading

    with acting_as(Actor("setup", "admin", "req-setup")):
        innovation = network.register_innovation(**innovation_fields()).aggregate
    barrier = threading.Barrier(8)
    outcomes: list[Any] = []

    def propose(index: int) -> None:
        # Half of them propose the same adopting region: rule 5 refuses all but one, some inside a group.
        with acting_as(Actor(f"operator-{index}", "operator", f"req-{index}")):
            barrier.wait()
            try:
                outcomes.append(
                    network.propose_replication(
                        innovation_id=innovation.id,
                        adopting_region="35.05" if index % 2 else f"35.{6 + index:02d}",
                        rationale="x",
                        proposed_on=days_ago(5),
                    )
                )
            except Exception as error:
                outcomes.append(error)

    threads = [threading.Thread(target=propose, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stored = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(stored) == 5  # four distinct regions and one of the four for 35.05
    verdict = audit.verify(network)
    assert verdict.ok and verdict.checked == network.head_position() == 6


# --- tampering, found at the right position ---------------------------------------------------


def test_a_changed_payload_byte_is_found_at_its_position(store: InnovationNetwork, raw: RawStore) -> None:
    originator, version, topic, state, digest, prev = raw.row(5)
    state = bytearray(state)
    offset = state.index(b"Puskesmas")
    state[offset] = ord("B")  # "Buskesmas": still valid JSON, a different name
    raw.execute("UPDATE stored_events SET state = ? WHERE {position} = ?", (bytes(state), 5))
    verdict = audit.verify(store)
    assert bad(verdict) == (False, 5)
    assert (verdict.checked, verdict.last_position) == (4, 4)
    assert "altered" in (verdict.problem or "")


def test_a_payload_that_no_longer_decodes_is_found_at_its_position(
    store: InnovationNetwork, raw: RawStore
) -> None:
    state = raw.row(3)[3]
    raw.execute("UPDATE stored_events SET state = ? WHERE {position} = ?", (bytes(state)[:-2], 3))
    verdict = audit.verify(store)
    assert bad(verdict) == (False, 3)
    assert "decoded" in (verdict.problem or "")


def test_a_deleted_event_is_found_at_its_position(store: InnovationNetwork, raw: RawStore) -> None:
    raw.execute("DELETE FROM stored_events WHERE {position} = ?", (4,))
    verdict = audit.verify(store)
    assert bad(verdict) == (False, 4)
    assert "missing" in (verdict.problem or "")


def test_a_deleted_event_with_the_rest_renumbered_is_found(store: InnovationNetwork, raw: RawStore) -> None:
    raw.execute("DELETE FROM stored_events WHERE {position} = ?", (4,))
    for position in range(5, 9):
        raw.move(position, position - 1)
    assert bad(audit.verify(store)) == (False, 4)


def test_two_swapped_events_are_found_at_the_first_of_them(store: InnovationNetwork, raw: RawStore) -> None:
    raw.move(6, -1)
    raw.move(7, 6)
    raw.move(-1, 7)
    assert bad(audit.verify(store)) == (False, 6)


def forged_row(store: InnovationNetwork, position: int, prev_hash: str) -> tuple[Any, ...]:
    """A registration nobody made, built from a real one's payload, with a correctly computed link."""
    template = store.recorder.select_notifications(start=1, limit=1)[0]
    forged = StoredEvent(uuid4(), 1, template.topic, template.state)
    record = EventRecord.of(store.mapper.to_domain_event(forged), position)
    digest = record.expected_hash(prev_hash)
    return (position, forged.originator_id, 1, template.topic, template.state, digest, prev_hash)


def insert_row(raw: RawStore, row: tuple[Any, ...]) -> None:
    if not raw.postgres:  # the SQLite recorder keeps ids as hex text
        row = (row[0], row[1].hex, *row[2:])
    raw.execute(
        "INSERT INTO stored_events ({position}, originator_id, originator_version, topic, state, hash, prev_hash) "
        "VALUES (?,?,?,?,?,?,?)",
        row,
    )


def shift_up_from(raw: RawStore, position: int) -> None:
    for moved in range(8, position - 1, -1):
        raw.move(moved, moved + 1)


def test_a_forged_event_inserted_with_a_made_up_hash_is_found_at_its_position(
    store: InnovationNetwork, raw: RawStore
) -> None:
    shift_up_from(raw, 3)
    row = forged_row(store, 3, raw.row(2)[4])
    insert_row(raw, row[:5] + ("f" * 64, row[6]))
    assert bad(audit.verify(store)) == (False, 3)


def test_a_forged_event_inserted_with_a_correct_link_breaks_the_next_link(
    store: InnovationNetwork, raw: RawStore
) -> None:
    shift_up_from(raw, 3)
    insert_row(raw, forged_row(store, 3, raw.row(2)[4]))
    verdict = audit.verify(store)
    assert bad(verdict) == (False, 4)  # the forged event itself is consistent; the one after it no longer is
    assert "prev_hash" in (verdict.problem or "")


def test_a_truncated_tail_is_found_only_against_a_published_head(
    store: InnovationNetwork, raw: RawStore
) -> None:
    published = audit.head(store)
    raw.execute("DELETE FROM stored_events WHERE {position} > ?", (6,))
    assert bad(audit.verify(store)) == (True, None)  # what is left is a consistent chain
    verdict = audit.verify(store, published)
    assert bad(verdict) == (False, 7)
    assert verdict.last_position == 6
    assert "published head" in (verdict.problem or "")


def test_a_whole_rewritten_chain_is_found_only_against_a_published_head(
    store: InnovationNetwork, raw: RawStore
) -> None:
    published = audit.head(store)
    originator, version, topic, state, _, prev = raw.row(2)
    changed = bytes(state).replace(b'"35.07"', b'"35.08"')
    assert changed != bytes(state)
    raw.execute("UPDATE stored_events SET state = ? WHERE {position} = ?", (changed, 2))
    # Whoever changed it recomputes every link from there on, as anyone can: the formula is public.
    previous = prev
    for notification in store.recorder.select_notifications(start=2, limit=100):
        digest = store.record_of(notification).expected_hash(previous)
        raw.execute(
            "UPDATE stored_events SET hash = ?, prev_hash = ? WHERE {position} = ?",
            (digest, previous, notification.id),
        )
        previous = digest
    assert bad(audit.verify(store)) == (True, None)
    verdict = audit.verify(store, published)
    assert bad(verdict) == (False, 8)
    assert "rewritten" in (verdict.problem or "")


def test_a_head_is_parsed_strictly() -> None:
    assert audit.parse_head(f"12:{'a' * 64}") == Link(12, "a" * 64)
    for text in ("12", f"x:{'a' * 64}", f"12:{'A' * 64}", f"12:{'a' * 63}", ""):
        with pytest.raises(ValueError):
            audit.parse_head(text)


# --- a store made before the chain existed ------------------------------------------------------


def test_a_store_made_before_the_chain_is_linked_when_it_is_opened(
    store: InnovationNetwork, raw: RawStore, database_url: str | None, tmp_path: Any
) -> None:
    stored = [(r.hash, r.prev_hash) for r in read_records(store, 0, 100)]
    raw.execute("ALTER TABLE stored_events DROP COLUMN prev_hash")
    raw.execute("ALTER TABLE stored_events DROP COLUMN hash")
    reopened = open_network(database_url, tmp_path / "events.sqlite")
    try:
        assert [(r.hash, r.prev_hash) for r in read_records(reopened, 0, 100)] == stored
        with acting_as(Actor("operator-jatim", "operator", "req-after")):
            reopened.register_innovation(**innovation_fields(name="Sesudah"))
        assert bad(audit.verify(reopened)) == (True, None)
        assert audit.verify(reopened).checked == 9
    finally:
        reopened.close()
    again = open_network(database_url, tmp_path / "events.sqlite")  # nothing left to link
    try:
        assert again.recorder.link_unchained() == 0  # type: ignore[attr-defined]
    finally:
        again.close()
