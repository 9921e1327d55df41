"""/api/v1/replications: one adopting region copying one innovation from one source region."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app import schemas as s
from app.blueprints import Blueprint
from app.commands import execute, replication_answer
from app.http import acting_principal, allow, parse_if_match, reads, require_region, runtime
from app.paging import bad_cursor, page_answer
from app.problems import Problem
from app.resources.audit import AUDITORS, state_answer
from app.resources.innovations import evaluation_input, history_answer
from domain.enums import Role
from projections import queries
from projections.queries import InvalidCursor

blp = Blueprint(
    "replications",
    __name__,
    url_prefix="/api/v1/replications",
    description="Replications of regional innovations and their whole life.",
)


def _operator_of(replication_id: UUID, side: str) -> None:
    """The operator of the source (agreement, rejection) or of the adopting region (everything else)."""
    who = acting_principal()
    if who.role == Role.ADMIN:
        return  # acts for every region: no need to read which (a missing replication is a 404 later)
    source, adopting = runtime().network.parties_of(replication_id)
    require_region(who, source if side == "source" else adopting, f"the {side} region")


@blp.route("", methods=["GET"])
@reads("index")
@blp.arguments(s.ReplicationListQuerySchema, location="query", as_kwargs=True)
@blp.response(200, s.ReplicationPageSchema)
def list_replications(
    limit: int, cursor: str | None = None, min_position: int | None = None, **filters: Any
) -> Any:
    try:
        return page_answer(queries.list_replications(runtime().views, limit=limit, cursor=cursor, **filters))
    except InvalidCursor:
        raise bad_cursor() from None


@blp.route("", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.ProposalSchema)
@blp.response(201, s.ReplicationSchema)
def propose(body: dict[str, Any]) -> Any:
    require_region(acting_principal(), body["adopting_region"], "adopting_region")
    return replication_answer(execute(lambda n: n.propose_replication(**body)), 201)


@blp.route("/<uuid:replication_id>", methods=["GET"])
@reads("index")
@blp.arguments(s.ReadQuerySchema, location="query")
@blp.response(200, s.ReplicationSchema)
def get_replication(query: dict[str, Any], replication_id: UUID) -> Any:
    doc = queries.get_replication(runtime().views, replication_id)
    if doc is None:
        raise Problem(404, "not-found", f"No replication with id {replication_id}.")
    return doc, 200, {"ETag": f'"{doc["version"]}"'}


@blp.route("/<uuid:replication_id>/agreement", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.AgreementSchema)
@blp.response(200, s.ReplicationSchema)
def sign_agreement(body: dict[str, Any], replication_id: UUID) -> Any:
    _operator_of(replication_id, "source")
    version = parse_if_match()
    return replication_answer(execute(lambda n: n.sign_agreement(replication_id, if_version=version, **body)))


@blp.route("/<uuid:replication_id>/rejection", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.RejectionSchema)
@blp.response(200, s.ReplicationSchema)
def reject(body: dict[str, Any], replication_id: UUID) -> Any:
    _operator_of(replication_id, "source")
    version = parse_if_match()
    return replication_answer(
        execute(lambda n: n.reject_replication(replication_id, if_version=version, **body))
    )


@blp.route("/<uuid:replication_id>/modifications", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.ModificationSchema)
@blp.response(200, s.ReplicationSchema)
def record_modification(body: dict[str, Any], replication_id: UUID) -> Any:
    _operator_of(replication_id, "adopting")
    version = parse_if_match()
    return replication_answer(
        execute(lambda n: n.record_modification(replication_id, if_version=version, **body))
    )


@blp.route("/<uuid:replication_id>/adoption", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.AdoptionSchema)
@blp.response(200, s.ReplicationSchema)
def advance_adoption(body: dict[str, Any], replication_id: UUID) -> Any:
    _operator_of(replication_id, "adopting")
    version = parse_if_match()
    return replication_answer(
        execute(lambda n: n.advance_adoption(replication_id, if_version=version, **body))
    )


@blp.route("/<uuid:replication_id>/evaluations", methods=["POST"])
@allow(Role.EVALUATOR, Role.ADMIN)
@blp.arguments(s.EvaluationSchema)
@blp.response(200, s.ReplicationSchema)
def evaluate(body: dict[str, Any], replication_id: UUID) -> Any:
    version = parse_if_match()
    evaluation = evaluation_input(body)
    return replication_answer(
        execute(lambda n: n.evaluate_replication(replication_id, evaluation, body["catalogue"], version))
    )


@blp.route("/<uuid:replication_id>/discontinuation", methods=["POST"])
@allow(Role.OPERATOR, Role.ADMIN)
@blp.arguments(s.DiscontinuationSchema)
@blp.response(200, s.ReplicationSchema)
def discontinue(body: dict[str, Any], replication_id: UUID) -> Any:
    _operator_of(replication_id, "adopting")
    version = parse_if_match()
    return replication_answer(
        execute(lambda n: n.discontinue_replication(replication_id, if_version=version, **body))
    )


@blp.route("/<uuid:replication_id>/history", methods=["GET"])
@reads("audit")
@allow(*AUDITORS)
@blp.arguments(s.ReadQuerySchema, location="query")
def history(query: dict[str, Any], replication_id: UUID) -> Any:
    return history_answer(replication_id, "replication")


@blp.route("/<uuid:replication_id>/state", methods=["GET"])
@allow(*AUDITORS)
@blp.arguments(s.StateQuerySchema, location="query")
@blp.response(200, s.ReplicationSchema)
def state(query: dict[str, Any], replication_id: UUID) -> Any:
    """The replication as it was at `version` or at a time `at` (exactly one), rebuilt from the event store."""
    return state_answer("replication", replication_id, query)
