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
    sort = fields.String(load_default="at_penerapan", validate=validate.OneOf(["at_penerapan", "adopters"]))


class PageSchema(Schema):
    next_cursor = fields.String(allow_none=True)


class InnovationPageSchema(PageSchema):
    items = fields.List(fields.Nested(InnovationSchema))


class ReplicationPageSchema(PageSchema):
    items = fields.List(fields.Nested(ReplicationSchema))
