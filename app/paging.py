"""Cursor pages: `{"items": [...], "next_cursor": ...}` and a `Link: <...>; rel="next"` header."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import request

from app.problems import Problem


def page_answer(page: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    headers: dict[str, str] = {}
    if page.next_cursor:
        args = {k: v for k, v in request.args.items() if k not in ("cursor", "min_position")}
        args["cursor"] = page.next_cursor
        headers["Link"] = f'<{request.path}?{urlencode(args)}>; rel="next"'
    return {"items": page.items, "next_cursor": page.next_cursor}, 200, headers


def bad_cursor() -> Problem:
    return Problem(
        400,
        "malformed-request",
        "The cursor is not one this API issued.",
        errors={"cursor": ["Invalid cursor."]},
    )
