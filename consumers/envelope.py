"""The CloudEvents 1.0.2 structured envelope of events.md, and the topic of each event."""

from __future__ import annotations

from typing import Any

from domain.published import EventRecord

TYPE_PREFIX = "id.go.kemendagri.pujaindah"


def topic_of(record: EventRecord, prefix: str = "puja") -> str:
    return f"{prefix}.{record.aggregate_type.lower()}s.v1"


def cloudevent(record: EventRecord) -> dict[str, Any]:
    kind = record.aggregate_type.lower()
    return {
        "specversion": "1.0",
        "id": record.id,
        "source": f"/puja-indah/{kind}s",
        "type": f"{TYPE_PREFIX}.{kind}.{record.type}.v1",
        "subject": record.aggregate_id,
        "time": record.recorded_at,
        "datacontenttype": "application/json",
        "dataschema": f"/schemas/{kind}/{record.type}/v1.json",
        "sequence": record.version,
        "position": record.position,
        "actor": record.actor,
        "actor_role": record.actor_role,
        "request_id": record.request_id,
        "data": record.data,
        # The links of the store's hash chain (api.md "Audit"), so that the audit log fed from the stream shows
        # them and a subscriber can check each event against a published head.
        "hash": record.hash,
        "prev_hash": record.prev_hash,
    }


def headers_of(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    """`ce_*` headers so that consumers can route without parsing the body."""
    return [
        ("ce_id", str(event["id"]).encode()),
        ("ce_type", str(event["type"]).encode()),
        ("ce_subject", str(event["subject"]).encode()),
        ("content-type", b"application/cloudevents+json"),
    ]
