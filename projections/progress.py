"""How far each tracked reader of the record (a projection, the relay) has come, and whether it has stalled.

A reader has stalled when it has had something to do for longer than `stall_after` seconds without moving:
it lags, and neither its last advance nor the recording of the oldest event it has not applied is more recent
than that. Counting from that event (not only from the last advance) keeps a reader that was idle and current
for an hour from counting as stalled the moment a new event arrives; and it needs no memory of the process
asking, so every API worker answers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from projections.tracking import read_tracked

# When the first event after a position was recorded (None: there is none).
RecordedAfter = Callable[[int], datetime | None]


def progress(
    conn: Connection,
    names: Sequence[str],
    head: int,
    recorded_after: RecordedAfter,
    stall_after: float,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """`name, position, head_position, lag, last_advanced_at, seconds_since_advance, pending_since, status`
    (`ok`, `catching_up` or `stalled`) of each named reader."""
    now = now or datetime.now(UTC)
    tracked = read_tracked(conn, names)
    pending_cache: dict[int, datetime | None] = {}
    answers = []
    for name in names:
        found = tracked.get(name)
        position = found.position if found else 0
        advanced_at = found.last_advanced_at if found else None
        lag = max(head - position, 0)
        pending_since = None
        state = "ok"
        if lag:
            if position not in pending_cache:
                pending_cache[position] = recorded_after(position)
            pending_since = pending_cache[position]
            moments = [m for m in (advanced_at, pending_since) if m is not None]
            busy_for = (now - max(moments)).total_seconds() if moments else float("inf")
            state = "stalled" if busy_for > stall_after else "catching_up"
        answers.append(
            {
                "name": name,
                "position": position,
                "head_position": head,
                "lag": lag,
                "last_advanced_at": advanced_at.isoformat() if advanced_at else None,
                "seconds_since_advance": (
                    round((now - advanced_at).total_seconds(), 3) if advanced_at else None
                ),
                "pending_since": pending_since.isoformat() if pending_since else None,
                "status": state,
            }
        )
    return answers
