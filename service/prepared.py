"""Statements run on every command, prepared once per connection and executed through libpq directly.

psycopg's `cursor.execute(..., prepare=True)` spends more of the client's CPU per statement than the statement
costs the server on the command path: it makes a cursor, converts the query and its placeholders, looks up a
dumper for each parameter, and keeps its own cache of prepared statements, on every call. The few statements
that every command runs (the append call, the registry reads) are instead prepared under a name of ours on each
connection that runs them (`Prepared.run`), with the parameters' types given once, and executed with
`PGconn.send_query_prepared` on parameters the caller has already written as PostgreSQL's text format
(`text_value`, `text_array`) or as raw bytes (`bytea`, binary format). Results come back as text.

Nothing changes for the server: the same statements, through the same extended protocol, in the same
autocommitted transaction of their own (the connection's `lock` is held as psycopg holds it). A connection that
lost the statement (a new backend session) answers SQLSTATE 26000 and is prepared again; any other error is
raised as the psycopg exception that `cursor.execute` would raise.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.errors import error_from_result
from psycopg.generators import execute

UNDEFINED_STATEMENT = b"26000"

# PostgreSQL type OIDs of the parameters we send.
TEXT_OID, INT4_OID, BYTEA_OID, UUID_OID, TEXT_ARRAY_OID, INT4_ARRAY_OID, UUID_ARRAY_OID = (
    25,
    23,
    17,
    2950,
    1009,
    1007,
    2951,
)
INT8_OID, JSON_OID, TIMESTAMPTZ_OID = 20, 114, 1184

TEXT_FORMAT, BINARY_FORMAT = 0, 1


def text_value(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format: str() of the value, UTF-8. A NUL is refused, as psycopg refuses
    it (libpq would cut a text-format value at the first NUL)."""
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    if "\x00" in text:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return text.encode()


def text_array(values: Sequence[Any] | None) -> bytes | None:
    """A one-dimensional array in PostgreSQL's text format, every element quoted (None for an empty one)."""
    if not values:
        return None
    elements = []
    for value in values:
        text = value if type(value) is str else str(value)
        if "\x00" in text:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        elements.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return ("{" + ",".join(elements) + "}").encode()


class Prepared:
    """One statement, prepared as `name` on each connection the first time it runs there."""

    def __init__(
        self, name: str, sql: str, types: Sequence[int], formats: Sequence[int] | None = None
    ) -> None:
        self.name = name.encode()
        self.sql = sql.encode()
        self.types = list(types)
        self.formats = list(formats) if formats is not None else None
        self._prepared_on: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

    def run(self, conn: psycopg.Connection[Any], values: Sequence[bytes | None]) -> pq.abc.PGresult:
        """Execute with parameters already written in the formats given; the result of a statement that
        returns rows (status TUPLES_OK), or raise the error as psycopg would."""
        with conn.lock:
            for attempt in (1, 2):
                pgconn = conn.pgconn
                if conn not in self._prepared_on:
                    pgconn.send_prepare(self.name, self.sql, param_types=self.types)
                    self._check(conn, conn.wait(execute(pgconn)), pq.ExecStatus.COMMAND_OK)
                    self._prepared_on.add(conn)
                pgconn.send_query_prepared(self.name, values, param_formats=self.formats)
                results = conn.wait(execute(pgconn))
                if (
                    attempt == 1
                    and results
                    and results[-1].status == pq.ExecStatus.FATAL_ERROR
                    and results[-1].error_field(pq.DiagnosticField.SQLSTATE) == UNDEFINED_STATEMENT
                ):
                    self._prepared_on.discard(conn)  # the session lost it: prepare again
                    continue
                return self._check(conn, results, pq.ExecStatus.TUPLES_OK)
        raise AssertionError("unreachable")

    @staticmethod
    def _check(
        conn: psycopg.Connection[Any], results: list[pq.abc.PGresult], expected: pq.ExecStatus
    ) -> pq.abc.PGresult:
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise error_from_result(result, encoding=conn.info.encoding)
        if len(results) != 1 or results[0].status != expected:
            raise psycopg.InterfaceError(
                f"unexpected result of a prepared statement: {[r.status for r in results]}"
            )
        return results[0]


def run_simple(conn: psycopg.Connection[Any], sql: bytes) -> None:
    """A statement without parameters or rows (BEGIN, SET LOCAL, COMMIT, ROLLBACK), as a simple query."""
    with conn.lock:
        conn.pgconn.send_query(sql)
        Prepared._check(conn, conn.wait(execute(conn.pgconn)), pq.ExecStatus.COMMAND_OK)


def rows(result: pq.abc.PGresult) -> list[tuple[str | None, ...]]:
    """The rows of a text-format result, each value as str (or None for NULL)."""
    columns = range(result.nfields)
    return [
        tuple(None if (v := result.get_value(i, j)) is None else bytes(v).decode() for j in columns)
        for i in range(result.ntuples)
    ]
