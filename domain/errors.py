"""What the domain says when a command cannot be carried out.

Every broken rule of domain.md is a :class:`RuleViolation` carrying the rule code of api.md; input that is
well-formed but invalid (unknown region, future date, unknown indicator, ...) is an :class:`InvalidInput` with
messages per field. Nothing is stored when either is raised.
"""

from __future__ import annotations

from enum import StrEnum


class Rule(StrEnum):
    INVALID_TRANSITION = "invalid-transition"
    DUPLICATE_OPEN_REPLICATION = "duplicate-open-replication"
    INNOVATION_NOT_REPLICABLE = "innovation-not-replicable"
    SAME_REGION = "same-region"
    INVALID_SOURCE = "invalid-source"
    DATE_ORDER = "date-order"
    RETIRED = "retired"


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


class RuleViolation(DomainError):
    def __init__(self, rule: Rule, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


class InvalidInput(DomainError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors

    @classmethod
    def field(cls, name: str, message: str) -> InvalidInput:
        return cls({name: [message]})


class AggregateNotFound(DomainError):
    def __init__(self, kind: str, aggregate_id: object) -> None:
        super().__init__(f"No {kind} with id {aggregate_id}.")
        self.kind = kind
        self.aggregate_id = aggregate_id


class VersionConflict(DomainError):
    """The client's If-Match version is not the aggregate's current version."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"Expected version {expected}, but the current version is {actual}.")
        self.expected = expected
        self.actual = actual
