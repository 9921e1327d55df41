"""The Innovation aggregate's rules (domain.md: regions, stages, revision, evaluation, retirement, rule 9),
driven through the application service on a real SQLite event store.

Every refused command must leave the record untouched: the head position and the aggregate's version are
compared before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from conftest import days_ago, innovation_fields

from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.catalogue import catalogues
from domain.errors import InvalidInput, Rule, RuleViolation, VersionConflict
from domain.evaluation import EvaluationInput
from domain.innovation import Innovation
from service.network import InnovationNetwork, read_records

pytestmark = pytest.mark.usefixtures("admin")


# --- helpers ----------------------------------------------------------------------------------


def register(network: InnovationNetwork, **overrides: Any) -> Innovation:
    innovation: Innovation = network.register_innovation(**innovation_fields(**overrides)).aggregate
    return innovation


def evaluation_year(on: date) -> int:
    """The year an evaluation made on `on` can be for: its own year, or the last year a catalogue covers."""
    if catalogues().for_year(on.year) is not None:
        return on.year
    return max(c.year_to for c in catalogues().all() if c.year_to is not None)


def evaluation(on: date, scores: dict[str, Any] | None = None, **extra: Any) -> EvaluationInput:
    return EvaluationInput(
        year=evaluation_year(on), scores=scores or {}, evaluated_on=on, evidence={}, **extra
    )


def propose(
    network: InnovationNetwork, innovation_id: UUID, adopting: str, on: date, source: str | None = None
) -> UUID:
    outcome = network.propose_replication(
        innovation_id=innovation_id,
        adopting_region=adopting,
        source_region=source,
        rationale="Proven practice in a neighbouring region.",
        proposed_on=on,
    )
    replication_id: UUID = outcome.aggregate.id
    return replication_id


def bring_to_penerapan(network: InnovationNetwork, replication_id: UUID, on: date) -> None:
    """Agreement, trial and implementation all on `on`."""
    network.sign_agreement(replication_id, document="pks", document_number="PKS/1", signed_on=on)
    network.advance_adoption(replication_id, stage="uji_coba", effective_on=on)
    network.advance_adoption(replication_id, stage="penerapan", effective_on=on)


@contextmanager
def nothing_stored(network: InnovationNetwork, *aggregate_ids: UUID) -> Iterator[None]:
    head = network.head_position()
    versions: dict[UUID, int] = {i: network.repository.get(i).version for i in aggregate_ids}
    yield
    assert network.head_position() == head, "a refused command stored an event"
    for aggregate_id, version in versions.items():
        assert network.repository.get(aggregate_id).version == version


def last_record(network: InnovationNetwork) -> Any:
    return read_records(network, network.head_position() - 1, 1)[0]


# --- rule 1: region codes ---------------------------------------------------------------------


def test_registration_in_an_unknown_region_is_invalid_input(network: InnovationNetwork) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        register(network, region="99.99")
    assert list(caught.value.errors) == ["region"]
    assert "Unknown region code" in caught.value.errors["region"][0]


def test_undotted_region_code_is_refused_with_the_dotted_suggestion(network: InnovationNetwork) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        register(network, region="3504")
    assert list(caught.value.errors) == ["region"]
    assert "'35.04'" in caught.value.errors["region"][0]


def test_kecamatan_code_is_not_a_region_of_this_record(network: InnovationNetwork) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        register(network, region="35.04.01")
    assert list(caught.value.errors) == ["region"]


@pytest.mark.parametrize("region", ["35", "35.04", "35.71"])
def test_province_kabupaten_and_kota_may_register_innovations(
    network: InnovationNetwork, region: str
) -> None:
    innovation = register(network, region=region)
    assert network.innovation(innovation.id).region == region


# --- registration -----------------------------------------------------------------------------


def test_registration_dated_in_the_future_is_invalid_input(network: InnovationNetwork) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        register(network, started_on=today() + timedelta(days=1))
    assert list(caught.value.errors) == ["started_on"]


def test_registration_dated_today_in_the_easternmost_zone_is_accepted(network: InnovationNetwork) -> None:
    innovation = register(network, started_on=today())
    assert innovation.started_on == today()


@pytest.mark.parametrize(
    ("field", "value"),
    [("form", "teknologi"), ("initiator", "bupati"), ("stage", "replikasi"), ("urusan", ["olahraga"])],
)
def test_registration_with_a_value_outside_its_enumeration_is_invalid_input(
    network: InnovationNetwork, field: str, value: Any
) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        register(network, **{field: value})
    assert list(caught.value.errors) == [field]


def test_registration_needs_at_least_one_urusan(network: InnovationNetwork) -> None:
    with nothing_stored(network), pytest.raises(InvalidInput) as caught:
        register(network, urusan=[])
    assert list(caught.value.errors) == ["urusan"]


def test_registration_records_the_stage_date_as_the_start(network: InnovationNetwork) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(200))
    stored = network.innovation(innovation.id)
    assert stored.stage == "uji_coba"
    assert stored.stage_dates == {"uji_coba": days_ago(200)}
    assert stored.penerapan_on is None


# --- stages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "target"),
    [("inisiatif", "uji_coba"), ("uji_coba", "penerapan"), ("inisiatif", "penerapan")],
)
def test_stage_moves_forward_and_may_skip_a_stage(
    network: InnovationNetwork, start: str, target: str
) -> None:
    innovation = register(network, stage=start, started_on=days_ago(300))
    outcome = network.advance_innovation_stage(innovation.id, target, days_ago(100))
    stored = network.innovation(innovation.id)
    assert stored.stage == target
    assert stored.stage_dates[target] == days_ago(100)
    assert stored.version == 2
    assert last_record(network).type == "InnovationStageAdvanced"
    assert outcome.position == network.head_position()


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("uji_coba", "inisiatif"),
        ("penerapan", "uji_coba"),
        ("penerapan", "inisiatif"),
        ("inisiatif", "inisiatif"),
        ("uji_coba", "uji_coba"),
        ("penerapan", "penerapan"),
    ],
)
def test_stage_cannot_go_back_or_stand_still(network: InnovationNetwork, start: str, target: str) -> None:
    innovation = register(network, stage=start, started_on=days_ago(300))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        network.advance_innovation_stage(innovation.id, target, days_ago(100))
    assert caught.value.rule == Rule.INVALID_TRANSITION


def test_unknown_stage_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif")
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.advance_innovation_stage(innovation.id, "replikasi", days_ago(1))
    assert list(caught.value.errors) == ["stage"]


def test_stage_advanced_in_the_future_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif")
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.advance_innovation_stage(innovation.id, "uji_coba", today() + timedelta(days=1))
    assert list(caught.value.errors) == ["effective_on"]


def test_stage_advanced_before_the_start_is_date_order(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif", started_on=days_ago(100))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        network.advance_innovation_stage(innovation.id, "uji_coba", days_ago(101))
    assert caught.value.rule == Rule.DATE_ORDER


def test_stage_advanced_before_the_previous_stage_is_date_order(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif", started_on=days_ago(300))
    network.advance_innovation_stage(innovation.id, "uji_coba", days_ago(100))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        network.advance_innovation_stage(innovation.id, "penerapan", days_ago(150))
    assert caught.value.rule == Rule.DATE_ORDER


def test_stage_advanced_on_the_same_day_as_the_step_before_is_accepted(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif", started_on=days_ago(100))
    network.advance_innovation_stage(innovation.id, "uji_coba", days_ago(100))
    assert network.innovation(innovation.id).stage == "uji_coba"


# --- revision ---------------------------------------------------------------------------------


def test_revision_records_only_the_fields_that_changed(network: InnovationNetwork) -> None:
    innovation = register(network)
    network.revise_innovation(
        innovation.id,
        {
            "name": "Layanan Kesehatan Keliling Terpadu",
            "description": innovation.description,
            "digital": False,
        },
        "Official name changed",
    )
    record = last_record(network)
    assert record.type == "InnovationRevised"
    assert record.data["changes"] == {"name": "Layanan Kesehatan Keliling Terpadu"}
    assert record.data["reason"] == "Official name changed"
    assert network.innovation(innovation.id).name == "Layanan Kesehatan Keliling Terpadu"


def test_revision_of_urusan_replaces_the_list(network: InnovationNetwork) -> None:
    innovation = register(network)
    network.revise_innovation(innovation.id, {"urusan": ["kesehatan", "sosial"]}, "Also a social service")
    assert network.innovation(innovation.id).urusan == ["kesehatan", "sosial"]


def test_revision_that_changes_nothing_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.revise_innovation(
            innovation.id, {"name": innovation.name, "urusan": list(innovation.urusan)}, "No change"
        )
    assert list(caught.value.errors) == ["changes"]


def test_revision_of_a_field_that_is_not_revisable_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.revise_innovation(innovation.id, {"region": "35.05"}, "Moved")
    assert list(caught.value.errors) == ["region"]


# --- evaluation -------------------------------------------------------------------------------


def test_innovation_at_inisiatif_cannot_be_evaluated(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif")
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        network.evaluate_innovation(innovation.id, evaluation(days_ago(1), {"regulasi": 1}))
    assert caught.value.rule == Rule.INVALID_TRANSITION


@pytest.mark.parametrize("stage", ["uji_coba", "penerapan"])
def test_innovation_at_uji_coba_or_penerapan_can_be_evaluated(network: InnovationNetwork, stage: str) -> None:
    innovation = register(network, stage=stage)
    network.evaluate_innovation(innovation.id, evaluation(days_ago(1), {"regulasi": 2}))
    stored = network.innovation(innovation.id)
    assert len(stored.evaluations) == 1
    assert stored.evaluations[0]["scores"]["regulasi"] == 2
    assert last_record(network).type == "InnovationEvaluated"


def test_innovation_evaluation_with_an_unknown_indicator_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.evaluate_innovation(innovation.id, evaluation(days_ago(1), {"popularitas": 2}))
    assert list(caught.value.errors) == ["scores.popularitas"]


def test_innovation_evaluation_with_level_four_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.evaluate_innovation(innovation.id, evaluation(days_ago(1), {"regulasi": 4}))
    assert list(caught.value.errors) == ["scores.regulasi"]


def test_innovation_evaluation_in_the_future_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    future = today() + timedelta(days=1)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.evaluate_innovation(innovation.id, evaluation(future, {"regulasi": 1}))
    assert "evaluated_on" in caught.value.errors


def test_innovation_evaluation_before_the_step_before_is_date_order(network: InnovationNetwork) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(300))
    network.advance_innovation_stage(innovation.id, "penerapan", days_ago(10))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        network.evaluate_innovation(innovation.id, evaluation(days_ago(11), {"regulasi": 1}))
    assert caught.value.rule == Rule.DATE_ORDER


def test_innovation_evaluation_computes_total_score_and_category(network: InnovationNetwork) -> None:
    innovation = register(network)
    # regulasi weight 3, sdm weight 2, video weight 4; replikasi derived as 0 (no adopters); max total 111.
    network.evaluate_innovation(
        innovation.id, evaluation(days_ago(1), {"regulasi": 3, "sdm": 2, "video": 1}, notes="desk review")
    )
    recorded = network.innovation(innovation.id).evaluations[0]
    assert recorded["total"] == 3 * 3 + 2 * 2 + 4 * 1
    assert recorded["score"] == Decimal("15.32")
    assert recorded["category"] == "kurang_inovatif"
    assert recorded["scores"]["anggaran"] == 0  # left-out indicators score 0
    assert recorded["notes"] == "desk review"


def test_innovation_evaluation_ignores_the_clients_replikasi_level(network: InnovationNetwork) -> None:
    innovation = register(network)
    network.evaluate_innovation(innovation.id, evaluation(days_ago(1), {"replikasi": 3, "regulasi": 1}))
    recorded = network.innovation(innovation.id).evaluations[0]
    assert recorded["scores"]["replikasi"] == 0
    assert recorded["total"] == 3


def test_innovation_replikasi_counts_distinct_adopters_at_penerapan_as_of_the_evaluation_date(
    network: InnovationNetwork,
) -> None:
    innovation = register(network, region="35.04", started_on=days_ago(400))
    first = propose(network, innovation.id, "35.05", days_ago(200))
    bring_to_penerapan(network, first, days_ago(150))
    second = propose(network, innovation.id, "35.06", days_ago(200))
    bring_to_penerapan(network, second, days_ago(60))
    trial_only = propose(network, innovation.id, "35.07", days_ago(200))
    network.sign_agreement(trial_only, document="mou", document_number="M/2", signed_on=days_ago(190))
    network.advance_adoption(trial_only, stage="uji_coba", effective_on=days_ago(180))
    second_generation = propose(network, innovation.id, "35.08", days_ago(140), source="35.05")
    bring_to_penerapan(network, second_generation, days_ago(130))

    def replikasi_on(on: date) -> int:
        network.evaluate_innovation(innovation.id, evaluation(on, {"regulasi": 1}))
        level: int = network.innovation(innovation.id).evaluations[-1]["scores"]["replikasi"]
        return level

    # 35.05 only: 35.06 reaches penerapan later, 35.07 is on trial, 35.08 copied from 35.05.
    assert replikasi_on(days_ago(100)) == 1
    assert replikasi_on(days_ago(30)) == 2


def test_innovation_replikasi_counts_a_discontinued_adopter_only_before_its_discontinuation(
    network: InnovationNetwork,
) -> None:
    innovation = register(network, region="35.04", started_on=days_ago(400))
    first = propose(network, innovation.id, "35.05", days_ago(200))
    bring_to_penerapan(network, first, days_ago(150))
    network.discontinue_replication(first, reason="Budget cut", effective_on=days_ago(100))
    again = propose(network, innovation.id, "35.05", days_ago(90))
    bring_to_penerapan(network, again, days_ago(50))

    levels = []
    for on in (days_ago(120), days_ago(70), days_ago(10)):
        network.evaluate_innovation(innovation.id, evaluation(on, {}))
        levels.append(network.innovation(innovation.id).evaluations[-1]["scores"]["replikasi"])
    # At penerapan on day -120; discontinued and not yet back on day -70; back on day -10, counted once.
    assert levels == [1, 0, 1]


# --- retirement (rule 9) ----------------------------------------------------------------------


def test_retirement_is_recorded_with_its_reason_and_date(network: InnovationNetwork) -> None:
    innovation = register(network)
    network.retire_innovation(innovation.id, "Replaced by a national programme", days_ago(5))
    stored = network.innovation(innovation.id)
    assert stored.retired is True
    assert stored.retired_on == days_ago(5)
    assert stored.retirement_reason == "Replaced by a national programme"
    assert not stored.is_replicable


def test_retirement_in_the_future_is_invalid_input(network: InnovationNetwork) -> None:
    innovation = register(network)
    with nothing_stored(network, innovation.id), pytest.raises(InvalidInput) as caught:
        network.retire_innovation(innovation.id, "Later", today() + timedelta(days=1))
    assert list(caught.value.errors) == ["effective_on"]


def test_retirement_before_the_step_before_is_date_order(network: InnovationNetwork) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(300))
    network.evaluate_innovation(innovation.id, evaluation(days_ago(20), {"regulasi": 1}))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        network.retire_innovation(innovation.id, "Too early", days_ago(21))
    assert caught.value.rule == Rule.DATE_ORDER


RETIRED_COMMANDS = {
    "advance_stage": lambda n, i: n.advance_innovation_stage(i, "penerapan", days_ago(1)),
    "revise": lambda n, i: n.revise_innovation(i, {"name": "Renamed"}, "rename"),
    "evaluate": lambda n, i: n.evaluate_innovation(i, evaluation(days_ago(1), {"regulasi": 1})),
    "retire": lambda n, i: n.retire_innovation(i, "again", days_ago(1)),
}


@pytest.mark.parametrize("command", sorted(RETIRED_COMMANDS))
def test_retired_innovation_accepts_no_further_command(network: InnovationNetwork, command: str) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(300))
    network.retire_innovation(innovation.id, "Stopped", days_ago(10))
    with nothing_stored(network, innovation.id), pytest.raises(RuleViolation) as caught:
        RETIRED_COMMANDS[command](network, innovation.id)
    assert caught.value.rule == Rule.RETIRED


# --- audit: actor, If-Match, older versions ---------------------------------------------------


def test_every_innovation_event_records_actor_role_and_request_id(network: InnovationNetwork) -> None:
    with acting_as(Actor("operator-tulungagung", "operator", "req-1")):
        innovation = register(network, stage="inisiatif", started_on=days_ago(300))
    with acting_as(Actor("operator-tulungagung", "operator", "req-2")):
        network.advance_innovation_stage(innovation.id, "uji_coba", days_ago(200))
    with acting_as(Actor("evaluator-kemendagri", "evaluator", "req-3")):
        network.evaluate_innovation(innovation.id, evaluation(days_ago(100), {"regulasi": 1}))
    with acting_as(Actor("operator-tulungagung", "operator", "req-4")):
        network.revise_innovation(innovation.id, {"digital": True}, "Now online")
    with acting_as(Actor("admin-pusat", "admin", "req-5")):
        network.retire_innovation(innovation.id, "Merged", days_ago(1))

    records = read_records(network, 0, 100)
    assert [(r.type, r.actor, r.actor_role, r.request_id) for r in records] == [
        ("InnovationRegistered", "operator-tulungagung", "operator", "req-1"),
        ("InnovationStageAdvanced", "operator-tulungagung", "operator", "req-2"),
        ("InnovationEvaluated", "evaluator-kemendagri", "evaluator", "req-3"),
        ("InnovationRevised", "operator-tulungagung", "operator", "req-4"),
        ("InnovationRetired", "admin-pusat", "admin", "req-5"),
    ]
    assert all(r.aggregate_type == "Innovation" for r in records)
    assert [r.version for r in records] == [1, 2, 3, 4, 5]


IF_VERSION_COMMANDS = {
    "advance_stage": lambda n, i, v: n.advance_innovation_stage(i, "penerapan", days_ago(1), if_version=v),
    "revise": lambda n, i, v: n.revise_innovation(i, {"name": "Renamed"}, "rename", if_version=v),
    "evaluate": lambda n, i, v: n.evaluate_innovation(
        i, evaluation(days_ago(1), {"regulasi": 1}), if_version=v
    ),
    "retire": lambda n, i, v: n.retire_innovation(i, "stop", days_ago(1), if_version=v),
}


@pytest.mark.parametrize("command", sorted(IF_VERSION_COMMANDS))
def test_stale_if_version_on_an_innovation_is_a_version_conflict(
    network: InnovationNetwork, command: str
) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(300))
    network.revise_innovation(innovation.id, {"digital": True}, "online")  # now at version 2
    with nothing_stored(network, innovation.id), pytest.raises(VersionConflict) as caught:
        IF_VERSION_COMMANDS[command](network, innovation.id, 1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)


@pytest.mark.parametrize("command", sorted(IF_VERSION_COMMANDS))
def test_current_if_version_on_an_innovation_is_accepted(network: InnovationNetwork, command: str) -> None:
    innovation = register(network, stage="uji_coba", started_on=days_ago(300))
    outcome = IF_VERSION_COMMANDS[command](network, innovation.id, 1)
    assert outcome.aggregate.version == 2
    assert network.innovation(innovation.id).version == 2


def test_an_older_version_of_an_innovation_can_be_rebuilt(network: InnovationNetwork) -> None:
    innovation = register(network, stage="inisiatif", started_on=days_ago(300))
    network.advance_innovation_stage(innovation.id, "uji_coba", days_ago(200))
    network.revise_innovation(innovation.id, {"name": "Renamed"}, "rename")
    network.retire_innovation(innovation.id, "stop", days_ago(1))

    first = network.innovation(innovation.id, version=1)
    assert (first.version, first.stage, first.name, first.retired) == (
        1,
        "inisiatif",
        innovation.name,
        False,
    )
    third = network.innovation(innovation.id, version=3)
    assert (third.version, third.stage, third.name, third.retired) == (3, "uji_coba", "Renamed", False)
    assert network.innovation(innovation.id).retired is True
