"""Shared fixtures: real stores on both backends — a SQLite file in a temporary directory, and a fresh database
on a throwaway PostgreSQL cluster on a loopback port (started once per session by scripts/pg-cluster, or taken
from PUJA_TEST_POSTGRES_URL) — and an actor to act as. Every test that uses `network`, `runtime` or `api` runs
once per backend."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

from domain.acting import Actor, acting_as
from domain.calendar import today
from service.network import InnovationNetwork
from service.store import open_network

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgres")


def days_ago(n: int) -> date:
    return today() - timedelta(days=n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: Any) -> Iterator[str]:
    """A PostgreSQL server URL: PUJA_TEST_POSTGRES_URL, or a throwaway cluster for this session."""
    given = os.environ.get("PUJA_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    # Outside pytest's private temporary tree: as root, the cluster runs as the 'postgres' user, who must reach it.
    directory = tempfile.mkdtemp(prefix="puja-test-pg-")
    script = str(ROOT / "scripts" / "pg-cluster")
    started = subprocess.run(
        [script, "start", str(directory), str(free_port())], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start:\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", str(directory)], capture_output=True, check=False)
        shutil.rmtree(directory, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(params=BACKENDS)
def backend(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: Any) -> Iterator[str | None]:
    """None for the embedded SQLite store; else the URL of a fresh PostgreSQL database for this test."""
    if backend == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def network(tmp_path: Any, database_url: str | None) -> Iterator[InnovationNetwork]:
    app = open_network(database_url, tmp_path / "events.sqlite")
    yield app
    app.close()


@pytest.fixture
def admin() -> Iterator[Actor]:
    with acting_as(Actor("test-admin", "admin", "req-test")) as actor:
        yield actor


def innovation_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "region": "35.04",
        "name": "Layanan Kesehatan Keliling",
        "form": "pelayanan_publik",
        "urusan": ["kesehatan"],
        "initiator": "perangkat_daerah",
        "stage": "penerapan",
        "digital": False,
        "started_on": days_ago(400),
        "description": "Mobile health services for remote villages.",
    }
    fields.update(overrides)
    return fields


# --- the HTTP API on a real SQLite store -------------------------------------------------------


class Api:
    """A test client that speaks JSON with a bearer token and waits on positions, never on time."""

    def __init__(self, client: Any, runtime: Any) -> None:
        self.client = client
        self.runtime = runtime
        self.tokens: dict[str, str] = {}

    def token(self, name: str, role: str, regions: tuple[str, ...] = ()) -> str:
        if name not in self.tokens:
            self.tokens[name] = self.runtime.tokens.create(name, role, list(regions))
        return self.tokens[name]

    def headers(self, token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(extra or {})
        return headers

    def post(self, path: str, body: Any, token: str | None, **headers: str) -> Any:
        return self.client.post(path, json=body, headers=self.headers(token, headers))

    def get(self, path: str, token: str | None = None, **headers: str) -> Any:
        return self.client.get(path, headers=self.headers(token, headers))

    def settle(self, response: Any = None) -> int:
        """Wait until the projections have applied the last stored event (or the response's position)."""
        position = (
            int(response.headers["X-Event-Position"])
            if response is not None and "X-Event-Position" in response.headers
            else self.runtime.network.head_position()
        )
        assert self.runtime.runner.wait_for(position, ["index", "audit"], 10.0)
        return position


@pytest.fixture
def runtime(tmp_path: Any, database_url: str | None) -> Iterator[Any]:
    from app.runtime import Runtime
    from app.settings import Settings

    rt = Runtime.open(Settings(data_dir=tmp_path / "var", database_url=database_url))
    yield rt
    rt.close()


@pytest.fixture
def api(runtime: Any) -> Any:
    from app import create_app

    app = create_app(runtime=runtime)
    app.testing = True
    return Api(app.test_client(), runtime)


@pytest.fixture
def admin_token(api: Api) -> str:
    return api.token("admin-test", "admin")


# --- the served API ---------------------------------------------------------------------------

PUJA = str(Path(sys.executable).with_name("puja"))


class Server:
    """`puja serve` in a subprocess, as `make run` starts it; waits until /healthz answers."""

    def __init__(
        self, data_dir: Path, port: int, *, database_url: str | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PUJA_DATA_DIR": str(data_dir), "PUJA_LOG_LEVEL": "WARNING"}
        if database_url:
            env["PUJA_DATABASE_URL"] = database_url
        self.process = subprocess.Popen(
            [PUJA, "serve", "--port", str(port), "--first-run-token", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(os.environ.get("PUJA_TEST_SERVER_LOG", os.devnull), "a"),  # noqa: SIM115
            text=True,
        )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()  # a fixture that fails here is never torn down: leave no server behind
            raise

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited"
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                # waiting for the port to open and a worker to boot (slow on a loaded machine), not for a projection
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def stop(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=20)
        return out


# --- a real Kafka broker ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A single-node Kafka 4.x broker on loopback for the session (scripts/kafka-broker: Maven Central jars,
    KRaft); yields 'host:port'. Started only when a test asks for it."""
    directory = tempfile.mkdtemp(prefix="puja-test-kafka-")
    script = str(ROOT / "scripts" / "kafka-broker")
    port, controller = free_port(), free_port()
    try:
        started = subprocess.run(
            [script, "start", directory, str(port), str(controller)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if started.returncode != 0:
            raise RuntimeError(f"Kafka did not start:\n{started.stderr}")
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", directory], stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
        shutil.rmtree(directory, ignore_errors=True)
