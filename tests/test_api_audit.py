"""The audit endpoints of api.md on both backends: past states rebuilt from the event store, the chain's
verification, the streamed export, the hashes in the history, and who may read them."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from conftest import days_ago
from test_api_conventions import (
    INNOVATIONS,
    REPLICATIONS,
    UNKNOWN_ID,
    agreement,
    ok,
    problem_of,
    proposal,
    registration,
)

from service.store import libpq_url

AUDIT = "/api/v1/audit"


@pytest.fixture
def token(api: Any) -> str:
    return api.token("bpk", "auditor")


@pytest.fixture
def life(api: Any, admin_token: str) -> dict[str, Any]:
    """An innovation, renamed after a replication of it was proposed; the replication signed and at
    penerapan. Keeps every command's answer."""
    innovation = ok(api.post(INNOVATIONS, registration(), admin_token), 201)
    proposed = ok(api.post(REPLICATIONS, proposal(innovation["id"]), admin_token), 201)
    path = f"{REPLICATIONS}/{proposed['id']}"
    signed = ok(api.post(f"{path}/agreement", agreement(), admin_token))
    renamed = ok(
        api.post(
            f"{INNOVATIONS}/{innovation['id']}/revisions",
            {"name": "Puskesmas Keliling", "reason": "x"},
            admin_token,
        )
    )
    trial = ok(
        api.post(
            f"{path}/adoption", {"stage": "uji_coba", "effective_on": days_ago(15).isoformat()}, admin_token
        )
    )
    live = ok(
        api.post(
            f"{path}/adoption", {"stage": "penerapan", "effective_on": days_ago(5).isoformat()}, admin_token
        )
    )
    api.settle()
    return {
        "innovation": innovation,
        "renamed": renamed,
        "replication": [proposed, signed, trial, live],
    }


def history(api: Any, token: str, kind: str, aggregate_id: str) -> list[dict[str, Any]]:
    return ok(api.get(f"/api/v1/{kind}s/{aggregate_id}/history", token))["items"]


# --- past states --------------------------------------------------------------------------------


def test_each_version_of_a_replication_is_the_answer_its_command_gave(
    api: Any, token: str, life: dict[str, Any]
) -> None:
    answers = life["replication"]
    path = f"{REPLICATIONS}/{answers[0]['id']}/state"
    for version, answer in enumerate(answers, start=1):
        response = api.get(f"{path}?version={version}", token)
        state = ok(response)
        assert state["version"] == version
        assert response.headers["ETag"] == f'"{version}"'
        # Every field but the innovation's name, which was revised between the agreement and the trial.
        assert {k: v for k, v in state.items() if k != "innovation_name"} == {
            k: v for k, v in answer.items() if k != "innovation_name"
        }
    assert [s["status"] for s in (ok(api.get(f"{path}?version={v}", token)) for v in (1, 2, 3, 4))] == [
        "diusulkan",
        "disepakati",
        "uji_coba",
        "penerapan",
    ]


def test_a_past_state_names_the_innovation_as_it_was_named_then(
    api: Any, token: str, life: dict[str, Any]
) -> None:
    path = f"{REPLICATIONS}/{life['replication'][0]['id']}/state"
    assert ok(api.get(f"{path}?version=2", token))["innovation_name"] == life["innovation"]["name"]
    assert ok(api.get(f"{path}?version=4", token))["innovation_name"] == "Puskesmas Keliling"


def test_a_past_innovation_counts_the_adopters_at_penerapan_then(
    api: Any, token: str, life: dict[str, Any]
) -> None:
    innovation_id = life["innovation"]["id"]
    path = f"{INNOVATIONS}/{innovation_id}/state"
    assert ok(api.get(f"{path}?version=2", token)) == {**life["renamed"], "replication_count": 0}
    events = history(api, token, "replication", life["replication"][0]["id"])
    after_penerapan = quote(events[-1]["recorded_at"])
    now = ok(api.get(f"{path}?at={after_penerapan}", token))
    assert (now["version"], now["replication_count"]) == (2, 1)


def test_a_state_at_a_time_is_the_state_after_the_last_event_recorded_by_then(
    api: Any, token: str, life: dict[str, Any]
) -> None:
    replication_id = life["replication"][0]["id"]
    events = history(api, token, "replication", replication_id)
    path = f"{REPLICATIONS}/{replication_id}/state"
    for event in events:
        at = quote(event["recorded_at"])
        assert ok(api.get(f"{path}?at={at}", token))["version"] == event["version"]
    third = datetime.fromisoformat(events[2]["recorded_at"])
    just_before = (third - timedelta(microseconds=1)).isoformat()
    assert ok(api.get(f"{path}?at={quote(just_before)}", token))["version"] == 2
    # The same instant written in another offset.
    jakarta = third.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+07:00").tzinfo).isoformat()
    assert ok(api.get(f"{path}?at={quote(jakarta)}", token))["version"] == 3


