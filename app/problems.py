"""RFC 9457 problem details (api.md "Conventions"): every error the API answers is one of these."""

from __future__ import annotations

from typing import Any

from flask import Response, json, request

PROBLEM_TITLES = {
    "malformed-request": "Malformed request",
    "unauthenticated": "Authentication required",
    "forbidden": "Forbidden",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "rule-violation": "A domain rule forbids this",
    "idempotency-key-in-flight": "Idempotency key in flight",
    "version-conflict": "Version conflict",
    "payload-too-large": "Payload too large",
    "unsupported-media-type": "Unsupported media type",
    "validation-error": "Validation error",
    "idempotency-key-reused": "Idempotency key reused",
    "projection-lagging": "Projection lagging",
    "store-contention": "The record is busy",
    "internal-error": "Internal error",
}


class Problem(Exception):
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        rule: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = errors
        self.rule = rule
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> Response:
        return problem_response(
            self.status,
            self.slug,
            self.detail,
            errors=self.errors,
            rule=self.rule,
            headers=self.headers,
            **self.extra,
        )


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    rule: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": PROBLEM_TITLES.get(slug, slug.replace("-", " ").capitalize()),
        "status": status,
        "detail": detail,
        "instance": request.path if request else None,
    }
    if errors is not None:
        body["errors"] = errors
    if rule is not None:
        body["rule"] = rule
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"field.sub": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "body"
            for field, items in flatten_messages(value, name).items():
                flat.setdefault(field, []).extend(items)
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            flat[prefix or "body"] = [str(m) for m in messages]
        else:
            for item in messages:
                for field, items in flatten_messages(item, prefix).items():
                    flat.setdefault(field, []).extend(items)
    else:
        flat[prefix or "body"] = [str(messages)]
    return flat
