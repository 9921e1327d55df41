"""The AsyncAPI 3.0 description of the event stream (events.md), with a JSON Schema for every event type,
derived from the domain's event classes so that it cannot drift from what is published."""

from __future__ import annotations

import types
import typing
from datetime import date
from typing import Any, Union
from uuid import UUID

from consumers.envelope import TYPE_PREFIX
from domain.aggregate import RecordedAggregate
from domain.innovation import Innovation
from domain.published import BASE_FIELDS
from domain.replication import Replication

AGGREGATES = {"innovation": Innovation, "replication": Replication}


def json_schema_of(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [json_schema_of(arg) for arg in typing.get_args(hint)]
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is date:
        return {"type": "string", "format": "date"}
    if hint is UUID:
        return {"type": "string", "format": "uuid"}
    if origin is list:
        (item,) = typing.get_args(hint)
        return {"type": "array", "items": json_schema_of(item)}
    if origin is dict:
        _, value = typing.get_args(hint)
        return {"type": "object", "additionalProperties": json_schema_of(value)}
    return {}


def event_classes() -> dict[tuple[str, str], type]:
    """(aggregate kind, event type) -> event class, for every public event."""
    found: dict[tuple[str, str], type] = {}
    for kind, aggregate in AGGREGATES.items():
        for name, value in vars(aggregate).items():
            if (
                isinstance(value, type)
                and issubclass(value, RecordedAggregate.Event)
                and name not in ("Event", "Created")
            ):
                found[(kind, name)] = value
    return found


def data_schema(event_class: type) -> dict[str, Any]:
    hints = {
        name: hint
        for name, hint in typing.get_type_hints(event_class).items()
        if name not in BASE_FIELDS and typing.get_origin(hint) is not typing.ClassVar
    }
    return {
        "type": "object",
        "properties": {name: json_schema_of(hint) for name, hint in hints.items()},
        "required": sorted(hints),
    }


def envelope_schema(kind: str, event_type: str, event_class: type) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{event_type} (CloudEvents 1.0.2, structured)",
        "type": "object",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "dataschema",
            "sequence",
            "position",
            "actor",
            "data",
            "hash",
            "prev_hash",
        ],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid", "description": "the event's own id, stable"},
            "source": {"const": f"/puja-indah/{kind}s"},
            "type": {"const": f"{TYPE_PREFIX}.{kind}.{event_type}.v1"},
            "subject": {"type": "string", "format": "uuid", "description": "the aggregate id (also the key)"},
            "time": {"type": "string", "format": "date-time", "description": "recorded at"},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": f"/schemas/{kind}/{event_type}/v1.json"},
            "sequence": {"type": "integer", "minimum": 1, "description": "the aggregate version"},
            "position": {"type": "integer", "minimum": 1, "description": "the global position in the store"},
            "actor": {"type": "string"},
            "actor_role": {"type": "string"},
            "request_id": {"type": "string"},
            "data": data_schema(event_class),
            "hash": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 link of the store's hash chain (api.md, Audit)",
            },
            "prev_hash": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "the hash of the event at position - 1 (64 zeros for the first)",
            },
        },
    }


def document(prefix: str = "puja") -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    classes = event_classes()
    for kind in AGGREGATES:
        channel = f"{kind}s"
        refs = {}
        for (k, event_type), event_class in sorted(classes.items()):
            if k != kind:
                continue
            name = f"{kind}.{event_type}"
            messages[name] = {
                "name": event_type,
                "contentType": "application/cloudevents+json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "ce_id": {"type": "string"},
                        "ce_type": {"type": "string"},
                        "ce_subject": {"type": "string"},
                    },
                },
                "payload": envelope_schema(kind, event_type, event_class),
            }
            refs[event_type] = {"$ref": f"#/components/messages/{name}"}
        channels[channel] = {
            "address": f"{prefix}.{kind}s.v1",
            "description": f"Every {kind.capitalize()} event, keyed by aggregate id, in order per aggregate.",
            "messages": refs,
        }
        operations[f"receive_{kind}s"] = {"action": "receive", "channel": {"$ref": f"#/channels/{channel}"}}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PUJA INDAH event stream",
            "version": "v1",
            "description": "A faithful, ordered copy of the event store: at least once, deduplicate by `id`.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