@pytest.mark.parametrize(
    "query",
    ["version=5", "version=0", "version=-1", "at=2000-01-01T00:00:00Z"],
    ids=["above", "0", "-1", "before"],
)
def test_a_state_the_replication_never_had_is_404(
    api: Any, token: str, life: dict[str, Any], query: str
) -> None:
    problem_of(
        api.get(f"{REPLICATIONS}/{life['replication'][0]['id']}/state?{query}", token), 404, "not-found"
    )


def test_the_state_of_an_unknown_or_other_aggregate_is_404(
    api: Any, token: str, life: dict[str, Any]
) -> None:
    problem_of(api.get(f"{INNOVATIONS}/{UNKNOWN_ID}/state?version=1", token), 404, "not-found")
    problem_of(
        api.get(f"{INNOVATIONS}/{life['replication'][0]['id']}/state?version=1", token), 404, "not-found"
    )
    problem_of(api.get(f"{REPLICATIONS}/{life['innovation']['id']}/state?version=1", token), 404, "not-found")


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("", {"version", "at"}),
        ("version=1&at=2026-01-01T00:00:00Z", {"version", "at"}),
        ("version=abc", {"version"}),
        ("version=1.5", {"version"}),
        ("at=yesterday", {"at"}),
        ("at=2026-01-01T00:00:00", {"at"}),  # no offset
        ("at=2026-13-01T00:00:00Z", {"at"}),
        ("at=2026-01-01", {"at"}),
    ],
    ids=["neither", "both", "word", "fraction", "word-at", "no-offset", "month-13", "date-only"],
)
def test_a_state_query_that_is_not_exactly_one_valid_parameter_is_422(
    api: Any, token: str, life: dict[str, Any], query: str, fields: set[str]
) -> None:
    for path in (
        f"{REPLICATIONS}/{life['replication'][0]['id']}",
        f"{INNOVATIONS}/{life['innovation']['id']}",
    ):
        problem = problem_of(api.get(f"{path}/state?{query}", token), 422, "validation-error")
        assert set(problem["errors"]) == fields


# --- hashes in the history and the log ---------------------------------------------------------


