"""What every request goes through: request id, authentication, media type and size, idempotency,
read-your-writes (`min_position`), and the translation of every error into a problem document."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.auth import Principal
from app.idempotency import Claim, StoredResponse, fingerprint, replayable_headers
from app.problems import Problem, flatten_messages, problem_response
from domain.enums import Role
from domain.errors import AggregateNotFound, InvalidInput, RuleViolation, VersionConflict
from service.network import StoreContention

log = logging.getLogger("app.http")

F = TypeVar("F", bound=Callable[..., Any])
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


def runtime() -> Any:
    return current_app.extensions["puja"]


def reads(*projections: str) -> Callable[[F], F]:
    """Marks a view as reading these projections: `min_position` waits for them and the answer carries
    `X-Projection-Position`."""

    def mark(view: F) -> F:
        view._reads = projections  # type: ignore[attr-defined]
        return view

    return mark


def principal() -> Principal | None:
    return g.get("principal")


def require(*roles: Role) -> Principal:
    who = principal()
    if who is None:
        raise Problem(
            401, "unauthenticated", "This needs a bearer token.", headers={"WWW-Authenticate": "Bearer"}
        )
    if who.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Problem(403, "forbidden", f"The role {who.role} cannot do this (allowed: {allowed}).")
    return who


def require_region(who: Principal, region: str, what: str) -> None:
    if not who.acts_for(region):
        raise Problem(403, "forbidden", f"This token does not act for {region} ({what}).")


def allow(*roles: Role) -> Callable[[F], F]:
    """Only these roles reach the view: checked before the body is parsed, so that 401/403 come first."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            require(*roles)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def acting_principal() -> Principal:
    who = principal()
    assert who is not None, "views that act are guarded by allow()"
    return who


def parse_if_match() -> int | None:
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?(\d+)"?\s*', header)
    if not match:
        raise Problem(400, "malformed-request", 'If-Match must be an entity tag such as "3".')
    return int(match.group(1))


def _projections_of_view() -> Iterable[str]:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "_reads", ())


