"""The raw library as a baseline: a plain `eventsourcing` Application and aggregate whose events carry payloads
like the service's, stored one `save()` per event as a command does, on the same backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import JSONTranscoder

from bench.workload import STEPS, days_ago
from service.store import postgres_env
from service.transcoder import DateAsISO


class Practice(Aggregate):
    @event("Proposed")
    def __init__(
        self,
        innovation_id: uuid.UUID,
        adopting_region: str,
        facilitator: str,
        rationale: str,
        proposed_on: date,
        actor: str,
        actor_role: str,
        request_id: str,
    ) -> None:
        self.steps = 0

    @event("StepRecorded")
    def record(
        self,
        step_id: uuid.UUID,
        component: str,
        nature: str,
        core: bool,
        description: str,
        reason: str,
        recorded_on: date,
        actor: str,
        actor_role: str,
        request_id: str,
    ) -> None:
        self.steps += 1


class RawLibrary(Application):
    name = "RawLibrary"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())


def raw_env(
    backend: str, *, sqlite_path: Path | None = None, database_url: str | None = None
) -> dict[str, str]:
    """The library's own recorders (no service recorder, no guards), on the same database as the service."""
    if backend == "sqlite":
        assert sqlite_path is not None
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    assert database_url is not None
    env = postgres_env(database_url)
    env.pop("APPLICATION_RECORDER_TOPIC")
    env["PERSISTENCE_MODULE"] = "eventsourcing.postgres"
    return env


def saver(app: RawLibrary) -> Callable[[int], Callable[[], None]]:
    """Per client: every 8th save creates an aggregate (as a proposal does), the others add one event to it."""

    def make(client: int) -> Callable[[], None]:
        state: dict[str, Any] = {"n": 0, "practice": None}

        def save_one() -> None:
            actor = {"actor": "bench-admin", "actor_role": "admin", "request_id": uuid.uuid4().hex}
            if state["n"] % len(STEPS) == 0:
                practice = Practice(
                    innovation_id=uuid.uuid4(),
                    adopting_region="35.04",
                    facilitator="Kementerian Dalam Negeri",
                    rationale="Kebutuhan layanan serupa dan hasil kunjungan kerja ke daerah asal.",
                    proposed_on=days_ago(500),
                    **actor,
                )
                state["practice"] = practice
            else:
                practice = state["practice"]
                practice.record(
                    step_id=uuid.uuid4(),
                    component="teknologi",
                    nature="penyesuaian",
                    core=False,
                    description="Aplikasi dipasang di pusat data provinsi dan formulir disesuaikan dengan "
                    "kebutuhan layanan setempat.",
                    reason="Belum memiliki pusat data sendiri; prosedur daerah berbeda.",
                    recorded_on=days_ago(400),
                    **actor,
                )
            app.save(practice)
            state["n"] += 1

        return save_one

    return make
