"""Resources as api.md shows them, read from an aggregate (command answers). GET answers come from the
projections, which hold documents of the same shape."""

from __future__ import annotations

from typing import Any

from domain import regions
from domain.innovation import Innovation
from domain.published import plain
from domain.replication import Replication


def innovation_resource(innovation: Innovation, replication_count: int) -> dict[str, Any]:
    return plain(
        {
            "id": innovation.id,
            "region": innovation.region,
            "region_name": regions.name_of(innovation.region),
            "name": innovation.name,
            "form": innovation.form,
            "urusan": innovation.urusan,
            "initiator": innovation.initiator,
            "stage": innovation.stage,
            "digital": innovation.digital,
            "started_on": innovation.started_on,
            "description": innovation.description,
            "objectives": innovation.objectives,
            "benefits": innovation.benefits,
            "outcomes": innovation.outcomes,
            "retired": innovation.retired,
            "retired_on": innovation.retired_on,
            "stage_dates": innovation.stage_dates,
            "evaluations": innovation.evaluations,
            "version": innovation.version,
            "replication_count": replication_count,
        }
    )


def replication_resource(replication: Replication, innovation_name: str | None) -> dict[str, Any]:
    return plain(
        {
            "id": replication.id,
            "innovation_id": replication.innovation_id,
            "innovation_name": innovation_name,
            "source_region": replication.source_region,
            "source_region_name": regions.name_of(replication.source_region),
            "adopting_region": replication.adopting_region,
            "adopting_region_name": regions.name_of(replication.adopting_region),
            "facilitator": replication.facilitator,
            "rationale": replication.rationale,
            "status": replication.status,
            "generation": replication.generation,
            "proposed_on": replication.proposed_on,
            "agreement": replication.agreement,
            "stages": replication.stages,
            "modifications": replication.modifications,
            "evaluations": replication.evaluations,
            "rejection": replication.rejection,
            "discontinuation": replication.discontinuation,
            "version": replication.version,
        }
    )
