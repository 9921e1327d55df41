"""The store's transcoder writes what the library's JSON transcoder writes, except that a replication's
modification log goes after the JSON document (service/transcoder.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

from domain.replication import ModificationLog
from service.transcoder import DateAsISO, ModificationLogAsSegment, StoreTranscoder


def transcoders() -> tuple[JSONTranscoder, StoreTranscoder]:
    library, ours = JSONTranscoder(), StoreTranscoder()
    for transcoder in (library, ours):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
            transcoder.register(transcoding)
    ours.register(ModificationLogAsSegment())
    return library, ours


def test_documents_without_a_modification_log_are_written_as_the_library_writes_them() -> None:
    library, ours = transcoders()
    document = {
        "id": uuid4(),
        "on": date(2025, 3, 1),
        "at": datetime(2025, 3, 1, 8, 30, tzinfo=UTC),
        "score": Decimal("12.5"),
        "text": 'quote " backslash \\ nul \x00 ñ',
        "nested": [{"a": 1}, None, True],
    }
    assert ours.encode(document) == library.encode(document)
    assert ours.decode(ours.encode(document)) == document


def test_modification_logs_go_after_the_document_and_read_back_equal() -> None:
    _, ours = transcoders()
    first = ModificationLog().with_modification(
        uuid4(), "teknologi", "penyesuaian", False, 'nul \x00 and "quotes" \\', "ñ", date(2025, 1, 2)
    )
    second = first.with_modification(uuid4(), "regulasi", "penambahan", True, "b", "c", date(2025, 1, 3))
    document = {"first": first, "second": second, "after": "\x00"}
    data = ours.encode(document)
    assert data.startswith(b"\x00")
    assert data.count(b"\x00") == 3  # the marker and two segments: NULs inside the values are escaped
    read = ours.decode(data)
    assert read == document
    assert list(read["second"]) == list(second)
    assert len(read["second"]) == 2
    # a log read back and extended is written whole again
    third = read["second"].with_modification(uuid4(), "sdm", "pengurangan", False, "d", "e", date(2025, 1, 4))
    again = ours.decode(ours.encode({"log": third}))["log"]
    assert [m["description"] for m in again] == ['nul \x00 and "quotes" \\', "b", "d"]
