"""/api/v1/index: public index views (index.md)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app import schemas as s
from app.blueprints import Blueprint
from app.http import reads, runtime
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from domain import regions
from projections import diffusion, queries, scores
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
    body["replication_metrics"] = diffusion.metrics_of_year(runtime().views, code, query.get("year"))
    return body


@blp.route("/innovations", methods=["GET"])
@reads("index")
@blp.arguments(s.InnovationIndexQuerySchema, location="query", as_kwargs=True)
@blp.response(200, s.InnovationRowPageSchema)
def innovation_index(
    limit: int, sort: str, cursor: str | None = None, min_position: int | None = None
) -> Any:
    """The most replicated innovations, with their adopter counts as recorded now.

    `adopters`: distinct adopting regions whose replication was not rejected; `at_penerapan`: those whose
    replication is at penerapan; `provinces`: distinct provinces of the adopters; `replications`: every
    replication, rejected ones included; `deepest_generation`: the highest generation reached (the
    innovation's own region is generation 0). Paged with `cursor`; a cursor belongs to its `sort`."""
    try:
        return page_answer(queries.innovation_rows(runtime().views, sort=sort, limit=limit, cursor=cursor))
    except InvalidCursor:
        raise bad_cursor() from None


@blp.route("/innovations/<uuid:innovation_id>/lineage", methods=["GET"])
@reads("index")
@blp.arguments(s.LineageQuerySchema, location="query")
@blp.response(200, s.LineageSchema)
def innovation_lineage(query: dict[str, Any], innovation_id: UUID) -> Any:
    """The innovation's diffusion tree, as recorded now.

    The innovation is the `root` (generation 0, its own region); under it the first-generation replications
    (source: the innovation's region); under each adopter the replications that copy its practice (source: that
    adopter's region, proposed while this replication was its open practice, at penerapan), each with
    `generation` (1 + its source's), `status` and the business date of every step. Rejected replications are in
    the tree (they have no children) but not in `adopters`, `by_generation`, `deepest_generation` or
    `provinces_reached`."""
    tree = diffusion.lineage(runtime().views, str(innovation_id))
    if tree is None:
        raise Problem(404, "not-found", f"No innovation with id {innovation_id}.")
    return tree


@blp.route("/summary", methods=["GET"])
@reads("index")
@blp.arguments(s.SummaryQuerySchema, location="query")
@blp.response(200, s.SummarySchema)
def summary(query: dict[str, Any]) -> Any:
    """Replication totals and monthly series of a year, nationwide or for the replications adopted in one
    province (`province` filters by the adopting region).

    Every figure is as of 31 December of `year`, or today for the current year, by business dates: `totals`
    count the replications proposed by then, by their status on that day, by their innovation's form and by
    urusan; `series` counts, per month of the year, proposals, trials started (uji_coba reached) and
    implementations (penerapan reached); `median_days_to_penerapan` is over the replications that reached
    penerapan in the year."""
    on = diffusion.as_of(query.get("year"))
    return diffusion.summary(runtime().views, year=on.year, on=on, province=query.get("province"))
