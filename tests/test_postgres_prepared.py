"""The command path's statements sent through libpq directly (service/prepared.py), and the group commit's own
writer connection (service/postgres.py), on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import days_ago, innovation_fields

from domain.acting import Actor, acting_as
from service.network import InnovationNetwork
from service.prepared import TEXT_ARRAY_OID, TEXT_OID, Prepared, rows, text_array, text_value
from service.store import open_network


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    import uuid

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database, autocommit=True) as connection:
        yield connection


@pytest.fixture
def pg_network(tmp_path: Any, database: str) -> Iterator[InnovationNetwork]:
    app = open_network(database, tmp_path / "unused.sqlite")
    yield app
    app.close()


def test_text_values_and_arrays_reach_the_server_as_written(conn: psycopg.Connection[Any]) -> None:
    echo = Prepared("test_echo", "SELECT $1, $2, cardinality($2)", [TEXT_OID, TEXT_ARRAY_OID])
    awkward = ["a,b", 'say "hi"', "back\\slash", "{braces}", "NULL", "", " spaced ", "ünïcödé"]

    ((text, array, count),) = rows(echo.run(conn, [text_value("it's ünïcödé"), text_array(awkward)]))

    assert text == "it's ünïcödé"
    assert count == str(len(awkward))
    assert conn.execute("SELECT %s::text[] = %s::text[]", (array, awkward)).fetchone() == (True,)
    ((null, _, _),) = rows(echo.run(conn, [text_value(None), text_array([])]))
    assert null is None


def test_a_nul_in_a_text_parameter_is_refused_before_it_is_sent() -> None:
    with pytest.raises(psycopg.DataError):
        text_value("before\x00after")
    with pytest.raises(psycopg.DataError):
        text_array(["fine", "before\x00after"])


def test_a_connection_that_lost_the_statement_prepares_it_again(conn: psycopg.Connection[Any]) -> None:
    one = Prepared("test_one", "SELECT $1::integer + 1", [TEXT_OID])
    assert rows(one.run(conn, [b"1"])) == [("2",)]

    conn.execute("DEALLOCATE ALL")

    assert rows(one.run(conn, [b"41"])) == [("42",)]


def test_errors_are_raised_as_psycopg_raises_them(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE unique_things (name text PRIMARY KEY)")
    insert = Prepared("test_insert", "INSERT INTO unique_things VALUES ($1) RETURNING name", [TEXT_OID])
    assert rows(insert.run(conn, [b"x"])) == [("x",)]

    with pytest.raises(psycopg.errors.UniqueViolation):
        insert.run(conn, [b"x"])

    assert rows(insert.run(conn, [b"y"])) == [("y",)]  # the connection is usable afterwards


def test_a_command_is_stored_once_after_the_writer_connection_was_lost(
    pg_network: InnovationNetwork, database: str
) -> None:
    with acting_as(Actor("op", "admin", "req-1")):
        innovation = pg_network.register_innovation(**innovation_fields(stage="uji_coba")).aggregate
        recorder: Any = pg_network.recorder
        writer = recorder._writer.conn
        assert writer is not None
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (writer.info.backend_pid,))

        outcome = pg_network.advance_innovation_stage(innovation.id, "penerapan", days_ago(10))

    assert outcome.aggregate.version == 2
    assert recorder._writer.conn is not writer
    # The broken connection went back to the pool, which counted it as returned bad (and replaces it).
    assert recorder.datastore.pool.get_stats().get("returns_bad") == 1
    with psycopg.connect(database) as check:
        (count,) = check.execute(
            "SELECT count(*) FROM innovationnetwork_events WHERE originator_id = %s", (innovation.id,)
        ).fetchone() or (0,)
    assert count == 2
    assert pg_network.innovation(innovation.id).version == 2


def test_closing_the_store_gives_the_kept_connections_back(pg_network: InnovationNetwork) -> None:
    with acting_as(Actor("op", "admin", "req-1")):
        innovation = pg_network.register_innovation(**innovation_fields()).aggregate
    pg_network.registry_of(innovation.id)
    recorder: Any = pg_network.recorder
    kept = [recorder._writer.conn, recorder._reader.conn]
    assert all(conn is not None and not conn.closed for conn in kept)
    assert kept[0] is not kept[1]

    pg_network.close()

    assert recorder._writer.conn is None and recorder._reader.conn is None
    assert all(conn.closed for conn in kept)


def test_registry_reads_use_a_kept_connection_while_no_other_read_does(pg_network: InnovationNetwork) -> None:
    with acting_as(Actor("op", "admin", "req-1")):
        innovation = pg_network.register_innovation(**innovation_fields()).aggregate
        pg_network.propose_replication(
            innovation_id=innovation.id, adopting_region="35.05", rationale="r", proposed_on=days_ago(30)
        )
    recorder: Any = pg_network.recorder
    reader = recorder._reader.conn
    assert reader is not None  # the proposal read its two regions' rows
    pool = recorder.datastore.pool
    requests = pool.get_stats().get("requests_num", 0)

    (row,) = pg_network.registry_of(innovation.id)
    assert recorder.adoptions_of(innovation.id, "35.05") == []

    assert row.adopting_region == "35.05"
    assert pool.get_stats().get("requests_num", 0) == requests  # nothing asked of the pool
    assert recorder._reader.conn is reader

    with recorder._reader.in_use:  # another thread reading: this read takes a pooled connection meanwhile
        (again,) = pg_network.registry_of(innovation.id)
    assert again == row
    assert pool.get_stats().get("requests_num", 0) == requests + 1


def test_a_kept_connection_is_renewed_once_as_old_as_the_pool_lets_connections_get(
    pg_network: InnovationNetwork,
) -> None:
    with acting_as(Actor("op", "admin", "req-1")):
        innovation = pg_network.register_innovation(**innovation_fields(stage="uji_coba")).aggregate
        recorder: Any = pg_network.recorder
        old = recorder._writer.conn
        assert recorder._writer._renew_at > 0
        recorder._writer._renew_at = 0.0  # as if max_lifetime had passed
        pool = recorder.datastore.pool
        requests = pool.get_stats().get("requests_num", 0)

        pg_network.advance_innovation_stage(innovation.id, "penerapan", days_ago(10))

    # Given back to the pool (which keeps it until its own expiry, and may hand it out again) and one taken anew.
    assert not old.closed
    assert pool.get_stats().get("requests_num", 0) == requests + 1
    assert recorder._writer._renew_at > 0
    assert pg_network.innovation(innovation.id).version == 2
