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
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Table


def json_text(value: Any) -> str:
    """The JSON text of a value: orjson's (compact, UTF-8), or the json module's for what orjson does not take
    (keys that are not strings, integers beyond 64 bits)."""
    try:
        return orjson.dumps(
            value, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        ).decode()
    except TypeError:
        return json.dumps(value)


_statements: dict[tuple[str, str, str | None], tuple[str, tuple[int, ...]]] = {}


def _statement(conn: Connection, table: Table) -> tuple[str, tuple[int, ...]]:
    dialect = conn.dialect
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    key = (dialect.name, table.name, schema)
    found = _statements.get(key)
    if found is None:
        quote = dialect.identifier_preparer.quote
        name = (quote(schema) + "." if schema else "") + quote(table.name)
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(quote(c.name) for c in table.columns)
        markers = ", ".join(marker for _ in table.columns)
        found = (
            f"INSERT INTO {name} ({columns}) VALUES ({markers})",
            tuple(i for i, c in enumerate(table.columns) if isinstance(c.type, JSON)),
        )
        _statements[key] = found
    return found


def insert_rows(conn: Connection, table: Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows given as the values of `table.columns` in their order (JSON columns as Python values;
    no dates or other values that need SQLAlchemy's processing)."""
    if not rows:
        return
    statement, json_columns = _statement(conn, table)
    if conn.dialect.name == "sqlite":
        wrap: Any = json_text
    else:
        from psycopg.types.json import Json

        def wrap(value: Any) -> Any:
            return Json(value, dumps=json_text)

    if json_columns:
        rows = [_with_json(row, json_columns, wrap) for row in rows]
    driver: Any = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        cursor.executemany(statement, rows)
    finally:
        cursor.close()


def _with_json(row: Sequence[Any], columns: tuple[int, ...], wrap: Any) -> list[Any]:
    values = list(row)
    for i in columns:
        values[i] = wrap(values[i])  # None too, as JSON's null, like SQLAlchemy's JSON type
    return values
