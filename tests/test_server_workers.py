"""Several gunicorn workers and concurrent clients on one store: no command is lost and no event overwrites
another (issue: PostgreSQL backend; run on both backends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import Server, days_ago, free_port, innovation_fields

CLIENTS = 16
PER_CLIENT = 6


@pytest.fixture
def workers_server(tmp_path: Any, database_url: str | None) -> Iterator[tuple[Server, str]]:
    server = Server(
        tmp_path / "var", free_port(), database_url=database_url, args=("--workers", "3", "--threads", "4")
    )
    assert server.process.stdout is not None
    token = server.process.stdout.readline().strip()
    yield server, token
    server.stop()


def run_clients(work: Any) -> list[Any]:
    barrier = threading.Barrier(CLIENTS)
    results: list[Any] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        session = requests.Session()
        barrier.wait()
        for i in range(PER_CLIENT):
            response = work(session, n, i)
            with lock:
                results.append(response)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def setup_replication(server: Server, headers: dict[str, str], adopting: str) -> tuple[str, str]:
    body = {**innovation_fields(), "started_on": days_ago(400).isoformat()}
    innovation = requests.post(
        f"{server.url}/api/v1/innovations", json=body, headers=headers, timeout=30
    ).json()
    proposal = {
        "innovation_id": innovation["id"],
        "adopting_region": adopting,
        "rationale": "Workers test",
        "proposed_on": days_ago(30).isoformat(),
    }
    replication = requests.post(
        f"{server.url}/api/v1/replications", json=proposal, headers=headers, timeout=30
    )
    assert replication.status_code == 201
    return innovation["id"], replication.json()["id"]


def test_parallel_modifications_through_several_workers_are_all_stored(
    workers_server: tuple[Server, str],
) -> None:
    server, token = workers_server
    headers = {"Authorization": f"Bearer {token}"}
    _, replication_id = setup_replication(server, headers, "35.05")

    def modify(session: requests.Session, n: int, i: int) -> requests.Response:
        body = {
            "component": "teknologi",
            "nature": "penyesuaian",
            "core": False,
            "description": f"client {n} change {i}",
            "reason": "load",
            "recorded_on": days_ago(1).isoformat(),
        }
        return session.post(
            f"{server.url}/api/v1/replications/{replication_id}/modifications",
            json=body,
            headers=headers,
            timeout=60,
        )

    responses = run_clients(modify)
    assert [r.status_code for r in responses] == [200] * (CLIENTS * PER_CLIENT)
    positions = [int(r.headers["X-Event-Position"]) for r in responses]
    versions = sorted(r.json()["version"] for r in responses)
    assert versions == list(range(2, 2 + CLIENTS * PER_CLIENT)), "every modification is one new version"
    history = requests.get(
        f"{server.url}/api/v1/replications/{replication_id}/history",
        params={"min_position": max(positions)},
        headers=headers,
        timeout=30,
    ).json()["items"]
    recorded = {e["data"]["description"] for e in history if e["type"] == "ModificationRecorded"}
    assert recorded == {f"client {n} change {i}" for n in range(CLIENTS) for i in range(PER_CLIENT)}


def test_parallel_commands_on_different_replications_lose_nothing(workers_server: tuple[Server, str]) -> None:
    server, token = workers_server
    headers = {"Authorization": f"Bearer {token}"}
    body = {**innovation_fields(), "started_on": days_ago(400).isoformat()}
    innovation = requests.post(
        f"{server.url}/api/v1/innovations", json=body, headers=headers, timeout=30
    ).json()
    regencies = [
        region["code"]
        for province in ("32", "33", "11", "12")
        for region in requests.get(
            f"{server.url}/api/v1/regions", params={"parent": province, "limit": 100}, timeout=30
        ).json()["items"]
    ]
    assert len(regencies) >= CLIENTS * PER_CLIENT

    def propose(session: requests.Session, n: int, i: int) -> requests.Response:
        proposal = {
            "innovation_id": innovation["id"],
            "adopting_region": regencies[n * PER_CLIENT + i],
            "rationale": "Workers test",
            "proposed_on": days_ago(3).isoformat(),
        }
        return session.post(f"{server.url}/api/v1/replications", json=proposal, headers=headers, timeout=60)

    responses = run_clients(propose)
    assert [r.status_code for r in responses] == [201] * (CLIENTS * PER_CLIENT)
    positions = sorted(int(r.headers["X-Event-Position"]) for r in responses)
    assert len(set(positions)) == len(positions), "no two commands share a position"
    listed = requests.get(
        f"{server.url}/api/v1/replications",
        params={"innovation_id": innovation["id"], "limit": 500, "min_position": positions[-1]},
        timeout=30,
    ).json()["items"]
    assert sorted(r["adopting_region"] for r in listed) == sorted(regencies[: CLIENTS * PER_CLIENT])
    audit = requests.get(
        f"{server.url}/api/v1/audit/events",
        params={"limit": 500, "min_position": positions[-1]},
        headers=headers,
        timeout=30,
    ).json()["items"]
    assert [e["position"] for e in audit] == list(range(1, len(audit) + 1)), "the log has no gaps"


def test_one_idempotency_key_sent_through_several_workers_at_once_stores_one_command(
    workers_server: tuple[Server, str],
) -> None:
    server, token = workers_server
    body = {**innovation_fields(), "name": "Satu Kunci", "started_on": days_ago(400).isoformat()}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "one-key-many-workers"}

    def register(session: requests.Session, n: int, i: int) -> requests.Response:
        return session.post(f"{server.url}/api/v1/innovations", json=body, headers=headers, timeout=60)

    responses = run_clients(register)
    created = [r for r in responses if r.status_code == 201]
    assert created, "the first request ran"
    assert {r.json()["id"] for r in created} == {created[0].json()["id"]}
    assert {r.headers["X-Event-Position"] for r in created} == {created[0].headers["X-Event-Position"]}
    others = [r for r in responses if r.status_code != 201]
    assert all(
        r.status_code == 409 and r.json()["type"] == "/problems/idempotency-key-in-flight" for r in others
    )
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in created) == 1
    listed = requests.get(
        f"{server.url}/api/v1/innovations",
        params={"q": "satu kunci", "min_position": created[0].headers["X-Event-Position"]},
        timeout=30,
    ).json()["items"]
    assert len(listed) == 1

    other_body = {**body, "name": "Kunci Lain"}
    reused = requests.post(f"{server.url}/api/v1/innovations", json=other_body, headers=headers, timeout=60)
    assert reused.status_code == 422
    assert reused.json()["type"] == "/problems/idempotency-key-reused"
