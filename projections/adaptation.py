"""The adaptation log, kept by the index projection: one row per `ModificationRecorded`, with its component,
nature, whether it touches a core component, and its business date, so that adaptation profiles can be counted
as of any date (projections/diffusion.py)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, bindparam, insert, select

from domain.published import EventRecord
from projections.tables import modifications

_LOGGED = select(modifications.c.modification_id).where(modifications.c.modification_id == bindparam("b_id"))
_LOG = insert(modifications)


def log_modification(conn: Connection, record: EventRecord) -> None:
    """Lay one modification down; a record delivered again changes nothing."""
    data = record.data
    if conn.execute(_LOGGED, {"b_id": data["modification_id"]}).first() is not None:
        return
    conn.execute(
        _LOG,
        {
            "modification_id": data["modification_id"],
            "replication_id": record.aggregate_id,
            "component": data["component"],
            "nature": data["nature"],
            "core": bool(data["core"]),
            "recorded_on": date.fromisoformat(data["recorded_on"]),
        },
    )
