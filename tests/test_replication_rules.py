"""The Replication aggregate's rules (domain.md rules 1-9 and its status moves), driven through the
application service on a real SQLite event store.

Every refused command must leave the record untouched: the head position, the aggregate's version and the
innovation's replication registry are compared before and after.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from conftest import days_ago, innovation_fields
from eventsourcing.application import Repository

from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.catalogue import catalogues
from domain.enums import ReplicationStatus
from domain.errors import InvalidInput, Rule, RuleViolation, VersionConflict
from domain.evaluation import EvaluationInput
from domain.innovation import Innovation
from domain.replication import Replication
from service.network import SNAPSHOT_INTERVAL, InnovationNetwork, read_records

pytestmark = pytest.mark.usefixtures("admin")

ORIGIN = "35.04"  # Kabupaten Tulungagung, where the innovation was born


def tomorrow() -> date:
    return today() + timedelta(days=1)


# --- helpers ----------------------------------------------------------------------------------


def register(network: InnovationNetwork, **overrides: Any) -> Innovation:
    fields = {"region": ORIGIN, "started_on": days_ago(400), **overrides}
    innovation: Innovation = network.register_innovation(**innovation_fields(**fields)).aggregate
    return innovation


def propose(
    network: InnovationNetwork,
    innovation_id: UUID,
    adopting: str = "35.05",
    on: date | None = None,
    source: str | None = None,
    **extra: Any,
) -> Replication:
    replication: Replication = network.propose_replication(
        innovation_id=innovation_id,
        adopting_region=adopting,
        source_region=source,
        rationale="Proven practice in a neighbouring region.",
        proposed_on=on or days_ago(100),
        **extra,
    ).aggregate
    return replication


def evaluation_year(on: date) -> int:
    """The year an evaluation made on `on` can be for: its own year, or the last year a catalogue covers."""
    if catalogues().for_year(on.year) is not None:
        return on.year
    return max(c.year_to for c in catalogues().all() if c.year_to is not None)


def evaluation(on: date, scores: dict[str, Any] | None = None) -> EvaluationInput:
    return EvaluationInput(year=evaluation_year(on), scores=scores or {}, evaluated_on=on, evidence={})


def sign(network: InnovationNetwork, replication_id: UUID, on: date, **kw: Any) -> Any:
    return network.sign_agreement(
        replication_id, document="pks", document_number="PKS/01/2025", signed_on=on, **kw
    )


def reject(network: InnovationNetwork, replication_id: UUID, on: date, **kw: Any) -> Any:
    return network.reject_replication(replication_id, reason="Not a fit", rejected_on=on, **kw)


def adopt(network: InnovationNetwork, replication_id: UUID, stage: str, on: date, **kw: Any) -> Any:
    return network.advance_adoption(
        replication_id,
        stage=stage,
        effective_on=on,
        legal_basis="Perbup No. 12/2025",
        evidence_urls=["https://jdih.example.go.id/perbup-12"],
        **kw,
    )


def modify(network: InnovationNetwork, replication_id: UUID, on: date, **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "component": "teknologi",
        "nature": "penyesuaian",
        "core": False,
        "description": "SMS instead of an app",
        "reason": "Weak mobile data coverage",
        "recorded_on": on,
    }
    return network.record_modification(replication_id, **{**fields, **kw})


def discontinue(network: InnovationNetwork, replication_id: UUID, on: date, **kw: Any) -> Any:
    return network.discontinue_replication(replication_id, reason="Budget cut", effective_on=on, **kw)


def replication_at(
    network: InnovationNetwork,
    status: str,
    innovation_id: UUID | None = None,
    adopting: str = "35.05",
    source: str | None = None,
    proposed_on: date | None = None,
) -> Replication:
    """A replication brought to `status`, one step per 10 days from 100 days ago (or `proposed_on`)."""
    if innovation_id is None:
        innovation_id = register(network).id
    start = proposed_on or days_ago(100)
    replication = propose(network, innovation_id, adopting, start, source)
    step = iter(start + timedelta(days=10 * k) for k in itertools.count(1))
    path = {
        "diusulkan": [],
        "ditolak": [lambda: reject(network, replication.id, next(step))],
        "dihentikan": [lambda: discontinue(network, replication.id, next(step))],
        "disepakati": [lambda: sign(network, replication.id, next(step))],
        "uji_coba": [
            lambda: sign(network, replication.id, next(step)),
            lambda: adopt(network, replication.id, "uji_coba", next(step)),
        ],
        "penerapan": [
            lambda: sign(network, replication.id, next(step)),
            lambda: adopt(network, replication.id, "uji_coba", next(step)),
            lambda: adopt(network, replication.id, "penerapan", next(step)),
        ],
    }[status]
    for command in path:
        command()
    current = network.replication(replication.id)
    assert current.status == status
    return current


@contextmanager
def nothing_stored(network: InnovationNetwork, *aggregate_ids: UUID) -> Iterator[None]:
    head = network.head_position()
    versions: dict[UUID, int] = {i: network.repository.get(i).version for i in aggregate_ids}
    registries = {
        i: sorted(network.registry_of(i), key=lambda row: str(row.replication_id)) for i in aggregate_ids
    }
    yield
    assert network.head_position() == head, "a refused command stored an event"
    for aggregate_id, version in versions.items():
        assert network.repository.get(aggregate_id).version == version
    for innovation_id, rows in registries.items():
        assert sorted(network.registry_of(innovation_id), key=lambda row: str(row.replication_id)) == rows


def last_record(network: InnovationNetwork) -> Any:
    return read_records(network, network.head_position() - 1, 1)[0]


def proposals(network: InnovationNetwork) -> list[Any]:
    return [r for r in read_records(network, 0, 10_000) if r.type == "ReplicationProposed"]


# --- a proposal that follows every rule -------------------------------------------------------


def test_proposal_from_the_innovations_region_is_first_generation(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication = propose(network, innovation.id, "35.05", days_ago(50), facilitator="35")
    stored = network.replication(replication.id)
    assert stored.status == "diusulkan"
    assert (stored.source_region, stored.adopting_region, stored.generation) == (ORIGIN, "35.05", 1)
    assert stored.facilitator == "35"
    assert stored.proposed_on == days_ago(50)
    assert last_record(network).type == "ReplicationProposed"


def test_a_province_may_adopt(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication = propose(network, innovation.id, "33")
    assert network.replication(replication.id).adopting_region == "33"


def test_facilitator_may_be_an_organisation_name(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication = propose(network, innovation.id, facilitator="KemenPAN-RB")
    assert network.replication(replication.id).facilitator == "KemenPAN-RB"


# --- rule 1: region codes ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["adopting_region", "source_region"])
def test_proposal_with_an_unknown_region_code_is_invalid_input(
    network: InnovationNetwork, field: str
) -> None:
    innovation = register(network)
    regions = {"adopting_region": "35.05", "source_region": ORIGIN, field: "35.00"}
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        propose(network, innovation.id, regions["adopting_region"], source=regions["source_region"])
    assert list(caught.value.errors) == [field]
    assert "Unknown region code" in caught.value.errors[field][0]


@pytest.mark.parametrize("field", ["adopting_region", "source_region"])
def test_proposal_with_an_undotted_code_suggests_the_dotted_one(
    network: InnovationNetwork, field: str
) -> None:
    innovation = register(network, region="35.07")
    regions = {"adopting_region": "35.05", "source_region": "35.07", field: "3504"}
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        propose(network, innovation.id, regions["adopting_region"], source=regions["source_region"])
    assert list(caught.value.errors) == [field]
    assert "'35.04'" in caught.value.errors[field][0]


def test_a_kecamatan_cannot_adopt(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        propose(network, innovation.id, "35.04.01")
    assert list(caught.value.errors) == ["adopting_region"]


def test_facilitator_that_looks_like_a_region_code_must_exist(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        propose(network, innovation.id, facilitator="99.99")
    assert list(caught.value.errors) == ["facilitator"]


# --- rule 2: same region ----------------------------------------------------------------------


def test_innovations_own_region_cannot_adopt_it(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, ORIGIN)
    assert caught.value.rule == Rule.SAME_REGION


def test_innovations_own_region_cannot_adopt_it_from_an_earlier_adopter(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication_at(network, "penerapan", innovation.id, "35.05")
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, ORIGIN, days_ago(1), source="35.05")
    assert caught.value.rule == Rule.SAME_REGION


def test_adopting_region_cannot_be_its_own_source(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication_at(network, "penerapan", innovation.id, "35.05")
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.05", days_ago(1), source="35.05")
    assert caught.value.rule == Rule.SAME_REGION


# --- rule 3: the source -----------------------------------------------------------------------


def test_source_that_never_adopted_the_innovation_is_invalid_source(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.06", source="35.05")
    assert caught.value.rule == Rule.INVALID_SOURCE


@pytest.mark.parametrize("status", ["diusulkan", "disepakati", "uji_coba", "ditolak"])
def test_source_whose_replication_is_not_at_penerapan_is_invalid_source(
    network: InnovationNetwork, status: str
) -> None:
    innovation = register(network)
    replication_at(network, status, innovation.id, "35.05")
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.06", days_ago(1), source="35.05")
    assert caught.value.rule == Rule.INVALID_SOURCE


def test_source_at_penerapan_of_another_innovation_is_invalid_source(network: InnovationNetwork) -> None:
    innovation = register(network)
    other = register(network, name="Sekolah Lapang Iklim")
    replication_at(network, "penerapan", other.id, "35.05")
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.06", days_ago(1), source="35.05")
    assert caught.value.rule == Rule.INVALID_SOURCE


def test_proposal_from_an_adopter_at_penerapan_is_second_generation(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication_at(network, "penerapan", innovation.id, "35.05")
    replication = propose(network, innovation.id, "35.06", days_ago(1), source="35.05")
    stored = network.replication(replication.id)
    assert (stored.source_region, stored.adopting_region, stored.generation) == ("35.05", "35.06", 2)


def test_generation_grows_along_the_diffusion_tree(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication_at(network, "penerapan", innovation.id, "35.05", proposed_on=days_ago(200))
    replication_at(network, "penerapan", innovation.id, "35.06", source="35.05", proposed_on=days_ago(150))
    third = propose(network, innovation.id, "35.07", days_ago(10), source="35.06")
    assert network.replication(third.id).generation == 3


def test_source_adopter_that_was_discontinued_is_invalid_source(network: InnovationNetwork) -> None:
    innovation = register(network)
    source = replication_at(network, "penerapan", innovation.id, "35.05")
    discontinue(network, source.id, days_ago(5))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.06", days_ago(1), source="35.05")
    assert caught.value.rule == Rule.INVALID_SOURCE


def test_proposal_dated_before_the_source_reached_penerapan_is_date_order(network: InnovationNetwork) -> None:
    innovation = register(network)
    source = replication_at(network, "penerapan", innovation.id, "35.05", proposed_on=days_ago(100))
    assert source.penerapan_on == days_ago(70)
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.06", days_ago(71), source="35.05")
    assert caught.value.rule == Rule.DATE_ORDER
    propose(network, innovation.id, "35.06", days_ago(70), source="35.05")  # the same day is allowed


def test_proposal_dated_before_the_innovation_reached_penerapan_is_date_order(
    network: InnovationNetwork,
) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(300))
    network.advance_innovation_stage(innovation.id, "penerapan", days_ago(100))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.05", days_ago(101))
    assert caught.value.rule == Rule.DATE_ORDER


# --- rule 4: the innovation is replicable -----------------------------------------------------


def test_proposal_for_an_unknown_innovation_is_invalid_input(network: InnovationNetwork) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        propose(network, uuid4())
    assert list(caught.value.errors) == ["innovation_id"]


def test_proposal_naming_a_replication_as_innovation_is_invalid_input(network: InnovationNetwork) -> None:
    replication = replication_at(network, "diusulkan")
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        propose(network, replication.id, "35.06")
    assert list(caught.value.errors) == ["innovation_id"]


@pytest.mark.parametrize("stage", ["inisiatif", "uji_coba"])
def test_innovation_not_yet_at_penerapan_is_not_replicable(network: InnovationNetwork, stage: str) -> None:
    innovation = register(network, stage=stage)
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id)
    assert caught.value.rule == Rule.INNOVATION_NOT_REPLICABLE


def test_retired_innovation_is_not_replicable(network: InnovationNetwork) -> None:
    innovation = register(network)
    network.retire_innovation(innovation.id, "Stopped", days_ago(200))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, on=days_ago(1))
    assert caught.value.rule == Rule.INNOVATION_NOT_REPLICABLE


# --- rule 5: one open replication per (innovation, adopting region) ---------------------------


@pytest.mark.parametrize("status", ["diusulkan", "disepakati", "uji_coba", "penerapan"])
def test_second_open_proposal_by_the_same_region_is_a_duplicate(
    network: InnovationNetwork, status: str
) -> None:
    innovation = register(network)
    replication_at(network, status, innovation.id, "35.05")
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.05", days_ago(1))
    assert caught.value.rule == Rule.DUPLICATE_OPEN_REPLICATION


def test_second_open_proposal_from_another_source_is_still_a_duplicate(network: InnovationNetwork) -> None:
    innovation = register(network)
    replication_at(network, "penerapan", innovation.id, "35.05")
    propose(network, innovation.id, "35.06", days_ago(20))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        propose(network, innovation.id, "35.06", days_ago(1), source="35.05")
    assert caught.value.rule == Rule.DUPLICATE_OPEN_REPLICATION


@pytest.mark.parametrize("closed", ["ditolak", "dihentikan"])
def test_region_may_propose_again_once_its_replication_is_closed(
    network: InnovationNetwork, closed: str
) -> None:
    innovation = register(network)
    first = replication_at(network, closed, innovation.id, "35.05")
    again = propose(network, innovation.id, "35.05", days_ago(1))
    assert again.id != first.id
    statuses = sorted(row.status for row in network.registry_of(innovation.id))
    assert statuses == sorted([closed, "diusulkan"])


def test_same_region_may_adopt_different_innovations(network: InnovationNetwork) -> None:
    innovation = register(network)
    other = register(network, name="Sekolah Lapang Iklim")
    propose(network, innovation.id, "35.05")
    propose(network, other.id, "35.05")
    assert len(proposals(network)) == 2


# --- rule 6: status moves ---------------------------------------------------------------------

STATUSES = [s.value for s in ReplicationStatus]
# The commands that move a replication to each status (nothing moves one back to `diusulkan`).
MOVES: dict[str, Callable[[InnovationNetwork, UUID, date], Any]] = {
    "disepakati": lambda n, r, on: sign(n, r, on),
    "ditolak": lambda n, r, on: reject(n, r, on),
    "uji_coba": lambda n, r, on: adopt(n, r, "uji_coba", on),
    "penerapan": lambda n, r, on: adopt(n, r, "penerapan", on),
    "dihentikan": lambda n, r, on: discontinue(n, r, on),
}
ALLOWED = {
    ("diusulkan", "disepakati"),
    ("diusulkan", "ditolak"),
    ("diusulkan", "dihentikan"),
    ("disepakati", "uji_coba"),
    ("disepakati", "dihentikan"),
    ("uji_coba", "penerapan"),
    ("uji_coba", "dihentikan"),
    ("penerapan", "dihentikan"),
}
EVENT_OF_MOVE = {
    "disepakati": "AgreementSigned",
    "ditolak": "ReplicationRejected",
    "uji_coba": "AdoptionAdvanced",
    "penerapan": "AdoptionAdvanced",
    "dihentikan": "ReplicationDiscontinued",
}


@pytest.mark.parametrize(("start", "target"), sorted(ALLOWED))
def test_allowed_status_move_is_recorded(network: InnovationNetwork, start: str, target: str) -> None:
    replication = replication_at(network, start)
    outcome = MOVES[target](network, replication.id, days_ago(1))
    stored = network.replication(replication.id)
    assert stored.status == target
    assert stored.version == replication.version + 1
    assert last_record(network).type == EVENT_OF_MOVE[target]
    assert outcome.position == network.head_position()
    (row,) = network.registry_of(replication.innovation_id)
    assert row.status == target


@pytest.mark.parametrize(
    ("start", "target"),
    sorted(pair for pair in itertools.product(STATUSES, MOVES) if pair not in ALLOWED),
)
def test_forbidden_status_move_is_invalid_transition(
    network: InnovationNetwork, start: str, target: str
) -> None:
    replication = replication_at(network, start)
    with (
        nothing_stored(network, replication.id, replication.innovation_id),
        pytest.raises(RuleViolation) as caught,
    ):
        MOVES[target](network, replication.id, days_ago(1))
    assert caught.value.rule == Rule.INVALID_TRANSITION


def test_agreement_cannot_be_signed_twice(network: InnovationNetwork) -> None:
    replication = replication_at(network, "disepakati")
    with nothing_stored(network, replication.id), pytest.raises(RuleViolation) as caught:
        sign(network, replication.id, days_ago(1))
    assert caught.value.rule == Rule.INVALID_TRANSITION


def test_agreement_records_the_document(network: InnovationNetwork) -> None:
    replication = replication_at(network, "diusulkan")
    sign(network, replication.id, days_ago(3), document_url="https://jdih.example.go.id/pks-01")
    assert network.replication(replication.id).agreement == {
        "document": "pks",
        "document_number": "PKS/01/2025",
        "signed_on": days_ago(3),
        "document_url": "https://jdih.example.go.id/pks-01",
    }


def test_agreement_with_an_unknown_document_type_is_invalid_input(network: InnovationNetwork) -> None:
    replication = replication_at(network, "diusulkan")
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        network.sign_agreement(replication.id, document="sk", document_number="1", signed_on=days_ago(1))
    assert list(caught.value.errors) == ["document"]


def test_adoption_stage_outside_uji_coba_and_penerapan_is_invalid_input(network: InnovationNetwork) -> None:
    replication = replication_at(network, "disepakati")
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        adopt(network, replication.id, "disepakati", days_ago(1))
    assert list(caught.value.errors) == ["stage"]


def test_adoption_records_the_date_of_each_stage(network: InnovationNetwork) -> None:
    replication = replication_at(network, "penerapan", proposed_on=days_ago(100))
    assert replication.stages == {"uji_coba": days_ago(80), "penerapan": days_ago(70)}


# --- rule 7: modifications --------------------------------------------------------------------


@pytest.mark.parametrize("status", ["diusulkan", "disepakati", "uji_coba", "penerapan"])
def test_modification_is_recorded_in_any_open_status(network: InnovationNetwork, status: str) -> None:
    replication = replication_at(network, status)
    modify(network, replication.id, days_ago(1), modification_id=(mid := uuid4()))
    stored = network.replication(replication.id)
    assert stored.status == status
    assert stored.modifications == [
        {
            "modification_id": mid,
            "component": "teknologi",
            "nature": "penyesuaian",
            "core": False,
            "description": "SMS instead of an app",
            "reason": "Weak mobile data coverage",
            "recorded_on": days_ago(1),
        }
    ]


@pytest.mark.parametrize("status", ["ditolak", "dihentikan"])
def test_modification_is_refused_once_the_replication_is_closed(
    network: InnovationNetwork, status: str
) -> None:
    replication = replication_at(network, status)
    with nothing_stored(network, replication.id), pytest.raises(RuleViolation) as caught:
        modify(network, replication.id, days_ago(1))
    assert caught.value.rule == Rule.INVALID_TRANSITION


@pytest.mark.parametrize(("field", "value"), [("component", "anggaran"), ("nature", "perubahan")])
def test_modification_outside_its_enumerations_is_invalid_input(
    network: InnovationNetwork, field: str, value: str
) -> None:
    replication = replication_at(network, "diusulkan")
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        modify(network, replication.id, days_ago(1), **{field: value})
    assert list(caught.value.errors) == [field]


def test_long_modification_history_reads_the_same_from_snapshots_as_from_its_events(
    network: InnovationNetwork,
) -> None:
    replication = replication_at(network, "diusulkan", proposed_on=days_ago(300))
    recorded = []
    for k in range(2 * SNAPSHOT_INTERVAL + 10):
        fields = {
            "modification_id": uuid4(),
            "component": ["teknologi", "regulasi"][k % 2],
            "nature": "penyesuaian",
            "core": k % 3 == 0,
            "description": f'Langkah "{k}" \\ ñ\x00 {"x" * k}',
            "reason": f"Alasan {k}",
            "recorded_on": days_ago(200 - k),
        }
        modify(network, replication.id, fields["recorded_on"], **fields)
        recorded.append(fields)
    snapshots = [s.originator_version for s in network.snapshots.get(replication.id)]  # type: ignore[union-attr]
    assert snapshots == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]
    every_event = Repository(event_store=network.events)
    for version in (1, 2, 49, 50, 51, 100, 101, len(recorded) + 1):
        from_snapshot = network.replication(replication.id, version=version)
        assert from_snapshot.modifications == recorded[: version - 1]
        assert from_snapshot.modifications == every_event.get(replication.id, version=version).modifications
        assert len(from_snapshot.modifications) == version - 1
    latest = network.replication(replication.id)
    assert latest.modifications[-1] == recorded[-1]
    assert [m["description"] for m in latest.modifications[:2]] == [m["description"] for m in recorded[:2]]


def test_snapshot_that_kept_modifications_as_a_list_is_read_as_before(network: InnovationNetwork) -> None:
    replication = replication_at(network, "diusulkan")
    for k in range(3):
        modify(network, replication.id, days_ago(1), description=f"step {k}")
    current = network.replication(replication.id)
    old = Replication.Snapshot.take(current)
    old.state["modifications"] = list(current.modifications)  # as snapshots were written before the log
    del old.state["class_version"]
    network.snapshots.put([old])  # type: ignore[union-attr]
    read = network.replication(replication.id, version=current.version)
    assert [m["description"] for m in read.modifications] == ["step 0", "step 1", "step 2"]
    assert read.modifications == current.modifications
    modify(network, replication.id, days_ago(1), description="step 3")
    assert len(network.replication(replication.id).modifications) == 4


# --- rule 8: evaluations ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["diusulkan", "disepakati", "ditolak", "dihentikan"])
def test_replication_outside_uji_coba_and_penerapan_cannot_be_evaluated(
    network: InnovationNetwork, status: str
) -> None:
    replication = replication_at(network, status)
    with nothing_stored(network, replication.id), pytest.raises(RuleViolation) as caught:
        network.evaluate_replication(replication.id, evaluation(days_ago(1), {"regulasi": 1}))
    assert caught.value.rule == Rule.INVALID_TRANSITION


@pytest.mark.parametrize("status", ["uji_coba", "penerapan"])
def test_replication_at_uji_coba_or_penerapan_can_be_evaluated(
    network: InnovationNetwork, status: str
) -> None:
    replication = replication_at(network, status)
    network.evaluate_replication(replication.id, evaluation(days_ago(1), {"regulasi": 1}))
    assert len(network.replication(replication.id).evaluations) == 1
    assert last_record(network).type == "EvaluationRecorded"


def test_replication_evaluation_with_an_unknown_indicator_is_invalid_input(
    network: InnovationNetwork,
) -> None:
    replication = replication_at(network, "uji_coba")
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        network.evaluate_replication(replication.id, evaluation(days_ago(1), {"popularitas": 1}))
    assert list(caught.value.errors) == ["scores.popularitas"]


def test_replication_evaluation_with_level_four_is_invalid_input(network: InnovationNetwork) -> None:
    replication = replication_at(network, "uji_coba")
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        network.evaluate_replication(replication.id, evaluation(days_ago(1), {"sdm": 4}))
    assert list(caught.value.errors) == ["scores.sdm"]


def test_replication_evaluation_with_unknown_catalogue_is_invalid_input(network: InnovationNetwork) -> None:
    replication = replication_at(network, "uji_coba")
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        network.evaluate_replication(replication.id, evaluation(days_ago(1)), catalogue_version="iid-1999")
    assert list(caught.value.errors) == ["catalogue"]


def test_replication_evaluation_computes_total_score_and_category(network: InnovationNetwork) -> None:
    replication = replication_at(network, "penerapan")
    levels = {"regulasi": 3, "sdm": 3, "anggaran": 3, "alat_kerja": 3, "rkpd": 3, "kemanfaatan": 3}
    levels |= {"video": 3, "kecepatan_hasil": 3, "layanan_terintegrasi": 3, "monev": 3}
    network.evaluate_replication(replication.id, evaluation(days_ago(1), levels))
    recorded = network.replication(replication.id).evaluations[0]
    # weights 3+2+2+2+2+3+4+2+2+2 = 24 at level 3; replikasi derived 0; max total 111.
    assert recorded["total"] == 72
    assert recorded["score"] == Decimal("64.86")
    assert recorded["category"] == "sangat_inovatif"


def test_replication_replikasi_counts_regions_that_copied_from_this_adopter(
    network: InnovationNetwork,
) -> None:
    innovation = register(network)
    source = replication_at(network, "penerapan", innovation.id, "35.05", proposed_on=days_ago(200))
    # 35.05 reached penerapan on day -170. Copied from it: two reach penerapan (days -135 and -60), one
    # is only proposed.
    replication_at(network, "penerapan", innovation.id, "35.06", source="35.05", proposed_on=days_ago(165))
    replication_at(network, "penerapan", innovation.id, "35.07", source="35.05", proposed_on=days_ago(90))
    propose(network, innovation.id, "35.08", days_ago(50), source="35.05")
    # Copied from the innovation's own region, not from 35.05: never counted for 35.05.
    replication_at(network, "penerapan", innovation.id, "35.71", proposed_on=days_ago(180))

    def replikasi_on(on: date, sent: int) -> int:
        network.evaluate_replication(source.id, evaluation(on, {"replikasi": sent}))
        level: int = network.replication(source.id).evaluations[-1]["scores"]["replikasi"]
        return level

    assert replikasi_on(days_ago(100), sent=3) == 1
    assert replikasi_on(days_ago(1), sent=0) == 2


def test_registry_reads_of_some_regions_agree_with_the_whole_registry(network: InnovationNetwork) -> None:
    """Proposals read the registry rows of two regions, evaluations the source's adoptions at penerapan:
    the same rows as filtering the whole registry, and a discontinued adopter counts until it closed."""
    innovation = register(network)
    replication_at(network, "penerapan", innovation.id, "35.05", proposed_on=days_ago(200))
    replication_at(network, "penerapan", innovation.id, "35.06", source="35.05", proposed_on=days_ago(165))
    dropped = replication_at(
        network, "penerapan", innovation.id, "35.07", source="35.05", proposed_on=days_ago(150)
    )
    discontinue(network, dropped.id, days_ago(20))
    propose(network, innovation.id, "35.08", days_ago(50), source="35.05")
    replication_at(network, "penerapan", innovation.id, "35.71", proposed_on=days_ago(180))

    whole = network.registry_of(innovation.id)
    assert len(whole) == 5
    for regions in [("35.05",), ("35.07", "35.08"), ("35.05", "35.05"), ("35.99",)]:
        some = network.registry_of(innovation.id, adopting_regions=regions)
        assert sorted(some, key=lambda row: str(row.replication_id)) == sorted(
            (row for row in whole if row.adopting_region in regions), key=lambda row: str(row.replication_id)
        )
    adoptions = network.recorder.adoptions_of(innovation.id, "35.05")  # type: ignore[attr-defined]
    assert sorted(a.adopting_region for a in adoptions) == ["35.06", "35.07"]
    assert network.replikasi_level(innovation.id, "35.05", days_ago(30)) == 2
    assert network.replikasi_level(innovation.id, "35.05", days_ago(10)) == 1
    assert network.replikasi_level(innovation.id, "35.05", days_ago(130)) == 1
    assert network.replikasi_level(innovation.id, "35.06", days_ago(1)) == 0


# --- rule 9: dates ----------------------------------------------------------------------------

FUTURE_COMMANDS: dict[str, tuple[str, str, Callable[[InnovationNetwork, UUID], Any]]] = {
    "agreement": ("diusulkan", "signed_on", lambda n, r: sign(n, r, tomorrow())),
    "rejection": ("diusulkan", "rejected_on", lambda n, r: reject(n, r, tomorrow())),
    "modification": ("diusulkan", "recorded_on", lambda n, r: modify(n, r, tomorrow())),
    "adoption": ("disepakati", "effective_on", lambda n, r: adopt(n, r, "uji_coba", tomorrow())),
    "evaluation": (
        "uji_coba",
        "evaluated_on",
        lambda n, r: n.evaluate_replication(r, evaluation(tomorrow())),
    ),
    "discontinuation": ("uji_coba", "effective_on", lambda n, r: discontinue(n, r, tomorrow())),
}


def test_proposal_dated_in_the_future_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        propose(network, innovation.id, on=tomorrow())
    assert list(caught.value.errors) == ["proposed_on"]


@pytest.mark.parametrize("command", sorted(FUTURE_COMMANDS))
def test_business_date_in_the_future_is_invalid_input(network: InnovationNetwork, command: str) -> None:
    status, field, act = FUTURE_COMMANDS[command]
    replication = replication_at(network, status)
    with nothing_stored(network, replication.id), pytest.raises(InvalidInput) as caught:
        act(network, replication.id)
    assert field in caught.value.errors


def test_business_date_of_today_in_the_easternmost_zone_is_accepted(network: InnovationNetwork) -> None:
    replication = replication_at(network, "diusulkan")
    sign(network, replication.id, today())
    agreement = network.replication(replication.id).agreement
    assert agreement is not None
    assert agreement["signed_on"] == today()


# Each command dated one day before the step before it (the replication's latest business date).
EARLY_COMMANDS: dict[str, tuple[str, Callable[[InnovationNetwork, UUID, date], Any]]] = {
    "agreement": ("diusulkan", lambda n, r, on: sign(n, r, on)),
    "rejection": ("diusulkan", lambda n, r, on: reject(n, r, on)),
    "modification": ("disepakati", lambda n, r, on: modify(n, r, on)),
    "trial": ("disepakati", lambda n, r, on: adopt(n, r, "uji_coba", on)),
    "implementation": ("uji_coba", lambda n, r, on: adopt(n, r, "penerapan", on)),
    "evaluation": ("penerapan", lambda n, r, on: n.evaluate_replication(r, evaluation(on))),
    "discontinuation": ("penerapan", lambda n, r, on: discontinue(n, r, on)),
}


@pytest.mark.parametrize("command", sorted(EARLY_COMMANDS))
def test_business_date_before_the_step_before_is_date_order(network: InnovationNetwork, command: str) -> None:
    status, act = EARLY_COMMANDS[command]
    replication = replication_at(network, status)
    with nothing_stored(network, replication.id), pytest.raises(RuleViolation) as caught:
        act(network, replication.id, replication.last_dated_on - timedelta(days=1))
    assert caught.value.rule == Rule.DATE_ORDER
    act(network, replication.id, replication.last_dated_on)  # the same day is allowed
    assert network.replication(replication.id).version == replication.version + 1


def test_a_modification_date_is_a_step_before_the_next_adoption(network: InnovationNetwork) -> None:
    replication = replication_at(network, "disepakati", proposed_on=days_ago(100))  # signed day -90
    modify(network, replication.id, days_ago(20))
    with nothing_stored(network, replication.id), pytest.raises(RuleViolation) as caught:
        adopt(network, replication.id, "uji_coba", days_ago(30))
    assert caught.value.rule == Rule.DATE_ORDER


def test_an_evaluation_date_is_a_step_before_the_next_modification(network: InnovationNetwork) -> None:
    replication = replication_at(network, "uji_coba", proposed_on=days_ago(100))  # on trial day -80
    network.evaluate_replication(replication.id, evaluation(days_ago(10)))
    with nothing_stored(network, replication.id), pytest.raises(RuleViolation) as caught:
        modify(network, replication.id, days_ago(11))
    assert caught.value.rule == Rule.DATE_ORDER


# --- audit: actor, If-Match, older versions ---------------------------------------------------


def test_every_replication_event_records_actor_role_and_request_id(network: InnovationNetwork) -> None:
    innovation = register(network)
    steps: list[tuple[Actor, Callable[[UUID], Any]]] = [
        (Actor("op-blitar", "operator", "req-2"), lambda r: modify(network, r, days_ago(45))),
        (Actor("op-tulungagung", "operator", "req-3"), lambda r: sign(network, r, days_ago(40))),
        (Actor("op-blitar", "operator", "req-4"), lambda r: adopt(network, r, "uji_coba", days_ago(30))),
        (
            Actor("eval-1", "evaluator", "req-5"),
            lambda r: network.evaluate_replication(r, evaluation(days_ago(20))),
        ),
        (Actor("op-blitar", "operator", "req-6"), lambda r: adopt(network, r, "penerapan", days_ago(10))),
        (Actor("admin-pusat", "admin", "req-7"), lambda r: discontinue(network, r, days_ago(1))),
    ]
    with acting_as(Actor("op-blitar", "operator", "req-1")):
        replication = propose(network, innovation.id, "35.05", days_ago(50))
    for actor, act in steps:
        with acting_as(actor):
            act(replication.id)
    rejected = propose(network, innovation.id, "35.06", days_ago(5))
    with acting_as(Actor("op-tulungagung", "operator", "req-8")):
        reject(network, rejected.id, days_ago(1))

    records = [r for r in read_records(network, 0, 100) if r.aggregate_type == "Replication"]
    assert [(r.type, r.actor, r.actor_role, r.request_id) for r in records] == [
        ("ReplicationProposed", "op-blitar", "operator", "req-1"),
        ("ModificationRecorded", "op-blitar", "operator", "req-2"),
        ("AgreementSigned", "op-tulungagung", "operator", "req-3"),
        ("AdoptionAdvanced", "op-blitar", "operator", "req-4"),
        ("EvaluationRecorded", "eval-1", "evaluator", "req-5"),
        ("AdoptionAdvanced", "op-blitar", "operator", "req-6"),
        ("ReplicationDiscontinued", "admin-pusat", "admin", "req-7"),
        ("ReplicationProposed", "test-admin", "admin", "req-test"),
        ("ReplicationRejected", "op-tulungagung", "operator", "req-8"),
    ]


IF_VERSION_COMMANDS: dict[str, tuple[str, Callable[[InnovationNetwork, UUID, int], Any]]] = {
    "agreement": ("diusulkan", lambda n, r, v: sign(n, r, days_ago(1), if_version=v)),
    "rejection": ("diusulkan", lambda n, r, v: reject(n, r, days_ago(1), if_version=v)),
    "modification": ("diusulkan", lambda n, r, v: modify(n, r, days_ago(1), if_version=v)),
    "adoption": ("disepakati", lambda n, r, v: adopt(n, r, "uji_coba", days_ago(1), if_version=v)),
    "evaluation": (
        "uji_coba",
        lambda n, r, v: n.evaluate_replication(r, evaluation(days_ago(1)), if_version=v),
    ),
    "discontinuation": ("uji_coba", lambda n, r, v: discontinue(n, r, days_ago(1), if_version=v)),
}


@pytest.mark.parametrize("command", sorted(IF_VERSION_COMMANDS))
def test_stale_if_version_on_a_replication_is_a_version_conflict(
    network: InnovationNetwork, command: str
) -> None:
    status, act = IF_VERSION_COMMANDS[command]
    replication = replication_at(network, status)
    modify(network, replication.id, days_ago(2))
    current = replication.version + 1
    with nothing_stored(network, replication.id), pytest.raises(VersionConflict) as caught:
        act(network, replication.id, replication.version)
    assert (caught.value.expected, caught.value.actual) == (replication.version, current)


@pytest.mark.parametrize("command", sorted(IF_VERSION_COMMANDS))
def test_current_if_version_on_a_replication_is_accepted(network: InnovationNetwork, command: str) -> None:
    status, act = IF_VERSION_COMMANDS[command]
    replication = replication_at(network, status)
    outcome = act(network, replication.id, replication.version)
    assert outcome.aggregate.version == replication.version + 1


def test_an_older_version_of_a_replication_can_be_rebuilt(network: InnovationNetwork) -> None:
    replication = replication_at(network, "penerapan", proposed_on=days_ago(100))
    discontinue(network, replication.id, days_ago(1))

    rebuilt = [network.replication(replication.id, version=v) for v in range(1, 6)]
    assert [r.version for r in rebuilt] == [1, 2, 3, 4, 5]
    assert [r.status for r in rebuilt] == ["diusulkan", "disepakati", "uji_coba", "penerapan", "dihentikan"]
    assert rebuilt[0].agreement is None
    assert rebuilt[2].stages == {"uji_coba": days_ago(80), "penerapan": None}
    assert rebuilt[3].discontinuation is None
    assert network.replication(replication.id).discontinuation == {
        "reason": "Budget cut",
        "effective_on": days_ago(1),
    }
