"""Running a command on behalf of the authenticated principal, and answering with the aggregate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from flask import g

from app.http import principal, runtime
from app.representations import innovation_resource, replication_resource
from domain.acting import Actor, acting_as
from domain.enums import ReplicationStatus
from projections import queries
from service.network import InnovationNetwork, Outcome


def execute(command: Callable[[InnovationNetwork], Outcome]) -> Outcome:
    """Run a command, unless this is the retry of a keyed request that stored it and died before answering:
    then its stored outcome is the answer (app/idempotency.py)."""
    stored = g.pop("stored_outcome", None)
    if stored is not None:
        g.answered_from_store = True
        g.command_stored = True
        return stored
    who = principal()
    assert who is not None
    with acting_as(Actor(who.subject, who.role, g.request_id)):
        outcome = command(runtime().network)
    g.command_stored = True
    runtime().runner.wake()
    return outcome


def headers_for(outcome: Outcome, location: str | None = None) -> dict[str, str]:
    headers = {"ETag": f'"{outcome.aggregate.version}"', "X-Event-Position": str(outcome.position)}
    if location:
        headers["Location"] = location
    return headers


def innovation_answer(outcome: Outcome, status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    innovation = outcome.aggregate
    runtime().innovation_names.put(innovation.id, innovation.name)  # the latest, e.g. after a revision
    network = runtime().network
    implemented = {
        row.adopting_region
        for row in network.registry_of(innovation.id)
        if row.status == ReplicationStatus.PENERAPAN
    }
    location = f"/api/v1/innovations/{innovation.id}" if status == 201 else None
    return innovation_resource(innovation, len(implemented)), status, headers_for(outcome, location)


def replication_answer(outcome: Outcome, status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    replication = outcome.aggregate
    location = f"/api/v1/replications/{replication.id}" if status == 201 else None
    name = innovation_name(replication.innovation_id)
    return replication_resource(replication, name), status, headers_for(outcome, location)


def innovation_name(innovation_id: UUID) -> str:
    """Another aggregate's name may come from the projection (api.md); the store answers when it lags."""
    views = runtime().views
    name = runtime().innovation_names.get(innovation_id, lambda id: queries.innovation_name(views, id))
    if name is not None:
        return name
    return runtime().network.innovation(innovation_id).name
