"""The progress of every tracked reader of the record (projections.progress), and in streaming mode the
consumer groups' lag in messages (consumers.lag), as `GET /api/v1/projections`, `/readyz`, `/metrics` and
`puja projections status` show them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.runtime import Runtime
from consumers.lag import StreamLag
from projections.progress import progress
from service.network import read_records

PROJECTIONS = ("index", "audit")
RELAY = "relay"


def statuses(rt: Runtime, stream_lag: StreamLag | None = None) -> list[dict[str, Any]]:
    """One row per projection, and one for the relay when streaming or once it has run against this store.
    Each row says whether it counts for readiness (`required`)."""
    streaming = bool(rt.settings.kafka_bootstrap)
    head = rt.network.head_position()

    def recorded_after(position: int) -> datetime | None:
        following = read_records(rt.network, position, 1)
        return datetime.fromisoformat(following[0].recorded_at).astimezone(UTC) if following else None

    with rt.views.connect() as conn:
        rows = progress(
            conn, [*PROJECTIONS, RELAY], head, recorded_after, rt.settings.stall_seconds, datetime.now(UTC)
        )
    answers = []
    for row in rows:
        if row["name"] == RELAY and not streaming and row["last_advanced_at"] is None:
            continue  # no relay has ever run against this store
        row["required"] = row["name"] != RELAY or streaming
        answers.append(row)
    if stream_lag is not None:
        from consumers.projector import group_of

        reading = stream_lag.reading()
        for row in answers:
            if row["name"] not in PROJECTIONS:
                continue
            group = group_of(rt.settings.kafka_topic_prefix, row["name"])
            found = reading.groups.get(group)
            row["stream"] = {
                "group": group,
                "committed_offset": found.committed_offset if found else None,
                "end_offset": found.end_offset if found else None,
                "lag_messages": found.lag_messages if found else None,
                "checked_at": reading.checked_at.isoformat() if reading.checked_at else None,
                "error": reading.error or (found.error if found else None),
            }
    return answers
