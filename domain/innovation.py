"""Inovasi daerah: the catalogue of a region's own innovations (pendataan inovasi daerah).

An innovation is registered by its region, moves forward through its stages (inisiatif -> uji_coba ->
penerapan, skipping allowed), may be revised and evaluated, and is finally retired. Only an innovation at
`penerapan` that is not retired can be replicated (domain.md rule 4).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID, uuid4

from domain import regions
from domain.aggregate import RecordedAggregate
from domain.calendar import check_not_before, check_not_in_future
from domain.catalogue import Catalogue
from domain.enums import Form, Initiator, InnovationStage, Urusan
from domain.errors import InvalidInput, Rule, RuleViolation
from domain.evaluation import Evaluated, EvaluationInput, assess

REVISABLE_FIELDS = (
    "name",
    "description",
    "objectives",
    "benefits",
    "outcomes",
    "urusan",
    "digital",
)


def _enum_value(field: str, enum: type[Any], value: object) -> str:
    try:
        return str(enum(value).value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise InvalidInput.field(field, f"'{value}' is not one of: {allowed}.") from None


def _urusan_list(value: list[str]) -> list[str]:
    if not value:
        raise InvalidInput.field("urusan", "At least one urusan is required.")
    result: list[str] = []
    for item in value:
        item = _enum_value("urusan", Urusan, item)
        if item not in result:
            result.append(item)
    return result


def upcast_urusan(state: dict[str, Any]) -> None:
    """Release 1 recorded one `urusan_utama` per innovation; from release 2 an innovation serves a list of urusan
    (PP 38/2017 innovations often span several), and the old value becomes a list of one. State without
    `urusan_utama` passes unchanged (builds before `class_version` was declared already wrote the list)."""
    if "urusan_utama" in state:
        state["urusan"] = [state.pop("urusan_utama")]


def check_region_code(field: str, code: str) -> None:
    problem = regions.code_problem(code)
    if problem:
        raise InvalidInput.field(field, problem)


class Innovation(RecordedAggregate):
    """The aggregate's state is kept in snapshots; `class_version` and the `upcast_*` methods read snapshots
    taken by earlier releases (docs/audit.md)."""

    class_version = 2

    region: str
    name: str
    form: str
    urusan: list[str]
    initiator: str
    stage: str
    digital: bool
    started_on: date
    description: str
    objectives: str | None
    benefits: str | None
    outcomes: str | None
    retired: bool
    retired_on: date | None
    retirement_reason: str | None
    stage_dates: dict[str, date]
    evaluations: list[dict[str, Any]]
    last_dated_on: date

    def __init__(self) -> None:
        """State is laid down by the creation event's `apply`."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot of release 1 kept one `urusan_utama`; the innovation now keeps its list of urusan."""
        upcast_urusan(state)

    # --- events -------------------------------------------------------------------------------

    class InnovationRegistered(RecordedAggregate.Created):
        """v1 recorded a single `urusan_utama`; v2 records the list `urusan` (docs/audit.md)."""

        class_version = 2

        region: str
        name: str
        form: str
        urusan: list[str]
        initiator: str
        stage: str
        digital: bool
        started_on: date
        description: str
        objectives: str | None
        benefits: str | None
        outcomes: str | None

        def apply(self, innovation: Innovation) -> None:
            for field in [
                "region",
                "name",
                "form",
                "urusan",
                "initiator",
                "stage",
                "digital",
                "started_on",
                "description",
                "objectives",
                "benefits",
                "outcomes",
            ]:
                setattr(innovation, field, getattr(self, field))
            innovation.urusan = list(self.urusan)
            innovation.retired = False
            innovation.retired_on = None
            innovation.retirement_reason = None
            innovation.stage_dates = {self.stage: self.started_on}
            innovation.evaluations = []
            innovation.last_dated_on = self.started_on

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_urusan(state)

    class InnovationStageAdvanced(RecordedAggregate.Event):
        stage: str
        effective_on: date

        def apply(self, innovation: Innovation) -> None:
            innovation.stage = self.stage
            innovation.stage_dates = {**innovation.stage_dates, self.stage: self.effective_on}
            innovation.last_dated_on = max(innovation.last_dated_on, self.effective_on)

    class InnovationRevised(RecordedAggregate.Event):
        """v1 could revise `urusan_utama`; v2 revises the list `urusan`."""

        class_version = 2

        changes: dict[str, Any]
        reason: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_urusan(state["changes"])

        def apply(self, innovation: Innovation) -> None:
            for field, value in self.changes.items():
                setattr(innovation, field, list(value) if field == "urusan" else value)

    class InnovationEvaluated(Evaluated):
        def apply(self, innovation: Innovation) -> None:
            innovation.evaluations = [*innovation.evaluations, self.as_record()]
            innovation.last_dated_on = max(innovation.last_dated_on, self.evaluated_on)

    class InnovationRetired(RecordedAggregate.Event):
        reason: str
        effective_on: date

        def apply(self, innovation: Innovation) -> None:
            innovation.retired = True
            innovation.retired_on = self.effective_on
            innovation.retirement_reason = self.reason
            innovation.last_dated_on = max(innovation.last_dated_on, self.effective_on)

    # --- commands -----------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        region: str,
        name: str,
        form: str,
        urusan: list[str],
        initiator: str,
        stage: str,
        digital: bool,
        started_on: date,
        description: str,
        objectives: str | None = None,
        benefits: str | None = None,
        outcomes: str | None = None,
        id: UUID | None = None,
    ) -> Innovation:
        check_region_code("region", region)
        check_not_in_future("started_on", started_on)
        innovation: Innovation = cls._create(
            cls.InnovationRegistered,
            id=id or uuid4(),
            region=region,
            name=name,
            form=_enum_value("form", Form, form),
            urusan=_urusan_list(urusan),
            initiator=_enum_value("initiator", Initiator, initiator),
            stage=_enum_value("stage", InnovationStage, stage),
            digital=bool(digital),
            started_on=started_on,
            description=description,
            objectives=objectives,
            benefits=benefits,
            outcomes=outcomes,
        )
        return innovation

    def advance_stage(self, stage: str, effective_on: date) -> None:
        self.check_not_retired()
        target = InnovationStage(_enum_value("stage", InnovationStage, stage))
        self.check_stage_moves_forward(target)
        check_not_in_future("effective_on", effective_on)
        check_not_before("effective_on", effective_on, self.last_dated_on, "the step before")
        self.trigger_event(self.InnovationStageAdvanced, stage=target.value, effective_on=effective_on)

    def revise(self, changes: dict[str, Any], reason: str) -> None:
        self.check_not_retired()
        unknown = sorted(set(changes) - set(REVISABLE_FIELDS))
        if unknown:
            raise InvalidInput({field: ["This field cannot be revised."] for field in unknown})
        if "urusan" in changes:
            changes = {**changes, "urusan": _urusan_list(changes["urusan"])}
        changed = {f: v for f, v in changes.items() if getattr(self, f) != v}
        if not changed:
            raise InvalidInput.field(
                "changes", "A revision changes at least one of: " + ", ".join(REVISABLE_FIELDS)
            )
        self.trigger_event(self.InnovationRevised, changes=changed, reason=reason)

    def evaluate(
        self,
        evaluation: EvaluationInput,
        catalogue: Catalogue,
        replikasi_level: int,
        evaluation_id: UUID | None = None,
    ) -> None:
        self.check_not_retired()
        self.check_evaluable()
        fields = assess(evaluation_id or uuid4(), evaluation, catalogue, replikasi_level)
        check_not_before("evaluated_on", evaluation.evaluated_on, self.last_dated_on, "the step before")
        self.trigger_event(self.InnovationEvaluated, **fields)

    def retire(self, reason: str, effective_on: date) -> None:
        self.check_not_retired()
        check_not_in_future("effective_on", effective_on)
        check_not_before("effective_on", effective_on, self.last_dated_on, "the step before")
        self.trigger_event(self.InnovationRetired, reason=reason, effective_on=effective_on)

    # --- rules --------------------------------------------------------------------------------

    def check_not_retired(self) -> None:
        """domain.md rule 9: a retired innovation accepts no further commands."""
        if self.retired:
            raise RuleViolation(Rule.RETIRED, f"Innovation {self.id} is retired.")

    def check_stage_moves_forward(self, target: InnovationStage) -> None:
        """Stages only move forward; skipping is allowed, going back or standing still is not."""
        if target.rank <= InnovationStage(self.stage).rank:
            raise RuleViolation(
                Rule.INVALID_TRANSITION,
                f"The innovation is at {self.stage}; it cannot move to {target.value}.",
            )

    def check_evaluable(self) -> None:
        """Evaluations only at uji_coba or penerapan."""
        if self.stage not in (InnovationStage.UJI_COBA, InnovationStage.PENERAPAN):
            raise RuleViolation(
                Rule.INVALID_TRANSITION,
                f"An innovation at {self.stage} cannot be evaluated (uji_coba or penerapan only).",
            )

    @property
    def is_replicable(self) -> bool:
        return not self.retired and self.stage == InnovationStage.PENERAPAN

    @property
    def penerapan_on(self) -> date | None:
        """The date this innovation reached penerapan (its started_on when registered at penerapan)."""
        return self.stage_dates.get(InnovationStage.PENERAPAN.value)
