"""The "audit" projection: the global log, one row per stored event, in its public shape (api.md "Audit")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from domain.published import EventRecord
from projections.bulk import insert_rows
from projections.tables import AUDIT_TABLES, audit_events
from projections.tracking import IN_CHUNK, Projection

# An event's row is keyed by its position (one event per position), so look-ups on the primary key find the events
# of a batch already logged: its range when the batch is (nearly) contiguous, as the runner's are, or its positions.
_LOGGED_BETWEEN = select(audit_events.c.position).where(
    audit_events.c.position.between(bindparam("b_low"), bindparam("b_high"))
)
_LOGGED_AMONG = select(audit_events.c.position).where(
    audit_events.c.position.in_(bindparam("b_positions", expanding=True))
)


class AuditProjection(Projection):
    name = "audit"
    tables = AUDIT_TABLES

    def project(self, conn: Connection, record: EventRecord) -> None:
        self.project_all(conn, [record])

    def project_all(self, conn: Connection, records: Sequence[EventRecord]) -> None:
        """One row per event not logged yet, inserted together."""
        if not records:
            return
        fresh = {record.position: record for record in records}
        low, high = min(fresh), max(fresh)
        if high - low < 2 * len(fresh):
            logged = set(conn.execute(_LOGGED_BETWEEN, {"b_low": low, "b_high": high}).scalars())
        else:
            positions, logged = list(fresh), set()
            for start in range(0, len(positions), IN_CHUNK):
                chunk = positions[start : start + IN_CHUNK]
                logged.update(conn.execute(_LOGGED_AMONG, {"b_positions": chunk}).scalars())
        for position in logged:
            fresh.pop(position, None)
        insert_rows(conn, audit_events, [row_of(record.id, record) for record in fresh.values()])


def row_of(event_id: str, record: EventRecord) -> tuple[Any, ...]:
    """The event's row, as the values of `audit_events.columns` in their order."""
    return (
        record.position,
        event_id,
        record.aggregate_id,
        record.aggregate_type,
        record.version,
        record.type,
        record.recorded_at,
        record.actor,
        record.actor_role,
        record.request_id,
        record.data,
        record.hash,
        record.prev_hash,
    )


_COLUMNS = (
    "position",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "version",
    "type",
    "recorded_at",
    "actor",
    "actor_role",
    "request_id",
    "data",
    "hash",
    "prev_hash",
)
assert tuple(audit_events.columns.keys()) == _COLUMNS, "row_of gives the columns in this order"
