"""`puja serve` as `make run` starts it: gunicorn on a loopback port, the embedded store, a first admin token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import Server, free_port, innovation_fields


@pytest.fixture
def server(tmp_path: Any) -> Iterator[Server]:
    srv = Server(tmp_path / "var", free_port())
    yield srv
    srv.stop()


def first_token(server: Server) -> str:
    assert server.process.stdout is not None
    return server.process.stdout.readline().strip()


def test_first_start_prints_an_admin_token_that_works_and_a_restart_prints_none(tmp_path: Any) -> None:
    srv = Server(tmp_path / "var", free_port())
    token = first_token(srv)
    assert token.startswith("puja_")
    body = {**innovation_fields(), "started_on": innovation_fields()["started_on"].isoformat()}
    created = requests.post(
        f"{srv.url}/api/v1/innovations", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert created.status_code == 201
    srv.stop()
    again = Server(tmp_path / "var", free_port())
    out = again.stop()
    assert out.strip() == ""


def test_a_body_over_one_mebibyte_gets_a_413_problem_from_the_real_server(server: Server) -> None:
    token = first_token(server)
    response = requests.post(
        f"{server.url}/api/v1/innovations",
        data=b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/payload-too-large"


def test_a_command_is_visible_to_a_read_that_asks_for_its_position(server: Server) -> None:
    token = first_token(server)
    body = {**innovation_fields(), "started_on": innovation_fields()["started_on"].isoformat()}
    created = requests.post(
        f"{server.url}/api/v1/innovations",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    position = created.headers["X-Event-Position"]
    read = requests.get(
        f"{server.url}/api/v1/innovations/{created.json()['id']}",
        params={"min_position": position},
        timeout=10,
    )
    assert read.status_code == 200
    assert int(read.headers["X-Projection-Position"]) >= int(position)
    assert read.json()["name"] == body["name"]
