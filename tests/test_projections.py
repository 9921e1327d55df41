"""The read side: views built from the real event store (SQLite files), kept by the projection runner."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import days_ago, innovation_fields
from sqlalchemy import Connection, select

from domain import regions
from domain.evaluation import EvaluationInput
from domain.published import EventRecord
from projections import (
    AuditProjection,
    IndexProjection,
    ProjectionRunner,
    ViewStore,
    all_projections,
    queries,
    scores,
)
from projections.progress import progress
from projections.queries import InvalidCursor, Page
from projections.tables import (
    INDEX_TABLES,
    audit_events,
    innovations,
    projection_positions,
)
from service.network import InnovationNetwork, read_records

NAMES = ["index", "audit"]
VIEW_TABLES = (*INDEX_TABLES, audit_events)


# --- set-up -----------------------------------------------------------------------------------


def now() -> scores.Period:
    """The current year's score period (figures as of today)."""
    return scores.period_of(None)


def open_views(path: Path) -> ViewStore:
    store = ViewStore(f"sqlite:///{path}")
    store.create_all()
    return store


@pytest.fixture
def views(tmp_path: Path) -> Iterator[ViewStore]:
    store = open_views(tmp_path / "views.sqlite")
    yield store
    store.dispose()


def runner_for(
    network: InnovationNetwork, store: ViewStore, projections: list[Any] | None = None, **options: Any
) -> ProjectionRunner:
    return ProjectionRunner(
        store,
        lambda after, limit: read_records(network, after, limit),
        network.head_position,
        projections if projections is not None else all_projections(),
        **options,
    )


@pytest.fixture
def runner(network: InnovationNetwork, views: ViewStore) -> Iterator[ProjectionRunner]:
    keeper = runner_for(network, views)
    yield keeper
    keeper.stop()


@pytest.fixture
def project(network: InnovationNetwork, runner: ProjectionRunner) -> Callable[[], None]:
    def catch_up() -> None:
        assert runner.catch_up() == network.head_position()

    return catch_up


def register(network: InnovationNetwork, **overrides: Any) -> str:
    return str(network.register_innovation(**innovation_fields(**overrides)).aggregate.id)


def propose(network: InnovationNetwork, innovation_id: str, adopting_region: str, **fields: Any) -> str:
    fields.setdefault("rationale", "Cocok untuk daerah kami.")
    fields.setdefault("proposed_on", days_ago(30))
    outcome = network.propose_replication(
        innovation_id=UUID(innovation_id), adopting_region=adopting_region, **fields
    )
    return str(outcome.aggregate.id)


STEPS = ("disepakati", "uji_coba", "penerapan")


def advance(network: InnovationNetwork, replication_id: str, status: str) -> None:
    """Walk a proposed replication forward to `status` (or reject / discontinue it)."""
    rid = UUID(replication_id)
    if status == "ditolak":
        network.reject_replication(rid, reason="Belum siap.", rejected_on=days_ago(25))
        return
    if status == "dihentikan":
        network.discontinue_replication(rid, reason="Anggaran habis.", effective_on=days_ago(5))
        return
    for step in STEPS[: STEPS.index(status) + 1]:
        if step == "disepakati":
            network.sign_agreement(rid, document="pks", document_number="PKS/1", signed_on=days_ago(25))
        else:
            network.advance_adoption(rid, stage=step, effective_on=days_ago(20 if step == "uji_coba" else 15))


def replication(
    network: InnovationNetwork, innovation_id: str, adopting_region: str, status: str, **kw: Any
) -> str:
    rid = propose(network, innovation_id, adopting_region, **kw)
    if status != "diusulkan":
        advance(network, rid, status)
    return rid


def ids(page: Page) -> list[str]:
    return [item["id"] for item in page.items]


