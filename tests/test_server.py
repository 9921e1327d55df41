"""`puja serve` as `make run` starts it: gunicorn on a loopback port, the embedded store, a first admin token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import innovation_fields

PUJA = str(Path(sys.executable).with_name("puja"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PUJA_DATA_DIR": str(data_dir), "PUJA_LOG_LEVEL": "WARNING"}
        self.process = subprocess.Popen(
            [PUJA, "serve", "--port", str(port), "--first-run-token"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.first_line = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited"
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)  # waiting for a port to open, not for a projection
        raise AssertionError("the server did not start")

    def stop(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=20)
        return out


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
