"""The "audit" projection: the global log, one row per stored event, in its public shape (api.md "Audit")."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, insert, select

from domain.published import EventRecord
from projections.tables import AUDIT_TABLES, audit_events
from projections.tracking import Projection

_RECORDED = select(audit_events.c.position).where(audit_events.c.event_id == bindparam("b_event_id"))
_RECORD = insert(audit_events)


class AuditProjection(Projection):
    name = "audit"
    tables = AUDIT_TABLES

    def project(self, conn: Connection, record: EventRecord) -> None:
        if conn.execute(_RECORDED, {"b_event_id": record.id}).first() is not None:
            return
        conn.execute(_RECORD, {**record.to_dict(), "event_id": record.id})