def install(app: Flask) -> None:
    @app.before_request
    def identify_request() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex

    @app.before_request
    def authenticate() -> None:
        header = request.headers.get("Authorization")
        g.principal = None
        if header is None:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "unauthenticated",
                "Use 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = runtime().tokens.authenticate(token.strip())
        if found is None:
            raise Problem(
                401, "unauthenticated", "Unknown or revoked token.", headers={"WWW-Authenticate": "Bearer"}
            )
        g.principal = found

    @app.before_request
    def check_body() -> None:
        if request.method not in ("POST", "PUT", "PATCH"):
            return
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            raise Problem(413, "payload-too-large", f"The body is over {limit} bytes.")
        mimetype = request.mimetype or ""
        if not JSON_TYPES.match(mimetype):
            raise Problem(415, "unsupported-media-type", "Send the body as application/json.")

    @app.before_request
    def claim_idempotency_key() -> Response | None:
        key = request.headers.get("Idempotency-Key")
        who = principal()
        if request.method != "POST" or key is None or who is None:
            return None
        if not 1 <= len(key) <= 255:
            raise Problem(400, "malformed-request", "An Idempotency-Key is 1 to 255 characters.")
        keys = runtime().idempotency
        claim = keys.claim(
            who.subject,
            key,
            fingerprint(request.method, request.path, request.get_data()),
            g.request_id,
            runtime().network.known_position(),
        )
        if claim.outcome == "abandoned":
            # Its request died without an answer: answer with what it stored, or run the command if it stored
            # nothing (app/idempotency.py).
            assert claim.first_request_id is not None
            args = request.view_args or {}
            named = args.get("replication_id") or args.get("innovation_id")
            stored = runtime().network.stored_outcome(
                claim.first_request_id, who.subject, claim.after_position or 0, named
            )
            standing_for = g.request_id if stored is None else claim.first_request_id
            if keys.take_over(who.subject, key, claim, standing_for):
                g.idempotency = (who.subject, key)
                g.stored_outcome = stored
                return None
            claim = Claim("in-flight")
        if claim.outcome == "reused":
            raise Problem(
                422, "idempotency-key-reused", "This Idempotency-Key was used with a different request."
            )
        if claim.outcome == "in-flight":
            raise Problem(
                409,
                "idempotency-key-in-flight",
                "A request with this Idempotency-Key is still being processed.",
            )
        if claim.outcome == "replay":
            stored = claim.response
            assert stored is not None
            response = Response(stored.body, status=stored.status, headers=stored.headers)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        g.idempotency = (who.subject, key)
        return None

    @app.before_request
    def wait_for_min_position() -> None:
        raw = request.args.get("min_position")
        if request.method != "GET" or raw is None:
            return
        try:
            position = int(raw)
            if position < 0:
                raise ValueError
        except ValueError:
            raise Problem(
                400,
                "malformed-request",
                "min_position is a non-negative integer.",
                errors={"min_position": ["Not a non-negative integer."]},
            ) from None
        names = list(_projections_of_view())
        if not names:
            return
        settings = runtime().settings
        if not runtime().runner.wait_for(position, names, settings.min_position_timeout):
            raise Problem(
                503,
                "projection-lagging",
                f"The projections have not reached position {position} yet; try again.",
                headers={"Retry-After": "1"},
            )

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if request.method == "GET" and response.status_code < 400:
            names = list(_projections_of_view())
            if names:
                response.headers["X-Projection-Position"] = str(runtime().runner.position_of(names))
        if g.get("answered_from_store"):
            response.headers["Idempotent-Replayed"] = "true"
        claimed = g.pop("idempotency", None)
        if claimed is not None:
            subject, key = claimed
            if response.status_code >= 500:
                give_up(subject, key)
            else:
                runtime().idempotency.complete(
                    subject,
                    key,
                    StoredResponse(
                        response.status_code, replayable_headers(response.headers), response.get_data()
                    ),
                )
        return response

    @app.teardown_request
    def release_unfinished(error: BaseException | None) -> None:
        claimed = g.pop("idempotency", None)
        if claimed is not None:
            give_up(*claimed)

    def give_up(subject: str, key: str) -> None:
        """A keyed request that cannot answer: its retry runs the command again, unless it was stored."""
        if g.get("command_stored"):
            runtime().idempotency.abandon(subject, key)
        else:
            runtime().idempotency.release(subject, key)

    @app.errorhandler(Problem)
    def problem(error: Problem) -> Response:
        return error.response()

    @app.errorhandler(RuleViolation)
    def rule_violation(error: RuleViolation) -> Response:
        return problem_response(409, "rule-violation", error.detail, rule=error.rule.value)

    @app.errorhandler(InvalidInput)
    def invalid_input(error: InvalidInput) -> Response:
        return problem_response(422, "validation-error", "The request is not valid.", errors=error.errors)

    @app.errorhandler(AggregateNotFound)
    def not_found(error: AggregateNotFound) -> Response:
        return problem_response(404, "not-found", str(error))

    @app.errorhandler(VersionConflict)
    def version_conflict(error: VersionConflict) -> Response:
        return problem_response(
            412,
            "version-conflict",
            str(error),
            current_version=error.actual,
            headers={"ETag": f'"{error.actual}"'},
        )

    @app.errorhandler(StoreContention)
    def contention(error: StoreContention) -> Response:
        return problem_response(503, "store-contention", str(error), headers={"Retry-After": "1"})

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if isinstance(error, RequestEntityTooLarge):
            return problem_response(413, "payload-too-large", "The body is over 1 MiB.")
        if messages is not None:
            locations = set(messages) if isinstance(messages, dict) else set()
            errors = {}
            for location in locations or {"json"}:
                errors.update(flatten_messages(messages.get(location, messages)))
            if status == 400 or "query" in locations or "headers" in locations:
                return problem_response(
                    400, "malformed-request", "The request cannot be parsed.", errors=errors
                )
            return problem_response(422, "validation-error", "The request is not valid.", errors=errors)
        slug = {
            400: "malformed-request",
            401: "unauthenticated",
            403: "forbidden",
            404: "not-found",
            405: "method-not-allowed",
            413: "payload-too-large",
            415: "unsupported-media-type",
        }.get(status, "internal-error" if status >= 500 else "malformed-request")
        return problem_response(status, slug, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error", extra={"request_id": g.get("request_id")})
        return problem_response(
            500,
            "internal-error",
            "An unexpected error occurred; it is in the log under this request id.",
            request_id=g.get("request_id"),
        )
