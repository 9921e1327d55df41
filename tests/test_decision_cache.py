"""Commands decide on the aggregate as cached, without reading the events stored since; a decision taken on a
state that another process has moved past must be taken again on the latest state, and the cache must never
hold a state that was changed by a decision that was not stored (service/repository.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from conftest import days_ago, innovation_fields

from domain.acting import Actor, acting_as
from domain.errors import RuleViolation, VersionConflict
from service.network import InnovationNetwork
from service.store import open_network


@pytest.fixture
def other(tmp_path: Any, database_url: str | None, network: InnovationNetwork) -> Iterator[InnovationNetwork]:
    """Another process on the same event store (a second gunicorn worker, say)."""
    app = open_network(database_url, tmp_path / "events.sqlite")
    yield app
    app.close()


@pytest.fixture
def proposed(network: InnovationNetwork) -> Iterator[UUID]:
    with acting_as(Actor("op", "admin", "req-setup")):
        innovation = network.register_innovation(**innovation_fields(started_on=days_ago(400))).aggregate
        replication_id: UUID = network.propose_replication(
            innovation_id=innovation.id,
            adopting_region="35.05",
            rationale="Seen working next door.",
            proposed_on=days_ago(300),
        ).aggregate.id
        yield replication_id


def cached(network: InnovationNetwork, aggregate_id: UUID) -> Any:
    return network.repository.latest(aggregate_id, read=False)  # type: ignore[attr-defined]


def test_a_command_refused_on_the_stale_cached_state_is_decided_again_on_the_latest(
    network: InnovationNetwork, other: InnovationNetwork, proposed: UUID
) -> None:
    assert cached(network, proposed).version == 1
    other.sign_agreement(proposed, document="pks", document_number="1", signed_on=days_ago(290))

    # On the cached state (no agreement yet) the domain refuses a trial; on the latest it is allowed.
    outcome = network.advance_adoption(proposed, stage="uji_coba", effective_on=days_ago(280))

    assert outcome.aggregate.version == 3
    assert outcome.aggregate.status == "uji_coba"
    assert other.replication(proposed).version == 3


def test_a_command_allowed_only_on_the_stale_cached_state_is_refused(
    network: InnovationNetwork, other: InnovationNetwork, proposed: UUID
) -> None:
    assert cached(network, proposed).version == 1
    other.reject_replication(proposed, reason="Not now", rejected_on=days_ago(295))

    # On the cached state (proposed) an agreement could be signed; the replication is rejected by now.
    with pytest.raises(RuleViolation):
        network.sign_agreement(proposed, document="pks", document_number="1", signed_on=days_ago(290))

    latest = network.replication(proposed)
    assert (latest.version, latest.status) == (2, "ditolak")
    assert other.replication(proposed).version == 2


def test_the_expected_version_is_checked_against_the_latest_state(
    network: InnovationNetwork, other: InnovationNetwork, proposed: UUID
) -> None:
    other.sign_agreement(proposed, document="pks", document_number="1", signed_on=days_ago(290))

    # `if_version` names the latest version, which the cache has not seen: allowed.
    outcome = network.advance_adoption(proposed, stage="uji_coba", effective_on=days_ago(280), if_version=2)
    assert outcome.aggregate.version == 3
    # And the cached version 1 is no longer accepted.
    with pytest.raises(VersionConflict):
        network.record_modification(
            proposed,
            if_version=1,
            component="sdm",
            nature="penyesuaian",
            core=False,
            description="Fewer staff",
            reason="Budget",
            recorded_on=days_ago(270),
        )


def test_the_cache_holds_only_stored_states_and_never_changes_one(
    network: InnovationNetwork, proposed: UUID
) -> None:
    before = cached(network, proposed)
    state = dict(vars(before))

    with pytest.raises(RuleViolation):  # a trial before any agreement
        network.advance_adoption(proposed, stage="uji_coba", effective_on=days_ago(280))
    with pytest.raises(VersionConflict):
        network.sign_agreement(
            proposed, document="pks", document_number="1", signed_on=days_ago(290), if_version=5
        )
    assert cached(network, proposed) is before
    assert vars(before) == state

    outcome = network.sign_agreement(proposed, document="pks", document_number="1", signed_on=days_ago(290))

    assert vars(before) == state and before.version == 1  # the published state was copied, not changed
    after = cached(network, proposed)
    assert after.version == 2 and after.status == "disepakati"
    assert outcome.aggregate.version == 2


def test_reads_see_what_another_process_stored(
    network: InnovationNetwork, other: InnovationNetwork, proposed: UUID
) -> None:
    assert network.replication(proposed).version == 1
    other.sign_agreement(proposed, document="pks", document_number="1", signed_on=days_ago(290))

    read = network.replication(proposed)

    assert (read.version, read.status) == (2, "disepakati")
    read.status = "changed by the reader"  # a reader's copy is its own
    assert cached(network, proposed).status == "disepakati"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_snapshot_that_cannot_be_written_never_makes_a_stored_command_be_stored_again(
    tmp_path: Any, network: InnovationNetwork, proposed: UUID
) -> None:
    import sqlite3

    from service.network import SNAPSHOT_INTERVAL

    # The store refuses every snapshot (a real constraint failure, raised by SQLite itself).
    with sqlite3.connect(tmp_path / "events.sqlite") as raw:
        raw.execute(
            "CREATE TRIGGER refuse_snapshots BEFORE INSERT ON stored_snapshots "
            "BEGIN SELECT RAISE(ABORT, 'snapshots refused'); END"
        )
    with acting_as(Actor("op", "admin", "req-mod")):
        network.sign_agreement(proposed, document="pks", document_number="1", signed_on=days_ago(290))
        while network.replication(proposed).version < SNAPSHOT_INTERVAL - 1:
            network.record_modification(
                proposed,
                component="sdm",
                nature="penyesuaian",
                core=False,
                description="Adjusted to local staff.",
                reason="Fewer staff.",
                recorded_on=days_ago(200),
            )
        # This command's event is the one a snapshot is due after.
        outcome = network.record_modification(
            proposed,
            component="sdm",
            nature="penyesuaian",
            core=False,
            description="The last one.",
            reason="Fewer staff.",
            recorded_on=days_ago(200),
        )

    assert outcome.aggregate.version == SNAPSHOT_INTERVAL
    stored = list(network.events.get(proposed))
    assert len(stored) == SNAPSHOT_INTERVAL
    assert [e.description for e in stored if getattr(e, "description", None) == "The last one."] == [
        "The last one."
    ]
