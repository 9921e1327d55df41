"""Concurrent commands through HTTP (api.md "Optimistic concurrency": without If-Match, none is lost and none
overwrites another; domain.md rule 5 "also under concurrent requests"). Threads, each with its own test
client, are released together on a barrier against one real SQLite store."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import pytest
from conftest import days_ago, innovation_fields

INNOVATIONS = "/api/v1/innovations"
REPLICATIONS = "/api/v1/replications"
THREADS = 8
ADOPTERS = [f"35.{n:02d}" for n in range(5, 5 + THREADS)]


def as_json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()}


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def together(api: Any, count: int, request: Callable[[Any, int], Any]) -> list[Any]:
    """`request(client, i)` from `count` threads released at once, each with its own client; the
    responses in thread order."""
    barrier = threading.Barrier(count)
    responses: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        client = api.client.application.test_client()
        barrier.wait()
        try:
            responses[index] = request(client, index)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a request never returned"
    assert not errors, errors
    return responses


def post(client: Any, path: str, body: dict[str, Any], token: str) -> Any:
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def proposal(innovation_id: str, adopting_region: str) -> dict[str, Any]:
    return {
        "innovation_id": innovation_id,
        "adopting_region": adopting_region,
        "rationale": "Remote villages lack health services.",
        "proposed_on": days_ago(30).isoformat(),
    }


def modification(index: int) -> dict[str, Any]:
    return {
        "component": "teknologi",
        "nature": "penyesuaian",
        "core": False,
        "description": f"Change number {index}.",
        "reason": "Local conditions.",
        "recorded_on": days_ago(20).isoformat(),
    }


@pytest.fixture
def innovation(api: Any, admin_token: str) -> dict[str, Any]:
    return ok(api.post(INNOVATIONS, as_json(innovation_fields()), admin_token), 201)


@pytest.fixture
def replication(api: Any, admin_token: str, innovation: dict[str, Any]) -> dict[str, Any]:
    return ok(api.post(REPLICATIONS, proposal(innovation["id"], "35.05"), admin_token), 201)


def test_parallel_proposals_for_one_adopter_store_exactly_one(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    before = api.runtime.network.head_position()
    responses = together(
        api,
        THREADS,
        lambda client, _: post(client, REPLICATIONS, proposal(innovation["id"], "35.05"), admin_token),
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 409: THREADS - 1}
    rules = {r.get_json()["rule"] for r in responses if r.status_code == 409}
    assert rules == {"duplicate-open-replication"}
    assert api.runtime.network.head_position() == before + 1
    api.settle()
    listed = ok(api.get(f"{REPLICATIONS}?innovation_id={innovation['id']}"))["items"]
    assert [item["id"] for item in listed] == [r.get_json()["id"] for r in responses if r.status_code == 201]


def test_parallel_proposals_by_one_operator_token_store_exactly_one(
    api: Any, innovation: dict[str, Any]
) -> None:
    token = api.token("blitar", "operator", ("35.05",))
    responses = together(
        api, THREADS, lambda client, _: post(client, REPLICATIONS, proposal(innovation["id"], "35.05"), token)
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * (THREADS - 1)


def test_parallel_modifications_are_all_kept(api: Any, admin_token: str, replication: dict[str, Any]) -> None:
    path = f"{REPLICATIONS}/{replication['id']}/modifications"
    responses = together(api, THREADS, lambda client, i: post(client, path, modification(i), admin_token))
    assert [r.status_code for r in responses] == [200] * THREADS
    versions = sorted(int(r.headers["ETag"].strip('"')) for r in responses)
    assert versions == list(range(2, 2 + THREADS))  # each answered its own new version
    api.settle()
    current = ok(api.get(f"{REPLICATIONS}/{replication['id']}"))
    assert current["version"] == 1 + THREADS
    assert sorted(m["description"] for m in current["modifications"]) == sorted(
        f"Change number {i}." for i in range(THREADS)
    )
    history = ok(api.get(f"{REPLICATIONS}/{replication['id']}/history", admin_token))["items"]
    assert [e["version"] for e in history] == list(range(1, 2 + THREADS))
    assert Counter(e["type"] for e in history) == {"ReplicationProposed": 1, "ModificationRecorded": THREADS}


def test_parallel_modifications_with_the_same_if_match_keep_exactly_one(
    api: Any, admin_token: str, replication: dict[str, Any]
) -> None:
    path = f"{REPLICATIONS}/{replication['id']}/modifications"

    def modify(client: Any, index: int) -> Any:
        headers = {"Authorization": f"Bearer {admin_token}", "If-Match": '"1"'}
        return client.post(path, json=modification(index), headers=headers)

    responses = together(api, THREADS, modify)
    assert Counter(r.status_code for r in responses) == {200: 1, 412: THREADS - 1}
    assert api.runtime.network.replication(UUID(replication["id"])).version == 2


def test_parallel_commands_on_different_replications_all_succeed(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    replications = [
        ok(api.post(REPLICATIONS, proposal(innovation["id"], adopter), admin_token), 201)
        for adopter in ADOPTERS
    ]
    agreement = {"document": "pks", "document_number": "PKS/1", "signed_on": days_ago(25).isoformat()}
    responses = together(
        api,
        THREADS,
        lambda client, i: post(
            client, f"{REPLICATIONS}/{replications[i]['id']}/agreement", agreement, admin_token
        ),
    )
    assert [r.status_code for r in responses] == [200] * THREADS
    assert [r.get_json()["id"] for r in responses] == [r["id"] for r in replications]
    assert {r.get_json()["status"] for r in responses} == {"disepakati"}


def test_parallel_proposals_for_different_adopters_all_succeed(
    api: Any, admin_token: str, innovation: dict[str, Any]
) -> None:
    responses = together(
        api,
        THREADS,
        lambda client, i: post(client, REPLICATIONS, proposal(innovation["id"], ADOPTERS[i]), admin_token),
    )
    assert [r.status_code for r in responses] == [201] * THREADS
    assert sorted(r.get_json()["adopting_region"] for r in responses) == ADOPTERS


def test_parallel_retries_with_one_idempotency_key_store_one_command(api: Any, admin_token: str) -> None:
    body = as_json(innovation_fields())

    def register(client: Any, _: int) -> Any:
        headers = {"Authorization": f"Bearer {admin_token}", "Idempotency-Key": "one-registration"}
        return client.post(INNOVATIONS, json=body, headers=headers)

    before = api.runtime.network.head_position()
    responses = together(api, THREADS, register)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert statuses[201] >= 1
    assert {r.get_json()["id"] for r in responses if r.status_code == 201} == {
        next(r.get_json()["id"] for r in responses if r.status_code == 201)
    }
    assert all(
        r.get_json()["type"] == "/problems/idempotency-key-in-flight"
        for r in responses
        if r.status_code == 409
    )
    assert api.runtime.network.head_position() == before + 1
