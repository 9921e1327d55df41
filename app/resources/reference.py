"""Reference data: regions (Kepmendagri 2025) and indicator catalogues."""

from __future__ import annotations

import base64
from typing import Any

from app import schemas as s
from app.blueprints import Blueprint
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from domain import regions
from domain.catalogue import catalogues

blp = Blueprint("reference", __name__, url_prefix="/api/v1", description="Regions and indicator catalogues.")


class RegionPage:
    def __init__(self, items: list[dict[str, Any]], next_cursor: str | None) -> None:
        self.items = items
        self.next_cursor = next_cursor


@blp.route("/regions", methods=["GET"])
@blp.arguments(s.RegionQuerySchema, location="query", as_kwargs=True)
def list_regions(
    limit: int,
    parent: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    min_position: int | None = None,
) -> Any:
    found = regions.children(parent) if parent else regions.all_regions()
    if q:
        needle = q.casefold()
        found = [r for r in found if needle in r.name.casefold()]
    if cursor:
        try:
            after = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
        except ValueError:
            raise bad_cursor() from None
        if regions.find(after) is None:  # a cursor is the code of the last region on the page before
            raise bad_cursor()
        found = [r for r in found if r.code > after]
    page = found[:limit]
    more = len(found) > limit
    next_cursor = base64.urlsafe_b64encode(page[-1].code.encode()).decode() if more and page else None
    return page_answer(RegionPage([r.to_dict() for r in page], next_cursor))


@blp.route("/regions/<string:code>", methods=["GET"])
def get_region(code: str) -> Any:
    region = regions.find(code)
    if region is None:
        raise Problem(404, "not-found", regions.code_problem(code) or f"No region {code}.")
    return region.to_dict()


@blp.route("/catalogues", methods=["GET"])
def list_catalogues() -> Any:
    return {"items": [c.to_dict() for c in catalogues().all()], "next_cursor": None}


@blp.route("/catalogues/<string:version>", methods=["GET"])
def get_catalogue(version: str) -> Any:
    catalogue = catalogues().get(version)
    if catalogue is None:
        raise Problem(404, "not-found", f"No catalogue {version}.")
    return catalogue.to_dict()
