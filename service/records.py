"""Stored events read straight into their public shape, for the projections and the stream.

The library's mapper decodes a stored event into a domain event object (the transcoder turns `{"_type_": ...,
"_data_": ...}` wrappers into UUID, date, datetime and Decimal objects, and the class's upcasters run), and
`EventRecord.of` then turns that object back into plain JSON values. For the common case — an event stored in
its class's current shape, with no cipher and no compressor — `DirectRecords` goes from the stored JSON to the
same `EventRecord` in one pass: one `orjson` parse, and each wrapper replaced by the public form that the round
trip through the object gives (`plain` in domain/published.py). Everything else — an older `class_version` that
needs upcasting, a wrapper of a type it does not know, a document with segments, JSON that `orjson` refuses —
answers `None`, and the caller takes the library's path, so both paths always give equal records
(tests/test_records.py compares them over every event type).

The hash chain and the export do not come here: they decode events as recorded (`InnovationNetwork.
recorded_event`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    Mapper,
    Notification,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.utils import resolve_topic

from domain.aggregate import event_type
from domain.published import BASE_FIELDS, EventRecord, has_long_number
from service.transcoder import SEGMENTED, DateAsISO, ModificationLogAsSegment, StoreTranscoder

_HEX32 = re.compile(r"[0-9a-f]{32}")
# The text `datetime.isoformat()` gives for an aware moment with microseconds and an offset of whole minutes (of
# zero: "+00:00", never "-00:00").
_ISOFORMAT_WITH_MICROSECONDS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}[+-][0-9]{2}:[0-9]{2}"
)


assert {
    "originator_id",
    "originator_version",
    "timestamp",
    "originator_topic",
    "actor",
    "actor_role",
    "request_id",
} == BASE_FIELDS, "DirectRecords.record_of takes these out of the state by name"


class Fallback(Exception):
    """This stored event needs the library's mapper."""


def _uuid_hex(data: Any) -> str:
    if type(data) is not str:
        raise Fallback
    if len(data) == 32 and _HEX32.fullmatch(
        data
    ):  # as UUIDAsHex writes it: str(UUID(data)) without the object
        return f"{data[:8]}-{data[8:12]}-{data[12:16]}-{data[16:20]}-{data[20:]}"
    try:
        return str(UUID(data))
    except ValueError:
        raise Fallback from None


def _date_iso(data: Any) -> str:
    if type(data) is not str:
        raise Fallback
    try:
        return date.fromisoformat(data).isoformat()
    except ValueError:
        raise Fallback from None


def _datetime_iso(data: Any) -> str:
    if type(data) is not str:
        raise Fallback
    try:
        moment = datetime.fromisoformat(data)
    except ValueError:
        raise Fallback from None
    if (
        len(data) == 32
        and moment.microsecond
        and _ISOFORMAT_WITH_MICROSECONDS.fullmatch(data)
        and not data.endswith("-00:00")
    ):
        return data  # as DatetimeAsISO writes an aware moment: isoformat() gives the same text (formatting costs)
    return moment.isoformat()


def _decimal_str(data: Any) -> float:
    if type(data) is not str:
        raise Fallback
    try:
        return float(Decimal(data))
    except ArithmeticError:
        raise Fallback from None


KNOWN_TRANSCODINGS: dict[str, type[Transcoding]] = {
    "uuid_hex": UUIDAsHex,
    "date_iso": DateAsISO,
    "datetime_iso": DatetimeAsISO,
    "decimal_str": DecimalAsStr,
    "modification_log": ModificationLogAsSegment,  # in snapshots only; an event holding one goes the long way
}

# The transcodings of service/network.py (the library's UUIDAsHex, DatetimeAsISO, DecimalAsStr and our DateAsISO),
# each as the public value that decoding and then `plain` give.
PUBLIC_FORMS = {
    "uuid_hex": _uuid_hex,
    "date_iso": _date_iso,
    "datetime_iso": _datetime_iso,
    "decimal_str": _decimal_str,
}


def public(value: Any) -> Any:
    """A decoded JSON value with the transcoder's wrappers replaced by their public forms."""
    kind = type(value)
    if kind is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            name = value["_type_"]
            form = PUBLIC_FORMS.get(name) if type(name) is str else None
            if form is None:
                raise Fallback
            return form(value["_data_"])
        return {k: public(v) for k, v in value.items()}
    if kind is list:
        return [public(v) for v in value]
    return value


