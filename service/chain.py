"""The hash chain on the write path (api.md "Audit"; the definition is in domain/published.py).

Every stored event carries `hash` and `prev_hash`, computed by the recorders (service/recorder.py,
service/postgres.py) inside the insert transaction, under the writer lock, once the event's global position is
known: so the chain follows positions exactly, also when a save of a group commit is rolled back to its savepoint.

What is hashed is the event as the service decodes and exports it (`EventRecord.canonical()`), never the stored
bytes, so that the chain stays verifiable when the payloads are encrypted at rest. Decoding happens before the
lock is taken: the canonical form is split around its `position` (`CanonicalParts`), and under the lock only
the position is put in and one SHA-256 computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import uuid4

from eventsourcing.persistence import Notification, StoredEvent

from domain.published import GENESIS_HASH, EventRecord, canonical_json, link_hash


@dataclass(frozen=True)
class CanonicalParts:
    """An event's canonical form without its position: `head + str(position) + tail`."""

    head: str
    tail: str

    def canonical(self, position: int) -> str:
        return f"{self.head}{position}{self.tail}"

    def link(self, position: int, prev_hash: str) -> str:
        return link_hash(prev_hash, self.canonical(position))

    @classmethod
    def of(cls, record: EventRecord) -> CanonicalParts:
        """The record's canonical form written once, with a placeholder for its position that nothing else in
        it can hold (a NUL, which JSON escapes, and a random id of this process), and split there."""
        values = record.canonical_dict()
        values["position"] = POSITION_PLACEHOLDER
        head, found, tail = canonical_json(values).partition(POSITION_MARK)
        if (
            not found or POSITION_MARK in tail
        ):  # never, unless an event's data held this process's placeholder
            return cls.split(record)
        return cls(head=head, tail=tail)

    @classmethod
    def split(cls, record: EventRecord) -> CanonicalParts:
        """The same, written as the fields before the position and those after it."""
        values = record.canonical_dict()
        del values["position"]
        before = {k: v for k, v in values.items() if k < "position"}
        after = {k: v for k, v in values.items() if k > "position"}
        # Sorted keys: the fields before "position", then "position", then the fields after it.
        return cls(
            head=canonical_json(before)[:-1] + ',"position":',
            tail="," + canonical_json(after)[1:],
        )


POSITION_PLACEHOLDER = f"\x00position-{uuid4().hex}"
POSITION_MARK = canonical_json({"": POSITION_PLACEHOLDER})[len('{"":') : -1]


@dataclass(frozen=True)
class ChainedNotification(Notification):
    """A notification of the log with its links of the chain."""

    hash: str | None = None
    prev_hash: str | None = None


@dataclass(frozen=True)
class Link:
    """The last link of the chain as stored: position and hash (the head that an auditor publishes)."""

    position: int
    hash: str


GENESIS = Link(0, GENESIS_HASH)

Describe = Callable[[StoredEvent], CanonicalParts]
LINK_PAGE = 500


class Chaining:
    """What both recorders share: the application tells them how to read a stored event (`describe`, set by
    `InnovationNetwork`), and they refuse to store an event they cannot chain."""

    describe: Describe | None = None

    def link_unchained(self) -> int:
        """Give every stored event that has no link yet (a store made before the chain existed) its link, in
        position order; answers how many were linked."""
        raise NotImplementedError

    def canonical_parts(self, stored_events: Sequence[StoredEvent]) -> list[CanonicalParts]:
        if self.describe is None:
            raise RuntimeError("The recorder stores only chained events: set its `describe` first.")
        return [self.describe(stored) for stored in stored_events]

    @staticmethod
    def links(parts: Sequence[CanonicalParts], last: Link) -> tuple[list[tuple[int, str, str]], Link]:
        """(position, hash, prev_hash) of events stored after `last`, and the new last link."""
        rows = []
        position, prev = last.position, last.hash
        for part in parts:
            position += 1
            digest = part.link(position, prev)
            rows.append((position, digest, prev))
            prev = digest
        return rows, Link(position, prev)
