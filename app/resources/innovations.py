"""/api/v1/innovations: the catalogue of regional innovations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app import schemas as s
from app.blueprints import Blueprint
from app.commands import execute, innovation_answer
from app.http import acting_principal, allow, parse_if_match, reads, require_region, runtime
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from app.resources.audit import AUDITORS, state_answer
from domain.enums import Role
from domain.evaluation import EvaluationInput
from projections import queries
from projections.queries import InvalidCursor

blp = Blueprint(
    "innovations",
    __name__,
    url_prefix="/api/v1/innovations",
    description="Regional innovations (pendataan inovasi daerah).",
)


def _own_region(innovation_id: UUID) -> Any:
    """The innovation's operator or an admin may act on it."""
    require_region(
        acting_principal(), runtime().network.innovation(innovation_id).region, "the innovation's region"
    )


@blp.route("", methods=["GET"])
@reads("index")
@blp.arguments(s.InnovationListQuerySchema, location="query", as_kwargs=True)
@blp.response(200, s.InnovationPageSchema)
def list_innovations(
    limit: int, cursor: str | None = None, min_position: int | None = None, **filters: Any
) -> Any:
    try:
        return page_answer(queries.list_innovations(runtime().views, limit=limit, cursor=cursor, **filters))
    except InvalidCursor:
        raise bad_cursor() from None


@blp.route("", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.InnovationRegistrationSchema)
@blp.response(201, s.InnovationSchema)
def register_innovation(body: dict[str, Any]) -> Any:
    require_region(acting_principal(), body["region"], "region")
    return innovation_answer(execute(lambda n: n.register_innovation(**body)), 201)


@blp.route("/<uuid:innovation_id>", methods=["GET"])
@reads("index")
@blp.arguments(s.ReadQuerySchema, location="query")
@blp.response(200, s.InnovationSchema)
def get_innovation(query: dict[str, Any], innovation_id: UUID) -> Any:
    doc = queries.get_innovation(runtime().views, innovation_id)
    if doc is None:
        raise Problem(404, "not-found", f"No innovation with id {innovation_id}.")
    return doc, 200, {"ETag": f'"{doc["version"]}"'}


@blp.route("/<uuid:innovation_id>/stage", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.StageAdvanceSchema)
@blp.response(200, s.InnovationSchema)
def advance_stage(body: dict[str, Any], innovation_id: UUID) -> Any:
    _own_region(innovation_id)
    version = parse_if_match()
    return innovation_answer(
        execute(
            lambda n: n.advance_innovation_stage(innovation_id, body["stage"], body["effective_on"], version)
        )
    )


@blp.route("/<uuid:innovation_id>/revisions", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.RevisionSchema)
@blp.response(200, s.InnovationSchema)
def revise(body: dict[str, Any], innovation_id: UUID) -> Any:
    _own_region(innovation_id)
    version = parse_if_match()
    reason = body.pop("reason")
    return innovation_answer(execute(lambda n: n.revise_innovation(innovation_id, body, reason, version)))


@blp.route("/<uuid:innovation_id>/evaluations", methods=["POST"])
@allow(Role.EVALUATOR, Role.ADMIN)
@blp.arguments(s.EvaluationSchema)
@blp.response(200, s.InnovationSchema)
def evaluate(body: dict[str, Any], innovation_id: UUID) -> Any:
    version = parse_if_match()
    evaluation = evaluation_input(body)
    return innovation_answer(
        execute(lambda n: n.evaluate_innovation(innovation_id, evaluation, body["catalogue"], version))
    )


@blp.route("/<uuid:innovation_id>/retirement", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.RetirementSchema)
@blp.response(200, s.InnovationSchema)
def retire(body: dict[str, Any], innovation_id: UUID) -> Any:
    _own_region(innovation_id)
    version = parse_if_match()
    return innovation_answer(
        execute(lambda n: n.retire_innovation(innovation_id, body["reason"], body["effective_on"], version))
    )


@blp.route("/<uuid:innovation_id>/history", methods=["GET"])
@reads("audit")
@allow(*AUDITORS)
@blp.arguments(s.ReadQuerySchema, location="query")
def history(query: dict[str, Any], innovation_id: UUID) -> Any:
    return history_answer(innovation_id, "innovation")


@blp.route("/<uuid:innovation_id>/state", methods=["GET"])
@allow(*AUDITORS)
@blp.arguments(s.StateQuerySchema, location="query")
@blp.response(200, s.InnovationSchema)
def state(query: dict[str, Any], innovation_id: UUID) -> Any:
    """The innovation as it was at `version` or at a time `at` (exactly one), rebuilt from the event store."""
    return state_answer("innovation", innovation_id, query)


def history_answer(aggregate_id: UUID, kind: str) -> Any:
    events = queries.history(runtime().views, aggregate_id)
    if not events:
        raise Problem(404, "not-found", f"No {kind} with id {aggregate_id}.")
    return {"items": events, "next_cursor": None}


def evaluation_input(body: dict[str, Any]) -> EvaluationInput:
    return EvaluationInput(
        year=body["year"],
        scores=body["scores"],
        evaluated_on=body["evaluated_on"],
        evidence=body.get("evidence") or {},
        notes=body.get("notes"),
    )