def test_history_and_the_audit_log_show_each_events_links(api: Any, token: str, life: dict[str, Any]) -> None:
    log = ok(api.get(f"{AUDIT}/events?limit=500", token))["items"]
    assert [e["position"] for e in log] == list(range(1, 7))
    assert log[0]["prev_hash"] == "0" * 64
    for before, after in zip(log, log[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
        assert len(after["hash"]) == 64
    replication = history(api, token, "replication", life["replication"][0]["id"])
    assert [(e["position"], e["hash"]) for e in replication] == [
        (e["position"], e["hash"]) for e in log if e["aggregate_type"] == "Replication"
    ]


# --- verification -----------------------------------------------------------------------------


def test_verify_answers_a_whole_chain(api: Any, token: str, life: dict[str, Any]) -> None:
    assert ok(api.get(f"{AUDIT}/verify", token)) == {
        "ok": True,
        "checked": 6,
        "last_position": 6,
        "first_bad_position": None,
        "problem": None,
    }


def tamper(runtime: Any, position: int, old: bytes, new: bytes) -> None:
    """Change a stored payload behind the service's back."""
    table = runtime.network.recorder.events_table_name
    if runtime.settings.uses_postgres:
        with psycopg.connect(libpq_url(runtime.settings.database_url)) as conn:
            (state,) = conn.execute(
                f"SELECT state FROM {table} WHERE notification_id = %s", (position,)
            ).fetchone()
            conn.execute(
                f"UPDATE {table} SET state = %s WHERE notification_id = %s",
                (bytes(state).replace(old, new), position),
            )
        return
    conn = sqlite3.connect(runtime.settings.event_store_path)
    with conn:
        (state,) = conn.execute(f"SELECT state FROM {table} WHERE position = ?", (position,)).fetchone()
        conn.execute(f"UPDATE {table} SET state = ? WHERE position = ?", (state.replace(old, new), position))
    conn.close()


def test_verify_finds_a_changed_payload(api: Any, token: str, life: dict[str, Any]) -> None:
    head = api.runtime.network.recorder.select_notifications(start=6, limit=1)[0].hash
    assert ok(api.get(f"{AUDIT}/verify?head=6:{head}", token))["ok"] is True
    tamper(api.runtime, 2, b'"35.05"', b'"35.06"')  # the proposal now names another adopting region
    verdict = ok(api.get(f"{AUDIT}/verify", token))
    assert (verdict["ok"], verdict["first_bad_position"], verdict["last_position"]) == (False, 2, 1)
    assert "altered" in verdict["problem"]


def test_verify_against_a_head_beyond_the_store_finds_a_truncated_tail(
    api: Any, token: str, life: dict[str, Any]
) -> None:
    verdict = ok(api.get(f"{AUDIT}/verify?head=9:{'a' * 64}", token))
    assert (verdict["ok"], verdict["first_bad_position"]) == (False, 7)


@pytest.mark.parametrize("head", ["7", "x:y", f"7:{'A' * 64}"])
def test_a_malformed_head_is_400(api: Any, token: str, head: str) -> None:
    problem = problem_of(api.get(f"{AUDIT}/verify?head={head}", token), 400, "malformed-request")
    assert "head" in problem["errors"]


# --- export -------------------------------------------------------------------------------------


def test_export_streams_the_log_with_hashes_as_json_lines(api: Any, token: str, life: dict[str, Any]) -> None:
    response = api.get(f"{AUDIT}/export", token)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == 'attachment; filename="puja-audit-1-head.jsonl"'
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    log = ok(api.get(f"{AUDIT}/events?limit=500", token))["items"]
    assert lines == log


def test_export_between_positions(api: Any, token: str, life: dict[str, Any]) -> None:
    response = api.get(f"{AUDIT}/export?after=2&before=6", token)
    assert response.headers["Content-Disposition"] == 'attachment; filename="puja-audit-3-5.jsonl"'
    assert [json.loads(line)["position"] for line in response.get_data(as_text=True).splitlines()] == [
        3,
        4,
        5,
    ]
    assert api.get(f"{AUDIT}/export?after=5&before=6", token).get_data() == b""


def test_export_as_csv_has_a_header_and_one_row_per_event(api: Any, token: str, life: dict[str, Any]) -> None:
    response = api.get(f"{AUDIT}/export?format=csv", token)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    log = ok(api.get(f"{AUDIT}/events?limit=500", token))["items"]
    assert [int(r["position"]) for r in rows] == [e["position"] for e in log]
    assert [r["hash"] for r in rows] == [e["hash"] for e in log]
    assert [json.loads(r["data"]) for r in rows] == [e["data"] for e in log]


@pytest.mark.parametrize("query", ["format=xml", "after=-1", "before=0", "after=x"])
def test_a_malformed_export_query_is_400(api: Any, token: str, query: str) -> None:
    problem_of(api.get(f"{AUDIT}/export?{query}", token), 400, "malformed-request")


# --- who may read them --------------------------------------------------------------------------


def audit_paths(life: dict[str, Any]) -> list[str]:
    replication, innovation = life["replication"][0]["id"], life["innovation"]["id"]
    return [
        f"{REPLICATIONS}/{replication}/history",
        f"{INNOVATIONS}/{innovation}/history",
        f"{REPLICATIONS}/{replication}/state?version=1",
        f"{INNOVATIONS}/{innovation}/state?version=1",
        f"{AUDIT}/events",
        f"{AUDIT}/verify",
        f"{AUDIT}/export",
    ]


@pytest.mark.parametrize("role", ["auditor", "integrator", "admin"])
def test_auditors_integrators_and_admins_reach_every_audit_endpoint(
    api: Any, life: dict[str, Any], role: str
) -> None:
    token = api.token(f"reader-{role}", role)
    for path in audit_paths(life):
        response = api.get(path, token)
        assert response.status_code == 200, path
        assert response.get_data(), path


@pytest.mark.parametrize(
    ("role", "regions"), [("operator", ("35.05",)), ("evaluator", ())], ids=["operator", "evaluator"]
)
def test_operators_and_evaluators_are_refused_every_audit_endpoint(
    api: Any, life: dict[str, Any], role: str, regions: tuple[str, ...]
) -> None:
    token = api.token(f"nosy-{role}", role, regions)
    for path in audit_paths(life):
        problem_of(api.get(path, token), 403, "forbidden")


def test_anonymous_readers_are_refused_every_audit_endpoint(api: Any, life: dict[str, Any]) -> None:
    for path in audit_paths(life):
        response = api.get(path)
        problem_of(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_role_is_checked_before_the_query(api: Any, life: dict[str, Any]) -> None:
    path = f"{REPLICATIONS}/{life['replication'][0]['id']}/state?version=abc"
    problem_of(api.get(path, api.token("nosy", "evaluator")), 403, "forbidden")
    problem_of(api.get(path), 401, "unauthenticated")
