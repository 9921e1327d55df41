"""The "index" projection: innovation and replication documents (the resources of api.md) and the columns that
listings filter and index views count on.

Each document is laid down by its aggregate's events alone; the columns are derived from the document, so they
can never disagree with it. Two things cross aggregates: a replication shows its innovation's current name (and
carries its form and urusan for filters), and an innovation shows how many distinct regions replicate it up to
`penerapan`. Both are kept whichever of the two aggregates' events arrives first, so the same code can be fed
from streams that are ordered per aggregate only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from domain import regions
from domain.catalogue import round_half_up
from domain.enums import ReplicationStatus
from domain.published import EventRecord
from projections.adaptation import log_modification
from projections.tables import INDEX_TABLES, evaluations, innovation_urusan, innovations, replications
from projections.tracking import Projection

Doc = dict[str, Any]
Handler = Callable[[Connection, EventRecord], None]

PENERAPAN = ReplicationStatus.PENERAPAN.value

# Statements built once (building and keying a statement costs more than running it on SQLite).
_INNOVATION_DOC = select(innovations.c.doc).where(innovations.c.innovation_id == bindparam("b_id"))
_ADD_INNOVATION = insert(innovations)
_SET_INNOVATION = update(innovations).where(innovations.c.innovation_id == bindparam("b_id"))
_REPLICATION_DOC = select(replications.c.doc).where(replications.c.replication_id == bindparam("b_id"))
_ADD_REPLICATION = insert(replications)
_SET_REPLICATION = update(replications).where(replications.c.replication_id == bindparam("b_id"))
_REPLICATIONS_OF = select(replications.c.replication_id, replications.c.doc).where(
    replications.c.innovation_id == bindparam("b_id")
)
_COUNT_AT_PENERAPAN = select(func.count(replications.c.adopting_region.distinct())).where(
    replications.c.innovation_id == bindparam("b_id"), replications.c.status == PENERAPAN
)
_CLEAR_URUSAN = delete(innovation_urusan).where(innovation_urusan.c.innovation_id == bindparam("b_id"))
_ADD_URUSAN = insert(innovation_urusan)
_ADD_EVALUATION = insert(evaluations)
_EVALUATIONS_OF = select(
    evaluations.c.evaluation_id, evaluations.c.evaluated_on, evaluations.c.position
).where(evaluations.c.subject_id == bindparam("b_subject"), evaluations.c.year == bindparam("b_year"))
_MARK_LATEST = (
    update(evaluations)
    .where(evaluations.c.subject_id == bindparam("b_subject"), evaluations.c.year == bindparam("b_year"))
    .values(latest=evaluations.c.evaluation_id == bindparam("b_latest"))
)


class MissingDocument(LookupError):
    """An event of an aggregate whose creation has not been applied: the feed is out of order."""


class IndexProjection(Projection):
    name = "index"
    tables = INDEX_TABLES

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {
            "InnovationRegistered": self._innovation_registered,
            "InnovationStageAdvanced": self._innovation_stage_advanced,
            "InnovationRevised": self._innovation_revised,
            "InnovationEvaluated": self._innovation_evaluated,
            "InnovationRetired": self._innovation_retired,
            "ReplicationProposed": self._replication_proposed,
            "AgreementSigned": self._agreement_signed,
            "ReplicationRejected": self._replication_rejected,
            "ModificationRecorded": self._modification_recorded,
            "AdoptionAdvanced": self._adoption_advanced,
            "EvaluationRecorded": self._evaluation_recorded,
            "ReplicationDiscontinued": self._replication_discontinued,
        }

    def project(self, conn: Connection, record: EventRecord) -> None:
        handler = self._handlers.get(record.type)
        if handler is not None:
            handler(conn, record)

    # --- innovations --------------------------------------------------------------------------

    def _innovation_registered(self, conn: Connection, record: EventRecord) -> None:
        if _innovation_doc(conn, record.aggregate_id) is not None:
            return
        data = record.data
        doc: Doc = {
            "id": record.aggregate_id,
            "region": data["region"],
            "region_name": regions.name_of(data["region"]),
            "name": data["name"],
            "form": data["form"],
            "urusan": list(data["urusan"]),
            "initiator": data["initiator"],
            "stage": data["stage"],
            "digital": data["digital"],
            "started_on": data["started_on"],
            "description": data["description"],
            "objectives": data.get("objectives"),
            "benefits": data.get("benefits"),
            "outcomes": data.get("outcomes"),
            "retired": False,
            "retired_on": None,
            "stage_dates": {data["stage"]: data["started_on"]},
            "evaluations": [],
            "version": record.version,
            "replication_count": _count_at_penerapan(conn, record.aggregate_id),
        }
        conn.execute(
            _ADD_INNOVATION,
            {
                "innovation_id": record.aggregate_id,
                "created_position": record.position,
                "doc": doc,
                **_innovation_columns(doc),
            },
        )
        _set_urusan(conn, record.aggregate_id, doc["urusan"])
        _refresh_replications_of(conn, doc)

    def _innovation_stage_advanced(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["stage"] = record.data["stage"]
            doc["stage_dates"] = {**doc["stage_dates"], record.data["stage"]: record.data["effective_on"]}

        self._change_innovation(conn, record, change)

    def _innovation_revised(self, conn: Connection, record: EventRecord) -> None:
        changes: dict[str, Any] = record.data["changes"]

        def change(doc: Doc) -> None:
            for field, value in changes.items():
                doc[field] = list(value) if field == "urusan" else value

        doc = self._change_innovation(conn, record, change)
        if doc is None:
            return
        if "urusan" in changes:
            _set_urusan(conn, record.aggregate_id, doc["urusan"])
        if "name" in changes or "urusan" in changes:
            _refresh_replications_of(conn, doc)

    def _innovation_evaluated(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["evaluations"] = [*doc["evaluations"], evaluation_of(record.data)]

        doc = self._change_innovation(conn, record, change)
        if doc is not None:
            _add_evaluation(conn, record, "innovation", doc["region"])

    def _innovation_retired(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["retired"] = True
            doc["retired_on"] = record.data["effective_on"]

        self._change_innovation(conn, record, change)

    def _change_innovation(
        self, conn: Connection, record: EventRecord, change: Callable[[Doc], None]
    ) -> Doc | None:
        """Apply one later event to an innovation's document; None when that version is already in."""
        doc = _innovation_doc(conn, record.aggregate_id)
        if doc is None:
            raise MissingDocument(f"{record.type} at {record.position}: no innovation {record.aggregate_id}")
        if record.version <= doc["version"]:
            return None
        change(doc)
        doc["version"] = record.version
        _save_innovation(conn, doc)
        return doc

    # --- replications -------------------------------------------------------------------------

    def _replication_proposed(self, conn: Connection, record: EventRecord) -> None:
        if _replication_doc(conn, record.aggregate_id) is not None:
            return
        data = record.data
        innovation = _innovation_doc(conn, data["innovation_id"])
        doc: Doc = {
            "id": record.aggregate_id,
            "innovation_id": data["innovation_id"],
            "innovation_name": innovation["name"] if innovation else None,
            "source_region": data["source_region"],
            "source_region_name": regions.name_of(data["source_region"]),
            "adopting_region": data["adopting_region"],
            "adopting_region_name": regions.name_of(data["adopting_region"]),
            "facilitator": data.get("facilitator"),
            "rationale": data["rationale"],
            "status": ReplicationStatus.DIUSULKAN.value,
            "generation": data["generation"],
            "proposed_on": data["proposed_on"],
            "agreement": None,
            "stages": {"uji_coba": None, "penerapan": None},
            "modifications": [],
            "evaluations": [],
            "rejection": None,
            "discontinuation": None,
            "version": record.version,
        }
        conn.execute(
            _ADD_REPLICATION,
            {
                "replication_id": record.aggregate_id,
                "created_position": record.position,
                "doc": doc,
                **_replication_columns(doc),
                **_innovation_facets(innovation),
            },
        )

    def _agreement_signed(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            data = record.data
            doc["status"] = ReplicationStatus.DISEPAKATI.value
            doc["agreement"] = {
                "document": data["document"],
                "document_number": data["document_number"],
                "signed_on": data["signed_on"],
                "document_url": data.get("document_url"),
            }

        self._change_replication(conn, record, change)

    def _replication_rejected(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["status"] = ReplicationStatus.DITOLAK.value
            doc["rejection"] = {"reason": record.data["reason"], "rejected_on": record.data["rejected_on"]}

        self._change_replication(conn, record, change)

    def _modification_recorded(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            data = record.data
            modification = {
                "modification_id": data["modification_id"],
                "component": data["component"],
                "nature": data["nature"],
                "core": data["core"],
                "description": data["description"],
                "reason": data["reason"],
                "recorded_on": data["recorded_on"],
            }
            doc["modifications"] = [*doc["modifications"], modification]

        self._change_replication(conn, record, change)
        log_modification(conn, record)  # the adaptation log (projections/adaptation.py)

    def _adoption_advanced(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["status"] = record.data["stage"]
            doc["stages"] = {**doc["stages"], record.data["stage"]: record.data["effective_on"]}

        self._change_replication(conn, record, change)

    def _evaluation_recorded(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["evaluations"] = [*doc["evaluations"], evaluation_of(record.data)]

        doc = self._change_replication(conn, record, change)
        if doc is not None:
            _add_evaluation(conn, record, "replication", doc["adopting_region"])

    def _replication_discontinued(self, conn: Connection, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["status"] = ReplicationStatus.DIHENTIKAN.value
            doc["discontinuation"] = {
                "reason": record.data["reason"],
                "effective_on": record.data["effective_on"],
            }

        self._change_replication(conn, record, change)

    def _change_replication(
        self, conn: Connection, record: EventRecord, change: Callable[[Doc], None]
    ) -> Doc | None:
        """Apply one later event to a replication's document; None when that version is already in."""
        doc = _replication_doc(conn, record.aggregate_id)
        if doc is None:
            raise MissingDocument(f"{record.type} at {record.position}: no replication {record.aggregate_id}")
        if record.version <= doc["version"]:
            return None
        status_before = doc["status"]
        change(doc)
        doc["version"] = record.version
        conn.execute(_SET_REPLICATION, {"b_id": doc["id"], "doc": doc, **_replication_columns(doc)})
        if PENERAPAN in (status_before, doc["status"]) and status_before != doc["status"]:
            _refresh_replication_count(conn, doc["innovation_id"])
        return doc


def evaluation_of(data: dict[str, Any]) -> Doc:
    keys = (
        "evaluation_id",
        "year",
        "catalogue",
        "scores",
        "evidence",
        "total",
        "score",
        "category",
        "notes",
        "evaluated_on",
    )
    return {key: data.get(key) for key in keys}


def _add_evaluation(conn: Connection, record: EventRecord, subject_kind: str, region: str) -> None:
    """A row for the region score, and which evaluation of its (subject, year) now counts: the latest by
    `evaluated_on`, then by position (index.md)."""
    data = record.data
    subject, year = record.aggregate_id, int(data["year"])
    conn.execute(
        _ADD_EVALUATION,
        {
            "evaluation_id": str(data["evaluation_id"]),
            "position": record.position,
            "subject_kind": subject_kind,
            "subject_id": subject,
            "region": region,
            "year": year,
            "catalogue": data["catalogue"],
            "evaluated_on": day(data["evaluated_on"]),
            "total": int(data["total"]),
            "score": str(round_half_up(Decimal(str(data["score"])))),
            "category": data["category"],
            "latest": False,
        },
    )
    rows = conn.execute(_EVALUATIONS_OF, {"b_subject": subject, "b_year": year}).all()
    latest = max(rows, key=lambda row: (row.evaluated_on, row.position)).evaluation_id
    conn.execute(_MARK_LATEST, {"b_subject": subject, "b_year": year, "b_latest": latest})


# --- rows and documents -----------------------------------------------------------------------


def _innovation_doc(conn: Connection, innovation_id: str) -> Doc | None:
    found = conn.execute(_INNOVATION_DOC, {"b_id": innovation_id}).scalar_one_or_none()
    return dict(found) if found is not None else None


def _replication_doc(conn: Connection, replication_id: str) -> Doc | None:
    found = conn.execute(_REPLICATION_DOC, {"b_id": replication_id}).scalar_one_or_none()
    return dict(found) if found is not None else None


def _save_innovation(conn: Connection, doc: Doc) -> None:
    conn.execute(_SET_INNOVATION, {"b_id": doc["id"], "doc": doc, **_innovation_columns(doc)})


def _innovation_columns(doc: Doc) -> dict[str, Any]:
    stage_dates: dict[str, str] = doc["stage_dates"]
    return {
        "region": doc["region"],
        "province": province_of(doc["region"]),
        "name": doc["name"],
        "name_folded": fold(doc["name"]),
        "form": doc["form"],
        "stage": doc["stage"],
        "retired": doc["retired"],
        "started_on": day(doc["started_on"]),
        "uji_coba_on": day(stage_dates.get("uji_coba")),
        "penerapan_on": day(stage_dates.get("penerapan")),
        "retired_on": day(doc["retired_on"]),
        "version": doc["version"],
    }


def _replication_columns(doc: Doc) -> dict[str, Any]:
    agreement = doc["agreement"] or {}
    rejection = doc["rejection"] or {}
    discontinuation = doc["discontinuation"] or {}
    return {
        "innovation_id": doc["innovation_id"],
        "source_region": doc["source_region"],
        "source_province": province_of(doc["source_region"]),
        "adopting_region": doc["adopting_region"],
        "adopting_province": province_of(doc["adopting_region"]),
        "status": doc["status"],
        "generation": doc["generation"],
        "proposed_on": day(doc["proposed_on"]),
        "signed_on": day(agreement.get("signed_on")),
        "rejected_on": day(rejection.get("rejected_on")),
        "uji_coba_on": day(doc["stages"].get("uji_coba")),
        "penerapan_on": day(doc["stages"].get("penerapan")),
        "discontinued_on": day(discontinuation.get("effective_on")),
        "version": doc["version"],
    }


def _innovation_facets(innovation: Doc | None) -> dict[str, Any]:
    """What a replication carries of its innovation, for filters."""
    if innovation is None:
        return {"form": None, "urusan": []}
    return {"form": innovation["form"], "urusan": list(innovation["urusan"])}


def _set_urusan(conn: Connection, innovation_id: str, urusan: list[str]) -> None:
    conn.execute(_CLEAR_URUSAN, {"b_id": innovation_id})
    if urusan:
        conn.execute(_ADD_URUSAN, [{"innovation_id": innovation_id, "urusan": u} for u in urusan])


def _refresh_replications_of(conn: Connection, innovation: Doc) -> None:
    """Bring the innovation's name, form and urusan into every replication of it."""
    facets = _innovation_facets(innovation)
    changes = [
        {"b_id": replication_id, "doc": {**stored, "innovation_name": innovation["name"]}, **facets}
        for replication_id, stored in conn.execute(_REPLICATIONS_OF, {"b_id": innovation["id"]})
    ]
    if changes:
        conn.execute(_SET_REPLICATION, changes)


def _count_at_penerapan(conn: Connection, innovation_id: str) -> int:
    """Distinct adopting regions whose replication of the innovation is at penerapan."""
    return int(conn.execute(_COUNT_AT_PENERAPAN, {"b_id": innovation_id}).scalar_one())


def _refresh_replication_count(conn: Connection, innovation_id: str) -> None:
    doc = _innovation_doc(conn, innovation_id)
    if doc is None:
        return  # its registration is not applied yet; it counts then
    count = _count_at_penerapan(conn, innovation_id)
    if doc["replication_count"] != count:
        doc["replication_count"] = count
        conn.execute(_SET_INNOVATION, {"b_id": innovation_id, "doc": doc})


# --- values -----------------------------------------------------------------------------------


def day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def fold(text: str) -> str:
    """The form names are searched in: case-insensitive, also beyond ASCII."""
    return text.casefold()


def province_of(code: str) -> str:
    region = regions.find(code)
    return region.province if region is not None else code[:2]
