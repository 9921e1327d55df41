"""Replikasi inovasi daerah: one adopting region copying one innovation from one source region.

The life of a replication (domain.md rule 6):

    diusulkan -> disepakati | ditolak;  disepakati -> uji_coba;  uji_coba -> penerapan;
    any non-terminal status -> dihentikan.  ditolak and dihentikan are terminal.

Rules that look at other aggregates (3, 4, 5) are checked here against what the application hands in, and
the application guards them against concurrent writers (service/network.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain
from typing import Any, overload
from uuid import UUID, uuid4

from domain.aggregate import RecordedAggregate
from domain.calendar import check_not_before, check_not_in_future
from domain.catalogue import Catalogue
from domain.enums import (
    AdoptionStage,
    AgreementDocument,
    ModificationComponent,
    ModificationNature,
    ReplicationStatus,
)
from domain.errors import Rule, RuleViolation
from domain.evaluation import Evaluated, EvaluationInput, assess
from domain.innovation import Innovation, _enum_value, check_region_code

S = ReplicationStatus

ALLOWED_MOVES: dict[ReplicationStatus, tuple[ReplicationStatus, ...]] = {
    S.DIUSULKAN: (S.DISEPAKATI, S.DITOLAK, S.DIHENTIKAN),
    S.DISEPAKATI: (S.UJI_COBA, S.DIHENTIKAN),
    S.UJI_COBA: (S.PENERAPAN, S.DIHENTIKAN),
    S.PENERAPAN: (S.DIHENTIKAN,),
    S.DITOLAK: (),
    S.DIHENTIKAN: (),
}

REGION_LIKE = re.compile(r"^[\d.]+$")


@dataclass(frozen=True)
class SourcePractice:
    """The earlier adopter a replication copies from (multi-generation diffusion, rule 3)."""

    replication_id: UUID
    region: str
    status: str
    generation: int
    penerapan_on: date | None


class ModificationLog(Sequence[dict[str, Any]]):
    """The modifications a replication has recorded, oldest first, each read as a dict (the fields of
    ModificationRecorded).

    A long replication records thousands and every snapshot of it holds them all, while no rule looks at them.
    So each is kept as a compact row of plain values (its id as hex, its date in ISO form) and turned into a
    dict only when read; a log restored from a snapshot keeps the rows as the JSON text it was stored as, and
    parses it only when the modifications are read (a command's rules never read them). The log is immutable:
    recording one more gives a new log that shares what the old one held (the rows added since the snapshot
    sit in chunks, so that adding one copies at most a chunk and the list of chunks).
    """

    CHUNK = 64
    __slots__ = ("_text", "_text_count", "_parsed", "_chunks", "_length")

    def __init__(self, rows: Iterable[Sequence[Any]] = ()) -> None:
        held = tuple(tuple(row) for row in rows)
        self._text = b""  # JSON array of rows, as restored from a snapshot
        self._text_count = 0
        self._parsed: tuple[Sequence[Any], ...] | None = ()  # the rows of _text, once parsed
        self._chunks: tuple[tuple[Sequence[Any], ...], ...] = (held,) if held else ()
        self._length = len(held)

    @classmethod
    def from_json(cls, count: int, text: bytes) -> ModificationLog:
        """A log of `count` rows held as the JSON text `to_json` gave; parsed when first read."""
        log = cls()
        log._text, log._text_count, log._parsed, log._length = text, count, None, count
        return log

    def to_json(self) -> tuple[int, bytes]:
        """The number of rows and a JSON array of them, UTF-8 (the text restored from a snapshot is reused as
        it is)."""
        if not self._chunks:
            return self._length, self._text or b"[]"
        rows = list(chain.from_iterable(self._chunks))
        added = json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()
        if self._text_count == 0:
            return self._length, added
        return self._length, b"".join([self._text[:-1], b",", added[1:]])

    @classmethod
    def of(cls, modifications: Iterable[dict[str, Any]]) -> ModificationLog:
        """A log of modifications given as dicts (as replications kept them before the log existed)."""
        log = cls()
        for m in modifications:
            log = log.with_modification(**m)
        return log

    def with_modification(
        self,
        modification_id: UUID,
        component: str,
        nature: str,
        core: bool,
        description: str,
        reason: str,
        recorded_on: date,
    ) -> ModificationLog:
        row = (modification_id.hex, component, nature, core, description, reason, recorded_on.isoformat())
        chunks = self._chunks
        if chunks and len(chunks[-1]) < self.CHUNK:
            chunks = (*chunks[:-1], (*chunks[-1], row))
        else:
            chunks = (*chunks, (row,))
        log = ModificationLog.from_json(self._text_count, self._text)
        log._parsed = self._parsed
        log._chunks = chunks
        log._length = self._length + 1
        return log

    @property
    def rows(self) -> tuple[Sequence[Any], ...]:
        """The compact rows, oldest first."""
        return (*self._restored(), *chain.from_iterable(self._chunks))

    def _restored(self) -> tuple[Sequence[Any], ...]:
        if self._parsed is None:
            self._parsed = tuple(map(tuple, json.loads(self._text)))
        return self._parsed

    @staticmethod
    def _read(row: Sequence[Any]) -> dict[str, Any]:
        modification_id, component, nature, core, description, reason, recorded_on = row
        return {
            "modification_id": UUID(modification_id),
            "component": component,
            "nature": nature,
            "core": core,
            "description": description,
            "reason": reason,
            "recorded_on": date.fromisoformat(recorded_on),
        }

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._read(row) for row in self.rows[index]]
        return self._read(self.rows[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self._read, chain(self._restored(), chain.from_iterable(self._chunks)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ModificationLog):
            return self.rows == other.rows
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ModificationLog({list(self)!r})"

    def __copy__(self) -> ModificationLog:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ModificationLog:
        return self  # immutable: the cached aggregate and its copies may share it


class Replication(RecordedAggregate):
    # 2: modifications are a ModificationLog (snapshots of version 1 hold a list of dicts)
    class_version = 2

    innovation_id: UUID
    source_region: str
    adopting_region: str
    facilitator: str | None
    rationale: str
    proposed_on: date
    generation: int
    status: str
    agreement: dict[str, Any] | None
    stages: dict[str, date | None]
    modifications: ModificationLog
    evaluations: list[dict[str, Any]]
    rejection: dict[str, Any] | None
    discontinuation: dict[str, Any] | None
    last_dated_on: date

    def __init__(self) -> None:
        """State is laid down by the creation event's `apply`."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot taken before modifications were kept in a ModificationLog."""
        state["modifications"] = ModificationLog.of(state["modifications"])

    # --- events -------------------------------------------------------------------------------

    class ReplicationProposed(RecordedAggregate.Created):
        innovation_id: UUID
        source_region: str
        adopting_region: str
        facilitator: str | None
        rationale: str
        proposed_on: date
        generation: int

        def apply(self, replication: Replication) -> None:
            replication.innovation_id = self.innovation_id
            replication.source_region = self.source_region
            replication.adopting_region = self.adopting_region
            replication.facilitator = self.facilitator
            replication.rationale = self.rationale
            replication.proposed_on = self.proposed_on
            replication.generation = self.generation
            replication.status = S.DIUSULKAN.value
            replication.agreement = None
            replication.stages = {
                AdoptionStage.UJI_COBA.value: None,
                AdoptionStage.PENERAPAN.value: None,
            }
            replication.modifications = ModificationLog()
            replication.evaluations = []
            replication.rejection = None
            replication.discontinuation = None
            replication.last_dated_on = self.proposed_on

    class AgreementSigned(RecordedAggregate.Event):
        document: str
        document_number: str
        signed_on: date
        document_url: str | None

        def apply(self, replication: Replication) -> None:
            replication.status = S.DISEPAKATI.value
            replication.agreement = {
                "document": self.document,
                "document_number": self.document_number,
                "signed_on": self.signed_on,
                "document_url": self.document_url,
            }
            replication.last_dated_on = max(replication.last_dated_on, self.signed_on)

    class ReplicationRejected(RecordedAggregate.Event):
        reason: str
        rejected_on: date

        def apply(self, replication: Replication) -> None:
            replication.status = S.DITOLAK.value
            replication.rejection = {"reason": self.reason, "rejected_on": self.rejected_on}
            replication.last_dated_on = max(replication.last_dated_on, self.rejected_on)

    class ModificationRecorded(RecordedAggregate.Event):
        modification_id: UUID
        component: str
        nature: str
        core: bool
        description: str
        reason: str
        recorded_on: date

        def apply(self, replication: Replication) -> None:
            replication.modifications = replication.modifications.with_modification(
                modification_id=self.modification_id,
                component=self.component,
                nature=self.nature,
                core=self.core,
                description=self.description,
                reason=self.reason,
                recorded_on=self.recorded_on,
            )
            replication.last_dated_on = max(replication.last_dated_on, self.recorded_on)

    class AdoptionAdvanced(RecordedAggregate.Event):
        stage: str
        effective_on: date
        legal_basis: str | None
        evidence_urls: list[str]

        def apply(self, replication: Replication) -> None:
            replication.status = self.stage
            replication.stages = {**replication.stages, self.stage: self.effective_on}
            replication.last_dated_on = max(replication.last_dated_on, self.effective_on)

    class EvaluationRecorded(Evaluated):
        def apply(self, replication: Replication) -> None:
            replication.evaluations = [*replication.evaluations, self.as_record()]
            replication.last_dated_on = max(replication.last_dated_on, self.evaluated_on)

    class ReplicationDiscontinued(RecordedAggregate.Event):
        reason: str
        effective_on: date

        def apply(self, replication: Replication) -> None:
            replication.status = S.DIHENTIKAN.value
            replication.discontinuation = {"reason": self.reason, "effective_on": self.effective_on}
            replication.last_dated_on = max(replication.last_dated_on, self.effective_on)

    # --- commands -----------------------------------------------------------------------------

    @classmethod
    def propose(
        cls,
        *,
        innovation: Innovation,
        adopting_region: str,
        rationale: str,
        proposed_on: date,
        source_region: str | None = None,
        source_practice: SourcePractice | None = None,
        open_replication_id: UUID | None = None,
        facilitator: str | None = None,
        id: UUID | None = None,
    ) -> Replication:
        """Record a proposal. `source_practice` is the source region's own replication of this innovation,
        when the source is an earlier adopter; `open_replication_id` is the adopter's open replication of
        this innovation, if it has one."""
        source = source_region or innovation.region
        check_region_code("adopting_region", adopting_region)
        check_region_code("source_region", source)
        if facilitator is not None and REGION_LIKE.match(facilitator):
            check_region_code("facilitator", facilitator)
        check_not_in_future("proposed_on", proposed_on)
        cls.check_innovation_is_replicable(innovation)
        cls.check_regions_differ(innovation, source, adopting_region)
        generation = cls.check_source_is_valid(innovation, source, source_practice, proposed_on)
        cls.check_no_open_replication(open_replication_id, adopting_region)
        replication: Replication = cls._create(
            cls.ReplicationProposed,
            id=id or uuid4(),
            innovation_id=innovation.id,
            source_region=source,
            adopting_region=adopting_region,
            facilitator=facilitator,
            rationale=rationale,
            proposed_on=proposed_on,
            generation=generation,
        )
        return replication

    def sign_agreement(
        self, document: str, document_number: str, signed_on: date, document_url: str | None = None
    ) -> None:
        self.check_can_move_to(S.DISEPAKATI)
        self.check_business_date("signed_on", signed_on)
        self.trigger_event(
            self.AgreementSigned,
            document=_enum_value("document", AgreementDocument, document),
            document_number=document_number,
            signed_on=signed_on,
            document_url=document_url,
        )

    def reject(self, reason: str, rejected_on: date) -> None:
        self.check_can_move_to(S.DITOLAK)
        self.check_business_date("rejected_on", rejected_on)
        self.trigger_event(self.ReplicationRejected, reason=reason, rejected_on=rejected_on)

    def record_modification(
        self,
        *,
        component: str,
        nature: str,
        core: bool,
        description: str,
        reason: str,
        recorded_on: date,
        modification_id: UUID | None = None,
    ) -> None:
        self.check_not_terminal()
        self.check_business_date("recorded_on", recorded_on)
        self.trigger_event(
            self.ModificationRecorded,
            modification_id=modification_id or uuid4(),
            component=_enum_value("component", ModificationComponent, component),
            nature=_enum_value("nature", ModificationNature, nature),
            core=bool(core),
            description=description,
            reason=reason,
            recorded_on=recorded_on,
        )

    def advance_adoption(
        self,
        stage: str,
        effective_on: date,
        legal_basis: str | None = None,
        evidence_urls: list[str] | None = None,
    ) -> None:
        target = ReplicationStatus(_enum_value("stage", AdoptionStage, stage))
        self.check_can_move_to(target)
        self.check_business_date("effective_on", effective_on)
        self.trigger_event(
            self.AdoptionAdvanced,
            stage=target.value,
            effective_on=effective_on,
            legal_basis=legal_basis,
            evidence_urls=list(evidence_urls or []),
        )

    def evaluate(
        self,
        evaluation: EvaluationInput,
        catalogue: Catalogue,
        replikasi_level: int,
        evaluation_id: UUID | None = None,
    ) -> None:
        self.check_evaluable()
        fields = assess(evaluation_id or uuid4(), evaluation, catalogue, replikasi_level)
        check_not_before("evaluated_on", evaluation.evaluated_on, self.last_dated_on, "the step before")
        self.trigger_event(self.EvaluationRecorded, **fields)

    def discontinue(self, reason: str, effective_on: date) -> None:
        self.check_can_move_to(S.DIHENTIKAN)
        self.check_business_date("effective_on", effective_on)
        self.trigger_event(self.ReplicationDiscontinued, reason=reason, effective_on=effective_on)

    # --- rules --------------------------------------------------------------------------------

    @staticmethod
    def check_innovation_is_replicable(innovation: Innovation) -> None:
        """Rule 4: only proven practice (stage penerapan, not retired) is replicated."""
        if innovation.retired:
            raise RuleViolation(Rule.INNOVATION_NOT_REPLICABLE, f"Innovation {innovation.id} is retired.")
        if not innovation.is_replicable:
            raise RuleViolation(
                Rule.INNOVATION_NOT_REPLICABLE,
                f"Innovation {innovation.id} is at {innovation.stage}; only innovations at "
                "penerapan can be replicated.",
            )

    @staticmethod
    def check_regions_differ(innovation: Innovation, source: str, adopting_region: str) -> None:
        """Rule 2: the adopter is neither the source nor the innovation's own region."""
        if adopting_region == source:
            raise RuleViolation(Rule.SAME_REGION, "The adopting region is the source region.")
        if adopting_region == innovation.region:
            raise RuleViolation(Rule.SAME_REGION, "The adopting region is the innovation's own region.")

    @staticmethod
    def check_source_is_valid(
        innovation: Innovation,
        source: str,
        source_practice: SourcePractice | None,
        proposed_on: date,
    ) -> int:
        """Rule 3: the source is the innovation's region, or a region whose replication of it is at
        penerapan (and was there on the proposal date). Returns the new adopter's generation."""
        if source == innovation.region:
            check_not_before(
                "proposed_on", proposed_on, innovation.penerapan_on, "the innovation's penerapan"
            )
            return 1
        if (
            source_practice is None
            or source_practice.region != source
            or source_practice.status != S.PENERAPAN.value
        ):
            raise RuleViolation(
                Rule.INVALID_SOURCE,
                f"Region {source} is neither the innovation's region nor an adopter of it at penerapan.",
            )
        check_not_before("proposed_on", proposed_on, source_practice.penerapan_on, "the source's penerapan")
        return source_practice.generation + 1

    @staticmethod
    def check_no_open_replication(open_replication_id: UUID | None, adopting_region: str) -> None:
        """Rule 5: at most one open replication per (innovation, adopting region)."""
        if open_replication_id is not None:
            raise RuleViolation(
                Rule.DUPLICATE_OPEN_REPLICATION,
                f"Region {adopting_region} already has an open replication of this innovation "
                f"({open_replication_id}).",
            )

    def check_not_terminal(self) -> None:
        """Rule 7: terminal replications accept nothing more."""
        if ReplicationStatus(self.status).is_terminal:
            raise RuleViolation(
                Rule.INVALID_TRANSITION,
                f"The replication is {self.status} and accepts nothing more.",
            )

    def check_can_move_to(self, target: ReplicationStatus) -> None:
        """Rule 6: no skipping, no going back."""
        self.check_not_terminal()
        if target not in ALLOWED_MOVES[ReplicationStatus(self.status)]:
            raise RuleViolation(
                Rule.INVALID_TRANSITION,
                f"A replication that is {self.status} cannot become {target.value}.",
            )

    def check_evaluable(self) -> None:
        """Rule 8: evaluations only in uji_coba or penerapan."""
        if self.status not in (S.UJI_COBA.value, S.PENERAPAN.value):
            raise RuleViolation(
                Rule.INVALID_TRANSITION,
                f"A replication that is {self.status} cannot be evaluated (uji_coba or penerapan only).",
            )

    def check_business_date(self, field: str, value: date) -> None:
        """Rule 9: not in the future, never earlier than the step before."""
        check_not_in_future(field, value)
        check_not_before(field, value, self.last_dated_on, "the step before")

    @property
    def is_open(self) -> bool:
        return ReplicationStatus(self.status).is_open

    @property
    def penerapan_on(self) -> date | None:
        return self.stages.get(AdoptionStage.PENERAPAN.value)

    def as_source(self) -> SourcePractice:
        return SourcePractice(
            replication_id=self.id,
            region=self.adopting_region,
            status=self.status,
            generation=self.generation,
            penerapan_on=self.penerapan_on,
        )
