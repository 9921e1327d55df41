"""The conventions every endpoint follows (api.md "Conventions"): problem documents for every error status,
authentication and roles, optimistic concurrency, idempotency keys, read-your-writes with `min_position`,
and the operational and reference endpoints."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import date, timedelta
from typing import Any

import pytest
from conftest import days_ago, innovation_fields
from sqlalchemy import select, update

from app import commands
from app.idempotency import ABANDONED_AFTER, fingerprint
from app.storage import idempotency_keys

INNOVATIONS = "/api/v1/innovations"
REPLICATIONS = "/api/v1/replications"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
EVALUATION_YEAR = 2026  # covered by iid-2026 and not after any recent evaluation date


# --- helpers ----------------------------------------------------------------------------------


def as_json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()}


def registration(**overrides: Any) -> dict[str, Any]:
    return as_json(innovation_fields(**overrides))


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def problem_of(response: Any, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem document of this status and type."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem: dict[str, Any] = response.get_json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == response.request.path
    return problem


def head(api: Any) -> int:
    position: int = api.runtime.network.head_position()
    return position


def proposal(innovation_id: str, adopting_region: str = "35.05") -> dict[str, Any]:
    return {
        "innovation_id": innovation_id,
        "adopting_region": adopting_region,
        "rationale": "Remote villages lack health services.",
        "proposed_on": days_ago(30).isoformat(),
    }


def agreement() -> dict[str, Any]:
    return {"document": "mou", "document_number": "MOU/1/2025", "signed_on": days_ago(20).isoformat()}


@pytest.fixture
def innovation(api: Any, admin_token: str) -> dict[str, Any]:
    """An innovation of Kabupaten Tulungagung (35.04) at penerapan."""
    return ok(api.post(INNOVATIONS, registration(), admin_token), 201)


@pytest.fixture
def replication(api: Any, admin_token: str, innovation: dict[str, Any]) -> dict[str, Any]:
    """Kabupaten Blitar (35.05) proposes to replicate it."""
    return ok(api.post(REPLICATIONS, proposal(innovation["id"]), admin_token), 201)


# --- 400 malformed-request --------------------------------------------------------------------


def test_body_that_is_not_json_is_400(api: Any, admin_token: str) -> None:
    before = head(api)
    response = api.client.post(
        INNOVATIONS,
        data='{"region": "35.04",',
        headers=api.headers(admin_token, {"Content-Type": "application/json"}),
    )
    problem_of(response, 400, "malformed-request")
    assert head(api) == before


@pytest.mark.parametrize(
    "path",
    [
        f"{INNOVATIONS}?limit=abc",
        f"{REPLICATIONS}?limit=abc",
        f"{INNOVATIONS}?min_position=abc",
        "/api/v1/index/regions?year=last",
        f"{INNOVATIONS}?retired=perhaps",
    ],
)
def test_unparseable_query_parameter_is_400(api: Any, path: str) -> None:
    problem = problem_of(api.get(path), 400, "malformed-request")
    assert problem["errors"]


@pytest.mark.parametrize(
    "path",
    [
        f"{INNOVATIONS}?cursor=not-a-cursor",
        f"{REPLICATIONS}?cursor=bm9wZQ",
        "/api/v1/index/regions?cursor=WyJub3BlIl0",
        "/api/v1/index/innovations?cursor=abc",
        "/api/v1/regions?cursor=!!!",
        "/api/v1/regions?cursor=bm9wZQ",
        "/api/v1/regions?cursor=bm9wZQ%3D%3D",
    ],
)
def test_cursor_the_api_did_not_issue_is_400(api: Any, path: str) -> None:
    problem = problem_of(api.get(path), 400, "malformed-request")
    assert "cursor" in problem["errors"]


def test_cursor_of_another_ordering_is_400(api: Any) -> None:
    by_adopters = api.get("/api/v1/index/regions?sort=adopters&limit=2").get_json()["next_cursor"]
    response = api.get(f"/api/v1/index/regions?sort=code&cursor={by_adopters}")
    problem_of(response, 400, "malformed-request")


def test_malformed_if_match_is_400(api: Any, admin_token: str, replication: dict[str, Any]) -> None:
    response = api.post(
        f"{REPLICATIONS}/{replication['id']}/agreement",
        agreement(),
        admin_token,
        **{"If-Match": "version one"},
    )
    problem_of(response, 400, "malformed-request")


# --- 401 unauthenticated ----------------------------------------------------------------------


def test_command_without_a_token_is_401(api: Any) -> None:
    before = head(api)
    response = api.post(INNOVATIONS, registration(), None)
    problem_of(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert head(api) == before


def test_unknown_token_is_401(api: Any) -> None:
    response = api.post(INNOVATIONS, registration(), "puja_not-a-token-we-issued")
    problem_of(response, 401, "unauthenticated")


def test_revoked_token_is_401(api: Any) -> None:
    token = api.token("leaver", "admin")
    assert api.post(INNOVATIONS, registration(), token).status_code == 201
    assert api.runtime.tokens.revoke("leaver")
    before = head(api)
    problem_of(api.post(INNOVATIONS, registration(), token), 401, "unauthenticated")
    assert head(api) == before


def test_authorization_that_is_not_bearer_is_401(api: Any) -> None:
    response = api.client.post(
        INNOVATIONS, json=registration(), headers={"Authorization": "Basic YWRtaW46YWRtaW4="}
    )
    problem_of(response, 401, "unauthenticated")


def test_reads_are_public(api: Any, innovation: dict[str, Any]) -> None:
    api.settle()
    assert api.get(f"{INNOVATIONS}/{innovation['id']}").status_code == 200
    assert api.get(REPLICATIONS).status_code == 200
    assert api.get("/api/v1/index/innovations").status_code == 200
    assert api.get("/api/v1/regions").status_code == 200


# --- 403 forbidden ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["evaluator", "auditor", "integrator"])
def test_role_that_cannot_register_is_403(api: Any, role: str) -> None:
    before = head(api)
    response = api.post(INNOVATIONS, registration(), api.token(f"a-{role}", role))
    problem_of(response, 403, "forbidden")
    assert head(api) == before


def test_operator_cannot_evaluate(api: Any, innovation: dict[str, Any]) -> None:
    token = api.token("tulungagung", "operator", ("35.04",))
    body = {"year": EVALUATION_YEAR, "scores": {"regulasi": 1}, "evaluated_on": days_ago(5).isoformat()}
    problem_of(api.post(f"{INNOVATIONS}/{innovation['id']}/evaluations", body, token), 403, "forbidden")


def test_evaluator_may_evaluate(api: Any, innovation: dict[str, Any]) -> None:
    token = api.token("assessor", "evaluator")
    body = {"year": EVALUATION_YEAR, "scores": {"regulasi": 1}, "evaluated_on": days_ago(5).isoformat()}
    assert ok(api.post(f"{INNOVATIONS}/{innovation['id']}/evaluations", body, token))["evaluations"]


def test_operator_outside_its_region_is_403(api: Any) -> None:
    token = api.token("blitar", "operator", ("35.05",))
    before = head(api)
    problem_of(api.post(INNOVATIONS, registration(region="35.04"), token), 403, "forbidden")
    assert head(api) == before


def test_operator_of_its_region_may_register(api: Any) -> None:
    token = api.token("tulungagung", "operator", ("35.04",))
    assert ok(api.post(INNOVATIONS, registration(region="35.04"), token), 201)["region"] == "35.04"


def test_province_operator_covers_its_kabupaten(api: Any) -> None:
    token = api.token("jawa-timur", "operator", ("35",))
    assert ok(api.post(INNOVATIONS, registration(region="35.04"), token), 201)["region"] == "35.04"


def test_province_operator_does_not_cover_another_province(api: Any) -> None:
    token = api.token("jawa-barat", "operator", ("32",))
    problem_of(api.post(INNOVATIONS, registration(region="35.04"), token), 403, "forbidden")


def test_operator_of_another_region_cannot_act_on_an_innovation(api: Any, innovation: dict[str, Any]) -> None:
    token = api.token("blitar", "operator", ("35.05",))
    body = {"reason": "Not ours", "effective_on": days_ago(1).isoformat()}
    problem_of(api.post(f"{INNOVATIONS}/{innovation['id']}/retirement", body, token), 403, "forbidden")


def test_operator_proposes_only_for_its_own_adopting_region(api: Any, innovation: dict[str, Any]) -> None:
    token = api.token("blitar", "operator", ("35.05",))
    problem_of(api.post(REPLICATIONS, proposal(innovation["id"], "35.06"), token), 403, "forbidden")
    assert ok(api.post(REPLICATIONS, proposal(innovation["id"], "35.05"), token), 201)


def test_agreement_is_for_the_source_regions_operator(api: Any, replication: dict[str, Any]) -> None:
    adopter = api.token("blitar", "operator", ("35.05",))
    source = api.token("tulungagung", "operator", ("35.04",))
    path = f"{REPLICATIONS}/{replication['id']}/agreement"
    problem_of(api.post(path, agreement(), adopter), 403, "forbidden")
    assert ok(api.post(path, agreement(), source))["status"] == "disepakati"


def test_modifications_are_for_the_adopting_regions_operator(api: Any, replication: dict[str, Any]) -> None:
    adopter = api.token("blitar", "operator", ("35.05",))
    source = api.token("tulungagung", "operator", ("35.04",))
    body = {
        "component": "sasaran",
        "nature": "penambahan",
        "core": False,
        "description": "Also serves islands.",
        "reason": "Geography.",
        "recorded_on": days_ago(25).isoformat(),
    }
    path = f"{REPLICATIONS}/{replication['id']}/modifications"
    problem_of(api.post(path, body, source), 403, "forbidden")
    assert len(ok(api.post(path, body, adopter))["modifications"]) == 1


def test_forbidden_comes_before_validation(api: Any) -> None:
    response = api.post(INNOVATIONS, {"nonsense": True}, api.token("reader", "auditor"))
    problem_of(response, 403, "forbidden")


# --- 404 not-found ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        f"{INNOVATIONS}/{UNKNOWN_ID}",
        f"{REPLICATIONS}/{UNKNOWN_ID}",
        f"{INNOVATIONS}/42",
    ],
)
def test_unknown_path_or_id_is_404(api: Any, path: str) -> None:
    problem_of(api.get(path), 404, "not-found")


# --- 409 rule-violation -----------------------------------------------------------------------


def test_broken_rule_is_409_naming_the_rule(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    before = head(api)
    problem = problem_of(
        api.post(REPLICATIONS, proposal(innovation["id"], "35.04"), admin_token), 409, "rule-violation"
    )
    assert problem["rule"] == "same-region"
    assert head(api) == before


# --- 412 version-conflict ---------------------------------------------------------------------


def test_stale_if_match_is_412_and_stores_nothing(
    api: Any, admin_token: str, replication: dict[str, Any]
) -> None:
    path = f"{REPLICATIONS}/{replication['id']}"
    modification = {
        "component": "nama",
        "nature": "penggantian",
        "core": False,
        "description": "Local name.",
        "reason": "Branding.",
        "recorded_on": days_ago(25).isoformat(),
    }
    ok(api.post(f"{path}/modifications", modification, admin_token))
    before = head(api)
    response = api.post(f"{path}/agreement", agreement(), admin_token, **{"If-Match": '"1"'})
    problem = problem_of(response, 412, "version-conflict")
    assert response.headers["ETag"] == '"2"'
    assert problem["current_version"] == 2
    assert head(api) == before


def test_current_if_match_succeeds(api: Any, admin_token: str, replication: dict[str, Any]) -> None:
    response = api.post(
        f"{REPLICATIONS}/{replication['id']}/agreement", agreement(), admin_token, **{"If-Match": '"1"'}
    )
    assert ok(response)["status"] == "disepakati"
    assert response.headers["ETag"] == '"2"'


def test_etag_of_a_read_is_a_valid_if_match(api: Any, admin_token: str, innovation: dict[str, Any]) -> None:
    api.settle()
    etag = api.get(f"{INNOVATIONS}/{innovation['id']}").headers["ETag"]
    body = {"name": "Layanan Kesehatan Terpadu", "reason": "Renamed"}
    response = api.post(
        f"{INNOVATIONS}/{innovation['id']}/revisions", body, admin_token, **{"If-Match": etag}
    )
    assert ok(response)["version"] == 2


# --- 413, 415 ---------------------------------------------------------------------------------


def test_body_over_1_mib_is_413(api: Any, admin_token: str) -> None:
    before = head(api)
    body = registration(description="x" * (1024 * 1024))
    response = api.post(INNOVATIONS, body, admin_token)
    problem_of(response, 413, "payload-too-large")
    assert head(api) == before


def test_text_plain_body_is_415(api: Any, admin_token: str) -> None:
    response = api.client.post(
        INNOVATIONS,
        data=json.dumps(registration()),
        headers=api.headers(admin_token, {"Content-Type": "text/plain"}),
    )
    problem_of(response, 415, "unsupported-media-type")


def test_json_with_a_charset_is_accepted(api: Any, admin_token: str) -> None:
    response = api.client.post(
        INNOVATIONS,
        data=json.dumps(registration()),
        headers=api.headers(admin_token, {"Content-Type": "application/json; charset=utf-8"}),
    )
    assert response.status_code == 201


# --- 422 validation-error ---------------------------------------------------------------------


def test_invalid_body_is_422_with_errors_per_field(api: Any, admin_token: str) -> None:
    problem = problem_of(
        api.post(INNOVATIONS, registration(form="nope", region="3504"), admin_token), 422, "validation-error"
    )
    assert set(problem["errors"]) == {"form", "region"}
    assert all(isinstance(m, str) for messages in problem["errors"].values() for m in messages)


def test_body_that_is_not_an_object_is_422(api: Any, admin_token: str) -> None:
    problem_of(api.post(INNOVATIONS, ["a", "list"], admin_token), 422, "validation-error")


# --- 500 internal-error -----------------------------------------------------------------------


@pytest.fixture
def broken_route(api: Any) -> str:
    def explode() -> Any:
        raise RuntimeError("secret connection string postgres://puja:hunter2@db")

    api.client.application.add_url_rule("/api/v1/explode", "explode", explode, methods=["GET", "POST"])
    return "/api/v1/explode"


def test_unexpected_error_is_500_without_a_stack_trace(api: Any, broken_route: str) -> None:
    response = api.get(broken_route)
    problem = problem_of(response, 500, "internal-error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    assert problem["request_id"] == response.headers["X-Request-ID"]


def test_unexpected_error_is_logged_under_its_request_id(
    api: Any, broken_route: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = api.get(broken_route, **{"X-Request-ID": "req-boom-1"})
    assert response.get_json()["request_id"] == "req-boom-1"
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "req-boom-1"]
    assert logged
    assert logged[0].exc_info is not None


def test_a_command_that_failed_unexpectedly_can_be_retried_with_its_key(
    api: Any, admin_token: str, broken_route: str
) -> None:
    first = api.post(broken_route, {"a": 1}, admin_token, **{"Idempotency-Key": "boom"})
    problem_of(first, 500, "internal-error")
    again = api.post(broken_route, {"a": 1}, admin_token, **{"Idempotency-Key": "boom"})
    problem_of(again, 500, "internal-error")  # run again, not "in flight" and not a replay


# --- request ids ------------------------------------------------------------------------------


def test_request_id_is_echoed_and_recorded_on_the_event(api: Any, admin_token: str) -> None:
    response = api.post(INNOVATIONS, registration(), admin_token, **{"X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    api.settle(response)
    history = ok(api.get(f"{INNOVATIONS}/{response.get_json()['id']}/history", admin_token))["items"]
    assert history[0]["request_id"] == "req-42"
    assert history[0]["actor"] == "admin-test"
    assert history[0]["actor_role"] == "admin"


def test_a_request_without_an_id_gets_one(api: Any) -> None:
    assert api.get("/healthz").headers["X-Request-ID"]


# --- idempotency ------------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_response_and_stores_nothing(api: Any, admin_token: str) -> None:
    first = api.post(INNOVATIONS, registration(), admin_token, **{"Idempotency-Key": "reg-1"})
    assert first.status_code == 201
    before = head(api)
    again = api.post(INNOVATIONS, registration(), admin_token, **{"Idempotency-Key": "reg-1"})
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    for header in ("Location", "ETag", "X-Event-Position", "Content-Type"):
        assert again.headers[header] == first.headers[header]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert head(api) == before


def test_same_key_and_body_in_another_key_order_is_a_replay(api: Any, admin_token: str) -> None:
    body = registration()
    first = api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "reg-2"})
    reordered = dict(reversed(list(body.items())))
    again = api.post(INNOVATIONS, reordered, admin_token, **{"Idempotency-Key": "reg-2"})
    assert again.get_json()["id"] == first.get_json()["id"]


def test_replay_of_a_refused_command_answers_the_same_problem(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    body = proposal(innovation["id"], "35.04")
    first = api.post(REPLICATIONS, body, admin_token, **{"Idempotency-Key": "same-region"})
    again = api.post(REPLICATIONS, body, admin_token, **{"Idempotency-Key": "same-region"})
    assert first.status_code == again.status_code == 409
    assert again.get_json() == first.get_json()


def test_same_key_with_another_body_is_422(api: Any, admin_token: str) -> None:
    api.post(INNOVATIONS, registration(), admin_token, **{"Idempotency-Key": "reg-3"})
    before = head(api)
    response = api.post(INNOVATIONS, registration(name="Lain"), admin_token, **{"Idempotency-Key": "reg-3"})
    problem_of(response, 422, "idempotency-key-reused")
    assert head(api) == before


def test_same_key_on_another_path_is_422(api: Any, admin_token: str, replication: dict[str, Any]) -> None:
    path = f"{REPLICATIONS}/{replication['id']}"
    ok(api.post(f"{path}/agreement", agreement(), admin_token, **{"Idempotency-Key": "step"}))
    body = {"reason": "x", "rejected_on": days_ago(10).isoformat()}
    response = api.post(f"{path}/rejection", body, admin_token, **{"Idempotency-Key": "step"})
    problem_of(response, 422, "idempotency-key-reused")


def test_keys_are_scoped_to_the_tokens_subject(api: Any, admin_token: str) -> None:
    other = api.token("other-admin", "admin")
    first = api.post(INNOVATIONS, registration(), admin_token, **{"Idempotency-Key": "shared"})
    second = api.post(INNOVATIONS, registration(), other, **{"Idempotency-Key": "shared"})
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]
    assert "Idempotent-Replayed" not in second.headers


def test_key_still_in_flight_is_409(api: Any, admin_token: str) -> None:
    body = registration()
    claim = api.runtime.idempotency.claim(
        "admin-test", "slow", fingerprint("POST", INNOVATIONS, json.dumps(body).encode()), "req-first"
    )
    assert claim.outcome == "claimed"
    before = head(api)
    response = api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "slow"})
    problem_of(response, 409, "idempotency-key-in-flight")
    assert head(api) == before


def test_key_released_by_an_unfinished_request_can_be_used_again(api: Any, admin_token: str) -> None:
    body = registration()
    api.runtime.idempotency.claim(
        "admin-test", "slow", fingerprint("POST", INNOVATIONS, json.dumps(body).encode()), "req-first"
    )
    api.runtime.idempotency.release("admin-test", "slow")
    assert api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "slow"}).status_code == 201


def backdate_claim(api: Any, subject: str, key: str, by: timedelta) -> None:
    """As if the claim had been made `by` ago (its request died and time went by)."""
    table = idempotency_keys
    with api.runtime.idempotency.engine.begin() as conn:
        claimed_at = conn.execute(
            select(table.c.created_at).where(table.c.subject == subject, table.c.key == key)
        ).scalar_one()
        conn.execute(
            update(table)
            .where(table.c.subject == subject, table.c.key == key)
            .values(created_at=claimed_at - by)
        )


def test_retry_of_a_request_that_died_after_storing_its_command_answers_with_what_it_stored(
    api: Any, admin_token: str, replication: dict[str, Any]
) -> None:
    path = f"{REPLICATIONS}/{replication['id']}/modifications"
    body = {
        "component": "teknologi",
        "nature": "penyesuaian",
        "core": False,
        "description": "Dipakai juga di puskesmas.",
        "reason": "Local conditions.",
        "recorded_on": days_ago(3).isoformat(),
    }
    print_ = fingerprint("POST", path, json.dumps(body).encode())
    # The first request claimed its key, stored its command and died before it could keep its answer.
    keys = api.runtime.idempotency
    assert keys.claim("admin-test", "died", print_, "req-died", head(api)).outcome == "claimed"
    stored = ok(api.post(path, body, admin_token, **{"X-Request-ID": "req-died"}))
    assert stored["version"] == replication["version"] + 1
    before = head(api)
    soon = api.post(path, body, admin_token, **{"Idempotency-Key": "died"})
    problem_of(soon, 409, "idempotency-key-in-flight")  # it may still be running
    backdate_claim(api, "admin-test", "died", ABANDONED_AFTER + timedelta(seconds=5))

    retry = api.post(path, body, admin_token, **{"Idempotency-Key": "died"})
    assert ok(retry) == stored
    assert retry.headers["ETag"] == f'"{stored["version"]}"'
    assert int(retry.headers["X-Event-Position"]) == before
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert head(api) == before  # not stored a second time
    again = api.post(path, body, admin_token, **{"Idempotency-Key": "died"})
    assert again.get_json() == retry.get_json()
    assert again.headers["X-Event-Position"] == retry.headers["X-Event-Position"]
    assert head(api) == before


def test_retry_of_a_request_that_died_before_storing_its_command_runs_it(api: Any, admin_token: str) -> None:
    body = registration()
    print_ = fingerprint("POST", INNOVATIONS, json.dumps(body).encode())
    keys = api.runtime.idempotency
    assert keys.claim("admin-test", "died-early", print_, "req-gone", head(api)).outcome == "claimed"
    backdate_claim(api, "admin-test", "died-early", ABANDONED_AFTER + timedelta(seconds=5))
    before = head(api)
    retry = api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "died-early"})
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert head(api) == before + 1
    again = api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "died-early"})
    assert again.get_json() == retry.get_json()
    assert head(api) == before + 1


def test_retry_is_not_answered_with_another_command_that_reused_the_request_id(
    api: Any, admin_token: str, innovation: dict[str, Any], replication: dict[str, Any]
) -> None:
    other = ok(api.post(REPLICATIONS, proposal(innovation["id"], "35.06"), admin_token), 201)
    path = f"{REPLICATIONS}/{replication['id']}/agreement"
    print_ = fingerprint("POST", path, json.dumps(agreement()).encode())
    keys = api.runtime.idempotency
    assert keys.claim("admin-test", "reused-id", print_, "req-same", head(api)).outcome == "claimed"
    # The first request died before storing; the client then sent another command with the same request id.
    other_path = f"{REPLICATIONS}/{other['id']}/agreement"
    ok(api.post(other_path, agreement(), admin_token, **{"X-Request-ID": "req-same"}))
    backdate_claim(api, "admin-test", "reused-id", ABANDONED_AFTER + timedelta(seconds=5))
    before = head(api)
    retry = api.post(path, agreement(), admin_token, **{"Idempotency-Key": "reused-id"})
    assert ok(retry)["id"] == replication["id"]
    assert ok(retry)["status"] == "disepakati"
    assert "Idempotent-Replayed" not in retry.headers
    assert head(api) == before + 1


def test_an_abandoned_claim_is_taken_over_by_one_retry_only(api: Any) -> None:
    keys = api.runtime.idempotency
    assert keys.claim("admin-test", "twice", "print", "req-1", 0).outcome == "claimed"
    backdate_claim(api, "admin-test", "twice", ABANDONED_AFTER + timedelta(seconds=5))
    first, second = (keys.claim("admin-test", "twice", "print", f"req-{n}", 0) for n in (2, 3))
    assert first.outcome == second.outcome == "abandoned"
    assert first.first_request_id == "req-1"
    assert keys.take_over("admin-test", "twice", first, "req-2")
    assert not keys.take_over("admin-test", "twice", second, "req-3")
    assert keys.claim("admin-test", "twice", "print", "req-4", 0).outcome == "in-flight"


def test_a_request_that_failed_after_storing_its_command_is_not_stored_again_by_its_retry(
    api: Any, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = commands.innovation_resource
    failures = []

    def fails_once(*args: Any) -> Any:
        if not failures:
            failures.append(args)
            raise RuntimeError("the answer could not be made")
        return answer(*args)

    monkeypatch.setattr(commands, "innovation_resource", fails_once)
    body = registration()
    before = head(api)
    first = api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "answer-failed"})
    problem_of(first, 500, "internal-error")
    assert head(api) == before + 1  # stored, though not answered
    retry = api.post(INNOVATIONS, body, admin_token, **{"Idempotency-Key": "answer-failed"})
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["X-Event-Position"] == str(before + 1)
    assert head(api) == before + 1
    assert retry.get_json()["name"] == body["name"]


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_idempotency_key_of_a_bad_length_is_400(api: Any, admin_token: str, key: str) -> None:
    response = api.post(INNOVATIONS, registration(), admin_token, **{"Idempotency-Key": key})
    problem_of(response, 400, "malformed-request")


# --- min_position and projection positions ----------------------------------------------------


def test_read_with_min_position_sees_the_write(
    api: Any, admin_token: str, replication: dict[str, Any]
) -> None:
    path = f"{REPLICATIONS}/{replication['id']}"
    written = api.post(f"{path}/agreement", agreement(), admin_token)
    position = int(written.headers["X-Event-Position"])
    response = api.get(f"{path}?min_position={position}")
    assert ok(response)["status"] == "disepakati"
    assert int(response.headers["X-Projection-Position"]) >= position


def test_listing_with_min_position_sees_the_write(api: Any, admin_token: str) -> None:
    written = api.post(INNOVATIONS, registration(name="Baru Sekali"), admin_token)
    response = api.get(f"{INNOVATIONS}?q=baru%20sekali&min_position={written.headers['X-Event-Position']}")
    assert [item["id"] for item in ok(response)["items"]] == [written.get_json()["id"]]


def test_min_position_waits_for_a_projection_that_is_behind(api: Any, admin_token: str) -> None:
    api.runtime.runner.stop()
    written = api.post(INNOVATIONS, registration(), admin_token)
    patient = api.runtime.settings
    api.runtime.settings = dataclasses.replace(patient, min_position_timeout=0.2)
    path = f"{written.headers['Location']}?min_position={written.headers['X-Event-Position']}"
    problem_of(api.get(path), 503, "projection-lagging")
    api.runtime.settings = patient
    api.runtime.runner.start()
    assert ok(api.get(path))["id"] == written.get_json()["id"]


def test_min_position_beyond_the_head_is_503_after_the_timeout(api: Any) -> None:
    api.runtime.settings = dataclasses.replace(api.runtime.settings, min_position_timeout=0.2)
    started = time.monotonic()
    response = api.get(f"{REPLICATIONS}?min_position={head(api) + 1000}")
    elapsed = time.monotonic() - started
    problem_of(response, 503, "projection-lagging")
    assert response.headers["Retry-After"]
    assert 0.2 <= elapsed < 3


def test_every_projection_read_reports_its_position(
    api: Any, admin_token: str, replication: dict[str, Any]
) -> None:
    position = api.settle()
    for path in (
        INNOVATIONS,
        f"{INNOVATIONS}/{replication['innovation_id']}",
        REPLICATIONS,
        f"{REPLICATIONS}/{replication['id']}",
        "/api/v1/index/regions",
        "/api/v1/index/regions/35.04",
        "/api/v1/index/innovations",
    ):
        response = api.get(path)
        assert response.status_code == 200, path
        assert int(response.headers["X-Projection-Position"]) >= position, path


# --- audit roles ------------------------------------------------------------------------------


def audit_paths(replication: dict[str, Any]) -> list[str]:
    return [
        f"{REPLICATIONS}/{replication['id']}/history",
        f"{INNOVATIONS}/{replication['innovation_id']}/history",
        "/api/v1/audit/events",
    ]


@pytest.mark.parametrize("role", ["auditor", "integrator", "admin"])
def test_audit_endpoints_answer_auditors_integrators_and_admins(
    api: Any, replication: dict[str, Any], role: str
) -> None:
    token = api.token(f"reader-{role}", role)
    api.settle()
    for path in audit_paths(replication):
        items = ok(api.get(path, token))["items"]
        assert items, path


@pytest.mark.parametrize(
    ("role", "regions"), [("operator", ("35.05",)), ("evaluator", ())], ids=["operator", "evaluator"]
)
def test_audit_endpoints_refuse_other_roles(
    api: Any, replication: dict[str, Any], role: str, regions: tuple[str, ...]
) -> None:
    token = api.token(f"nosy-{role}", role, regions)
    for path in audit_paths(replication):
        problem_of(api.get(path, token), 403, "forbidden")


def test_audit_endpoints_refuse_anonymous_readers(api: Any, replication: dict[str, Any]) -> None:
    for path in audit_paths(replication):
        problem_of(api.get(path), 401, "unauthenticated")


def test_history_holds_every_event_of_the_aggregate_in_order(
    api: Any, admin_token: str, replication: dict[str, Any]
) -> None:
    signed = api.post(f"{REPLICATIONS}/{replication['id']}/agreement", agreement(), admin_token)
    api.settle(signed)
    items = ok(api.get(f"{REPLICATIONS}/{replication['id']}/history", admin_token))["items"]
    assert [(e["version"], e["type"]) for e in items] == [(1, "ReplicationProposed"), (2, "AgreementSigned")]
    assert {e["aggregate_id"] for e in items} == {replication["id"]}
    assert {e["aggregate_type"] for e in items} == {"Replication"}
    assert items[1]["position"] == int(signed.headers["X-Event-Position"])


def test_history_of_an_unknown_aggregate_is_404(api: Any, admin_token: str) -> None:
    problem_of(api.get(f"{REPLICATIONS}/{UNKNOWN_ID}/history", admin_token), 404, "not-found")


def test_audit_log_pages_in_position_order(api: Any, admin_token: str, replication: dict[str, Any]) -> None:
    api.settle()
    first = api.get("/api/v1/audit/events?limit=1", admin_token)
    page = ok(first)
    assert [e["position"] for e in page["items"]] == [1]
    assert 'rel="next"' in first.headers["Link"]
    rest = ok(api.get(f"/api/v1/audit/events?cursor={page['next_cursor']}", admin_token))
    assert [e["position"] for e in rest["items"]] == [2]
    assert rest["next_cursor"] is None


# --- operations -------------------------------------------------------------------------------


def test_healthz_answers_ok(api: Any) -> None:
    assert ok(api.get("/healthz")) == {"status": "ok"}


def test_readyz_answers_ready_with_its_projections(api: Any) -> None:
    body = ok(api.get("/readyz"))
    assert body["status"] == "ready"
    assert {p["name"] for p in body["projections"]} == {"index", "audit"}


def test_projections_report_position_head_lag_and_status(api: Any, innovation: dict[str, Any]) -> None:
    position = api.settle()
    items = ok(api.get("/api/v1/projections"))["items"]
    assert {p["name"] for p in items} == {"index", "audit"}
    for projection in items:
        assert projection["position"] == projection["head_position"] == position
        assert projection["lag"] == 0
        assert projection["status"] == "ok"
        assert projection["last_advanced_at"]


def test_projections_report_lag_while_behind(api: Any, admin_token: str) -> None:
    api.runtime.runner.stop()
    api.post(INNOVATIONS, registration(), admin_token)
    items = ok(api.get("/api/v1/projections"))["items"]
    assert {p["lag"] for p in items} == {1}
    assert {p["status"] for p in items} <= {"catching_up", "stalled"}


def test_metrics_are_prometheus_text_with_the_projection_lag(api: Any, innovation: dict[str, Any]) -> None:
    api.settle()
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.content_type.count("charset") == 1
    text = response.get_data(as_text=True)
    assert "# TYPE puja_projection_lag gauge" in text
    assert 'puja_projection_lag{projection="index"} 0.0' in text
    assert 'puja_projection_position{projection="audit"} 1.0' in text


API_PATHS = {
    "/api/v1/innovations": {"get", "post"},
    "/api/v1/innovations/{innovation_id}": {"get"},
    "/api/v1/innovations/{innovation_id}/stage": {"post"},
    "/api/v1/innovations/{innovation_id}/revisions": {"post"},
    "/api/v1/innovations/{innovation_id}/evaluations": {"post"},
    "/api/v1/innovations/{innovation_id}/retirement": {"post"},
    "/api/v1/innovations/{innovation_id}/history": {"get"},
    "/api/v1/innovations/{innovation_id}/state": {"get"},
    "/api/v1/replications": {"get", "post"},
    "/api/v1/replications/{replication_id}": {"get"},
    "/api/v1/replications/{replication_id}/agreement": {"post"},
    "/api/v1/replications/{replication_id}/rejection": {"post"},
    "/api/v1/replications/{replication_id}/modifications": {"post"},
    "/api/v1/replications/{replication_id}/adoption": {"post"},
    "/api/v1/replications/{replication_id}/evaluations": {"post"},
    "/api/v1/replications/{replication_id}/discontinuation": {"post"},
    "/api/v1/replications/{replication_id}/history": {"get"},
    "/api/v1/replications/{replication_id}/state": {"get"},
    "/api/v1/audit/events": {"get"},
    "/api/v1/audit/verify": {"get"},
    "/api/v1/audit/export": {"get"},
    "/api/v1/index/regions": {"get"},
    "/api/v1/index/regions/{code}": {"get"},
    "/api/v1/index/innovations": {"get"},
    "/api/v1/index/innovations/{innovation_id}/lineage": {"get"},
    "/api/v1/index/summary": {"get"},
    "/api/v1/catalogues": {"get"},
    "/api/v1/catalogues/{version}": {"get"},
    "/api/v1/regions": {"get"},
    "/api/v1/projections": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
}


def test_openapi_document_is_3_1_with_the_paths_of_the_contract(api: Any) -> None:
    document = ok(api.get("/openapi.json"))
    assert document["openapi"].startswith("3.1")
    for path, methods in API_PATHS.items():
        assert path in document["paths"], path
        assert methods <= set(document["paths"][path]), path


def test_openapi_document_describes_command_bodies(api: Any) -> None:
    document = ok(api.get("/openapi.json"))
    body = document["paths"]["/api/v1/replications"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert {"innovation_id", "adopting_region", "rationale", "proposed_on"} <= set(schema["required"])


def test_docs_are_an_html_page(api: Any) -> None:
    response = api.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "openapi.json" in response.get_data(as_text=True)


# --- reference data ---------------------------------------------------------------------------


def test_regions_filter_by_parent_and_name(api: Any) -> None:
    items = ok(api.get("/api/v1/regions?parent=35&q=malang"))["items"]
    assert [(r["code"], r["name"], r["type"]) for r in items] == [
        ("35.07", "Kabupaten Malang", "kabupaten"),
        ("35.73", "Kota Malang", "kota"),
    ]
    assert {r["parent"] for r in items} == {"35"}


def test_regions_parent_must_be_a_province(api: Any) -> None:
    problem = problem_of(api.get("/api/v1/regions?parent=35.07"), 400, "malformed-request")
    assert "parent" in problem["errors"]


def test_regions_page_through_every_region(api: Any) -> None:
    codes: list[str] = []
    cursor = None
    while True:
        page = ok(api.get(f"/api/v1/regions?limit=300{f'&cursor={cursor}' if cursor else ''}"))
        codes += [r["code"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(codes) == len(set(codes)) == 552


def test_catalogues_list_iid_2026(api: Any) -> None:
    versions = [c["version"] for c in ok(api.get("/api/v1/catalogues"))["items"]]
    assert "iid-2026" in versions


def test_catalogue_iid_2026_has_20_indicators_weighing_37(api: Any) -> None:
    catalogue = ok(api.get("/api/v1/catalogues/iid-2026"))
    assert len(catalogue["indicators"]) == 20
    assert sum(i["weight"] for i in catalogue["indicators"]) == 37
    assert catalogue["max_total"] == 111


def test_unknown_catalogue_is_404(api: Any) -> None:
    problem_of(api.get("/api/v1/catalogues/iid-1999"), 404, "not-found")


def test_argument_schemas_are_made_once_and_hold_nothing_of_a_request(api: Any, admin_token: str) -> None:
    from app import schemas
    from app.blueprints import Blueprint

    parser = Blueprint.ARGUMENTS_PARSER
    assert parser._get_schema(schemas.AgreementSchema, None) is parser._get_schema(
        schemas.AgreementSchema, None
    )
    bad = api.post(INNOVATIONS, registration(region="99.99"), admin_token)
    problem_of(bad, 422, "validation-error")
    assert set(bad.get_json()["errors"]) == {"region"}
    good = api.post(INNOVATIONS, registration(), admin_token)
    assert good.status_code == 201
    worse = api.post(INNOVATIONS, registration(name="  ", region="35"), admin_token)
    assert set(worse.get_json()["errors"]) == {"name"}


def test_a_replication_answer_names_the_innovation_as_revised_by_this_process(
    api: Any, admin_token: str, innovation: dict[str, Any], replication: dict[str, Any]
) -> None:
    assert replication["innovation_name"] == innovation["name"]
    revised = api.post(
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {"name": "Nama Baru", "reason": "Ganti nama"},
        admin_token,
    )
    assert ok(revised)["name"] == "Nama Baru"
    answer = ok(api.post(f"{REPLICATIONS}/{replication['id']}/agreement", agreement(), admin_token))
    assert answer["innovation_name"] == "Nama Baru"


def test_innovation_names_are_remembered_only_for_a_moment() -> None:
    from uuid import uuid4

    from app.names import InnovationNames

    names, reads = InnovationNames(fresh_for=0.0), []
    innovation_id = uuid4()
    for name in ("Lama", "Baru"):
        assert names.get(innovation_id, lambda id, name=name: reads.append(id) or name) == name
    assert len(reads) == 2, "a name past its moment is read again"
    kept = InnovationNames(fresh_for=60.0)
    kept.put(innovation_id, "Lama")
    assert kept.get(innovation_id, lambda id: "Baru") == "Lama"
    kept.put(innovation_id, "Baru")
    assert kept.get(innovation_id, lambda id: "Lain") == "Baru"
