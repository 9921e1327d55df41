"""/api/v1/index: public index views (index.md)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app import schemas as s
from app.http import reads, runtime
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from domain import regions
from projections import queries, scores
from projections.queries import InvalidCursor

blp = Blueprint("index", __name__, url_prefix="/api/v1/index", description="Index views.")


def period(year: int | None) -> scores.Period:
    """The year asked for (default: the current year in Asia/Jayapura); 422 when no catalogue covers it."""
    try:
        return scores.period_of(year)
    except scores.UncoveredYear as error:
        raise Problem(422, "validation-error", str(error), errors={"year": [str(error)]}) from None


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
    """One row per region with its score of the year (index.md), ranked within the filter."""
    of_year = period(year)
    try:
        page = scores.region_rows(
            runtime().views, of_year, province=province, type=type, sort=sort, limit=limit, cursor=cursor
        )
    except InvalidCursor:
        raise bad_cursor() from None
    return page_answer(page)


@blp.route("/regions/<string:code>", methods=["GET"])
@reads("index")
@blp.arguments(s.RegionRowQuerySchema, location="query")
def region_row(query: dict[str, Any], code: str) -> Any:
    """The region's row, ranked nationally, with the breakdown of its score."""
    if regions.find(code) is None:
        raise Problem(404, "not-found", regions.code_problem(code) or f"No region {code}.")
    body: dict[str, Any] | None = scores.region_detail(runtime().views, period(query.get("year")), code)
    if body is None:
        raise Problem(404, "not-found", f"No region {code}.")
    return body


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
