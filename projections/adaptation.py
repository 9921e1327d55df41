"""The adaptation log, kept by the index projection: one row per `ModificationRecorded`, with its component,
nature, whether it touches a core component, and its business date, so that adaptation profiles can be counted
as of any date (projections/diffusion.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, bindparam, select

from domain.published import EventRecord
from projections.bulk import insert_dicts
from projections.tables import modifications
from projections.tracking import IN_CHUNK

_LOGGED = select(modifications.c.modification_id).where(
    modifications.c.modification_id.in_(bindparam("b_ids", expanding=True))
)


def modification_row(record: EventRecord) -> dict[str, Any]:
    data = record.data
    return {
        "modification_id": data["modification_id"],
        "replication_id": record.aggregate_id,
        "component": data["component"],
        "nature": data["nature"],
        "core": bool(data["core"]),
        "recorded_on": date.fromisoformat(data["recorded_on"]),
    }


def log_modification(conn: Connection, record: EventRecord) -> None:
    """Lay one modification down; a record delivered again changes nothing."""
    log_modifications(conn, [modification_row(record)])


def log_modifications(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Lay modifications down (distinct ids), leaving out those already logged."""
    logged: set[str] = set()
    for start in range(0, len(rows), IN_CHUNK):
        chunk = [row["modification_id"] for row in rows[start : start + IN_CHUNK]]
        logged.update(conn.execute(_LOGGED, {"b_ids": chunk}).scalars())
    fresh = [row for row in rows if row["modification_id"] not in logged]
    insert_dicts(conn, modifications, fresh)