def every_page(fetch: Callable[[str | None], Page]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def snapshot(store: ViewStore) -> dict[str, list[dict[str, Any]]]:
    with store.connect() as conn:
        return {
            table.name: [
                dict(row._mapping) for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in VIEW_TABLES
        }


def evaluation(on: date) -> EvaluationInput:
    return EvaluationInput(year=on.year, scores={"regulasi": 3, "sdm": 2}, evaluated_on=on, evidence={})


class FailsOnce:
    """A projection that raises on one record the first time it sees it (a crash mid-batch)."""

    def __init__(self, inner: Any, position: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.position = position
        self.failures = 0

    def apply(self, conn: Connection, record: EventRecord) -> None:
        if record.position == self.position and self.failures == 0:
            self.failures += 1
            raise RuntimeError(f"simulated crash at {record.position}")
        self.inner.apply(conn, record)


class AlwaysFails:
    name = "index"

    def apply(self, conn: Connection, record: EventRecord) -> None:
        raise RuntimeError("broken projection")


# --- innovations ------------------------------------------------------------------------------


def test_registered_innovation_is_projected_as_its_resource(network, admin, views, project):
    innovation_id = register(network, objectives="Menjangkau desa terpencil.")
    project()

    assert queries.get_innovation(views, innovation_id) == {
        "id": innovation_id,
        "region": "35.04",
        "region_name": "Kabupaten Tulungagung",
        "name": "Layanan Kesehatan Keliling",
        "form": "pelayanan_publik",
        "urusan": ["kesehatan"],
        "initiator": "perangkat_daerah",
        "stage": "penerapan",
        "digital": False,
        "started_on": days_ago(400).isoformat(),
        "description": "Mobile health services for remote villages.",
        "objectives": "Menjangkau desa terpencil.",
        "benefits": None,
        "outcomes": None,
        "retired": False,
        "retired_on": None,
        "stage_dates": {"penerapan": days_ago(400).isoformat()},
        "evaluations": [],
        "version": 1,
        "replication_count": 0,
    }


def test_unknown_innovation_is_not_found(views):
    assert queries.get_innovation(views, "00000000-0000-0000-0000-000000000000") is None


def test_innovation_stage_evaluation_and_retirement_reach_its_document(network, admin, views, project):
    innovation_id = register(network, stage="inisiatif", started_on=days_ago(100))
    iid = UUID(innovation_id)
    network.advance_innovation_stage(iid, "uji_coba", days_ago(60))
    network.evaluate_innovation(iid, evaluation(days_ago(50)))
    network.retire_innovation(iid, "Diganti sistem baru.", days_ago(10))
    project()

    doc = queries.get_innovation(views, innovation_id)
    assert doc is not None
    assert doc["stage"] == "uji_coba"
    assert doc["stage_dates"] == {
        "inisiatif": days_ago(100).isoformat(),
        "uji_coba": days_ago(60).isoformat(),
    }
    assert [(e["total"], e["evaluated_on"]) for e in doc["evaluations"]] == [(13, days_ago(50).isoformat())]
    assert set(doc["evaluations"][0]) == {
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
    }
    assert (doc["retired"], doc["retired_on"], doc["version"]) == (True, days_ago(10).isoformat(), 4)


@pytest.fixture
def three_innovations(network, admin, project) -> dict[str, str]:
    made = {
        "kesehatan": register(network),
        "sekolah": register(
            network,
            region="33.01",
            name="Sekolah Digital Terpadu",
            form="tata_kelola",
            urusan=["pendidikan", "sosial"],
            stage="uji_coba",
        ),
        "tani": register(
            network, region="35.71", name="Tani Makmur", form="urusan_pemerintahan", urusan=["pertanian"]
        ),
    }
    network.retire_innovation(UUID(made["tani"]), "Selesai.", days_ago(1))
    project()
    return made


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["kesehatan", "sekolah", "tani"]),
        ({"region": "35.04"}, ["kesehatan"]),
        ({"province": "35"}, ["kesehatan", "tani"]),
        ({"form": "tata_kelola"}, ["sekolah"]),
        ({"urusan": "sosial"}, ["sekolah"]),
        ({"stage": "penerapan"}, ["kesehatan", "tani"]),
        ({"q": "DIGITAL"}, ["sekolah"]),
        ({"q": "100%"}, []),
        ({"retired": True}, ["tani"]),
        ({"retired": False}, ["kesehatan", "sekolah"]),
        ({"province": "35", "retired": False}, ["kesehatan"]),
    ],
)
def test_innovation_listing_filters(views, three_innovations, filters, expected):
    page = queries.list_innovations(views, **filters)

    assert ids(page) == [three_innovations[key] for key in expected]
    assert page.next_cursor is None


def test_revision_reaches_the_innovation_its_filters_and_its_replications(network, admin, views, project):
    innovation_id = register(network)
    replication_id = propose(network, innovation_id, "35.05")
    network.revise_innovation(
        UUID(innovation_id), {"name": "Dokter Keliling", "urusan": ["kesehatan", "sosial"]}, "Nama baru."
    )
    project()

    doc = queries.get_innovation(views, innovation_id)
    assert doc is not None
    assert (doc["name"], doc["urusan"], doc["version"]) == ("Dokter Keliling", ["kesehatan", "sosial"], 2)
    assert ids(queries.list_innovations(views, q="dokter")) == [innovation_id]
    assert ids(queries.list_innovations(views, urusan="sosial")) == [innovation_id]
    replication_doc = queries.get_replication(views, replication_id)
    assert replication_doc is not None
    assert replication_doc["innovation_name"] == "Dokter Keliling"
    assert ids(queries.list_replications(views, urusan="sosial")) == [replication_id]


# --- replications -----------------------------------------------------------------------------


def test_proposed_replication_is_projected_as_its_resource(network, admin, views, project):
    innovation_id = register(network)
    replication_id = propose(network, innovation_id, "35.05", facilitator="Bappeda Jawa Timur")
    project()

    assert queries.get_replication(views, replication_id) == {
        "id": replication_id,
        "innovation_id": innovation_id,
        "innovation_name": "Layanan Kesehatan Keliling",
        "source_region": "35.04",
        "source_region_name": "Kabupaten Tulungagung",
        "adopting_region": "35.05",
        "adopting_region_name": "Kabupaten Blitar",
        "facilitator": "Bappeda Jawa Timur",
        "rationale": "Cocok untuk daerah kami.",
        "status": "diusulkan",
        "generation": 1,
        "proposed_on": days_ago(30).isoformat(),
        "agreement": None,
        "stages": {"uji_coba": None, "penerapan": None},
        "modifications": [],
        "evaluations": [],
        "rejection": None,
        "discontinuation": None,
        "version": 1,
    }