class DirectRecords:
    """EventRecords from stored events without building event objects, where that gives the same record."""

    def __init__(self, topics: dict[str, tuple[str, str, int] | None] | None = None) -> None:
        self._kinds: dict[str, tuple[str, str, int] | None] = topics if topics is not None else {}

    @classmethod
    def for_mapper(cls, mapper: Mapper[Any]) -> DirectRecords | None:
        """A reader for the mapper's stored events, or None when it cannot give the mapper's records (a cipher,
        a compressor, or a transcoder with transcodings it does not know)."""
        transcoder = mapper.transcoder
        if mapper.cipher is not None or mapper.compressor is not None:
            return None
        if type(transcoder) is not StoreTranscoder:
            return None
        for name, transcoding in transcoder.names.items():
            if type(transcoding) is not KNOWN_TRANSCODINGS.get(name):
                return None
        return cls()

    def _kind(self, topic: str) -> tuple[str, str, int] | None:
        try:
            return self._kinds[topic]
        except KeyError:
            pass
        try:
            cls = resolve_topic(topic)
        except Exception:
            kind = None  # the library's path says what is wrong
        else:
            kind = (cls.__qualname__.split(".")[0], event_type_of(cls), getattr(cls, "class_version", 1))
        self._kinds[topic] = kind
        return kind

    def record_of(self, notification: Notification) -> EventRecord | None:
        """The record the library's path gives, or None when only that path can give it."""
        originator_id = notification.originator_id
        return self.record_from(
            notification.id,
            str(originator_id if type(originator_id) is UUID else UUID(str(originator_id))),
            notification.originator_version,
            notification.topic,
            notification.state,
            getattr(notification, "hash", None),
            getattr(notification, "prev_hash", None),
        )

    def record_of_row(self, row: Sequence[Any]) -> EventRecord | None:
        """The same for a row of the SQLite recorder's `select_rows` (its originator id as the stored hex),
        without the notification and the UUID object."""
        position, originator_id, version, topic, state, hash, prev_hash = row
        try:
            aggregate_id = _uuid_hex(originator_id)  # str(UUID(hex)) without the object
        except Fallback:
            return None
        return self.record_from(position, aggregate_id, version, topic, state, hash, prev_hash)

    def record_from(
        self,
        position: int,
        aggregate_id: str,
        version: int,
        topic: str,
        state: bytes,
        hash: str | None,
        prev_hash: str | None,
    ) -> EventRecord | None:
        """The record of one stored event, its aggregate id already in its public form."""
        kind = self._kinds[topic] if topic in self._kinds else self._kind(topic)
        if kind is None:
            return None
        if type(state) is not bytes:
            state = bytes(state)
        # A run of 19 digits sends the event the library's way (its json keeps such integers exact).
        if state[:1] == SEGMENTED or has_long_number(state):
            return None
        aggregate_type, type_name, class_version = kind
        wrappers = state.count(b'"_type_"')  # one per wrapper (a quote inside a JSON string is escaped)
        try:
            values = orjson.loads(state)
        except orjson.JSONDecodeError:
            return None
        if type(values) is not dict or values.pop("class_version", 1) != class_version:
            return None  # an older shape: the class's upcasters make the current one
        # What EventRecord.of takes from the event's base fields (BASE_FIELDS), and leaves out of `data`.
        timestamp = values.pop("timestamp", None)
        actor = values.pop("actor", "")
        actor_role = values.pop("actor_role", "")
        request_id = values.pop("request_id", "")
        values.pop("originator_topic", None)
        values.pop("originator_id", None)
        values.pop("originator_version", None)
        if type(timestamp) is not dict or len(timestamp) != 2 or timestamp.get("_type_") != "datetime_iso":
            return None
        if type(actor) is not str or type(actor_role) is not str or type(request_id) is not str:
            return None
        try:
            recorded_at = _datetime_iso(timestamp.get("_data_"))
            unwrapped = 1
            for key, value in values.items():  # the wrappers are nearly always fields of the event itself
                if type(value) is dict and "_type_" in value:
                    values[key] = public(value)  # the same keys: no change of size while iterating
                    unwrapped += 1
            if unwrapped != wrappers:  # some deeper down: walk everything
                values = {key: public(value) for key, value in values.items()}
        except Fallback:
            return None
        return EventRecord.made(
            position,
            aggregate_id,
            aggregate_type,
            version,
            type_name,
            recorded_at,
            actor,
            actor_role,
            request_id,
            values,
            hash,
            prev_hash,
        )


def event_type_of(cls: type[Any]) -> str:
    return event_type(object.__new__(cls))
