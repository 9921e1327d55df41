"""The view store on SQLite: writers in several processes (two stream consumers and the relay) share one write
lock, and a writer that has waited long must still get it as soon as it is free; JSON columns read back as the
json module reads them."""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from projections.bulk import json_value
from projections.store import WAL_AUTOCHECKPOINT, WAL_SIZE_LIMIT, ViewStore


def test_a_writer_that_waited_long_gets_the_write_lock_as_soon_as_it_is_released(tmp_path: Path) -> None:
    # SQLite's own busy handler sleeps up to 100 ms between tries once a writer has waited ~0.3 s: released
    # at a random moment, the lock then came to the waiter 50 ms later on average (a consumer starved while
    # the other committed short transactions back to back).
    store = ViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
    store.create_all()
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE n (v INTEGER)"))
    delays = []
    for round_ in range(7):
        holding, released = threading.Event(), [0.0]

        def hold(
            round_: int = round_, holding: threading.Event = holding, released: list[float] = released
        ) -> None:
            with store.begin() as conn:
                conn.execute(text("INSERT INTO n VALUES (:v)"), {"v": round_})
                holding.set()
                time.sleep(
                    0.4 + 0.013 * round_
                )  # holding the lock while the other waits (not waiting for it)
                released[0] = time.perf_counter()  # the commit follows at once

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        with store.begin() as conn:  # waits for the holder
            got_in = time.perf_counter()
            conn.execute(text("INSERT INTO n VALUES (-1)"))
        holder.join()
        delays.append(got_in - released[0])
    with store.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM n")).scalar_one() == 14  # every writer wrote
    store.dispose()
    assert statistics.median(delays) < 0.02, [round(d * 1000, 1) for d in delays]


def test_view_store_connections_keep_their_durability_and_copy_the_wal_less_often(tmp_path: Path) -> None:
    store = ViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
    try:
        with store.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "wal_autocheckpoint", "journal_size_limit")
            }
    finally:
        store.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL, as before
        "wal_autocheckpoint": WAL_AUTOCHECKPOINT,
        "journal_size_limit": WAL_SIZE_LIMIT,
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 1234567890123456789012, "when": "2026-11-28"}',  # beyond 64 bits: exact, as json reads it
        '{"n": 123456789012345678}',  # 18 digits: orjson's way, the same value
        '{"id": "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠", "n": 9223372036854775807}',  # other digits in a string; 19 ASCII ones
        '{"x": NaN, "y": -Infinity}',  # refused by orjson
        '{"nama": "Inovasi Pelayanan Terpadu \\u00e9 ✓", "skor": [1.5, 2, null, true]}',
    ],
)
def test_json_columns_read_as_the_json_module_reads_them(text: str) -> None:
    expected = json.loads(text)
    for given in (text, text.encode(), memoryview(text.encode())):
        value = json_value(given)
        assert json.dumps(value, sort_keys=True) == json.dumps(expected, sort_keys=True)
        assert [type(v) for v in value.values()] == [type(v) for v in expected.values()]
