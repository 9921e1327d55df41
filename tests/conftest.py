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
