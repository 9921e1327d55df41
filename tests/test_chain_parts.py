"""The canonical form of an event split around its position (service/chain.py) puts together exactly the
canonical form that `puja audit verify` recomputes (domain/published.py), whatever the event's data holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from test_records import record_every_type

from domain.published import EventRecord
from service.chain import POSITION_PLACEHOLDER, CanonicalParts
from service.network import InnovationNetwork
from service.records import DirectRecords

TRICKY_DATA: list[dict[str, Any]] = [
    {},
    {"position": 0, "recorded_at": "x", "nested": {"position": 0, "recorded_at": 0}},
    {"text": 'quote " backslash \\ NUL \x00 newline \n', "name": "Kabupaten Sidoarjo — é ü 漢字"},
    {"z": [{"position": "\x00position-"}, 1.5, None, True]},
    {
        "placeholder": POSITION_PLACEHOLDER
    },  # the one string the fast path cannot split at: written the slow way
    {"a": {"b": {"c": [1, 2, {"position": POSITION_PLACEHOLDER}]}}},
]


def record(data: dict[str, Any]) -> EventRecord:
    return EventRecord(
        position=0,
        aggregate_id="0b7e5c9e-9a43-4bb1-8d4e-3f1c8a0b5a11",
        aggregate_type="Replication",
        version=3,
        type="AgreementSigned",
        recorded_at="2026-11-27T23:00:00.123456+00:00",
        actor='op "one"',
        actor_role="operator",
        request_id="req-1",
        data=data,
    )


@pytest.mark.parametrize("data", TRICKY_DATA)
@pytest.mark.parametrize("position", [1, 42, 10**12])
def test_the_parts_put_together_the_canonical_form(data: dict[str, Any], position: int) -> None:
    base = record(data)
    parts = CanonicalParts.of(base)

    assert parts == CanonicalParts.split(base)
    assert parts.canonical(position) == replace(base, position=position).canonical()


def test_every_event_type_is_chained_as_decoded_as_recorded(network: InnovationNetwork) -> None:
    """The parts of an event being stored come from its stored JSON read straight (service/records.py), and are
    those of the event decoded as recorded, which the export and `puja audit verify` use."""
    record_every_type(network)
    direct = DirectRecords.for_mapper(network.mapper)
    assert direct is not None
    notifications = network.recorder.select_notifications(start=1, limit=1000)
    assert len(notifications) > 12
    straight = 0
    for notification in notifications:
        # The straight path, unless the state holds what only the library reads (a run of 19 digits in a UUID's
        # hex, by chance): then both sides below take the library's.
        straight += direct.record_of(notification) is not None
        stored = StoredEvent(
            notification.originator_id,
            notification.originator_version,
            notification.topic,
            notification.state,
        )
        as_recorded = CanonicalParts.of(EventRecord.of(network.recorded_event(stored), 0))
        assert network.canonical_parts(stored) == as_recorded
        assert as_recorded.link(notification.id, notification.prev_hash) == notification.hash  # type: ignore[attr-defined]
    assert straight >= len(notifications) - 2
