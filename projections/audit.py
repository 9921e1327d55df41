"""The "audit" projection: the global log, one row per stored event, in its public shape (api.md "Audit")."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, insert, select

from domain.published import EventRecord
from projections.tables import AUDIT_TABLES, audit_events
from projections.tracking import IN_CHUNK, Projection

_RECORDED = select(audit_events.c.event_id).where(
    audit_events.c.event_id.in_(bindparam("b_event_ids", expanding=True))
)
_RECORD = insert(audit_events)


class AuditProjection(Projection):
    name = "audit"
    tables = AUDIT_TABLES

    def project(self, conn: Connection, record: EventRecord) -> None:
        self.project_all(conn, [record])

    def project_all(self, conn: Connection, records: Sequence[EventRecord]) -> None:
        """One row per event not logged yet, inserted together."""
        fresh = {record.id: record for record in records}
        ids = list(fresh)
        for start in range(0, len(ids), IN_CHUNK):
            for logged in conn.execute(_RECORDED, {"b_event_ids": ids[start : start + IN_CHUNK]}).scalars():
                fresh.pop(logged, None)
        if fresh:
            conn.execute(_RECORD, [{**record.to_dict(), "event_id": key} for key, record in fresh.items()])
