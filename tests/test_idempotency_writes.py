"""The writes behind Idempotency-Key (app/idempotency.py) on both backends: a claim, its completion and its
release, alone or in group-commit batches with other requests' writes. On PostgreSQL a write that is alone in
its batch goes through a connection kept for it, which is replaced when it breaks."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from app.idempotency import StoredResponse, fingerprint

PRINT = fingerprint("POST", "/api/v1/replications", b'{"a": 1}')


def test_a_key_is_claimed_once_answered_once_and_released_only_while_in_flight(runtime: Any) -> None:
    keys = runtime.idempotency

    assert keys.claim("op", "k-1", PRINT, "req-1", 7).outcome == "claimed"
    assert keys.claim("op", "k-1", PRINT, "req-2", 7).outcome == "in-flight"
    assert keys.claim("other", "k-1", PRINT, "req-3", 7).outcome == "claimed"  # keys are per subject

    answer = StoredResponse(201, {"ETag": '"1"', "Content-Type": "application/json"}, b'{"id": "x"}')
    keys.complete("op", "k-1", answer)
    keys.release("op", "k-1")  # a finished key is not released

    replay = keys.claim("op", "k-1", PRINT, "req-4", 9)
    assert replay.outcome == "replay" and replay.response == answer
    assert keys.claim(
        "op", "k-1", fingerprint("POST", "/api/v1/replications", b"{}"), "req-5", 9
    ).outcome == ("reused")

    keys.release("other", "k-1")  # an unfinished one is
    assert keys.claim("other", "k-1", PRINT, "req-6", 9).outcome == "claimed"


def test_concurrent_claims_in_batches_give_each_key_to_exactly_one_request(runtime: Any) -> None:
    keys = runtime.idempotency
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def client(n: int) -> None:
        start.wait()
        for round_ in range(10):
            key = f"k-{round_}-{n % 4}"  # four requests of each round share a key
            outcome = keys.claim("op", key, PRINT, f"req-{n}-{round_}", 0).outcome
            if outcome == "claimed":
                keys.complete("op", key, StoredResponse(200, {}, key.encode()))
            with lock:
                outcomes.append((key, outcome))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    claimed = [key for key, outcome in outcomes if outcome == "claimed"]
    assert sorted(claimed) == sorted({key for key, _ in outcomes})  # every key once, none twice
    assert len(claimed) == 40
    assert {outcome for _, outcome in outcomes} <= {"claimed", "in-flight", "replay"}
    for key in claimed:
        replay = keys.claim("op", key, PRINT, "later", 0)
        assert replay.outcome == "replay" and replay.response.body == key.encode()


def test_a_broken_kept_connection_fails_one_write_and_is_replaced(runtime: Any, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the kept connection is PostgreSQL's")
    keys = runtime.idempotency
    assert keys.claim("op", "k-1", PRINT, "req-1", 0).outcome == "claimed"
    kept = keys._kept._conn
    assert kept is not None and not kept.closed
    with runtime.views.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({kept.info.backend_pid})")

    with pytest.raises(psycopg.OperationalError):
        keys.claim("op", "k-2", PRINT, "req-2", 0)
    assert kept.closed

    assert keys.claim("op", "k-3", PRINT, "req-3", 0).outcome == "claimed"
    assert keys._kept._conn is not kept
    assert keys.claim("op", "k-2", PRINT, "req-2", 0).outcome == "claimed"  # the failed write stored nothing


def test_a_batch_that_fails_stores_none_of_its_writes_and_leaves_the_connection_usable(
    runtime: Any, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the kept connection is PostgreSQL's")
    from datetime import UTC, datetime

    from service.group_commit import PendingSave

    keys = runtime.idempotency

    def claim(key: str) -> PendingSave:
        params = ("op", key, PRINT, datetime.now(UTC), "req", 0)
        return PendingSave((), {"kind": "claim", "params": params, "wait_for_disk": False})

    with pytest.raises(psycopg.DataError):  # PostgreSQL's text refuses NUL: the second write cannot be sent
        keys._kept.write([claim("k-1"), claim("k-\x00"), claim("k-3")])

    assert (
        keys.claim("op", "k-1", PRINT, "req-1", 0).outcome == "claimed"
    )  # k-1 was rolled back with the rest
    assert keys._kept.write([claim("k-3"), claim("k-4")]) == [1, 1]
    assert keys.claim("op", "k-4", PRINT, "req-2", 0).outcome == "in-flight"
