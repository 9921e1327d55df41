"""Rows laid down in bulk through the driver, and the JSON text of the views' JSON columns.

SQLAlchemy's executemany processes every row in Python (parameters built from a dict, each value through its type's
processor), which costs more than SQLite's own insert of the row. `insert_rows` hands the rows of one table to the
driver's `executemany` as they are, on the SQLAlchemy connection's own driver connection (so in its transaction),
into the table the connection's `schema_translate_map` points at (projections/rebuild.py), with the JSON columns
written by `json_text` as SQLAlchemy writes them (`ViewStore` makes its engine with that serializer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson
from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Date, Table

from domain.published import has_long_number

_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(value: Any) -> str:
    """The JSON text of a value: orjson's (compact, UTF-8), or the json module's for what orjson does not take
    (keys that are not strings, integers beyond 64 bits)."""
    try:
        return orjson.dumps(
            value, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        ).decode()
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes | memoryview) -> Any:
    """The value of a JSON text as the json module reads it, through orjson where that gives the same value:
    not for integers beyond 64 bits (which orjson reads as floats; any run of 19 digits, also one inside a
    string, takes the json module's way) nor for what orjson refuses (NaN, Infinity). SQLite's driver hands
    the text as str, psycopg as bytes."""
    if isinstance(text, memoryview):
        text = bytes(text)
    utf8 = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if not has_long_number(utf8):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


class _Statement:
    """An INSERT (or an UPDATE of some columns by the key) of one table, and how its values are converted."""

    def __init__(
        self, conn: Connection, table: Table, schema: str | None, columns: Sequence[str], key: str | None
    ):
        dialect = conn.dialect
        quote = dialect.identifier_preparer.quote
        name = (quote(schema) + "." if schema else "") + quote(table.name)
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        if key is None:
            self.sql = (
                f"INSERT INTO {name} ({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join(marker for _ in columns)})"
            )
            bound = list(columns)
        else:
            assignments = ", ".join(f"{quote(c)} = {marker}" for c in columns)
            self.sql = f"UPDATE {name} SET {assignments} WHERE {quote(key)} = {marker}"
            bound = [*columns, key]
        sqlite = dialect.name == "sqlite"
        self.converters: list[tuple[int, Any]] = []
        for i, column in enumerate(bound):
            kind = table.c[column].type
            if isinstance(kind, JSON):
                self.converters.append((i, json_text if sqlite else _postgres_json))
            elif isinstance(kind, Date) and sqlite:
                self.converters.append((i, _sqlite_date))


def _postgres_json(value: Any) -> Json:
    return Json(value, dumps=json_text)


def _sqlite_date(value: date | None) -> str | None:
    """As SQLAlchemy's SQLite `Date` stores it."""
    if type(value) is date:
        return value.isoformat()  # the same text, made faster
    return None if value is None else f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


_statements: dict[tuple[Any, ...], _Statement] = {}


def _statement(conn: Connection, table: Table, columns: Sequence[str], key: str | None) -> _Statement:
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    cache_key = (conn.dialect.name, table.name, schema, tuple(columns), key)
    found = _statements.get(cache_key)
    if found is None:
        found = _statements[cache_key] = _Statement(conn, table, schema, columns, key)
    return found


def insert_rows(conn: Connection, table: Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows given as the values of `table.columns` in their order (JSON columns as Python values, dates as
    `date`), as SQLAlchemy's `insert(table)` would."""
    if rows:
        _run(conn, _statement(conn, table, table.columns.keys(), None), rows)


def insert_dicts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows given as dicts of every column of the table."""
    if rows:
        columns = table.columns.keys()
        statement = _statement(conn, table, columns, None)
        _execute(conn, statement.sql, _values_of(rows, columns, statement.converters))


def update_dicts(conn: Connection, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Update rows by their `key` column, each dict holding the key and the same columns to set."""
    if rows:
        columns = [c for c in rows[0] if c != key]
        statement = _statement(conn, table, columns, key)
        _execute(conn, statement.sql, _values_of(rows, [*columns, key], statement.converters))


def _values_of(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], converters: list[tuple[int, Any]]
) -> list[list[Any]]:
    """The rows' values of `columns`, converted, in one pass."""
    if not converters:
        return [[row[c] for c in columns] for row in rows]
    by_index = dict(converters)
    converting = [(column, by_index.get(i)) for i, column in enumerate(columns)]
    return [[row[c] if convert is None else convert(row[c]) for c, convert in converting] for row in rows]


def _run(conn: Connection, statement: _Statement, rows: Sequence[Sequence[Any]]) -> None:
    if statement.converters:
        rows = [_converted(row, statement.converters) for row in rows]
    _execute(conn, statement.sql, rows)


def _execute(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    driver: Any = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _converted(row: Sequence[Any], converters: list[tuple[int, Any]]) -> list[Any]:
    values = list(row)
    for i, convert in converters:
        values[i] = convert(values[i])  # a JSON None too, as JSON's null, like SQLAlchemy's JSON type
    return values