def test_replication_document_records_every_step(network, admin, views, project):
    innovation_id = register(network)
    replication_id = propose(network, innovation_id, "35.05")
    rid = UUID(replication_id)
    network.sign_agreement(
        rid, document="mou", document_number="MOU/7", signed_on=days_ago(25), document_url="https://x.id/mou"
    )
    network.record_modification(
        rid,
        component="teknologi",
        nature="penyesuaian",
        core=True,
        description="Aplikasi lokal.",
        reason="Sinyal lemah.",
        recorded_on=days_ago(24),
    )
    network.advance_adoption(rid, stage="uji_coba", effective_on=days_ago(20))
    network.evaluate_replication(rid, evaluation(days_ago(18)))
    network.advance_adoption(rid, stage="penerapan", effective_on=days_ago(15), legal_basis="Perbup 12/2025")
    project()

    doc = queries.get_replication(views, replication_id)
    assert doc is not None
    assert doc["status"] == "penerapan"
    assert doc["agreement"] == {
        "document": "mou",
        "document_number": "MOU/7",
        "signed_on": days_ago(25).isoformat(),
        "document_url": "https://x.id/mou",
    }
    assert doc["stages"] == {"uji_coba": days_ago(20).isoformat(), "penerapan": days_ago(15).isoformat()}
    assert [(m["component"], m["core"], m["recorded_on"]) for m in doc["modifications"]] == [
        ("teknologi", True, days_ago(24).isoformat())
    ]
    assert [(e["total"], e["category"]) for e in doc["evaluations"]] == [(13, "kurang_inovatif")]
    assert doc["version"] == 6


def test_rejected_replication_carries_its_rejection(network, admin, views, project):
    replication_id = replication(network, register(network), "35.05", "ditolak")
    project()

    doc = queries.get_replication(views, replication_id)
    assert doc is not None
    assert (doc["status"], doc["rejection"]) == (
        "ditolak",
        {"reason": "Belum siap.", "rejected_on": days_ago(25).isoformat()},
    )


def test_discontinued_replication_carries_its_discontinuation(network, admin, views, project):
    replication_id = replication(network, register(network), "35.05", "uji_coba")
    advance(network, replication_id, "dihentikan")
    project()

    doc = queries.get_replication(views, replication_id)
    assert doc is not None
    assert (doc["status"], doc["discontinuation"]) == (
        "dihentikan",
        {"reason": "Anggaran habis.", "effective_on": days_ago(5).isoformat()},
    )


@pytest.fixture
def three_replications(network, admin, project) -> dict[str, str]:
    health = register(network)
    school = register(
        network, region="33.01", name="Sekolah Digital", form="tata_kelola", urusan=["pendidikan"]
    )
    made = {
        "health_blitar": replication(network, health, "35.05", "diusulkan"),
        "health_banyumas": replication(network, health, "33.02", "disepakati"),
        "school_kediri": replication(network, school, "35.06", "ditolak"),
        "health": health,
        "school": school,
    }
    project()
    return made


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["health_blitar", "health_banyumas", "school_kediri"]),
        ({"innovation_id": "health"}, ["health_blitar", "health_banyumas"]),
        ({"source_region": "33.01"}, ["school_kediri"]),
        ({"adopting_region": "33.02"}, ["health_banyumas"]),
        ({"province": "33"}, ["health_banyumas", "school_kediri"]),
        ({"province": "35"}, ["health_blitar", "health_banyumas", "school_kediri"]),
        ({"status": "ditolak"}, ["school_kediri"]),
        ({"form": "tata_kelola"}, ["school_kediri"]),
        ({"urusan": "kesehatan"}, ["health_blitar", "health_banyumas"]),
        ({"innovation_id": "health", "province": "33"}, ["health_banyumas"]),
    ],
)
def test_replication_listing_filters(views, three_replications, filters, expected):
    if "innovation_id" in filters:
        filters = {**filters, "innovation_id": three_replications[filters["innovation_id"]]}
    page = queries.list_replications(views, **filters)

    assert ids(page) == [three_replications[key] for key in expected]


def replication_count(views: ViewStore, innovation_id: str) -> int:
    doc = queries.get_innovation(views, innovation_id)
    assert doc is not None
    return int(doc["replication_count"])


def test_replication_count_counts_distinct_adopters_at_penerapan(network, admin, views, project):
    innovation_id = register(network)
    for region, status in [("35.05", "penerapan"), ("35.06", "penerapan"), ("35.07", "uji_coba")]:
        replication(network, innovation_id, region, status)
    project()

    doc = queries.get_innovation(views, innovation_id)
    assert doc is not None
    assert doc["replication_count"] == 2


def test_replication_count_follows_replications_reaching_penerapan_and_being_discontinued(
    network, admin, views, project
):
    innovation_id = register(network)
    first = replication(network, innovation_id, "35.05", "uji_coba")
    project()
    counts = [replication_count(views, innovation_id)]

    network.advance_adoption(UUID(first), stage="penerapan", effective_on=days_ago(15))
    project()
    counts.append(replication_count(views, innovation_id))

    advance(network, first, "dihentikan")
    project()
    counts.append(replication_count(views, innovation_id))

    assert counts == [0, 1, 0]


# --- cursors ----------------------------------------------------------------------------------


def test_innovation_cursors_never_skip_or_repeat_while_new_innovations_arrive(network, admin, views, project):
    registered = [register(network, name=f"Inovasi {n}") for n in range(7)]
    project()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = queries.list_innovations(views, limit=3, cursor=cursor)
        seen.extend(ids(page))
        registered.append(register(network, name=f"Inovasi baru {len(registered)}"))
        project()
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == registered[: len(seen)]
    assert len(seen) == len(set(seen)) >= 9


