"""An aggregate as it was (`GET .../{id}/state`, `puja replay`): the same representation as the resource,
rebuilt from the event store at a version or at a time."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from app.representations import innovation_resource, replication_resource
from domain.errors import InvalidInput
from service.audit import past_innovation, past_replication
from service.network import InnovationNetwork

KINDS = ("innovation", "replication")
INTEGER = re.compile(r"^[+-]?\d{1,18}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$")


def parse_state_query(version: str | None, at: str | None) -> tuple[int | None, datetime | None]:
    """Exactly one of `version` (an integer) and `at` (an RFC 3339 time with offset), else InvalidInput."""
    if (version is None) == (at is None):
        message = "Give exactly one of 'version' and 'at'."
        raise InvalidInput({"version": [message], "at": [message]})
    if version is not None:
        if not INTEGER.match(version.strip()):
            raise InvalidInput.field("version", "Not an integer.")
        return int(version), None
    assert at is not None
    text = at.strip()
    try:
        if not RFC3339.match(text):
            raise ValueError
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise InvalidInput.field(
            "at", "Not an RFC 3339 time with an offset, e.g. 2026-03-01T09:00:00+07:00."
        ) from None
    return None, moment


def past_state(
    network: InnovationNetwork, kind: str, aggregate_id: UUID, version: int | None, at: datetime | None
) -> dict[str, Any]:
    """The resource as it was. Raises AggregateNotFound, or service.audit.NotInHistory for a version it
    never had (below 1, above the current one) or a time before it existed."""
    if kind == "innovation":
        innovation = past_innovation(network, aggregate_id, version=version, at=at)
        return innovation_resource(innovation.innovation, innovation.replication_count)
    replication = past_replication(network, aggregate_id, version=version, at=at)
    return replication_resource(replication.replication, replication.innovation_name)
