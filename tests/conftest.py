"""Shared fixtures: a real SQLite event store in a temporary directory, and an actor to act as."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from domain.acting import Actor, acting_as
from domain.calendar import today
from service.network import InnovationNetwork
from service.store import open_sqlite_network


def days_ago(n: int) -> date:
    return today() - timedelta(days=n)


@pytest.fixture
def network(tmp_path: Any) -> Iterator[InnovationNetwork]:
    app = open_sqlite_network(tmp_path / "events.sqlite")
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
def runtime(tmp_path: Any) -> Iterator[Any]:
    from app.runtime import Runtime
    from app.settings import Settings

    rt = Runtime.open(Settings(data_dir=tmp_path / "var"))
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
