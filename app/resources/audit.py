"""/api/v1/audit: the global event log, the hash chain and the export (auditor, integrator, admin); and the
aggregates' past states (`.../{id}/state`, routed by their own blueprints)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Response, stream_with_context

from app import schemas as s
from app.blueprints import Blueprint
from app.http import allow, reads, runtime
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from app.replay import parse_state_query, past_state
from domain.enums import Role
from projections import queries
from projections.queries import InvalidCursor
from service import audit
from service.audit import NotInHistory

AUDITORS = (Role.AUDITOR, Role.INTEGRATOR, Role.ADMIN)

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="The audit log.")


@blp.route("/events", methods=["GET"])
@reads("audit")
@allow(*AUDITORS)
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


@blp.route("/verify", methods=["GET"])
@allow(*AUDITORS)
@blp.arguments(s.VerifyQuerySchema, location="query")
@blp.response(200, s.VerdictSchema)
def verify(query: dict[str, Any]) -> Any:
    """Recompute the hash chain over the whole event store (not a projection), in position order."""
    published = None
    if "head" in query:
        try:
            published = audit.parse_head(query["head"])
        except ValueError as error:
            raise Problem(400, "malformed-request", str(error), errors={"head": [str(error)]}) from None
    return audit.verify(runtime().network, published).to_dict()


@blp.route("/export", methods=["GET"])
@allow(*AUDITORS)
@blp.arguments(s.ExportQuerySchema, location="query")
@blp.doc(responses={"200": {"description": "The log as a download (JSON lines or CSV), with hashes."}})
def export(query: dict[str, Any]) -> Any:
    """The log from the event store, streamed a page at a time, with each event's `hash` and `prev_hash`."""
    lines, mimetype = audit.EXPORT_FORMATS[query["format"]]
    after, before = query["after"], query.get("before")
    name = f"puja-audit-{after + 1}-{before - 1 if before else 'head'}.{query['format']}"
    body = lines(audit.records(runtime().network, after, before))
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def state_answer(kind: str, aggregate_id: UUID, query: dict[str, Any]) -> Any:
    """`.../{id}/state?version=N` or `?at=TIME`: the resource as it was, from the event store."""
    version, at = parse_state_query(query.get("version"), query.get("at"))
    try:
        doc = past_state(runtime().network, kind, aggregate_id, version, at)
    except NotInHistory as error:
        raise Problem(404, "not-found", str(error)) from None
    return doc, 200, {"ETag": f'"{doc["version"]}"'}
