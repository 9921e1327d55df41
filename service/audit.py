"""What an auditor asks of the event store itself, never of a projection (api.md "Audit"):

- an aggregate as it was, at a version or at a time, rebuilt from its events (and snapshots);
- the hash chain recomputed over the whole store, in position order, optionally against a published head;
- the log exported in pages, so that memory stays constant however long it is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.enums import ReplicationStatus
from domain.innovation import Innovation
from domain.published import RECORD_FIELDS, EventRecord, plain
from domain.replication import Replication
from service.chain import GENESIS, ChainedNotification, Link
from service.network import InnovationNetwork

PAGE = 500
EXPORT_COLUMNS = RECORD_FIELDS


class NotInHistory(Exception):
    """The aggregate has no such past: a version it never had, or a time before it existed."""


# --- the aggregate as it was ------------------------------------------------------------------


@dataclass(frozen=True)
class PastInnovation:
    innovation: Innovation
    replication_count: int  # distinct adopting regions at penerapan, as recorded then


@dataclass(frozen=True)
class PastReplication:
    replication: Replication
    innovation_name: str  # the innovation's name as recorded then


def version_at(network: InnovationNetwork, aggregate_id: UUID, at: datetime) -> int | None:
    """The aggregate's version after the last of its events recorded at or before `at` (None: it did not
    exist yet)."""
    version = None
    for event in network.events.get(aggregate_id):
        if event.timestamp > at:  # type: ignore[attr-defined]
            break
        version = event.originator_version
    return version


def _version_asked(current: int, version: int | None, found_at: int | None, what: str) -> int:
    chosen = version if version is not None else found_at
    if chosen is None or not 1 <= chosen <= current:
        # repository.get(id, version=N) would quietly answer the latest state for N above the current one.
        raise NotInHistory(what)
    return chosen


def past_innovation(
    network: InnovationNetwork, innovation_id: UUID, *, version: int | None = None, at: datetime | None = None
) -> PastInnovation:
    current = network.innovation(innovation_id)
    found_at = version_at(network, innovation_id, at) if at is not None else None
    what = f"version {version}" if version is not None else f"at {at}"
    chosen = _version_asked(current.version, version, found_at, f"The innovation has no state {what}.")
    innovation = network.innovation(innovation_id, version=chosen)
    as_of = at if at is not None else innovation.modified_on
    return PastInnovation(innovation, replication_count_at(network, innovation_id, as_of))


def past_replication(
    network: InnovationNetwork,
    replication_id: UUID,
    *,
    version: int | None = None,
    at: datetime | None = None,
) -> PastReplication:
    current = network.replication(replication_id)
    found_at = version_at(network, replication_id, at) if at is not None else None
    what = f"version {version}" if version is not None else f"at {at}"
    chosen = _version_asked(current.version, version, found_at, f"The replication has no state {what}.")
    replication = network.replication(replication_id, version=chosen)
    as_of = at if at is not None else replication.modified_on
    innovation_version = version_at(network, replication.innovation_id, as_of) or 1
    name = network.innovation(replication.innovation_id, version=innovation_version).name
    return PastReplication(replication, name)


def replication_count_at(network: InnovationNetwork, innovation_id: UUID, at: datetime) -> int:
    """Distinct adopting regions whose replication of the innovation was at penerapan at `at` (record time)."""
    regions = set()
    for row in network.registry_of(innovation_id):
        version = version_at(network, row.replication_id, at)
        if version is None:
            continue
        if network.replication(row.replication_id, version=version).status == ReplicationStatus.PENERAPAN:
            regions.add(row.adopting_region)
    return len(regions)


# --- reading the store in position order ----------------------------------------------------


def notifications(
    network: InnovationNetwork, after: int = 0, before: int | None = None, page: int = PAGE
) -> Iterator[ChainedNotification]:
    """Stored events after `after` and before `before` (both exclusive), in position order, a page at a time."""
    stop = None if before is None else before - 1
    position = after
    while stop is None or position < stop:
        found = network.recorder.select_notifications(
            start=position, limit=page, stop=stop, inclusive_of_start=False
        )
        if not found:
            return
        yield from found  # type: ignore[misc]
        position = found[-1].id


def records(
    network: InnovationNetwork, after: int = 0, before: int | None = None, page: int = PAGE
) -> Iterator[EventRecord]:
    """The log in its public shape, with the links of the chain as stored."""
    for notification in notifications(network, after, before, page):
        yield network.record_of(notification, as_recorded=True)


# --- the chain --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int  # events that verified
    last_position: int  # the chain verifies up to here
    first_bad_position: int | None
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head(network: InnovationNetwork) -> Link:
    """The last link as stored (not verified): what an auditor publishes, to check later stores against."""
    for notification in network.recorder.select_notifications(
        start=network.head_position(), limit=1, inclusive_of_start=True
    ):
        return Link(notification.id, getattr(notification, "hash", None) or "")
    return GENESIS


def parse_head(text: str) -> Link:
    """`POSITION:HASH`, as `puja audit head` prints it."""
    position, _, digest = text.strip().partition(":")
    if not position.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(
            "A head is POSITION:HASH, e.g. 42:9f86d0...: a position and 64 lowercase hex digits."
        )
    return Link(int(position), digest)


def verify(network: InnovationNetwork, published: Link | None = None, page: int = PAGE) -> Verdict:
    """Recompute the chain over the whole store, from the stored events (decoded as the export shows them),
    in position order; stop at the first event that does not verify. With a `published` head, also check
    that the store still holds that event with that hash (so a truncated tail, or a rewrite of everything up
    to the head, is found)."""
    last, checked = GENESIS, 0

    def bad(position: int, problem: str) -> Verdict:
        return Verdict(False, checked, last.position, position, problem)

    for notification in notifications(network, page=page):
        position = last.position + 1
        if notification.id != position:
            return bad(
                position, f"Position {position} is missing: the next stored event is at {notification.id}."
            )
        if notification.prev_hash != last.hash:
            return bad(position, "Its prev_hash is not the hash of the event before it.")
        try:
            record = network.record_of(notification, as_recorded=True)
        except Exception as error:  # a payload that no longer decodes is a finding, whatever the cause
            return bad(position, f"It cannot be decoded: {error}")
        if record.expected_hash(last.hash) != notification.hash:
            return bad(position, "Its content does not match its hash: it was altered.")
        if published is not None and position == published.position and notification.hash != published.hash:
            return bad(
                position,
                "Its hash differs from the published head: the chain up to here was rewritten.",
            )
        last, checked = Link(position, notification.hash), checked + 1
    if published is not None and last.position < published.position:
        return bad(
            last.position + 1,
            f"The store ends at position {last.position}, before the published head at {published.position}: "
            "events were removed from its end.",
        )
    return Verdict(True, checked, last.position, None, None)


# --- export -------------------------------------------------------------------------------------


def jsonl_lines(events: Iterable[EventRecord]) -> Iterator[str]:
    """One JSON object per line, every field of the audit log including `hash` and `prev_hash`."""
    for record in events:
        yield json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def csv_lines(events: Iterable[EventRecord]) -> Iterator[str]:
    """A header, then one row per event; `data` is its canonical JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(values: Iterable[Any]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(EXPORT_COLUMNS)
    for record in events:
        values = record.to_dict()
        values["data"] = json.dumps(
            plain(values["data"]), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        yield line(values[name] for name in EXPORT_COLUMNS)


EXPORT_FORMATS = {
    "jsonl": (jsonl_lines, "application/x-ndjson"),
    "csv": (csv_lines, "text/csv"),
}
