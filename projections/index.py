"""The "index" projection: innovation and replication documents (the resources of api.md) and the columns that
listings filter and index views count on.

Each document is laid down by its aggregate's events alone; the columns are derived from the document, so they
can never disagree with it. Two things cross aggregates: a replication shows its innovation's current name (and
carries its form and urusan for filters), and an innovation shows how many distinct regions replicate it up to
`penerapan`. Both are kept whichever of the two aggregates' events arrives first, so the same code can be fed
from streams that are ordered per aggregate only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from domain import regions
from domain.catalogue import round_half_up
from domain.enums import ReplicationStatus
from domain.published import EventRecord
from projections.adaptation import log_modifications, modification_row
from projections.bulk import insert_dicts, update_dicts
from projections.tables import INDEX_TABLES, evaluations, innovation_urusan, innovations, replications
from projections.tracking import IN_CHUNK, Projection

Doc = dict[str, Any]
Handler = Callable[["Batch", EventRecord], None]

PENERAPAN = ReplicationStatus.PENERAPAN.value

# Statements built once (building and keying a statement costs more than running it on SQLite).
_INNOVATION_DOCS = select(innovations.c.innovation_id, innovations.c.doc).where(
    innovations.c.innovation_id.in_(bindparam("b_ids", expanding=True))
)
_REPLICATION_DOCS = select(replications.c.replication_id, replications.c.doc).where(
    replications.c.replication_id.in_(bindparam("b_ids", expanding=True))
)
_REPLICATIONS_OF = select(
    replications.c.replication_id, replications.c.innovation_id, replications.c.doc
).where(replications.c.innovation_id.in_(bindparam("b_ids", expanding=True)))
# Which stored replications of an innovation are at penerapan, and where: from the covering index
# `replications_by_innovation_status`, without reading (and decoding) any document.
_AT_PENERAPAN = select(
    replications.c.innovation_id, replications.c.replication_id, replications.c.adopting_region
).where(
    replications.c.innovation_id.in_(bindparam("b_ids", expanding=True)), replications.c.status == PENERAPAN
)
_CLEAR_URUSAN = delete(innovation_urusan).where(innovation_urusan.c.innovation_id == bindparam("b_id"))
_EVALUATIONS_OF = select(
    evaluations.c.evaluation_id, evaluations.c.evaluated_on, evaluations.c.position
).where(evaluations.c.subject_id == bindparam("b_subject"), evaluations.c.year == bindparam("b_year"))
_EVALUATIONS_OF_SUBJECTS = select(
    evaluations.c.subject_id,
    evaluations.c.year,
    evaluations.c.evaluation_id,
    evaluations.c.evaluated_on,
    evaluations.c.position,
).where(evaluations.c.subject_id.in_(bindparam("b_subjects", expanding=True)))
EVALUATED = ("InnovationEvaluated", "EvaluationRecorded")
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
    # A batch reads the stored replications of an innovation (and which are at penerapan) and the evaluations of
    # a (subject, year); everything else it reads or updates by primary key.
    indexes_read_while_applying = frozenset(
        {"replications_by_innovation_status", "evaluations_by_subject_year"}
    )

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
        self.project_all(conn, [record])

    def project_all(self, conn: Connection, records: Sequence[EventRecord]) -> None:
        """Lay records down in their order, as `project` one after the other would: the documents they touch are
        read once and written once, and the rows they add are inserted together."""
        batch = Batch(conn)
        batch.prefetch(records)
        for record in records:
            handler = self._handlers.get(record.type)
            if handler is not None:
                handler(batch, record)
        batch.flush()

    # --- innovations --------------------------------------------------------------------------

    def _innovation_registered(self, batch: Batch, record: EventRecord) -> None:
        if batch.innovation(record.aggregate_id) is not None:
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
            "replication_count": batch.count_at_penerapan(record.aggregate_id),
        }
        batch.add_innovation(doc, record.position)
        batch.set_urusan(record.aggregate_id, doc["urusan"])
        batch.refresh_replications_of(doc)

    def _innovation_stage_advanced(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["stage"] = record.data["stage"]
            doc["stage_dates"] = {**doc["stage_dates"], record.data["stage"]: record.data["effective_on"]}

        self._change_innovation(batch, record, change)

    def _innovation_revised(self, batch: Batch, record: EventRecord) -> None:
        changes: dict[str, Any] = record.data["changes"]

        def change(doc: Doc) -> None:
            for field, value in changes.items():
                doc[field] = list(value) if field == "urusan" else value

        doc = self._change_innovation(batch, record, change)
        if doc is None:
            return
        if "urusan" in changes:
            batch.set_urusan(record.aggregate_id, doc["urusan"])
        if "name" in changes or "urusan" in changes:
            batch.refresh_replications_of(doc)

    def _innovation_evaluated(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["evaluations"] = [*doc["evaluations"], evaluation_of(record.data)]

        doc = self._change_innovation(batch, record, change)
        if doc is not None:
            batch.add_evaluation(record, "innovation", doc["region"])

    def _innovation_retired(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["retired"] = True
            doc["retired_on"] = record.data["effective_on"]

        self._change_innovation(batch, record, change)

    def _change_innovation(
        self, batch: Batch, record: EventRecord, change: Callable[[Doc], None]
    ) -> Doc | None:
        """Apply one later event to an innovation's document; None when that version is already in."""
        doc = batch.innovation(record.aggregate_id)
        if doc is None:
            raise MissingDocument(f"{record.type} at {record.position}: no innovation {record.aggregate_id}")
        if record.version <= doc["version"]:
            return None
        change(doc)
        doc["version"] = record.version
        batch.innovation_changed(doc["id"])
        return doc

    # --- replications -------------------------------------------------------------------------

    def _replication_proposed(self, batch: Batch, record: EventRecord) -> None:
        if batch.replication(record.aggregate_id) is not None:
            return
        data = record.data
        innovation = batch.innovation(data["innovation_id"])
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
        batch.add_replication(doc, record.position, _innovation_facets(innovation))

    def _agreement_signed(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            data = record.data
            doc["status"] = ReplicationStatus.DISEPAKATI.value
            doc["agreement"] = {
                "document": data["document"],
                "document_number": data["document_number"],
                "signed_on": data["signed_on"],
                "document_url": data.get("document_url"),
            }

        self._change_replication(batch, record, change)

    def _replication_rejected(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["status"] = ReplicationStatus.DITOLAK.value
            doc["rejection"] = {"reason": record.data["reason"], "rejected_on": record.data["rejected_on"]}

        self._change_replication(batch, record, change)

    def _modification_recorded(self, batch: Batch, record: EventRecord) -> None:
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

        self._change_replication(batch, record, change)
        batch.log_modification(record)  # the adaptation log (projections/adaptation.py)

    def _adoption_advanced(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["status"] = record.data["stage"]
            doc["stages"] = {**doc["stages"], record.data["stage"]: record.data["effective_on"]}

        self._change_replication(batch, record, change)

    def _evaluation_recorded(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["evaluations"] = [*doc["evaluations"], evaluation_of(record.data)]

        doc = self._change_replication(batch, record, change)
        if doc is not None:
            batch.add_evaluation(record, "replication", doc["adopting_region"])

    def _replication_discontinued(self, batch: Batch, record: EventRecord) -> None:
        def change(doc: Doc) -> None:
            doc["status"] = ReplicationStatus.DIHENTIKAN.value
            doc["discontinuation"] = {
                "reason": record.data["reason"],
                "effective_on": record.data["effective_on"],
            }

        self._change_replication(batch, record, change)

    def _change_replication(
        self, batch: Batch, record: EventRecord, change: Callable[[Doc], None]
    ) -> Doc | None:
        """Apply one later event to a replication's document; None when that version is already in."""
        doc = batch.replication(record.aggregate_id)
        if doc is None:
            raise MissingDocument(f"{record.type} at {record.position}: no replication {record.aggregate_id}")
        if record.version <= doc["version"]:
            return None
        status_before = doc["status"]
        change(doc)
        doc["version"] = record.version
        batch.replication_changed(doc["id"])
        if PENERAPAN in (status_before, doc["status"]) and status_before != doc["status"]:
            batch.refresh_replication_count(doc["innovation_id"])
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


# --- one batch of records ---------------------------------------------------------------------


class Batch:
    """The index tables as a run of records leaves them, kept in memory until `flush`: each document is read at
    most once (`prefetch` reads those of the batch's aggregates together) and written once, whatever number of
    the batch's records change it; the rows the records add are inserted together. Everything a later record of
    the batch reads (documents, the replications of an innovation, the evaluations of a subject and year) is
    answered from what the earlier ones did, so the tables end as applying the records one by one leaves them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.innovations: dict[str, Doc] = {}
        self.replications: dict[str, Doc] = {}
        self.absent: set[str] = set()  # ids known to have no document (yet)
        self.created: dict[str, int] = {}  # id -> created_position, for documents this batch creates
        self.changed: set[str] = set()  # documents (stored before the batch) to write back
        self.facets: dict[
            str, dict[str, Any]
        ] = {}  # replication id -> its innovation's form and urusan, if set
        self.replications_of_innovation: dict[str, set[str]] = {}  # complete for the innovations it holds
        # innovation id -> {replication id: adopting region} of its replications stored at penerapan
        self.stored_at_penerapan: dict[str, dict[str, str]] = {}
        self.urusan: dict[str, list[str]] = {}
        self.evaluation_rows: list[dict[str, Any]] = []
        self.evaluations_of: dict[tuple[str, int], list[tuple[date, int, str]]] = {}
        # the evaluations stored before the batch, of the (subject, year)s its records evaluate (prefetched)
        self.stored_evaluations: dict[tuple[str, int], list[tuple[date, int, str]]] = {}
        self.modification_rows: dict[str, dict[str, Any]] = {}

    # --- reading ---

    def prefetch(self, records: Sequence[EventRecord]) -> None:
        """Read the documents of the batch's aggregates (and the innovations its replications name) at once."""
        wanted_innovations: set[str] = set()
        wanted_replications: set[str] = set()
        for record in records:
            if record.aggregate_type == "Innovation":
                wanted_innovations.add(record.aggregate_id)
            else:
                wanted_replications.add(record.aggregate_id)
                if record.type == "ReplicationProposed":
                    wanted_innovations.add(record.data["innovation_id"])
        self._read_documents(_REPLICATION_DOCS, sorted(wanted_replications), self.replications)
        # Innovations whose count of replications at penerapan the batch may change, or whose name and urusan go
        # into their replications: their documents and their replications, read together now rather than one
        # innovation at a time as the records come to them.
        # (The replications of an innovation registered or revised are read whole; for one whose count alone may
        # change, the status and region columns of those at penerapan are enough.)
        described: set[str] = set()
        counted: set[str] = set()
        for record in records:
            if record.type == "InnovationRegistered" or (
                record.type == "InnovationRevised"
                and ("name" in record.data["changes"] or "urusan" in record.data["changes"])
            ):
                described.add(record.aggregate_id)
            elif record.type in ("AdoptionAdvanced", "ReplicationDiscontinued", "ReplicationRejected"):
                doc = self.replications.get(record.aggregate_id)
                if doc is not None:
                    counted.add(doc["innovation_id"])
        wanted_innovations |= described | counted
        self._read_documents(_INNOVATION_DOCS, sorted(wanted_innovations), self.innovations)
        self._read_replications_of(sorted(described))
        self._read_at_penerapan(sorted(counted - described))
        self._read_evaluations(records)

    def _read_at_penerapan(self, innovation_ids: list[str]) -> None:
        """Which stored replications of these innovations are at penerapan, and where (the covering index
        `replications_by_innovation_status`, no document read), for all of them in one read per chunk."""
        ids = [i for i in innovation_ids if i not in self.stored_at_penerapan]
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            found: dict[str, dict[str, str]] = {innovation_id: {} for innovation_id in chunk}
            for innovation_id, key, region in self.conn.execute(_AT_PENERAPAN, {"b_ids": chunk}):
                found[innovation_id][key] = region
            self.stored_at_penerapan.update(found)

    def _read_evaluations(self, records: Sequence[EventRecord]) -> None:
        """The evaluations stored for the (subject, year)s the batch's records evaluate, in one read (not one per
        record); a record whose year cannot be read is left to `add_evaluation`, which fails it as before."""
        wanted: set[tuple[str, int]] = set()
        for record in records:
            if record.type in EVALUATED:
                try:
                    wanted.add((record.aggregate_id, int(record.data["year"])))
                except (KeyError, TypeError, ValueError):
                    continue
        if not wanted:
            return
        found: dict[tuple[str, int], list[tuple[date, int, str]]] = {key: [] for key in wanted}
        subjects = sorted({subject for subject, _ in wanted})
        for start in range(0, len(subjects), IN_CHUNK):
            chunk = subjects[start : start + IN_CHUNK]
            for row in self.conn.execute(_EVALUATIONS_OF_SUBJECTS, {"b_subjects": chunk}):
                rows = found.get((row.subject_id, row.year))
                if rows is not None:
                    rows.append((row.evaluated_on, row.position, row.evaluation_id))
        self.stored_evaluations.update(found)

    def _read_documents(self, statement: Any, ids: list[str], into: dict[str, Doc]) -> None:
        ids = [i for i in ids if i not in into and i not in self.absent]
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            found = {key: dict(doc) for key, doc in self.conn.execute(statement, {"b_ids": chunk})}
            into.update(found)
            self.absent.update(i for i in chunk if i not in found)

    def innovation(self, innovation_id: str) -> Doc | None:
        if innovation_id not in self.innovations and innovation_id not in self.absent:
            self._read_documents(_INNOVATION_DOCS, [innovation_id], self.innovations)
        return self.innovations.get(innovation_id)

    def replication(self, replication_id: str) -> Doc | None:
        if replication_id not in self.replications and replication_id not in self.absent:
            self._read_documents(_REPLICATION_DOCS, [replication_id], self.replications)
        return self.replications.get(replication_id)

    def replications_of(self, innovation_id: str) -> list[Doc]:
        known = self.replications_of_innovation.get(innovation_id)
        if known is None:
            self._read_replications_of([innovation_id])
            known = self.replications_of_innovation[innovation_id]
        return [self.replications[key] for key in sorted(known)]

    def _read_replications_of(self, innovation_ids: list[str]) -> None:
        """Know every replication of these innovations: those the batch holds and those stored."""
        wanted = [i for i in innovation_ids if i not in self.replications_of_innovation]
        if not wanted:
            return
        held: dict[str, set[str]] = {innovation_id: set() for innovation_id in wanted}
        for key, doc in self.replications.items():
            if doc["innovation_id"] in held:
                held[doc["innovation_id"]].add(key)
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            for replication_id, innovation_id, stored in self.conn.execute(
                _REPLICATIONS_OF, {"b_ids": chunk}
            ):
                if replication_id not in self.replications:  # what the batch holds is newer
                    self.replications[replication_id] = dict(stored)
                    self.absent.discard(replication_id)
                held[innovation_id].add(replication_id)
        self.replications_of_innovation.update(held)

    def count_at_penerapan(self, innovation_id: str) -> int:
        """Distinct adopting regions whose replication of the innovation is at penerapan: the documents the
        batch holds as they now are, the others as stored (their status and region columns only)."""
        known = self.replications_of_innovation.get(innovation_id)
        if known is not None:
            held = [self.replications[key] for key in known]
            return len({d["adopting_region"] for d in held if d["status"] == PENERAPAN})
        self._read_at_penerapan([innovation_id])  # once per batch: the tables do not change before `flush`
        stored = self.stored_at_penerapan[innovation_id]
        regions_at = {region for key, region in stored.items() if key not in self.replications}
        regions_at.update(
            d["adopting_region"]
            for d in self.replications.values()
            if d["innovation_id"] == innovation_id and d["status"] == PENERAPAN
        )
        return len(regions_at)

    # --- changing ---

    def add_innovation(self, doc: Doc, position: int) -> None:
        self.innovations[doc["id"]] = doc
        self.absent.discard(doc["id"])
        self.created[doc["id"]] = position

    def innovation_changed(self, innovation_id: str) -> None:
        if innovation_id not in self.created:
            self.changed.add(innovation_id)

    def add_replication(self, doc: Doc, position: int, facets: dict[str, Any]) -> None:
        self.replications[doc["id"]] = doc
        self.absent.discard(doc["id"])
        self.created[doc["id"]] = position
        self.facets[doc["id"]] = facets
        known = self.replications_of_innovation.get(doc["innovation_id"])
        if known is not None:
            known.add(doc["id"])

    def replication_changed(self, replication_id: str) -> None:
        if replication_id not in self.created:
            self.changed.add(replication_id)

    def set_urusan(self, innovation_id: str, urusan: list[str]) -> None:
        self.urusan[innovation_id] = list(urusan)

    def refresh_replications_of(self, innovation: Doc) -> None:
        """Bring the innovation's name, form and urusan into every replication of it."""
        facets = _innovation_facets(innovation)
        for doc in self.replications_of(innovation["id"]):
            doc["innovation_name"] = innovation["name"]
            self.facets[doc["id"]] = dict(facets)
            self.replication_changed(doc["id"])

    def refresh_replication_count(self, innovation_id: str) -> None:
        doc = self.innovation(innovation_id)
        if doc is None:
            return  # its registration is not applied yet; it counts then
        count = self.count_at_penerapan(innovation_id)
        if doc["replication_count"] != count:
            doc["replication_count"] = count
            self.innovation_changed(innovation_id)

    def add_evaluation(self, record: EventRecord, subject_kind: str, region: str) -> None:
        """A row for the region score, and which evaluation of its (subject, year) now counts: the latest by
        `evaluated_on`, then by position (index.md)."""
        data = record.data
        subject, year = record.aggregate_id, int(data["year"])
        evaluated_on = day(data["evaluated_on"])
        assert evaluated_on is not None
        key = (subject, year)
        if key not in self.evaluations_of:
            if subject in self.created:  # a document of this batch has no evaluations stored before it
                self.evaluations_of[key] = []
            elif key in self.stored_evaluations:
                self.evaluations_of[key] = list(self.stored_evaluations[key])
            else:
                self.evaluations_of[key] = [
                    (row.evaluated_on, row.position, row.evaluation_id)
                    for row in self.conn.execute(_EVALUATIONS_OF, {"b_subject": subject, "b_year": year})
                ]
        self.evaluations_of[key].append((evaluated_on, record.position, str(data["evaluation_id"])))
        self.evaluation_rows.append(
            {
                "evaluation_id": str(data["evaluation_id"]),
                "position": record.position,
                "subject_kind": subject_kind,
                "subject_id": subject,
                "region": region,
                "year": year,
                "catalogue": data["catalogue"],
                "evaluated_on": evaluated_on,
                "total": int(data["total"]),
                "score": str(round_half_up(Decimal(str(data["score"])))),
                "category": data["category"],
                "latest": False,
            }
        )

    def log_modification(self, record: EventRecord) -> None:
        row = modification_row(record)
        self.modification_rows.setdefault(row["modification_id"], row)

    # --- writing ---

    def flush(self) -> None:
        conn = self.conn
        new_innovations, new_replications = [], []
        set_innovations, set_replications, set_replications_facets = [], [], []
        for key, position in self.created.items():
            if key in self.innovations:
                doc = self.innovations[key]
                new_innovations.append(
                    {
                        "innovation_id": key,
                        "created_position": position,
                        "doc": doc,
                        **_innovation_columns(doc),
                    }
                )
            else:
                doc = self.replications[key]
                new_replications.append(
                    {
                        "replication_id": key,
                        "created_position": position,
                        "doc": doc,
                        **_replication_columns(doc),
                        **self.facets[key],
                    }
                )
        for key in sorted(self.changed):
            if key in self.innovations:
                doc = self.innovations[key]
                set_innovations.append({"innovation_id": key, "doc": doc, **_innovation_columns(doc)})
            else:
                doc = self.replications[key]
                row = {"replication_id": key, "doc": doc, **_replication_columns(doc)}
                if key in self.facets:
                    set_replications_facets.append({**row, **self.facets[key]})
                else:
                    set_replications.append(row)
        # Rows go to the driver as they are (projections/bulk.py): SQLAlchemy's processing of each row costs more
        # than the database's work for it.
        insert_dicts(conn, innovations, new_innovations)
        insert_dicts(conn, replications, new_replications)
        update_dicts(conn, innovations, "innovation_id", set_innovations)
        update_dicts(conn, replications, "replication_id", set_replications)
        update_dicts(conn, replications, "replication_id", set_replications_facets)
        if self.urusan:
            conn.execute(_CLEAR_URUSAN, [{"b_id": key} for key in self.urusan])
            rows = [
                {"innovation_id": key, "urusan": u} for key, urusan in self.urusan.items() for u in urusan
            ]
            insert_dicts(conn, innovation_urusan, rows)
        if self.evaluation_rows:
            # Which evaluation of each (subject, year) counts: set in the rows inserted where the batch holds
            # every evaluation of it (its subject is new), updated in the stored rows otherwise.
            latest = {key: max(rows)[2] for key, rows in self.evaluations_of.items()}
            marked: list[tuple[str, int]] = []
            for row in self.evaluation_rows:
                subject_year = (row["subject_id"], row["year"])
                if row["subject_id"] in self.created:
                    row["latest"] = row["evaluation_id"] == latest[subject_year]
                else:
                    marked.append(subject_year)
            insert_dicts(conn, evaluations, self.evaluation_rows)
            if marked:
                conn.execute(
                    _MARK_LATEST,
                    [
                        {"b_subject": subject, "b_year": year, "b_latest": latest[subject, year]}
                        for subject, year in dict.fromkeys(marked)
                    ],
                )
        if self.modification_rows:
            log_modifications(conn, list(self.modification_rows.values()))


# --- rows and documents -----------------------------------------------------------------------


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


# --- values -----------------------------------------------------------------------------------


def day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def fold(text: str) -> str:
    """The form names are searched in: case-insensitive, also beyond ASCII."""
    return text.casefold()


def province_of(code: str) -> str:
    region = regions.find(code)
    return region.province if region is not None else code[:2]