def test_replication_cursors_never_skip_or_repeat_while_new_replications_arrive(
    network, admin, views, project
):
    innovation_id = register(network)
    adopters = iter(r.code for r in regions.children("35") if r.code != "35.04")
    proposed = [propose(network, innovation_id, next(adopters)) for _ in range(5)]
    project()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = queries.list_replications(views, limit=2, cursor=cursor, province="35")
        seen.extend(ids(page))
        proposed.append(propose(network, innovation_id, next(adopters)))
        project()
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == proposed[: len(seen)]
    assert len(seen) == len(set(seen)) >= 7


@pytest.mark.parametrize(
    "query",
    [
        lambda views, cursor: queries.list_innovations(views, cursor=cursor),
        lambda views, cursor: queries.list_replications(views, cursor=cursor),
        lambda views, cursor: scores.region_rows(views, now(), cursor=cursor),
        lambda views, cursor: scores.region_rows(views, now(), sort="adopters", cursor=cursor),
        lambda views, cursor: queries.innovation_rows(views, cursor=cursor),
        lambda views, cursor: queries.audit_events(views, cursor=cursor),
    ],
    ids=["innovations", "replications", "regions", "regions-by-adopters", "innovation-rows", "audit"],
)
@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "WyJ4Il0", "LTE"])
def test_a_cursor_this_service_did_not_issue_is_rejected(views, query, cursor):
    with pytest.raises(InvalidCursor):
        query(views, cursor)


def test_a_region_cursor_of_another_sort_is_rejected(views):
    cursor = scores.region_rows(views, now(), sort="code", limit=1).next_cursor

    with pytest.raises(InvalidCursor):
        scores.region_rows(views, now(), sort="adopters", cursor=cursor)


# --- regions and index rows -------------------------------------------------------------------


def test_every_region_has_a_row_with_zeros_where_nothing_is_recorded(views):
    rows = every_page(lambda cursor: scores.region_rows(views, now(), limit=100, cursor=cursor))

    assert [row["code"] for row in rows] == [r.code for r in regions.all_regions()]
    aceh = rows[0]
    assert aceh == {
        "code": "11",
        "name": "Aceh",
        "type": "provinsi",
        "province": "11",
        "year": now().year,
        "index": 0.0,
        "category": "tidak_dapat_dinilai",
        "innovations": 0,
        "replications_as_source": {"adopters": 0, "at_penerapan": 0},
        "replications_as_adopter": {
            "diusulkan": 0,
            "disepakati": 0,
            "uji_coba": 0,
            "penerapan": 0,
            "ditolak": 0,
            "dihentikan": 0,
        },
        "rank": 1,  # every index 0 and nothing at penerapan: ranked by code
    }


def test_region_innovations_count_registered_innovations_that_are_not_retired(network, admin, views, project):
    register(network)
    register(network, name="Kedua")
    retired = register(network, name="Ketiga")
    network.retire_innovation(UUID(retired), "Selesai.", days_ago(1))
    project()

    row = scores.region_detail(views, now(), "35.04")
    assert row is not None
    assert row["innovations"] == 2


def test_region_as_source_counts_distinct_adopters_not_rejected_and_those_at_penerapan(
    network, admin, views, project
):
    health = register(network)
    school = register(network, name="Sekolah Digital")
    replication(network, health, "35.05", "penerapan")
    replication(network, school, "35.05", "uji_coba")  # the same adopter again: counted once
    replication(network, health, "35.06", "ditolak")  # rejected: not counted
    replication(network, health, "35.07", "dihentikan")  # discontinued: an adopter, not at penerapan
    replication(network, school, "35.08", "penerapan")
    project()

    row = scores.region_detail(views, now(), "35.04")
    assert row is not None
    assert row["replications_as_source"] == {"adopters": 3, "at_penerapan": 2}


def test_region_as_adopter_counts_replications_by_status(network, admin, views, project):
    for name, status in [("A", "diusulkan"), ("B", "ditolak"), ("C", "penerapan"), ("D", "penerapan")]:
        replication(network, register(network, name=name), "35.05", status)
    project()

    row = scores.region_detail(views, now(), "35.05")
    assert row is not None
    assert row["replications_as_adopter"] == {
        "diusulkan": 1,
        "disepakati": 0,
        "uji_coba": 0,
        "penerapan": 2,
        "ditolak": 1,
        "dihentikan": 0,
    }


def test_region_rows_sort_descending_with_ties_by_code(network, admin, views, project):
    first = register(network)
    second = register(network, region="33.01")
    for adopter in ("35.05", "35.06"):
        replication(network, first, adopter, "diusulkan")
    replication(network, second, "33.02", "penerapan")
    project()

    by_adopters = scores.region_rows(views, now(), sort="adopters", limit=3)
    by_penerapan = scores.region_rows(views, now(), sort="at_penerapan", limit=2)
    by_innovations = scores.region_rows(views, now(), sort="innovations", limit=3)

    assert [row["code"] for row in by_adopters.items] == ["35.04", "33.01", "11"]
    assert [row["code"] for row in by_penerapan.items] == ["33.01", "11"]
    assert [row["code"] for row in by_innovations.items] == ["33.01", "35.04", "11"]


