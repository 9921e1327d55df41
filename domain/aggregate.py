"""The base of both aggregates: every event records who caused it (domain.md, "Every event ... records who
did it"), taken from the actor the application is acting as."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.acting import current_actor


def _actor_fields() -> dict[str, str]:
    actor = current_actor()
    return {"actor": actor.subject, "actor_role": actor.role, "request_id": actor.request_id}


class RecordedAggregate(Aggregate):
    class Event(Aggregate.Event):
        actor: str
        actor_role: str
        request_id: str

    class Created(Event, Aggregate.Created):
        pass

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        kwargs.update(_actor_fields())
        super().trigger_event(event_class, **kwargs)

    @classmethod
    def _create(cls, event_class: type[Any], *, id: UUID | None = None, **kwargs: Any) -> Any:
        kwargs.update(_actor_fields())
        return super()._create(event_class, id=id, **kwargs)


def event_type(event: object) -> str:
    """The public name of an event (domain.md), e.g. `AgreementSigned`."""
    return type(event).__name__
