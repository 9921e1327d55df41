"""Evaluations of a practice against an indicator catalogue (index.md), shared by both aggregates.

The client states levels; the service derives `replikasi` from the record and computes total, score and
category. Nothing the client sends for those is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.aggregate import RecordedAggregate
from domain.calendar import check_not_in_future
from domain.catalogue import Catalogue
from domain.errors import InvalidInput


@dataclass(frozen=True)
class EvaluationInput:
    """What an evaluator states about one practice for one year."""

    year: int
    scores: Mapping[str, Any]
    evaluated_on: date
    evidence: Mapping[str, str]
    notes: str | None = None


class Evaluated(RecordedAggregate.Event):
    """The fields of an evaluation event, the same for an innovation and a replication (domain.md)."""

    evaluation_id: UUID
    year: int
    catalogue: str
    scores: dict[str, int]
    evidence: dict[str, str]
    total: int
    score: Any
    category: str
    notes: str | None
    evaluated_on: date

    def as_record(self) -> dict[str, Any]:
        """The evaluation as the aggregate keeps it in its list of evaluations."""
        return {
            "evaluation_id": self.evaluation_id,
            "year": self.year,
            "catalogue": self.catalogue,
            "scores": dict(self.scores),
            "evidence": dict(self.evidence),
            "total": self.total,
            "score": self.score,
            "category": self.category,
            "notes": self.notes,
            "evaluated_on": self.evaluated_on,
        }


def assess(
    evaluation_id: UUID,
    evaluation: EvaluationInput,
    catalogue: Catalogue,
    replikasi_level: int,
) -> dict[str, Any]:
    """The fields of an `EvaluationRecorded` / `InnovationEvaluated` event, validated and scored."""
    check_not_in_future("evaluated_on", evaluation.evaluated_on)
    errors: dict[str, list[str]] = {}
    if not catalogue.covers(evaluation.year):
        errors["catalogue"] = [f"Catalogue {catalogue.version} does not cover {evaluation.year}."]
    if evaluation.year > evaluation.evaluated_on.year:
        errors["year"] = [
            f"An evaluation for {evaluation.year} cannot be made on {evaluation.evaluated_on.isoformat()}."
        ]
    errors.update(catalogue.validation_errors(evaluation.scores))
    for code, url in evaluation.evidence.items():
        if code not in catalogue.codes:
            errors.setdefault(f"evidence.{code}", []).append(f"Unknown indicator '{code}'.")
        elif not isinstance(url, str) or not url.strip():
            errors.setdefault(f"evidence.{code}", []).append("Evidence is a non-empty URL string.")
    if errors:
        raise InvalidInput(errors)
    stated = {code: level for code, level in evaluation.scores.items() if code != "replikasi"}
    scoring = catalogue.evaluate(stated, replikasi_level)
    return {
        "evaluation_id": evaluation_id,
        "year": evaluation.year,
        "catalogue": catalogue.version,
        "scores": dict(scoring.levels),
        "evidence": dict(evaluation.evidence),
        "total": scoring.total,
        "score": Decimal(scoring.score),
        "category": scoring.category,
        "notes": evaluation.notes,
        "evaluated_on": evaluation.evaluated_on,
    }