def test_region_rows_pages_in_sorted_order_without_skipping_or_repeating(network, admin, views, project):
    for region in ("35.05", "33.01", "35.71"):
        register(network, region=region)
    project()

    rows = every_page(
        lambda cursor: scores.region_rows(views, now(), sort="innovations", limit=7, cursor=cursor)
    )

    codes = [row["code"] for row in rows]
    assert codes[:3] == ["33.01", "35.05", "35.71"]
    assert sorted(codes[3:]) == codes[3:]
    assert len(codes) == len(set(codes)) == len(regions.all_regions())


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        ({"province": "35"}, lambda row: row["province"] == "35"),
        ({"type": "kota"}, lambda row: row["type"] == "kota"),
        ({"type": "provinsi"}, lambda row: row["code"] == row["province"]),
    ],
)
def test_region_rows_filter_by_province_and_type(views, filters, check):
    rows = every_page(lambda cursor: scores.region_rows(views, now(), limit=500, cursor=cursor, **filters))
    expected = [
        r.code
        for r in regions.all_regions()
        if filters.get("province", r.province) == r.province and filters.get("type", r.type) == r.type
    ]

    assert [row["code"] for row in rows] == expected
    assert all(check(row) for row in rows)


def test_region_row_breaks_down_the_practices_its_score_counts(network, admin, views, project):
    own = register(network)
    on_trial = register(network, name="Masih Uji Coba", stage="uji_coba")
    adopted = register(network, region="33.01", name="Sekolah Digital")
    implemented = replication(network, adopted, "35.04", "penerapan")
    replication(network, register(network, region="33.02", name="Lain"), "35.04", "disepakati")
    project()

    row = scores.region_detail(views, now(), "35.04")
    assert row is not None
    breakdown = row["breakdown"]
    assert [(p["kind"], p["id"], p["name"]) for p in breakdown["practices"]] == [
        ("innovation", own, "Layanan Kesehatan Keliling"),
        ("replication", implemented, "Sekolah Digital"),
    ]
    assert on_trial not in [p["id"] for p in breakdown["practices"]]
    assert (breakdown["n"], breakdown["n_e"], breakdown["evaluations"]) == (2, 0, [])


def test_region_row_of_an_unknown_code_is_none(views):
    assert scores.region_detail(views, now(), "99.99") is None


def test_innovation_rows_rank_the_most_replicated_first(network, admin, views, project):
    little = register(network, name="Sedikit")
    widely = register(network, name="Luas")
    unreplicated = register(network, name="Belum")
    replication(network, little, "35.05", "penerapan")
    for adopter, status in [("35.05", "penerapan"), ("35.06", "penerapan"), ("35.07", "diusulkan")]:
        replication(network, widely, adopter, status)
    replication(network, widely, "35.08", "ditolak")
    project()

    rows = queries.innovation_rows(views, sort="at_penerapan").items

    assert [(r["id"], r["adopters"], r["at_penerapan"]) for r in rows] == [
        (widely, 3, 2),
        (little, 1, 1),
        (unreplicated, 0, 0),
    ]
    assert rows[0]["region_name"] == "Kabupaten Tulungagung"


def test_innovation_rows_by_adopters_page_without_repeating(network, admin, views, project):
    made = [register(network, name=f"Inovasi {n}") for n in range(5)]
    replication(network, made[3], "35.05", "diusulkan")
    project()

    rows = every_page(lambda cursor: queries.innovation_rows(views, sort="adopters", limit=2, cursor=cursor))

    assert [r["id"] for r in rows] == [made[3], made[0], made[1], made[2], made[4]]


# --- audit ------------------------------------------------------------------------------------


def test_audit_log_holds_every_event_in_position_order(network, admin, views, project):
    replication(network, register(network), "35.05", "penerapan")
    project()

    page = queries.audit_events(views, limit=500)

    assert page.items == [record.to_dict() for record in read_records(network, 0, 500)]
    assert page.next_cursor is None


def test_audit_log_pages_by_position(network, admin, views, project):
    replication(network, register(network), "35.05", "penerapan")
    project()

    first = queries.audit_events(views, limit=3)
    rest = queries.audit_events(views, after=int(first.next_cursor or 0), limit=100)

    assert [e["position"] for e in first.items] == [1, 2, 3]
    assert [e["position"] for e in rest.items] == [4, 5]
    assert queries.audit_events(views, cursor=first.next_cursor).items == rest.items


@pytest.mark.parametrize("by", ["type", "aggregate_id"])
def test_audit_log_filters_by_type_and_aggregate(network, admin, views, project, by):
    innovation_id = register(network)
    replication_id = replication(network, innovation_id, "35.05", "uji_coba")
    project()

    if by == "type":
        items = queries.audit_events(views, type="AdoptionAdvanced").items
        assert [(e["type"], e["aggregate_id"]) for e in items] == [("AdoptionAdvanced", replication_id)]
    else:
        items = queries.audit_events(views, aggregate_id=innovation_id).items
        assert [e["type"] for e in items] == ["InnovationRegistered"]


def test_history_lists_every_event_of_one_aggregate_in_version_order(network, admin, views, project):
    innovation_id = register(network)
    replication_id = replication(network, innovation_id, "35.05", "penerapan")
    network.revise_innovation(UUID(innovation_id), {"name": "Baru"}, "Ganti nama.")
    project()

    events = queries.history(views, replication_id)

    assert [(e["version"], e["type"]) for e in events] == [
        (1, "ReplicationProposed"),
        (2, "AgreementSigned"),
        (3, "AdoptionAdvanced"),
        (4, "AdoptionAdvanced"),
    ]
    assert {(e["actor"], e["actor_role"], e["request_id"]) for e in events} == {
        ("test-admin", "admin", "req-test")
    }
    assert [e["version"] for e in queries.history(views, innovation_id)] == [1, 2]


