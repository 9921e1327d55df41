"""Queries of the read model: plain functions answering JSON-ready dicts.

Listings of innovations, replications and the audit log page in the order items were created (by the global
position that created them), so iterating with cursors never skips or repeats an item while new ones arrive.
Cursors are opaque to clients; one that this module did not issue raises `InvalidCursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, or_, select

from domain import regions
from domain.enums import ReplicationStatus
from domain.published import RECORD_FIELDS
from projections.index import fold
from projections.store import ViewStore
from projections.tables import audit_events as audit_table
from projections.tables import innovation_urusan, innovations, replications

PENERAPAN = ReplicationStatus.PENERAPAN.value
DITOLAK = ReplicationStatus.DITOLAK.value
INNOVATION_SORTS = ("at_penerapan", "adopters", "provinces")


class InvalidCursor(ValueError):
    """A cursor this module did not issue (or one issued for another ordering)."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


# --- cursors ----------------------------------------------------------------------------------


def encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor(f"Invalid cursor {cursor!r}.") from None


def _position_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    value = decode_cursor(cursor)
    if not _is_count(value):
        raise InvalidCursor(f"Invalid cursor {cursor!r}.")
    return int(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError("limit is at least 1")


def _page_by_creation(
    conn: Connection, query: Select[Any], table: Any, limit: int, cursor: str | None
) -> Page:
    after = _position_cursor(cursor)
    if after is not None:
        query = query.where(table.c.created_position > after)
    rows = conn.execute(query.order_by(table.c.created_position).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[dict(row.doc) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_position) if more else None,
    )


# --- innovations ------------------------------------------------------------------------------


def list_innovations(
    store: ViewStore,
    *,
    region: str | None = None,
    province: str | None = None,
    form: str | None = None,
    urusan: str | None = None,
    stage: str | None = None,
    q: str | None = None,
    retired: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    _check_limit(limit)
    c = innovations.c
    query = select(c.created_position, c.doc)
    if region is not None:
        query = query.where(c.region == region)
    if province is not None:
        query = query.where(c.province == province)
    if form is not None:
        query = query.where(c.form == form)
    if urusan is not None:
        query = query.where(c.innovation_id.in_(_innovations_of_urusan(urusan)))
    if stage is not None:
        query = query.where(c.stage == stage)
    if q is not None and q.strip():
        query = query.where(c.name_folded.contains(fold(q.strip()), autoescape=True))
    if retired is not None:
        query = query.where(c.retired == retired)
    with store.connect() as conn:
        return _page_by_creation(conn, query, innovations, limit, cursor)


def get_innovation(store: ViewStore, id: Any) -> dict[str, Any] | None:
    with store.connect() as conn:
        doc = conn.execute(
            select(innovations.c.doc).where(innovations.c.innovation_id == str(id))
        ).scalar_one_or_none()
    return dict(doc) if doc is not None else None


def innovation_name(store: ViewStore, id: Any) -> str | None:
    """Only the name of an innovation (command answers show it beside a replication), without its document."""
    name = store.scalar("SELECT name FROM innovations WHERE innovation_id = ?", (str(id),))
    return None if name is None else str(name)


def _innovations_of_urusan(urusan: str) -> Select[Any]:
    return select(innovation_urusan.c.innovation_id).where(innovation_urusan.c.urusan == urusan)


# --- replications -----------------------------------------------------------------------------


def list_replications(
    store: ViewStore,
    *,
    innovation_id: Any = None,
    source_region: str | None = None,
    adopting_region: str | None = None,
    province: str | None = None,
    status: str | None = None,
    form: str | None = None,
    urusan: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    _check_limit(limit)
    c = replications.c
    query = select(c.created_position, c.doc)
    if innovation_id is not None:
        query = query.where(c.innovation_id == str(innovation_id))
    if source_region is not None:
        query = query.where(c.source_region == source_region)
    if adopting_region is not None:
        query = query.where(c.adopting_region == adopting_region)
    if province is not None:
        query = query.where(or_(c.source_province == province, c.adopting_province == province))
    if status is not None:
        query = query.where(c.status == status)
    if form is not None:
        query = query.where(c.form == form)
    if urusan is not None:
        query = query.where(c.innovation_id.in_(_innovations_of_urusan(urusan)))
    with store.connect() as conn:
        return _page_by_creation(conn, query, replications, limit, cursor)


def get_replication(store: ViewStore, id: Any) -> dict[str, Any] | None:
    with store.connect() as conn:
        doc = conn.execute(
            select(replications.c.doc).where(replications.c.replication_id == str(id))
        ).scalar_one_or_none()
    return dict(doc) if doc is not None else None


# --- regions ----------------------------------------------------------------------------------
# The region rows of the index views, with their scores, are in projections/scores.py.


def _adopters_expression() -> ColumnElement[Any]:
    """Distinct adopting regions whose replication was not rejected."""
    r = replications.c
    return func.count(case((r.status != DITOLAK, r.adopting_region)).distinct())


def _at_penerapan_expression() -> ColumnElement[Any]:
    r = replications.c
    return func.count(case((r.status == PENERAPAN, r.adopting_region)).distinct())


# --- innovations ranked -----------------------------------------------------------------------

# Each sort key, and the figure that breaks its ties before registration order.
INNOVATION_TIES = {"at_penerapan": "adopters", "adopters": "at_penerapan", "provinces": "adopters"}


def innovation_rows(
    store: ViewStore, *, sort: str = "at_penerapan", limit: int = 50, cursor: str | None = None
) -> Page:
    """Innovations ranked by how widely they are replicated, as recorded now (descending; ties by a second
    figure, then by registration order):
    `at_penerapan` — distinct adopting regions whose replication is at penerapan (ties by `adopters`);
    `adopters` — distinct adopting regions whose replication was not rejected (ties by `at_penerapan`);
    `provinces` — distinct provinces of those adopting regions (ties by `adopters`).
    Each row also has `replications` (every replication of it, rejected ones included) and
    `deepest_generation` (the highest generation among its replications not rejected; null for none)."""
    _check_limit(limit)
    if sort not in INNOVATION_SORTS:
        raise ValueError(f"sort is one of {', '.join(INNOVATION_SORTS)}")
    after = _sorted_cursor(cursor, sort, ["int", "int", "int"])
    i, r = innovations.c, replications.c
    not_rejected = r.status != DITOLAK
    counted = (
        select(
            r.innovation_id,
            _adopters_expression().label("adopters"),
            _at_penerapan_expression().label("at_penerapan"),
            func.count(case((not_rejected, r.adopting_province)).distinct()).label("provinces"),
            func.count().label("replications"),
            func.max(case((not_rejected, r.generation))).label("deepest_generation"),
        )
        .group_by(r.innovation_id)
        .subquery()
    )
    ranked = (
        select(
            i.innovation_id,
            i.created_position,
            i.name,
            i.region,
            i.retired,
            func.coalesce(counted.c.adopters, 0).label("adopters"),
            func.coalesce(counted.c.at_penerapan, 0).label("at_penerapan"),
            func.coalesce(counted.c.provinces, 0).label("provinces"),
            func.coalesce(counted.c.replications, 0).label("replications"),
            counted.c.deepest_generation,
        )
        .select_from(innovations.outerjoin(counted, counted.c.innovation_id == i.innovation_id))
        .subquery()
    )
    other = INNOVATION_TIES[sort]
    first, second, order = ranked.c[sort], ranked.c[other], ranked.c.created_position
    query = select(ranked).order_by(first.desc(), second.desc(), order)
    if after is not None:
        a, b, c = after
        query = query.where(or_(first < a, and_(first == a, or_(second < b, and_(second == b, order > c)))))
    with store.connect() as conn:
        rows = conn.execute(query.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "id": row.innovation_id,
            "name": row.name,
            "region": row.region,
            "region_name": regions.name_of(row.region),
            "retired": bool(row.retired),
            "adopters": int(row.adopters),
            "at_penerapan": int(row.at_penerapan),
            "provinces": int(row.provinces),
            "replications": int(row.replications),
            "deepest_generation": (
                int(row.deepest_generation) if row.deepest_generation is not None else None
            ),
        }
        for row in rows
    ]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(
            [sort, int(last._mapping[sort]), int(last._mapping[other]), int(last.created_position)]
        )
    return Page(items, next_cursor)


def _sorted_cursor(cursor: str | None, sort: str, shape: Sequence[str]) -> list[Any] | None:
    """The key after which a sorted page starts; the cursor names its sort so it cannot be mixed up."""
    if cursor is None:
        return None
    value = decode_cursor(cursor)
    kinds = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    if (
        not isinstance(value, list)
        or len(value) != len(shape) + 1
        or value[0] != sort
        or not all(kinds[kind](v) for kind, v in zip(shape, value[1:], strict=True))
    ):
        raise InvalidCursor(f"Invalid cursor {cursor!r}.")
    return value[1:]


def _keyed_page(keyed: list[tuple[list[Any], dict[str, Any]]], sort: str, limit: int) -> Page:
    page = keyed[:limit]
    more = len(keyed) > limit
    return Page(
        items=[row for _, row in page],
        next_cursor=encode_cursor([sort, *page[-1][0]]) if more else None,
    )


# --- audit ------------------------------------------------------------------------------------

AUDIT_FIELDS = RECORD_FIELDS


def _audit_item(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in AUDIT_FIELDS}


def audit_events(
    store: ViewStore,
    *,
    after: int = 0,
    limit: int = 100,
    type: str | None = None,
    aggregate_id: Any = None,
    cursor: str | None = None,
) -> Page:
    """The global log in position order, after a position. `next_cursor` is the last position on the page
    (as a string); it can be given back as `cursor` or as `after`."""
    _check_limit(limit)
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidCursor(f"Invalid cursor {cursor!r}.")
        after = max(after, int(cursor))
    a = audit_table.c
    query = select(*(a[name] for name in AUDIT_FIELDS)).where(a.position > after)
    if type is not None:
        query = query.where(a.type == type)
    if aggregate_id is not None:
        query = query.where(a.aggregate_id == str(aggregate_id))
    with store.connect() as conn:
        rows = conn.execute(query.order_by(a.position).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[_audit_item(row) for row in rows],
        next_cursor=str(rows[-1].position) if more else None,
    )


def history(store: ViewStore, aggregate_id: Any) -> list[dict[str, Any]]:
    """Every event of one aggregate, in version order."""
    a = audit_table.c
    query = (
        select(*(a[name] for name in AUDIT_FIELDS))
        .where(a.aggregate_id == str(aggregate_id))
        .order_by(a.version)
    )
    with store.connect() as conn:
        return [_audit_item(row) for row in conn.execute(query)]
