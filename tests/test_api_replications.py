"""The replications API (api.md "Replications" and "Index views"): the whole life of a replication through
HTTP, every rule code, validation, listings with filters and cursors, and the index views, on a real SQLite
store. Every refused command is checked to have stored nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from conftest import days_ago, innovation_fields

INNOVATIONS = "/api/v1/innovations"
REPLICATIONS = "/api/v1/replications"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
EVALUATION_YEAR = 2026  # covered by iid-2026 and not after any recent evaluation date
REGION_COUNT = 552  # 38 provinces and 514 kabupaten/kota (Kepmendagri 2025)

# The business dates of a replication driven through its life: each step a few days after the one before.
PROPOSED, SIGNED, TRIAL, IMPLEMENTED, LATER = 60, 50, 40, 30, 20


# --- helpers ----------------------------------------------------------------------------------


def as_json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()}


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def register(api: Any, token: str, **overrides: Any) -> dict[str, Any]:
    return ok(api.post(INNOVATIONS, as_json(innovation_fields(**overrides)), token), 201)


def proposal(innovation_id: str, adopting_region: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "innovation_id": innovation_id,
        "adopting_region": adopting_region,
        "rationale": "Remote villages lack health services.",
        "proposed_on": days_ago(PROPOSED),
    }
    body.update(overrides)
    return as_json(body)


def agreement(days: int = SIGNED) -> dict[str, Any]:
    return {"document": "pks", "document_number": "PKS/12/2025", "signed_on": days_ago(days).isoformat()}


def adoption(stage: str, days: int) -> dict[str, Any]:
    return {"stage": stage, "effective_on": days_ago(days).isoformat()}


def modification(days: int = LATER, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "component": "teknologi",
        "nature": "penyesuaian",
        "core": False,
        "description": "Uses the regency's own app.",
        "reason": "The original app is not licensed here.",
        "recorded_on": days_ago(days).isoformat(),
    }
    body.update(overrides)
    return body


def evaluation(days: int = LATER) -> dict[str, Any]:
    on = days_ago(days)
    return {"year": EVALUATION_YEAR, "scores": {"regulasi": 3, "video": 2}, "evaluated_on": on.isoformat()}


def drive(
    api: Any,
    token: str,
    innovation_id: str,
    adopting_region: str,
    status: str = "penerapan",
    proposed_on: date | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Propose a replication and take it, through HTTP, to `status`; answers its last command's body.
    Each step is dated a few days after the one before (10 days by default: proposed 60 days ago, signed,
    rejected or discontinued 50, trial 40, penerapan 30)."""
    proposed_on = proposed_on or days_ago(PROPOSED)
    gap = timedelta(days=min(10, (days_ago(0) - proposed_on).days // 3))
    signed, trial, implemented = (proposed_on + gap * n for n in (1, 2, 3))
    body = proposal(innovation_id, adopting_region, proposed_on=proposed_on, **overrides)
    replication = ok(api.post(REPLICATIONS, body, token), 201)
    path = f"{REPLICATIONS}/{replication['id']}"
    if status == "ditolak":
        rejection = {"reason": "No budget", "rejected_on": signed.isoformat()}
        return ok(api.post(f"{path}/rejection", rejection, token))
    steps = [
        ("disepakati", "agreement", dict(agreement(), signed_on=signed.isoformat())),
        ("uji_coba", "adoption", {"stage": "uji_coba", "effective_on": trial.isoformat()}),
        ("penerapan", "adoption", {"stage": "penerapan", "effective_on": implemented.isoformat()}),
    ]
    target = "diusulkan" if status == "dihentikan" else status
    for reached, command, step in steps:
        if replication["status"] == target:
            break
        replication = ok(api.post(f"{path}/{command}", step, token))
        assert replication["status"] == reached
    if status == "dihentikan":
        stop = {"reason": "Budget cut", "effective_on": signed.isoformat()}
        replication = ok(api.post(f"{path}/discontinuation", stop, token))
    assert replication["status"] == status
    return replication


def assert_refused(
    api: Any,
    path: str,
    body: dict[str, Any],
    token: str,
    status: int,
    slug: str,
    rule: str | None = None,
) -> dict[str, Any]:
    """The command is refused with this problem, and the store is left as it was."""
    before = api.runtime.network.head_position()
    response = api.post(path, as_json(body), token)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem: dict[str, Any] = response.get_json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    if rule is not None:
        assert problem["rule"] == rule
    assert api.runtime.network.head_position() == before
    return problem


def get_settled(api: Any, path: str) -> Any:
    api.settle()
    response = api.get(path)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def ids_of(api: Any, query: str) -> list[str]:
    return [item["id"] for item in get_settled(api, f"{REPLICATIONS}?{query}")["items"]]


@pytest.fixture
def innovation(api: Any, admin_token: str) -> dict[str, Any]:
    """An innovation of Kabupaten Tulungagung (35.04) at penerapan since 400 days."""
    return register(api, admin_token)


@pytest.fixture
def proposed(api: Any, admin_token: str, innovation: dict[str, Any]) -> dict[str, Any]:
    """A proposal by Kabupaten Blitar (35.05) to replicate it."""
    return drive(api, admin_token, innovation["id"], "35.05", "diusulkan")


# --- the whole life ---------------------------------------------------------------------------


def test_proposal_answers_201_with_location_etag_position_and_names(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    response = api.post(REPLICATIONS, proposal(innovation["id"], "35.05", facilitator="35"), admin_token)
    body = ok(response, 201)
    assert response.headers["Location"] == f"{REPLICATIONS}/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers["X-Event-Position"]) == api.runtime.network.head_position()
    assert body["innovation_id"] == innovation["id"]
    assert body["innovation_name"] == innovation["name"]
    assert (body["source_region"], body["source_region_name"]) == ("35.04", "Kabupaten Tulungagung")
    assert (body["adopting_region"], body["adopting_region_name"]) == ("35.05", "Kabupaten Blitar")
    assert body["facilitator"] == "35"
    assert body["status"] == "diusulkan"
    assert body["generation"] == 1
    assert body["proposed_on"] == days_ago(PROPOSED).isoformat()
    assert body["agreement"] is None
    assert body["stages"] == {"uji_coba": None, "penerapan": None}
    assert body["modifications"] == []
    assert body["evaluations"] == []
    assert body["version"] == 1


def test_agreement_records_the_document_and_agrees(
    api: Any, admin_token: str, proposed: dict[str, Any]
) -> None:
    body = dict(agreement(), document_url="https://jdih.example.go.id/pks-12.pdf")
    response = api.post(f"{REPLICATIONS}/{proposed['id']}/agreement", body, admin_token)
    replication = ok(response)
    assert replication["status"] == "disepakati"
    assert replication["agreement"] == {
        "document": "pks",
        "document_number": "PKS/12/2025",
        "signed_on": days_ago(SIGNED).isoformat(),
        "document_url": "https://jdih.example.go.id/pks-12.pdf",
    }
    assert response.headers["ETag"] == '"2"'


def test_modification_is_logged_with_its_id(api: Any, admin_token: str, proposed: dict[str, Any]) -> None:
    response = api.post(
        f"{REPLICATIONS}/{proposed['id']}/modifications", modification(PROPOSED - 1, core=True), admin_token
    )
    [logged] = ok(response)["modifications"]
    assert logged["modification_id"]
    assert logged["component"] == "teknologi"
    assert logged["nature"] == "penyesuaian"
    assert logged["core"] is True
    assert logged["recorded_on"] == days_ago(PROPOSED - 1).isoformat()


def test_trial_and_implementation_date_their_stages(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    assert replication["stages"] == {
        "uji_coba": days_ago(TRIAL).isoformat(),
        "penerapan": days_ago(IMPLEMENTED).isoformat(),
    }
    assert replication["version"] == 4


def test_adoption_records_legal_basis_and_evidence(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", "disepakati")
    body = dict(
        adoption("uji_coba", TRIAL),
        legal_basis="Perbup No. 12/2025",
        evidence_urls=["https://blitar.example/sk"],
    )
    response = api.post(f"{REPLICATIONS}/{replication['id']}/adoption", body, admin_token)
    assert ok(response)["status"] == "uji_coba"
    api.settle(response)
    history = ok(api.get(f"{REPLICATIONS}/{replication['id']}/history", admin_token))["items"]
    assert history[-1]["type"] == "AdoptionAdvanced"
    assert history[-1]["data"]["legal_basis"] == "Perbup No. 12/2025"
    assert history[-1]["data"]["evidence_urls"] == ["https://blitar.example/sk"]


def test_evaluation_of_a_replication_is_scored_by_the_service(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", "uji_coba")
    body = evaluation()
    body["scores"] = {**body["scores"], "replikasi": 3}
    response = api.post(f"{REPLICATIONS}/{replication['id']}/evaluations", body, admin_token)
    [recorded] = ok(response)["evaluations"]
    assert recorded["scores"]["replikasi"] == 0  # nobody replicated it from Blitar
    assert recorded["total"] == 3 * 3 + 2 * 4
    assert recorded["score"] == pytest.approx(15.32)
    assert recorded["category"] == "kurang_inovatif"


def test_the_whole_life_is_what_reads_answer(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", "disepakati")
    path = f"{REPLICATIONS}/{replication['id']}"
    ok(api.post(f"{path}/modifications", modification(SIGNED - 1), admin_token))
    ok(api.post(f"{path}/adoption", adoption("uji_coba", TRIAL), admin_token))
    ok(api.post(f"{path}/evaluations", evaluation(TRIAL - 1), admin_token))
    last = api.post(f"{path}/adoption", adoption("penerapan", IMPLEMENTED), admin_token)
    answered = ok(last)
    assert answered["status"] == "penerapan"
    assert answered["version"] == 6
    read = api.get(f"{path}?min_position={last.headers['X-Event-Position']}")
    assert read.headers["ETag"] == '"6"'
    assert ok(read) == answered


def test_implementation_counts_towards_the_innovations_replication_count(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    drive(api, admin_token, innovation["id"], "35.06", "uji_coba")
    assert get_settled(api, f"{INNOVATIONS}/{innovation['id']}")["replication_count"] == 1


def test_rejection_closes_the_replication(api: Any, admin_token: str, proposed: dict[str, Any]) -> None:
    response = api.post(
        f"{REPLICATIONS}/{proposed['id']}/rejection",
        {"reason": "No capacity", "rejected_on": days_ago(SIGNED).isoformat()},
        admin_token,
    )
    body = ok(response)
    assert body["status"] == "ditolak"
    assert body["rejection"] == {"reason": "No capacity", "rejected_on": days_ago(SIGNED).isoformat()}


@pytest.mark.parametrize(
    ("command", "body"),
    [
        ("agreement", agreement(LATER)),
        ("modifications", modification(LATER)),
        ("discontinuation", {"reason": "x", "effective_on": days_ago(LATER).isoformat()}),
    ],
)
def test_a_rejected_replication_accepts_nothing_more(
    api: Any, admin_token: str, innovation: dict[str, Any], command: str, body: dict[str, Any]
) -> None:
    rejected = drive(api, admin_token, innovation["id"], "35.05", "ditolak")
    assert_refused(
        api,
        f"{REPLICATIONS}/{rejected['id']}/{command}",
        body,
        admin_token,
        409,
        "rule-violation",
        "invalid-transition",
    )


def test_after_a_rejection_the_region_may_propose_again(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "ditolak")
    again = api.post(
        REPLICATIONS, proposal(innovation["id"], "35.05", proposed_on=days_ago(LATER)), admin_token
    )
    assert ok(again, 201)["status"] == "diusulkan"


@pytest.mark.parametrize("status", ["diusulkan", "disepakati", "uji_coba", "penerapan"])
def test_discontinuation_from_any_open_status(
    api: Any, admin_token: str, innovation: dict[str, Any], status: str
) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", status)
    response = api.post(
        f"{REPLICATIONS}/{replication['id']}/discontinuation",
        {"reason": "Budget cut", "effective_on": days_ago(LATER).isoformat()},
        admin_token,
    )
    body = ok(response)
    assert body["status"] == "dihentikan"
    assert body["discontinuation"] == {"reason": "Budget cut", "effective_on": days_ago(LATER).isoformat()}


def test_a_discontinued_replication_accepts_nothing_more(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    stopped = drive(api, admin_token, innovation["id"], "35.05", "dihentikan")
    assert_refused(
        api,
        f"{REPLICATIONS}/{stopped['id']}/modifications",
        modification(LATER),
        admin_token,
        409,
        "rule-violation",
        "invalid-transition",
    )


def test_proposal_stores_an_empty_facilitator_as_null(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    response = api.post(REPLICATIONS, proposal(innovation["id"], "35.05", facilitator="  "), admin_token)
    assert ok(response, 201)["facilitator"] is None


def test_proposal_dated_today_in_the_easternmost_zone_is_accepted(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    response = api.post(
        REPLICATIONS, proposal(innovation["id"], "35.05", proposed_on=days_ago(0)), admin_token
    )
    assert ok(response, 201)["proposed_on"] == days_ago(0).isoformat()


def test_innovation_evaluation_derives_replikasi_from_its_adopters_at_penerapan(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    drive(api, admin_token, innovation["id"], "35.06", "penerapan")
    drive(api, admin_token, innovation["id"], "35.07", "uji_coba")
    body = evaluation()
    body["scores"] = {"regulasi": 3, "replikasi": 0}
    response = api.post(f"{INNOVATIONS}/{innovation['id']}/evaluations", body, admin_token)
    [recorded] = ok(response)["evaluations"]
    assert recorded["scores"]["replikasi"] == 2
    assert recorded["total"] == 3 * 3 + 2 * 3


def test_replication_evaluation_derives_replikasi_from_the_adopters_own_adopters(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    first = drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    drive(
        api,
        admin_token,
        innovation["id"],
        "35.06",
        "penerapan",
        source_region="35.05",
        proposed_on=days_ago(IMPLEMENTED),
    )
    response = api.post(f"{REPLICATIONS}/{first['id']}/evaluations", evaluation(days=0), admin_token)
    [recorded] = ok(response)["evaluations"]
    assert recorded["scores"]["replikasi"] == 1


def test_second_generation_proposal_from_an_adopter_at_penerapan(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    response = api.post(
        REPLICATIONS,
        proposal(innovation["id"], "35.06", source_region="35.05", proposed_on=days_ago(LATER)),
        admin_token,
    )
    body = ok(response, 201)
    assert body["generation"] == 2
    assert (body["source_region"], body["source_region_name"]) == ("35.05", "Kabupaten Blitar")


# --- rule codes through HTTP ------------------------------------------------------------------


def test_adopting_the_innovations_own_region_is_same_region(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.04"),
        admin_token,
        409,
        "rule-violation",
        "same-region",
    )


def test_adopting_from_oneself_is_same_region(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.05", source_region="35.05", proposed_on=days_ago(LATER)),
        admin_token,
        409,
        "rule-violation",
        "same-region",
    )


@pytest.mark.parametrize("source_status", [None, "uji_coba", "dihentikan"])
def test_source_that_is_not_an_adopter_at_penerapan_is_invalid_source(
    api: Any, admin_token: str, innovation: dict[str, Any], source_status: str | None
) -> None:
    if source_status is not None:
        drive(api, admin_token, innovation["id"], "35.05", source_status)
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.06", source_region="35.05", proposed_on=days_ago(LATER)),
        admin_token,
        409,
        "rule-violation",
        "invalid-source",
    )


@pytest.mark.parametrize("stage", ["inisiatif", "uji_coba"])
def test_innovation_not_at_penerapan_is_not_replicable(api: Any, admin_token: str, stage: str) -> None:
    innovation = register(api, admin_token, stage=stage)
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.05"),
        admin_token,
        409,
        "rule-violation",
        "innovation-not-replicable",
    )


def test_retired_innovation_is_not_replicable(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    ok(
        api.post(
            f"{INNOVATIONS}/{innovation['id']}/retirement",
            {"reason": "Stopped", "effective_on": days_ago(100).isoformat()},
            admin_token,
        )
    )
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.05"),
        admin_token,
        409,
        "rule-violation",
        "innovation-not-replicable",
    )


@pytest.mark.parametrize("status", ["diusulkan", "uji_coba", "penerapan"])
def test_second_open_replication_by_the_same_region_is_duplicate(
    api: Any, admin_token: str, innovation: dict[str, Any], status: str
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", status)
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.05", proposed_on=days_ago(LATER)),
        admin_token,
        409,
        "rule-violation",
        "duplicate-open-replication",
    )


@pytest.mark.parametrize(
    ("status", "command", "body"),
    [
        ("diusulkan", "adoption", adoption("uji_coba", LATER)),
        ("diusulkan", "adoption", adoption("penerapan", LATER)),
        ("diusulkan", "evaluations", evaluation()),
        ("disepakati", "agreement", agreement(LATER)),
        ("disepakati", "adoption", adoption("penerapan", LATER)),
        ("disepakati", "rejection", {"reason": "x", "rejected_on": days_ago(LATER).isoformat()}),
        ("uji_coba", "adoption", adoption("uji_coba", LATER)),
        ("penerapan", "adoption", adoption("penerapan", LATER)),
    ],
    ids=[
        "skip-agreement",
        "skip-to-penerapan",
        "evaluate-proposal",
        "sign-twice",
        "skip-trial",
        "reject-after-agreement",
        "trial-twice",
        "implement-twice",
    ],
)
def test_moves_outside_the_life_cycle_are_invalid_transition(
    api: Any, admin_token: str, innovation: dict[str, Any], status: str, command: str, body: dict[str, Any]
) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", status)
    assert_refused(
        api,
        f"{REPLICATIONS}/{replication['id']}/{command}",
        body,
        admin_token,
        409,
        "rule-violation",
        "invalid-transition",
    )


def test_step_dated_before_the_step_before_is_date_order(
    api: Any, admin_token: str, proposed: dict[str, Any]
) -> None:
    assert_refused(
        api,
        f"{REPLICATIONS}/{proposed['id']}/agreement",
        agreement(PROPOSED + 1),
        admin_token,
        409,
        "rule-violation",
        "date-order",
    )


def test_proposal_dated_before_the_innovations_penerapan_is_date_order(api: Any, admin_token: str) -> None:
    innovation = register(api, admin_token, started_on=days_ago(10))
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.05"),
        admin_token,
        409,
        "rule-violation",
        "date-order",
    )


def test_proposal_dated_before_the_sources_penerapan_is_date_order(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    assert_refused(
        api,
        REPLICATIONS,
        proposal(innovation["id"], "35.06", source_region="35.05", proposed_on=days_ago(IMPLEMENTED + 1)),
        admin_token,
        409,
        "rule-violation",
        "date-order",
    )


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"innovation_id": UNKNOWN_ID}, "innovation_id"),
        ({"innovation_id": "not-a-uuid"}, "innovation_id"),
        ({"adopting_region": "99.98"}, "adopting_region"),
        ({"source_region": "35.99"}, "source_region"),
        ({"proposed_on": days_ago(-2)}, "proposed_on"),
        ({"proposed_on": "yesterday"}, "proposed_on"),
        ({"rationale": "   "}, "rationale"),
        ({"colour": "red"}, "colour"),
    ],
    ids=[
        "unknown-innovation",
        "malformed-innovation-id",
        "unknown-adopting-region",
        "unknown-source-region",
        "future-date",
        "malformed-date",
        "empty-trimmed-rationale",
        "unknown-field",
    ],
)
def test_invalid_proposal_is_422_naming_the_field(
    api: Any, admin_token: str, innovation: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    body = {**proposal(innovation["id"], "35.05"), **as_json(overrides)}
    problem = assert_refused(api, REPLICATIONS, body, admin_token, 422, "validation-error")
    assert field in problem["errors"]


@pytest.mark.parametrize(
    ("field", "undotted", "suggested"),
    [("adopting_region", "3505", "35.05"), ("source_region", "3504", "35.04")],
)
def test_undotted_region_code_is_422_suggesting_the_dotted_one(
    api: Any, admin_token: str, innovation: dict[str, Any], field: str, undotted: str, suggested: str
) -> None:
    body = {**proposal(innovation["id"], "35.05"), field: undotted}
    problem = assert_refused(api, REPLICATIONS, body, admin_token, 422, "validation-error")
    assert f"'{suggested}'" in " ".join(problem["errors"][field])


@pytest.mark.parametrize("field", ["innovation_id", "adopting_region", "rationale", "proposed_on"])
def test_proposal_without_a_required_field_is_422(
    api: Any, admin_token: str, innovation: dict[str, Any], field: str
) -> None:
    body = proposal(innovation["id"], "35.05")
    del body[field]
    problem = assert_refused(api, REPLICATIONS, body, admin_token, 422, "validation-error")
    assert field in problem["errors"]


@pytest.mark.parametrize(
    ("command", "body", "field"),
    [
        ("agreement", dict(agreement(), document="kontrak"), "document"),
        ("agreement", dict(agreement(), document_number=" "), "document_number"),
        ("modifications", modification(component="warna"), "component"),
        ("modifications", modification(nature="penghapusan"), "nature"),
        ("modifications", modification(core="no"), "core"),
        ("modifications", modification(recorded_on=days_ago(-1).isoformat()), "recorded_on"),
        ("rejection", {"rejected_on": days_ago(LATER).isoformat()}, "reason"),
    ],
    ids=[
        "unknown-document",
        "empty-document-number",
        "unknown-component",
        "unknown-nature",
        "non-boolean-core",
        "future-date",
        "missing-reason",
    ],
)
def test_invalid_command_on_a_replication_is_422(
    api: Any, admin_token: str, proposed: dict[str, Any], command: str, body: dict[str, Any], field: str
) -> None:
    problem = assert_refused(
        api, f"{REPLICATIONS}/{proposed['id']}/{command}", body, admin_token, 422, "validation-error"
    )
    assert field in problem["errors"]


def test_adoption_to_an_unknown_stage_is_422(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", "disepakati")
    problem = assert_refused(
        api,
        f"{REPLICATIONS}/{replication['id']}/adoption",
        adoption("inisiatif", LATER),
        admin_token,
        422,
        "validation-error",
    )
    assert "stage" in problem["errors"]


def test_command_on_unknown_replication_is_404(api: Any, admin_token: str) -> None:
    assert_refused(api, f"{REPLICATIONS}/{UNKNOWN_ID}/agreement", agreement(), admin_token, 404, "not-found")


def test_unknown_replication_is_404(api: Any) -> None:
    response = api.get(f"{REPLICATIONS}/{UNKNOWN_ID}")
    assert response.status_code == 404
    assert response.get_json()["type"] == "/problems/not-found"


# --- listing ----------------------------------------------------------------------------------


@pytest.fixture
def network_of_replications(api: Any, admin_token: str) -> dict[str, str]:
    """Replications across provinces, statuses, forms and urusan, by a short name."""
    health = register(api, admin_token)  # 35.04, pelayanan_publik, kesehatan
    farming = register(
        api, admin_token, region="32.04", name="Klinik Tani", form="tata_kelola", urusan=["pertanian"]
    )
    made = {
        "blitar": drive(api, admin_token, health["id"], "35.05", "penerapan"),
        "kediri": drive(api, admin_token, health["id"], "35.06", "ditolak"),
        "bali": drive(api, admin_token, health["id"], "51.01", "uji_coba"),
        "second_generation": drive(
            api,
            admin_token,
            health["id"],
            "35.07",
            "diusulkan",
            source_region="35.05",
            proposed_on=days_ago(LATER),
        ),
        "garut": drive(api, admin_token, farming["id"], "32.05", "disepakati"),
        "from_java_to_java": drive(api, admin_token, farming["id"], "35.08", "diusulkan"),
    }
    ids = {key: doc["id"] for key, doc in made.items()}
    ids["health"], ids["farming"] = health["id"], farming["id"]
    return ids


def test_list_answers_every_replication_in_proposal_order(
    api: Any, network_of_replications: dict[str, str]
) -> None:
    n = network_of_replications
    expected = [
        n["blitar"],
        n["kediri"],
        n["bali"],
        n["second_generation"],
        n["garut"],
        n["from_java_to_java"],
    ]
    assert ids_of(api, "") == expected


def test_list_filters_by_innovation(api: Any, network_of_replications: dict[str, str]) -> None:
    n = network_of_replications
    assert ids_of(api, f"innovation_id={n['farming']}") == [n["garut"], n["from_java_to_java"]]


def test_list_filters_by_source_region(api: Any, network_of_replications: dict[str, str]) -> None:
    assert ids_of(api, "source_region=35.05") == [network_of_replications["second_generation"]]


def test_list_filters_by_adopting_region(api: Any, network_of_replications: dict[str, str]) -> None:
    assert ids_of(api, "adopting_region=51.01") == [network_of_replications["bali"]]


def test_list_filters_by_province_on_either_side(api: Any, network_of_replications: dict[str, str]) -> None:
    n = network_of_replications
    # 51 (Bali) only adopts; 32 (Jawa Barat) is the source of two, one of which goes to Jawa Timur
    assert ids_of(api, "province=51") == [n["bali"]]
    assert ids_of(api, "province=32") == [n["garut"], n["from_java_to_java"]]


def test_list_filters_by_status(api: Any, network_of_replications: dict[str, str]) -> None:
    n = network_of_replications
    assert ids_of(api, "status=diusulkan") == [n["second_generation"], n["from_java_to_java"]]
    assert ids_of(api, "status=ditolak") == [n["kediri"]]


def test_list_filters_by_the_innovations_form(api: Any, network_of_replications: dict[str, str]) -> None:
    n = network_of_replications
    assert ids_of(api, "form=tata_kelola") == [n["garut"], n["from_java_to_java"]]


def test_list_filters_by_the_innovations_urusan(api: Any, network_of_replications: dict[str, str]) -> None:
    n = network_of_replications
    assert ids_of(api, "urusan=kesehatan") == [n["blitar"], n["kediri"], n["bali"], n["second_generation"]]


def test_list_combines_filters(api: Any, network_of_replications: dict[str, str]) -> None:
    n = network_of_replications
    assert ids_of(api, f"innovation_id={n['health']}&province=35&status=penerapan") == [n["blitar"]]


@pytest.mark.parametrize(
    "query",
    [
        "status=selesai",
        "innovation_id=42",
        "adopting_region=3505",
        "province=35.05",
        "cursor=%21%21",
        "limit=abc",
    ],
)
def test_list_with_an_unparseable_parameter_is_400(api: Any, query: str) -> None:
    response = api.get(f"{REPLICATIONS}?{query}")
    assert response.status_code == 400
    assert response.get_json()["type"] == "/problems/malformed-request"


def test_iterating_replications_while_new_ones_arrive_never_skips_or_repeats(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    adopters = iter(f"35.{n:02d}" for n in range(5, 30))
    expected = [
        drive(api, admin_token, innovation["id"], next(adopters), "diusulkan")["id"] for _ in range(5)
    ]
    api.settle()
    seen: list[str] = []
    cursor = None
    while True:
        query = f"limit=2&cursor={cursor}" if cursor else "limit=2"
        response = api.get(f"{REPLICATIONS}?{query}")
        page = ok(response)
        assert ("Link" in response.headers) == (page["next_cursor"] is not None)
        seen += [item["id"] for item in page["items"]]
        expected.append(drive(api, admin_token, innovation["id"], next(adopters), "diusulkan")["id"])
        api.settle()
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 5
    assert seen == expected[: len(seen)]


# --- index views ------------------------------------------------------------------------------


def test_region_index_has_one_row_per_region_over_all_pages(api: Any) -> None:
    codes: list[str] = []
    path = "/api/v1/index/regions?limit=200"
    while True:
        response = api.get(path)
        page = ok(response)
        codes += [row["code"] for row in page["items"]]
        if page["next_cursor"] is None:
            break
        link = response.headers["Link"]
        path = link[link.index("<") + 1 : link.index(">")]
    assert len(codes) == len(set(codes)) == REGION_COUNT
    assert codes == sorted(codes)


def test_region_index_answers_up_to_1000_rows_a_page(api: Any) -> None:
    page = ok(api.get("/api/v1/index/regions?limit=1000"))
    assert len(page["items"]) == REGION_COUNT
    assert page["next_cursor"] is None


def test_region_index_row_without_anything_recorded_is_all_zeros(api: Any) -> None:
    row = ok(api.get("/api/v1/index/regions?limit=1"))["items"][0]
    assert row["code"] == "11"
    assert row["name"] == "Aceh"
    assert row["type"] == "provinsi"
    assert row["innovations"] == 0
    assert row["replications_as_source"] == {"adopters": 0, "at_penerapan": 0}
    assert set(row["replications_as_adopter"].values()) == {0}


def test_region_index_counts_a_region_as_source(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    drive(api, admin_token, innovation["id"], "35.06", "uji_coba")
    drive(api, admin_token, innovation["id"], "35.07", "ditolak")
    rows = get_settled(api, "/api/v1/index/regions?province=35&limit=100")["items"]
    [tulungagung] = [row for row in rows if row["code"] == "35.04"]
    assert tulungagung["innovations"] == 1
    assert tulungagung["replications_as_source"] == {"adopters": 2, "at_penerapan": 1}


def test_region_index_counts_a_region_as_adopter_by_status(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    other = register(api, admin_token, region="35.07", name="Sapa Warga")
    drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    drive(api, admin_token, other["id"], "35.05", "ditolak")
    row = get_settled(api, "/api/v1/index/regions/35.05")
    assert row["replications_as_adopter"]["penerapan"] == 1
    assert row["replications_as_adopter"]["ditolak"] == 1
    assert row["replications_as_adopter"]["diusulkan"] == 0


def test_region_index_row_has_its_breakdown(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    replication = drive(api, admin_token, innovation["id"], "35.05", "penerapan")
    source = get_settled(api, "/api/v1/index/regions/35.04")
    assert [(p["kind"], p["id"]) for p in source["breakdown"]["practices"]] == [
        ("innovation", innovation["id"])
    ]
    adopter = get_settled(api, "/api/v1/index/regions/35.05")
    assert [(p["kind"], p["id"]) for p in adopter["breakdown"]["practices"]] == [
        ("replication", replication["id"])
    ]


@pytest.mark.parametrize("code", ["35.99", "3504"])
def test_region_index_row_of_an_unknown_region_is_404(api: Any, code: str) -> None:
    response = api.get(f"/api/v1/index/regions/{code}")
    assert response.status_code == 404
    assert response.get_json()["type"] == "/problems/not-found"


def test_region_index_filters_by_province_and_type(api: Any) -> None:
    rows = ok(api.get("/api/v1/index/regions?province=35&type=kota&limit=100"))["items"]
    assert rows
    assert {(row["province"], row["type"]) for row in rows} == {("35", "kota")}


def test_innovation_index_ranks_by_adopters_at_penerapan(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    other = register(api, admin_token, region="35.07", name="Sapa Warga")
    drive(api, admin_token, innovation["id"], "35.05", "uji_coba")
    drive(api, admin_token, other["id"], "35.05", "penerapan")
    drive(api, admin_token, other["id"], "35.06", "penerapan")
    rows = get_settled(api, "/api/v1/index/innovations")["items"]
    assert [(row["id"], row["adopters"], row["at_penerapan"]) for row in rows] == [
        (other["id"], 2, 2),
        (innovation["id"], 1, 0),
    ]
    assert rows[0]["region_name"] == "Kabupaten Malang"