# --- applying exactly once --------------------------------------------------------------------


def test_records_applied_again_change_nothing(network, admin, views, project):
    replication(network, register(network), "35.05", "penerapan")
    project()
    before = snapshot(views)

    with views.begin() as conn:
        for record in read_records(network, 0, 500):
            for projection in all_projections():
                projection.apply(conn, record)

    assert snapshot(views) == before


def test_redelivered_records_change_nothing_even_without_position_tracking(network, admin, views, project):
    innovation_id = register(network)
    replication(network, innovation_id, "35.05", "penerapan")
    network.revise_innovation(UUID(innovation_id), {"name": "Baru"}, "Ganti nama.")
    project()
    before = snapshot(views)

    with views.begin() as conn:
        for record in read_records(network, 0, 500):
            IndexProjection().project(conn, record)
            AuditProjection().project(conn, record)

    assert snapshot(views) == before


@pytest.mark.parametrize("order", ["global", "replications first"])
def test_a_batch_lays_records_down_as_one_record_at_a_time_does(network, admin, tmp_path, order):
    busy_work(network, range(0, 3))
    evaluated = UUID(replication(network, register(network, name="Dinilai"), "35.05", "penerapan"))
    for days in (10, 5, 5):  # the same date twice: the later position counts
        network.evaluate_replication(evaluated, evaluation(days_ago(days)))
    records = read_records(network, 0, 500)
    if order == "replications first":  # ordered per aggregate only, as a stream may deliver them
        records = sorted(records, key=lambda r: r.aggregate_type != "Replication")
    one_at_a_time, together = open_views(tmp_path / "one.sqlite"), open_views(tmp_path / "together.sqlite")
    for record in records:
        with one_at_a_time.begin() as conn:
            IndexProjection().project(conn, record)
            AuditProjection().project(conn, record)

    with together.begin() as conn:
        IndexProjection().project_all(conn, records)
        AuditProjection().project_all(conn, records)
    with together.begin() as conn:  # delivered again
        IndexProjection().project_all(conn, records)
        AuditProjection().project_all(conn, records)

    tables = snapshot(together)
    assert tables == snapshot(one_at_a_time)
    assert len(tables["audit_events"]) == len(records)
    assert {row["doc"]["innovation_name"] for row in tables["replications"]} == {
        *(f"Inovasi {n} (revisi)" for n in range(3)),
        "Dinilai",
    }
    assert [row["doc"]["replication_count"] for row in tables["innovations"]] == [1, 1, 1, 1]
    forms = {row["innovation_id"]: (row["form"], row["doc"]["urusan"]) for row in tables["innovations"]}
    assert [(row["form"], row["urusan"]) for row in tables["replications"]] == [
        forms[row["innovation_id"]] for row in tables["replications"]
    ]
    assert [row["latest"] for row in sorted(tables["evaluations"], key=lambda row: row["position"])] == [
        False,
        False,
        True,
    ]


@pytest.mark.parametrize("size", [2, 3, 5, 8])
def test_batches_over_what_earlier_batches_stored_lay_records_down_as_one_at_a_time_does(
    network, admin, tmp_path, size
):
    """Batches cut anywhere: a batch reads what the earlier ones stored (documents, the replications of an
    innovation, the evaluations of a subject and year) ahead of its records, and ends as one record at a time."""
    busy_work(network, range(0, 2))
    innovation_id = register(network, name="Dinilai")
    for region in ("35.05", "35.06"):
        evaluated = UUID(replication(network, innovation_id, region, "penerapan"))
        for days in (10, 5, 5, 3):
            network.evaluate_replication(evaluated, evaluation(days_ago(days)))
    network.revise_innovation(UUID(innovation_id), {"name": "Dinilai Lagi"}, "Ganti nama.")
    records = read_records(network, 0, 500)
    one_at_a_time, in_batches = open_views(tmp_path / "one.sqlite"), open_views(tmp_path / "batches.sqlite")
    for record in records:
        with one_at_a_time.begin() as conn:
            IndexProjection().project(conn, record)
    for start in range(0, len(records), size):
        with in_batches.begin() as conn:
            IndexProjection().project_all(conn, records[start : start + size])

    tables = snapshot(in_batches)
    assert tables == snapshot(one_at_a_time)
    counted = {row["innovation_id"]: row["doc"]["replication_count"] for row in tables["innovations"]}
    assert counted[innovation_id] == 2
    latest = [row for row in tables["evaluations"] if row["latest"]]
    assert len(latest) == 2 and {row["evaluated_on"] for row in latest} == {days_ago(3)}


def test_the_audit_log_takes_each_event_once_from_sparse_and_overlapping_batches(network, admin, tmp_path):
    busy_work(network, range(0, 3))
    records = read_records(network, 0, 500)
    straight, sparse = open_views(tmp_path / "straight.sqlite"), open_views(tmp_path / "sparse.sqlite")
    with straight.begin() as conn:
        AuditProjection().project_all(conn, records)

    for part in (records[::7], records[-1:], records[2::3], records):  # spread out, then overlapping
        with sparse.begin() as conn:
            AuditProjection().project_all(conn, part)

    assert snapshot(sparse)["audit_events"] == snapshot(straight)["audit_events"]
    assert len(snapshot(sparse)["audit_events"]) == len(records)


