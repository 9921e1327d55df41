"""The public shape of a stored event: what the audit log shows, what projections apply and what the stream
carries (api.md "history", events.md). Every field is plain JSON.

The hash chain of api.md ("Audit") is defined here too, so that the store that writes it, the service that
verifies it and anyone checking an export agree on one definition: `hash` is the lowercase hex SHA-256 of
`prev_hash + "\n" + canonical`, `canonical` the event without `hash` and `prev_hash` as JSON with sorted keys,
no insignificant whitespace and non-ASCII characters kept; the first event's `prev_hash` is 64 zeros."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.aggregate import event_type

EVENT_ID_NAMESPACE = UUID("6f1c3f0e-6a53-4b8e-9a51-2f1d3c4b5a60")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
GENESIS_HASH = "0" * 64
CHAIN_FIELDS = ("hash", "prev_hash")
BASE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
    | {"actor", "actor_role", "request_id"}
)


JSON_SCALARS = (str, int, float, type(None))  # bool is an int

# orjson reads an integer beyond 64 bits as a float, where the json module keeps it exact: a JSON text with a run of
# 19 or more ASCII digits (also one inside a string, which only costs the long way) is read the json module's way.
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_LONG_NUMBER = b"1" * 19


def has_long_number(text: bytes) -> bool:
    """Whether a JSON text (UTF-8) holds a run of 19 or more ASCII digits; a regular expression takes ten to
    twenty times longer over a replication's document."""
    return _LONG_NUMBER in text.translate(_DIGITS_AS_ONES)


def plain(value: Any) -> Any:
    """A JSON-ready copy of an event value."""
    if isinstance(value, JSON_SCALARS):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date):  # and datetime
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [plain(v) for v in value]
    return value


def canonical_json(values: Mapping[str, Any]) -> str:
    """JSON with sorted keys, no insignificant whitespace, non-ASCII characters kept as they are."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link_hash(prev_hash: str, canonical: str) -> str:
    """One link of the chain: the hash of an event whose canonical form is `canonical`."""
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def event_id(aggregate_id: str, version: int) -> str:
    """The event's own id: stable, so that a re-published event can be recognised. It is
    `str(uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}/{version}"))`, computed without the UUID objects (the
    audit projection makes one per event)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{aggregate_id}/{version}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class EventRecord:
    position: int
    aggregate_id: str
    aggregate_type: str
    version: int
    type: str
    recorded_at: str
    actor: str
    actor_role: str
    request_id: str
    data: dict[str, Any] = field(default_factory=dict)
    hash: str | None = None
    prev_hash: str | None = None

    @property
    def id(self) -> str:
        return event_id(self.aggregate_id, self.version)

    @classmethod
    def of(
        cls, event: Any, position: int, hash: str | None = None, prev_hash: str | None = None
    ) -> EventRecord:
        attributes = vars(event)
        return cls(
            position=position,
            aggregate_id=str(event.originator_id),
            aggregate_type=type(event).__qualname__.split(".")[0],
            version=event.originator_version,
            type=event_type(event),
            recorded_at=event.timestamp.isoformat(),
            actor=attributes.get("actor", ""),
            actor_role=attributes.get("actor_role", ""),
            request_id=attributes.get("request_id", ""),
            data={k: plain(v) for k, v in attributes.items() if k not in BASE_FIELDS},
            hash=hash,
            prev_hash=prev_hash,
        )

    @classmethod
    def made(
        cls,
        position: int,
        aggregate_id: str,
        aggregate_type: str,
        version: int,
        type: str,
        recorded_at: str,
        actor: str,
        actor_role: str,
        request_id: str,
        data: dict[str, Any],
        hash: str | None,
        prev_hash: str | None,
    ) -> EventRecord:
        """A record of values already checked, made without the frozen dataclass's `__init__` (which sets each
        field through `object.__setattr__`): the same record, for readers that make one per stored event."""
        record = object.__new__(cls)
        record.__dict__.update(
            position=position,
            aggregate_id=aggregate_id,
            aggregate_type=aggregate_type,
            version=version,
            type=type,
            recorded_at=recorded_at,
            actor=actor,
            actor_role=actor_role,
            request_id=request_id,
            data=data,
            hash=hash,
            prev_hash=prev_hash,
        )
        return record

    def to_dict(self) -> dict[str, Any]:
        return {**self.canonical_dict(), "hash": self.hash, "prev_hash": self.prev_hash}

    def canonical_dict(self) -> dict[str, Any]:
        """The event as exported, without `hash` and `prev_hash`: what the chain hashes."""
        return {
            "position": self.position,
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "version": self.version,
            "type": self.type,
            "recorded_at": self.recorded_at,
            "actor": self.actor,
            "actor_role": self.actor_role,
            "request_id": self.request_id,
            "data": self.data,
        }

    def canonical(self) -> str:
        return canonical_json(self.canonical_dict())

    def expected_hash(self, prev_hash: str) -> str:
        """The hash this event must have when it follows an event whose hash is `prev_hash`."""
        return link_hash(prev_hash, self.canonical())

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EventRecord:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


# The fields of the public event, in the order the audit log and the export give them.
RECORD_FIELDS = tuple(EventRecord.__dataclass_fields__)
