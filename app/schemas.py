"""marshmallow schemas: the validation of every request and the source of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from domain import regions
from domain.enums import (
    AdoptionStage,
    AgreementDocument,
    Form,
    Initiator,
    InnovationStage,
    ModificationComponent,
    ModificationNature,
    ReplicationStatus,
    Urusan,
)


def one_of(enum: Any) -> validate.OneOf:
    return validate.OneOf([m.value for m in enum])


class Text(fields.String):
    """A string, trimmed. Empty after trimming, it is None where the field may be None (an optional field);
    elsewhere (a required field, or a revision's name or description) it is a validation error."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if text:
            return text
        if self.required or not self.allow_none:
            raise ValidationError("May not be empty.")
        return None

    def _validate(self, value: Any) -> None:
        if value is not None:  # an empty optional text: nothing for the validators (e.g. Length) to check
            super()._validate(value)


class RegionCode(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        code = super()._deserialize(value, attr, data, **kwargs).strip()
        problem = regions.code_problem(code)
        if problem:
            raise ValidationError(problem)
        return code


class ProvinceCode(RegionCode):
    """A region code that must name a province (`PP`): filters by province, parents of kabupaten/kota."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        code = super()._deserialize(value, attr, data, **kwargs)
        region = regions.find(code)
        if region is None or not region.is_province:
            raise ValidationError(f"'{code}' is not a province code: use 'PP', e.g. '{code[:2]}'.")
        return code


class StrictBoolean(fields.Boolean):
    truthy = {True}
    falsy = {False}


class StrictInteger(fields.Integer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)


# --- commands ----------------------------------------------------------------------------------


class InnovationRegistrationSchema(Schema):
    region = RegionCode(required=True)
    name = Text(required=True, validate=validate.Length(max=300))
    form = fields.String(required=True, validate=one_of(Form))
    urusan = fields.List(
        fields.String(validate=one_of(Urusan)), required=True, validate=validate.Length(min=1)
    )
    initiator = fields.String(required=True, validate=one_of(Initiator))
    stage = fields.String(required=True, validate=one_of(InnovationStage))
    digital = StrictBoolean(required=True)
    started_on = fields.Date(required=True)
    description = Text(required=True, validate=validate.Length(max=10000))
    objectives = Text(load_default=None, validate=validate.Length(max=10000))
    benefits = Text(load_default=None, validate=validate.Length(max=10000))
    outcomes = Text(load_default=None, validate=validate.Length(max=10000))


class StageAdvanceSchema(Schema):
    stage = fields.String(required=True, validate=one_of(InnovationStage))
    effective_on = fields.Date(required=True)


class RevisionSchema(Schema):
    name = Text(validate=validate.Length(min=1, max=300))
    description = Text(validate=validate.Length(max=10000))
    objectives = Text(validate=validate.Length(max=10000))
    benefits = Text(validate=validate.Length(max=10000))
    outcomes = Text(validate=validate.Length(max=10000))
    urusan = fields.List(fields.String(validate=one_of(Urusan)), validate=validate.Length(min=1))
    digital = StrictBoolean()
    reason = Text(required=True)

    @validates_schema
    def check_something_changes(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not set(data) - {"reason"}:
            raise ValidationError(
                "A revision names at least one of: name, description, objectives, benefits, "
                "outcomes, urusan, digital."
            )


class RetirementSchema(Schema):
    reason = Text(required=True)
    effective_on = fields.Date(required=True)


class ProposalSchema(Schema):
    innovation_id = fields.UUID(required=True)
    adopting_region = RegionCode(required=True)
    source_region = RegionCode(load_default=None)
    facilitator = Text(load_default=None, validate=validate.Length(max=300))
    rationale = Text(required=True, validate=validate.Length(max=10000))
    proposed_on = fields.Date(required=True)


class AgreementSchema(Schema):
    document = fields.String(required=True, validate=one_of(AgreementDocument))
    document_number = Text(required=True, validate=validate.Length(max=200))
    signed_on = fields.Date(required=True)
    document_url = fields.Url(load_default=None)


class RejectionSchema(Schema):
    reason = Text(required=True)
    rejected_on = fields.Date(required=True)


class DiscontinuationSchema(Schema):
    reason = Text(required=True)
    effective_on = fields.Date(required=True)


class ModificationSchema(Schema):
    component = fields.String(required=True, validate=one_of(ModificationComponent))
    nature = fields.String(required=True, validate=one_of(ModificationNature))
    core = StrictBoolean(required=True)
    description = Text(required=True, validate=validate.Length(max=10000))
    reason = Text(required=True, validate=validate.Length(max=10000))
    recorded_on = fields.Date(required=True)


class AdoptionSchema(Schema):
    stage = fields.String(required=True, validate=one_of(AdoptionStage))
    effective_on = fields.Date(required=True)
    legal_basis = Text(load_default=None, validate=validate.Length(max=500))
    evidence_urls = fields.List(fields.Url(), load_default=list)


class EvaluationSchema(Schema):
    year = StrictInteger(required=True, validate=validate.Range(min=2000, max=2100))
    catalogue = Text(load_default=None)
    scores = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    evidence = fields.Dict(keys=fields.String(), values=fields.Url(), load_default=dict)
    notes = Text(load_default=None, validate=validate.Length(max=10000))
    evaluated_on = fields.Date(required=True)


# --- resources ---------------------------------------------------------------------------------


class EvaluationResourceSchema(Schema):
    evaluation_id = fields.String()
    year = fields.Integer()
    catalogue = fields.String()
    scores = fields.Dict(keys=fields.String(), values=fields.Integer())
    evidence = fields.Dict(keys=fields.String(), values=fields.String())
    total = fields.Integer()
    score = fields.Float()
    category = fields.String()
    notes = fields.String(allow_none=True)
    evaluated_on = fields.String()


class InnovationSchema(Schema):
    id = fields.String()
    region = fields.String()
    region_name = fields.String()
    name = fields.String()
    form = fields.String()
    urusan = fields.List(fields.String())
    initiator = fields.String()
    stage = fields.String()
    digital = fields.Boolean()
    started_on = fields.String()
    description = fields.String()
    objectives = fields.String(allow_none=True)
    benefits = fields.String(allow_none=True)
    outcomes = fields.String(allow_none=True)
    retired = fields.Boolean()
    retired_on = fields.String(allow_none=True)
    stage_dates = fields.Dict(keys=fields.String(), values=fields.String())
    evaluations = fields.List(fields.Nested(EvaluationResourceSchema))
    version = fields.Integer()
    replication_count = fields.Integer()


class AgreementResourceSchema(Schema):
    document = fields.String()
    document_number = fields.String()
    signed_on = fields.String()
    document_url = fields.String(allow_none=True)


class ModificationResourceSchema(Schema):
    modification_id = fields.String()
    component = fields.String()
    nature = fields.String()
    core = fields.Boolean()
    description = fields.String()
    reason = fields.String()
    recorded_on = fields.String()


class ReplicationSchema(Schema):
    id = fields.String()
    innovation_id = fields.String()
    innovation_name = fields.String(allow_none=True)
    source_region = fields.String()
    source_region_name = fields.String()
    adopting_region = fields.String()
    adopting_region_name = fields.String()
    facilitator = fields.String(allow_none=True)
    rationale = fields.String()
    status = fields.String()
    generation = fields.Integer()
    proposed_on = fields.String()
    agreement = fields.Nested(AgreementResourceSchema, allow_none=True)
    stages = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    modifications = fields.List(fields.Nested(ModificationResourceSchema))
    evaluations = fields.List(fields.Nested(EvaluationResourceSchema))
    rejection = fields.Dict(allow_none=True)
    discontinuation = fields.Dict(allow_none=True)
    version = fields.Integer()


# --- queries -----------------------------------------------------------------------------------


class ReadQuerySchema(Schema):
    min_position = fields.Integer(
        validate=validate.Range(min=0),
        metadata={"description": "Wait (up to 5 s) until the projections read have applied this position."},
    )


class PageQuerySchema(ReadQuerySchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String()


class IndexPageQuerySchema(ReadQuerySchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    cursor = fields.String()


class InnovationListQuerySchema(PageQuerySchema):
    region = RegionCode()
    province = ProvinceCode()
    form = fields.String(validate=one_of(Form))
    urusan = fields.String(validate=one_of(Urusan))
    stage = fields.String(validate=one_of(InnovationStage))
    q = fields.String(validate=validate.Length(min=1, max=200))
    retired = fields.Boolean()


class ReplicationListQuerySchema(PageQuerySchema):
    innovation_id = fields.UUID()
    source_region = RegionCode()
    adopting_region = RegionCode()
    province = ProvinceCode()
    status = fields.String(validate=one_of(ReplicationStatus))
    form = fields.String(validate=one_of(Form))
    urusan = fields.String(validate=one_of(Urusan))


class RegionQuerySchema(ReadQuerySchema):
    parent = ProvinceCode()
    q = fields.String(validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    cursor = fields.String()


class AuditQuerySchema(ReadQuerySchema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = fields.String()
    type = fields.String()
    aggregate_id = fields.UUID()


class StateQuerySchema(ReadQuerySchema):
    # Strings here, parsed by app/replay.py: a malformed value is a 422 validation error, not a 400.
    version = fields.String(metadata={"description": "The aggregate as it was at this version (1 or more)."})
    at = fields.String(
        metadata={
            "description": "The aggregate as it was at this time (RFC 3339 with offset), by record time."
        }
    )


class VerifyQuerySchema(ReadQuerySchema):
    head = fields.String(
        metadata={
            "description": "A head published earlier, POSITION:HASH (`puja audit head`), to check against."
        }
    )


class ExportQuerySchema(ReadQuerySchema):
    format = fields.String(load_default="jsonl", validate=validate.OneOf(["jsonl", "csv"]))
    after = fields.Integer(
        load_default=0, validate=validate.Range(min=0), metadata={"description": "Positions after this one."}
    )
    before = fields.Integer(
        validate=validate.Range(min=1), metadata={"description": "Positions before this one."}
    )


class VerdictSchema(Schema):
    ok = fields.Boolean(required=True)
    checked = fields.Integer(required=True, metadata={"description": "Events that verified."})
    last_position = fields.Integer(required=True, metadata={"description": "The chain verifies up to here."})
    first_bad_position = fields.Integer(allow_none=True, required=True)
    problem = fields.String(allow_none=True, required=True)


class RegionIndexQuerySchema(IndexPageQuerySchema):
    year = fields.Integer(validate=validate.Range(min=2000, max=2100))
    province = ProvinceCode()
    type = fields.String(validate=validate.OneOf(list(regions.REGION_TYPES)))
    sort = fields.String(
        load_default="code",
        validate=validate.OneOf(["code", "index", "innovations", "adopters", "at_penerapan"]),
    )


class RegionRowQuerySchema(ReadQuerySchema):
    year = fields.Integer(validate=validate.Range(min=2000, max=2100))


class InnovationIndexQuerySchema(IndexPageQuerySchema):
    sort = fields.String(
        load_default="at_penerapan",
        validate=validate.OneOf(["at_penerapan", "adopters", "provinces"]),
        metadata={
            "description": "Descending by `at_penerapan` (ties by `adopters`), by `adopters` (ties by "
            "`at_penerapan`) or by `provinces` (ties by `adopters`); then by registration order."
        },
    )


class PageSchema(Schema):
    next_cursor = fields.String(allow_none=True)


class InnovationPageSchema(PageSchema):
    items = fields.List(fields.Nested(InnovationSchema))


class ReplicationPageSchema(PageSchema):
    items = fields.List(fields.Nested(ReplicationSchema))


# --- replication metrics, lineage and summary (projections/diffusion.py) ------------------------

YEAR_DESCRIPTION = (
    "The year whose figures are wanted (default: the current year in Asia/Jayapura). Every figure is as of "
    "31 December of that year, or today for the current year, by business dates; a year that has not begun "
    "is a 422."
)


class LineageQuerySchema(ReadQuerySchema):
    pass


class SummaryQuerySchema(ReadQuerySchema):
    year = fields.Integer(
        validate=validate.Range(min=2000, max=2100), metadata={"description": YEAR_DESCRIPTION}
    )
    province = ProvinceCode(
        metadata={
            "description": "Only replications whose adopting region lies in this province (the province "
            "itself or one of its kabupaten/kota): what the province's own pemda adopted."
        }
    )


def _counts(description: str) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": description})


class InnovationRowSchema(Schema):
    id = fields.String()
    name = fields.String()
    region = fields.String()
    region_name = fields.String()
    retired = fields.Boolean()
    adopters = fields.Integer(
        metadata={"description": "Distinct adopting regions whose replication was not rejected."}
    )
    at_penerapan = fields.Integer(
        metadata={"description": "Distinct adopting regions whose replication is at penerapan."}
    )
    provinces = fields.Integer(metadata={"description": "Distinct provinces of the `adopters`."})
    replications = fields.Integer(
        metadata={"description": "Every replication of it, rejected ones included."}
    )
    deepest_generation = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Highest generation among its replications not rejected (the innovation's own "
            "region is generation 0); null when none."
        },
    )


class InnovationRowPageSchema(PageSchema):
    items = fields.List(fields.Nested(InnovationRowSchema))


class LineageNodeSchema(Schema):
    replication_id = fields.String()
    adopting_region = fields.String()
    adopting_region_name = fields.String()
    source_region = fields.String()
    source_region_name = fields.String()
    generation = fields.Integer(metadata={"description": "1 + the generation of the practice it copies."})
    status = fields.String(metadata={"description": "Its status as recorded now."})
    proposed_on = fields.String()
    signed_on = fields.String(allow_none=True)
    rejected_on = fields.String(allow_none=True)
    uji_coba_on = fields.String(allow_none=True)
    penerapan_on = fields.String(allow_none=True)
    discontinued_on = fields.String(allow_none=True)
    children = fields.List(
        fields.Nested(lambda: LineageNodeSchema()),
        metadata={
            "description": "Replications that copy this adopter's practice: proposed with this adopter's "
            "region as source while this replication was its open practice."
        },
    )


class LineageRootSchema(Schema):
    innovation_id = fields.String()
    region = fields.String()
    region_name = fields.String()
    generation = fields.Integer(metadata={"description": "Always 0: the innovation's own region."})
    stage = fields.String()
    started_on = fields.String()
    penerapan_on = fields.String(allow_none=True)
    retired = fields.Boolean()
    retired_on = fields.String(allow_none=True)
    children = fields.List(
        fields.Nested(LineageNodeSchema),
        metadata={
            "description": "First-generation replications: those whose source is the innovation's region."
        },
    )


class ProvinceReachedSchema(Schema):
    code = fields.String()
    name = fields.String()
    adopters = fields.Integer(
        metadata={"description": "Distinct adopting regions in it whose replication was not rejected."}
    )
    at_penerapan = fields.Integer(metadata={"description": "Those whose replication is at penerapan."})


class LineageSchema(Schema):
    id = fields.String()
    name = fields.String()
    region = fields.String()
    region_name = fields.String()
    replications = fields.Integer(
        metadata={"description": "Every replication of it, rejected ones included."}
    )
    adopters = fields.Integer(
        metadata={"description": "Distinct adopting regions whose replication was not rejected."}
    )
    at_penerapan = fields.Integer(
        metadata={"description": "Distinct adopting regions whose replication is at penerapan."}
    )
    by_status = _counts("Its replications by status, as recorded now.")
    by_generation = _counts("Its replications not rejected, by generation.")
    deepest_generation = fields.Integer(
        allow_none=True, metadata={"description": "Highest generation not rejected; null when none."}
    )
    provinces_reached = fields.List(
        fields.Nested(ProvinceReachedSchema),
        metadata={"description": "Provinces of the adopting regions whose replication was not rejected."},
    )
    root = fields.Nested(LineageRootSchema)


class SeriesMonthSchema(Schema):
    month = fields.String(metadata={"description": "YYYY-MM."})
    proposals = fields.Integer(metadata={"description": "Replications with `proposed_on` in the month."})
    trials_started = fields.Integer(
        metadata={"description": "Replications that reached uji_coba in the month."}
    )
    implementations = fields.Integer(
        metadata={"description": "Replications that reached penerapan in the month."}
    )


class SummaryTotalsSchema(Schema):
    replications = fields.Integer(metadata={"description": "Replications proposed by the as-of day."})
    by_status = _counts("Those replications by their status on the as-of day.")
    by_form = _counts("Those replications by their innovation's form.")
    by_urusan = _counts(
        "Those replications by urusan: one counts once under each urusan of its innovation, so these can sum "
        "to more than `replications`."
    )


class SummarySchema(Schema):
    year = fields.Integer()
    as_of = fields.String(metadata={"description": "31 December of the year, or today for the current year."})
    province = fields.String(allow_none=True)
    province_name = fields.String(allow_none=True)
    totals = fields.Nested(SummaryTotalsSchema)
    series = fields.List(
        fields.Nested(SeriesMonthSchema),
        metadata={"description": "The twelve months of the year, by business date, up to the as-of day."},
    )
    median_days_to_penerapan = fields.Float(
        allow_none=True,
        metadata={
            "description": "Median days from `proposed_on` to penerapan over the replications that reached "
            "penerapan in the year up to the as-of day (mean of the two middle values for an even count); "
            "null when none did."
        },
    )


class AsSourceSchema(Schema):
    adopters = fields.Integer(
        metadata={
            "description": "Distinct regions that replicate a practice of this region (one of its innovations, "
            "or one of its own replications passed on), proposed by the day and not rejected by then."
        }
    )
    at_penerapan = fields.Integer(metadata={"description": "Those of them at penerapan on the day."})
    deepest_generation = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Highest generation (the innovation's own region is 0) among replications not "
            "rejected by the day that descend from a practice of this region, directly or through later "
            "adopters; null when none does."
        },
    )


class AsAdopterSchema(Schema):
    replications = fields.Integer(metadata={"description": "Its replications proposed by the day."})
    by_status = _counts("Those replications by their status on the day.")
    median_days_to_penerapan = fields.Float(
        allow_none=True,
        metadata={
            "description": "Median days from `proposed_on` to penerapan over those that reached penerapan by "
            "the day (discontinued later or not); mean of the two middle values for an even count; null for "
            "none."
        },
    )
    discontinued_share = fields.Float(
        allow_none=True,
        metadata={
            "description": "Discontinued by the day / not rejected by the day, rounded half-up to 4 "
            "decimals; null when none."
        },
    )


class AdaptationSchema(Schema):
    replications = fields.Integer(metadata={"description": "Its replications proposed by the day."})
    modifications = fields.Integer(
        metadata={"description": "Modifications of those replications recorded by the day."}
    )
    per_replication = fields.Float(
        allow_none=True,
        metadata={"description": "modifications / replications, half-up to 2 decimals; null for none."},
    )
    core_share = fields.Float(
        allow_none=True,
        metadata={
            "description": "Modifications marked `core` / modifications, half-up to 4 decimals; null for none."
        },
    )
    by_component = _counts("Modifications by component (every component, zeros included).")
    by_nature = _counts("Modifications by nature (every nature, zeros included).")


class ReplicationMetricsSchema(Schema):
    """`replication_metrics` of GET /api/v1/index/regions/{code}: a region's replication metrics (index.md),
    as of 31 December of the year asked, or today for the current year, by business dates."""

    as_of = fields.String(metadata={"description": "The day the figures are taken."})
    as_source = fields.Nested(AsSourceSchema)
    as_adopter = fields.Nested(AsAdopterSchema)
    adaptation = fields.Nested(AdaptationSchema)
