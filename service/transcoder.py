"""How events and snapshots are written as bytes: the library's JSON transcoder, plus the transcodings of our
own types, and one change for snapshots of long replications.

A replication's modification log (domain/replication.py) can hold thousands of modifications, and every
snapshot of the replication holds all of them. Inside the JSON document, reading a snapshot back would scan and
unescape megabytes of it even though no rule looks at it. So the log's rows (JSON text of their own) are
written *after* the document, each log as one segment, and the document keeps a reference to its segment:

    b"\\x00" + <JSON document> + (b"\\x00" + <segment>)...

A JSON document never starts with, nor contains, a NUL byte (the encoder escapes control characters), so
the leading NUL tells this format apart, and documents without segments are written exactly as the library
writes them. Reading gives the log its segment as bytes, parsed only when the modifications are read.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.replication import ModificationLog

SEGMENTED = b"\x00"

_segments: ContextVar[list[bytes]] = ContextVar("segments")


class StoreTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        segments: list[bytes] = []
        token = _segments.set(segments)
        try:
            document = super().encode(obj)
        finally:
            _segments.reset(token)
        if not segments:
            return document
        return SEGMENTED.join([b"", document, *segments])

    def decode(self, data: bytes) -> Any:
        if not data.startswith(SEGMENTED):
            return super().decode(data)
        ends = [*segment_marks(data), len(data)]
        document = data[1 : ends[0]]
        segments = [data[start + 1 : end] for start, end in zip(ends, ends[1:], strict=False)]
        token = _segments.set(segments)
        try:
            return super().decode(document)
        finally:
            _segments.reset(token)


def segment_marks(data: bytes) -> list[int]:
    """Where the segments start (the NULs after the leading one), found without copying the data."""
    marks = []
    at = data.find(SEGMENTED, 1)
    while at != -1:
        marks.append(at)
        at = data.find(SEGMENTED, at + 1)
    return marks


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ModificationLogAsSegment(Transcoding):
    """A replication's modifications: their count and the number of their segment (see above)."""

    type = ModificationLog
    name = "modification_log"

    def encode(self, obj: ModificationLog) -> list[int]:
        count, rows = obj.to_json()
        segments = _segments.get()
        segments.append(rows)
        return [count, len(segments) - 1]

    def decode(self, data: list[int]) -> ModificationLog:
        count, segment = data
        return ModificationLog.from_json(count, _segments.get()[segment])
