"""How far each projection has applied the record, kept in the same transaction as the view it describes.

A projection applies a record only when it can move its tracked position forward to the record's position, in
the caller's transaction: a record is applied exactly once in effect, however often it is delivered. The move is
one conditional UPDATE, which also holds the row until the transaction ends, so two appliers (threads or
processes) can never both apply the same record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.published import EventRecord
from projections.tables import applied_positions, projection_positions


class Applies(Protocol):
    """What a runner needs of a projection."""

    name: str

    def apply(self, conn: Connection, record: EventRecord) -> None: ...


class Projection:
    """A projection of the record: `project` lays one record down (`project_all` several); `apply` and `apply_all`
    do so at most once. `tables` are the tables it owns (projections/tables.py), which a rebuild replaces together."""

    name: str = ""
    tables: tuple[Table, ...] = ()
    # The secondary indexes its own reads while applying need (by name): kept when it is loaded into empty
    # tables without the others (projections/loading.py).
    indexes_read_while_applying: frozenset[str] = frozenset()

    def apply(self, conn: Connection, record: EventRecord) -> None:
        if claim(conn, self.name, record.position):
            self.project(conn, record)

    def apply_all(self, conn: Connection, records: Sequence[EventRecord]) -> None:
        """Apply a batch (in position order) at most once, moving the tracked position once for all of it."""
        if not records:
            return
        before = hold(conn, self.name)
        if not claim(conn, self.name, records[-1].position):
            return
        if records[0].position > before:  # the usual case: none of them applied yet
            self.project_all(conn, records)
        else:
            self.project_all(conn, [record for record in records if record.position > before])

    def project(self, conn: Connection, record: EventRecord) -> None:
        """Lay one record down. Also safe to call again for a record already laid down."""
        raise NotImplementedError

    def project_all(self, conn: Connection, records: Sequence[EventRecord]) -> None:
        """Lay records down in their order, as `project` one after the other does (a projection may do it in
        fewer statements). Also safe to call again for records already laid down."""
        for record in records:
            self.project(conn, record)


WATERMARK_CHUNK = 1000
IN_CHUNK = 500  # ids per `IN (...)` of a batch's look-ups

_POSITION = select(projection_positions.c.position).where(projection_positions.c.name == bindparam("b_name"))
_HOLD = _POSITION.with_for_update()  # built once: every batch of every writer takes it
_START = insert(projection_positions)
_CLAIM = update(projection_positions).where(
    projection_positions.c.name == bindparam("b_name"),
    projection_positions.c.position < bindparam("b_position"),
)


@dataclass(frozen=True)
class Tracked:
    name: str
    position: int
    last_advanced_at: datetime | None


def claim(conn: Connection, name: str, position: int) -> bool:
    """Move `name`'s tracked position forward to `position`; False when it is already there or beyond (the
    record was applied before)."""
    now = datetime.now(UTC)
    moved = conn.execute(
        _CLAIM, {"b_name": name, "b_position": position, "position": position, "last_advanced_at": now}
    )
    if moved.rowcount == 1:
        return True
    if conn.execute(_POSITION, {"b_name": name}).first() is not None:
        return False
    conn.execute(_START, {"name": name, "position": position, "last_advanced_at": now})
    return True


def register(store_begin: Any, names: Iterable[str]) -> None:
    """Give every projection its tracking row before it applies anything, so that runners starting together
    in several processes do not race to insert it (a lost race is harmless: the row exists)."""
    for name in names:
        try:
            with store_begin() as conn:
                if conn.execute(_POSITION, {"b_name": name}).first() is None:
                    conn.execute(_START, {"name": name, "position": 0, "last_advanced_at": None})
        except IntegrityError:
            pass


def hold(conn: Connection, name: str) -> int:
    """The tracked position, locked until the transaction ends (on PostgreSQL; SQLite has one writer anyway).

    Every writer of a projection's tables takes this lock before it touches them, so writers queue in one order
    and a rebuild's swap (projections/rebuild.py), which holds it, never deadlocks with them."""
    found = conn.execute(_HOLD, {"b_name": name}).scalar_one_or_none()
    return int(found) if found is not None else 0


def tracked_position(conn: Connection, name: str) -> int:
    """The last position applied by `name` (0 when it has applied nothing)."""
    found = conn.execute(_POSITION, {"b_name": name}).scalar_one_or_none()
    return int(found) if found is not None else 0


_ALL_TRACKED = select(projection_positions)
_TRACKED = _ALL_TRACKED.where(projection_positions.c.name.in_(bindparam("b_names", expanding=True)))


def read_tracked(conn: Connection, names: Iterable[str] | None = None) -> dict[str, Tracked]:
    """Read often (runners follow the positions): one statement built once, not one per call."""
    rows = conn.execute(_ALL_TRACKED) if names is None else conn.execute(_TRACKED, {"b_names": list(names)})
    return {row.name: Tracked(row.name, int(row.position), as_utc(row.last_advanced_at)) for row in rows}


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their offset; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def advance_watermark(conn: Connection, name: str, applied: Iterable[int], current: int | None = None) -> int:
    """For a projection fed out of global order (Kafka): remember the positions just applied and move the tracked
    position up over every contiguous one, so that `min_position` means "everything up to here is applied".

    `current` is the tracked position when the caller has just read it under `hold` (one statement less). When the
    positions arrive in order, as they mostly do, it costs one read of the positions held above (none) and the
    move of the tracked position: the positions are walked in memory, and the held ones read in chunks only as far
    as the walk needs them, up to the first gap."""
    if current is None:
        current = tracked_position(conn, name)
    fresh = {p for p in applied if p > current}
    if not fresh:
        return current
    held: set[int] = set()  # the positions held above `current`, as far as they are read
    read_up_to = current  # every held position up to here is in `held`
    read_all = False
    watermark = current
    while True:
        following = watermark + 1
        if following in fresh or following in held:
            watermark = following
            continue
        if read_all or following <= read_up_to:
            break
        chunk = list(
            conn.execute(
                _HELD_ABOVE, {"b_name": name, "b_above": read_up_to, "b_limit": WATERMARK_CHUNK}
            ).scalars()
        )
        held.update(chunk)
        if len(chunk) < WATERMARK_CHUNK:
            read_all = True
        else:
            read_up_to = chunk[-1]
    # Two consumers of one group may both hold a message for a moment while partitions move: the one that comes
    # second finds the position there and leaves it (no error, no dead letter).
    new = sorted(p for p in fresh if p > watermark and p not in held)
    if new:
        conn.execute(_insert_new(conn), [{"name": name, "position": p} for p in new])
    if watermark > current:
        claim(conn, name, watermark)
        if any(p <= watermark for p in held) or (not read_all and watermark > read_up_to):
            conn.execute(_RELEASE, {"b_name": name, "b_up_to": watermark})
    return watermark


_HELD_ABOVE = (
    select(applied_positions.c.position)
    .where(
        applied_positions.c.name == bindparam("b_name"),
        applied_positions.c.position > bindparam("b_above"),
    )
    .order_by(applied_positions.c.position)
    .limit(bindparam("b_limit"))
)
_RELEASE = delete(applied_positions).where(
    applied_positions.c.name == bindparam("b_name"), applied_positions.c.position <= bindparam("b_up_to")
)


def _insert_new(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(applied_positions).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(applied_positions).on_conflict_do_nothing()
    return insert(applied_positions)
