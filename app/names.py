"""Innovation names shown in command answers beside a replication (api.md: names that belong to other
aggregates may come from projections), remembered for a moment instead of read for every command.

A name changes only by a revision. A revision made by this process puts the new name here at once (read from the
aggregate); one made by another process shows here after at most `fresh_for` seconds more than the projection
takes to apply it."""

from __future__ import annotations

from uuid import UUID

from app.memory import ShortMemory

FRESH_FOR = 1.0


class InnovationNames(ShortMemory[UUID, str]):
    def __init__(self, fresh_for: float = FRESH_FOR) -> None:
        super().__init__(fresh_for, remember_absent=False)