def test_a_failing_record_is_rolled_back_and_retried_never_skipped(network, admin, views, tmp_path):
    replication(network, register(network), "35.05", "penerapan")
    head = network.head_position()
    flaky = FailsOnce(IndexProjection(), position=3)
    keeper = runner_for(network, views, [flaky, AuditProjection()])

    reached = keeper.catch_up()
    after_failure = {s["name"]: s["position"] for s in status_of(network, views)}
    reached_again = keeper.catch_up()

    assert (reached, after_failure) == (2, {"index": 2, "audit": head})
    assert reached_again == head
    assert snapshot(views) == snapshot(rebuilt(network, tmp_path / "rebuilt.sqlite"))


def test_the_collector_is_held_off_while_a_run_is_applied_and_left_as_it_was_found():
    import gc

    from projections.runner import collector_held

    assert gc.isenabled()
    with collector_held():
        assert not gc.isenabled()
        with collector_held():  # nested, or a second runner of the process
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # switched off by someone else: it stays off
    try:
        with collector_held():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failing_record_is_logged_with_its_position(network, admin, views, caplog):
    register(network)
    keeper = runner_for(network, views, [FailsOnce(IndexProjection(), position=1)])

    keeper.catch_up()

    assert [(r.levelname, r.args) for r in caplog.records if r.name == "projections.runner"] == [
        ("ERROR", ("index", "failed", 1, "InnovationRegistered"))
    ]


class CountingAudit(AuditProjection):
    """The audit projection, noting every record it lays down."""

    def __init__(self, laid_down: list[int]) -> None:
        self.laid_down = laid_down

    def project_all(self, conn: Connection, records: Sequence[EventRecord]) -> None:
        self.laid_down.extend(record.position for record in records)
        super().project_all(conn, records)


def test_two_runners_on_the_same_views_lay_each_record_down_once(network, admin, views):
    busy_work(network, range(0, 6))
    laid_down: list[int] = []
    stores = [ViewStore(views.url) for _ in range(2)]
    runners = [runner_for(network, store, [CountingAudit(laid_down)], batch_size=5) for store in stores]
    threads = [threading.Thread(target=keeper.catch_up) for keeper in runners]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(laid_down) == list(range(1, network.head_position() + 1))
    for store in stores:
        store.dispose()


# --- waiting and status -----------------------------------------------------------------------


def test_wait_for_returns_true_once_the_position_is_applied(network, admin, views, runner):
    runner.start()
    position = network.register_innovation(**innovation_fields()).position
    runner.wake()

    assert runner.wait_for(position, NAMES, timeout=10)
    assert queries.list_innovations(views).items


def test_a_runner_woken_by_a_command_applies_it_after_gathering_for_a_moment(network, admin, views):
    keeper = runner_for(network, views, poll_interval=60, gather=0.1)  # only the wake makes it catch up
    keeper.start()
    try:
        position = network.register_innovation(**innovation_fields()).position
        keeper.wake()
        with keeper._applied:  # no reader asks for it: the runner gets there on its own
            assert keeper._applied.wait_for(
                lambda: min(keeper._positions.get(name, 0) for name in NAMES) >= position, timeout=10
            )
    finally:
        keeper.stop()


def test_a_reader_waiting_for_a_position_is_not_held_back_by_gathering(network, admin, views):
    keeper = runner_for(network, views, poll_interval=60, gather=60)
    keeper.start()
    try:
        position = network.register_innovation(**innovation_fields()).position
        keeper.wake()  # a command's wake: the runner gathers for up to a minute
        started = time.monotonic()

        assert keeper.wait_for(position, NAMES, timeout=10)
        assert time.monotonic() - started < 10
    finally:
        keeper.stop()


def test_wait_for_returns_false_on_timeout(network, admin, runner):
    position = network.register_innovation(**innovation_fields()).position

    assert runner.wait_for(position, NAMES, timeout=0.3) is False


def test_wait_for_sees_positions_applied_by_a_runner_elsewhere(network, admin, views, runner):
    position = network.register_innovation(**innovation_fields()).position
    other_store = ViewStore(views.url)  # another process would open the same file
    elsewhere = runner_for(network, other_store)
    done = threading.Thread(target=elsewhere.catch_up)

    done.start()
    try:
        assert runner.wait_for(position, NAMES, timeout=10)
    finally:
        done.join()
        other_store.dispose()


def status_of(
    network: InnovationNetwork, views: ViewStore, names: Sequence[str] = NAMES, stall_after: float = 60.0
) -> list[dict[str, Any]]:
    """The projections' progress as the service reports it (app/status.py)."""

    def recorded_after(position: int) -> datetime | None:
        following = read_records(network, position, 1)
        return datetime.fromisoformat(following[0].recorded_at).astimezone(UTC) if following else None

    with views.connect() as conn:
        return progress(conn, list(names), network.head_position(), recorded_after, stall_after)


def test_status_reports_position_lag_and_state(network, admin, views, runner):
    register(network)
    runner.catch_up()
    register(network, name="Kedua")

    status = status_of(network, views)

    assert [(s["name"], s["position"], s["head_position"], s["lag"], s["status"]) for s in status] == [
        ("index", 1, 2, 1, "catching_up"),
        ("audit", 1, 2, 1, "catching_up"),
    ]
    assert all(s["last_advanced_at"].endswith("+00:00") for s in status)
    runner.catch_up()
    assert {s["status"] for s in status_of(network, views)} == {"ok"}


