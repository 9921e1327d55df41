"""/api/v1/index: public index views (index.md)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app import schemas as s
from app.http import reads, runtime
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from domain import regions
from projections import queries
from projections.queries import InvalidCursor

blp = Blueprint("index", __name__, url_prefix="/api/v1/index", description="Index views.")


@blp.route("/regions", methods=["GET"])
@reads("index")
@blp.arguments(s.RegionIndexQuerySchema, location="query", as_kwargs=True)
def region_index(
    limit: int,
    sort: str,
    cursor: str | None = None,
    province: str | None = None,
    type: str | None = None,
    year: int | None = None,
    min_position: int | None = None,
) -> Any:
    try:
        return page_answer(
            queries.region_rows(
                runtime().views, province=province, type=type, sort=sort, limit=limit, cursor=cursor
            )
        )
    except InvalidCursor:
        raise bad_cursor() from None


@blp.route("/regions/<string:code>", methods=["GET"])
@reads("index")
@blp.arguments(s.RegionRowQuerySchema, location="query")
def region_row(query: dict[str, Any], code: str) -> Any:
    row = queries.region_row(runtime().views, code) if regions.find(code) else None
    if row is None:
        raise Problem(404, "not-found", regions.code_problem(code) or f"No region {code}.")
    return row


@blp.route("/innovations", methods=["GET"])
@reads("index")
@blp.arguments(s.InnovationIndexQuerySchema, location="query", as_kwargs=True)
def innovation_index(
    limit: int, sort: str, cursor: str | None = None, min_position: int | None = None
) -> Any:
    try:
        return page_answer(queries.innovation_rows(runtime().views, sort=sort, limit=limit, cursor=cursor))
    except InvalidCursor:
        raise bad_cursor() from None
