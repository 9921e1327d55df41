"""Who is acting: every event records the authenticated subject, its role and the request id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    subject: str
    role: str
    request_id: str


_current: ContextVar[Actor | None] = ContextVar("current_actor", default=None)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def current_actor() -> Actor:
    actor = _current.get()
    if actor is None:
        raise RuntimeError("No actor: domain commands run inside acting_as(actor).")
    return actor