def test_status_reports_a_projection_that_does_not_advance_as_stalled(network, admin, views):
    register(network)
    keeper = runner_for(network, views, [AlwaysFails()])
    keeper.catch_up()

    assert [
        (s["name"], s["lag"], s["status"], s["last_advanced_at"])
        for s in status_of(network, views, ["index"], stall_after=0.0)
    ] == [("index", 1, "stalled", None)]


# --- restart ----------------------------------------------------------------------------------


def rebuilt(network: InnovationNetwork, path: Path) -> ViewStore:
    """A fresh rebuild of every view from the whole record."""
    store = open_views(path)
    runner_for(network, store).catch_up()
    return store


def busy_work(network: InnovationNetwork, rounds: range) -> None:
    """A few commands of every kind per round: ~12 events."""
    regencies = [r.code for r in regions.all_regions() if not r.is_province]
    for n in rounds:
        home, *adopters = regencies[(n * 5) % len(regencies) :][:5]
        innovation_id = register(network, region=home, name=f"Inovasi {n}")
        a, b, c, d = (propose(network, innovation_id, region) for region in adopters)
        advance(network, a, "penerapan")
        advance(network, b, "ditolak")
        advance(network, c, "uji_coba")
        advance(network, c, "dihentikan")
        network.revise_innovation(UUID(innovation_id), {"name": f"Inovasi {n} (revisi)"}, "Nama baru.")
        del d


def test_views_converge_after_a_stop_and_a_crash_while_commands_keep_arriving(network, admin, tmp_path):
    first_store = open_views(tmp_path / "views.sqlite")
    crashing = FailsOnce(IndexProjection(), position=40)
    first = runner_for(network, first_store, [crashing, AuditProjection()], batch_size=7, poll_interval=0.01)
    first.start()
    busy_work(network, range(0, 8))
    assert first.wait_for(60, NAMES, timeout=30)

    def stop_mid_stream() -> None:
        first.wait_for(120, NAMES, timeout=30)
        first.stop()

    stopper = threading.Thread(target=stop_mid_stream)
    stopper.start()
    busy_work(network, range(8, 18))  # commands keep arriving while the runner is stopped
    stopper.join()
    stopped_at = first.position_of(NAMES)
    head_at_restart = network.head_position()
    first_store.dispose()

    second_store = ViewStore(first_store.url)  # the same database, opened anew
    second = runner_for(network, second_store, batch_size=7, poll_interval=0.01)
    second.start()
    busy_work(network, range(18, 28))
    head = network.head_position()
    try:
        assert second.wait_for(head, NAMES, timeout=60)
    finally:
        second.stop()

    fresh = rebuilt(network, tmp_path / "rebuilt.sqlite")
    assert crashing.failures == 1
    assert 120 <= stopped_at < head_at_restart < head
    assert head >= 300
    assert snapshot(second_store) == snapshot(fresh)
    with second_store.connect() as conn:
        positions = dict(
            conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all()
        )
        audit_positions = conn.execute(
            select(audit_events.c.position).order_by(audit_events.c.position)
        ).scalars()
        assert list(audit_positions) == list(range(1, head + 1))
    assert positions == {"index": head, "audit": head}


# --- boundaries -------------------------------------------------------------------------------


def test_projections_depend_only_on_the_domain_and_sqlalchemy():
    package = Path(__file__).parent.parent / "projections"
    imported: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)

    forbidden = {
        name for name in imported if name.split(".")[0] in {"service", "app", "eventsourcing", "consumers"}
    }
    assert forbidden == set()


def test_the_gathering_of_the_in_process_runner_is_a_setting(tmp_path: Path) -> None:
    from app.runtime import Runtime
    from app.settings import Settings

    assert Settings.from_env({}).projection_gather == 0.1
    settings = Settings.from_env(
        {"PUJA_DATA_DIR": str(tmp_path / "var"), "PUJA_PROJECTION_GATHER_SECONDS": "0"}
    )
    runtime = Runtime.open(settings)
    try:
        assert runtime.runner.gather == 0.0
    finally:
        runtime.close()


def test_the_replication_count_is_the_same_wherever_batches_split_the_records(network, admin, tmp_path):
    """The count reads stored replications by their columns and those a batch holds by their documents: every
    split of the record into two batches ends with the counts applying one record at a time gives."""
    innovation_id = register(network)
    first, second, third = (
        replication(network, innovation_id, r, "penerapan") for r in ("35.05", "35.06", "35.07")
    )
    advance(network, second, "dihentikan")  # leaves penerapan: counted no more
    replication(network, innovation_id, "35.06", "penerapan")  # the same region again: counted once
    advance(network, first, "dihentikan")
    del third
    records = read_records(network, 0, 500)
    one_at_a_time = open_views(tmp_path / "one.sqlite")
    counts = []
    for record in records:
        with one_at_a_time.begin() as conn:
            IndexProjection().project(conn, record)
        with one_at_a_time.connect() as conn:
            counts.append(conn.execute(select(innovations.c.doc)).scalar_one()["replication_count"])
    assert counts[-1] == 2 and max(counts) == 3
    expected = snapshot(one_at_a_time)["innovations"]
    for cut in range(1, len(records)):
        together = open_views(tmp_path / f"cut-{cut}.sqlite")
        for part in (records[:cut], records[cut:]):
            with together.begin() as conn:
                IndexProjection().project_all(conn, part)
        assert snapshot(together)["innovations"] == expected, cut
        together.dispose()
