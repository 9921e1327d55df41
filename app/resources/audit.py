"""/api/v1/audit: the global event log (auditor, integrator, admin)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app import schemas as s
from app.http import allow, reads, runtime
from app.paging import bad_cursor, page_answer
from domain.enums import Role
from projections import queries
from projections.queries import InvalidCursor

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="The audit log.")


@blp.route("/events", methods=["GET"])
@reads("audit")
@allow(Role.AUDITOR, Role.INTEGRATOR, Role.ADMIN)
@blp.arguments(s.AuditQuerySchema, location="query", as_kwargs=True)
def audit_events(
    after: int, limit: int, cursor: str | None = None, min_position: int | None = None, **filters: Any
) -> Any:
    try:
        return page_answer(
            queries.audit_events(runtime().views, after=after, limit=limit, cursor=cursor, **filters)
        )
    except InvalidCursor:
        raise bad_cursor() from None
