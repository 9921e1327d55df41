"""The canonical form of an event split around its position (service/chain.py) puts together exactly the
canonical form that `puja audit verify` recomputes (domain/published.py), whatever the event's data holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from domain.published import EventRecord
from service.chain import POSITION_PLACEHOLDER, CanonicalParts

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
