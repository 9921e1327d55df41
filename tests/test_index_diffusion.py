"""Replication metrics, diffusion lineage and the yearly summary (index.md "Replication metrics", api.md "Index
views"), on a fixture record driven through the HTTP API on both backends. Every expected figure is worked out by
hand below from the dates of the record; none is computed by the code under test.

The record (business dates; commands are sent in this order):

    Innovation A "Layanan Kesehatan Keliling" of 35.04 Tulungagung: pelayanan_publik, urusan kesehatan + sosial,
    registered at penerapan on 2024-01-10.
    Innovation B "Adminduk Keliling" of 33.01 Cilacap: tata_kelola, urusan administrasi_kependudukan_pencatatan_sipil,
    registered at penerapan on 2024-03-01.
    Innovation C "Petani Digital" of 11.01 Aceh Selatan: urusan_pemerintahan, urusan pertanian, 2024-02-01.
    Innovation D "Subak Digital" of 51.01: nobody replicates it.

    id   innovation adopter <- source   gen  proposed    signed      uji_coba    penerapan   ended
    R1   A          35.05  <- 35.04      1   2025-01-10  2025-01-20  2025-02-15  2025-04-10  dihentikan 2026-03-01
    R2   A          33.02  <- 35.04      1   2025-02-01  2025-02-10  2025-03-01  2025-05-01
    R5   A          35.06  <- 35.04      1   2025-03-01                                      ditolak 2025-03-15
    R8   B          35.05  <- 33.01      1   2025-05-01  2025-05-10  2025-06-01  2025-08-01
    R3   A          32.01  <- 35.05      2   2025-06-01  2025-06-10  2025-07-01  2025-09-01   (copies R1)
    R6   A          33.03  <- 35.05      2   2025-07-01  2025-07-10  2025-08-01              dihentikan 2026-01-15
    R10  B          33.04  <- 33.01      1   2025-09-01  2025-09-05  2025-09-20  2025-11-20
    R4   A          32.02  <- 32.01      3   2025-10-01  2025-10-15  2025-11-01  2026-02-01   (copies R3)
    R7   A          35.05  <- 35.04      1   2026-04-01                                       (35.05 again, after R1)
    R9   B          35.04  <- 33.01      1   2026-05-01  2026-05-10
    R11  C          12.01  <- 11.01      1   2026-06-01
    R12  C          13.01  <- 11.01      1   2026-06-15
    R13  C          14.01  <- 11.01      1   2026-07-01

    Days from proposal to penerapan: R1 90 (21 Jan + 28 Feb + 31 Mar + 10), R2 89 (28 Feb + 31 Mar + 30 Apr),
    R8 92 (31 + 30 + 31), R3 92 (30 + 31 + 31), R10 80 (30 Sep + 31 Oct + 19), R4 123 (31 + 30 + 31 + 31).

    Modifications (all on 35.05's replications):
    m1 R1 teknologi    penyesuaian core=no  2025-01-25
    m2 R1 proses_bisnis pengurangan core=yes 2025-02-20
    m4 R8 teknologi    penggantian core=yes 2025-05-20
    m3 R1 sasaran      penambahan  core=no  2026-01-10
    m5 R7 regulasi     penyesuaian core=no  2026-04-10

Years asked: 2025 (figures as of 2025-12-31, so that every step dated 2026 does not count) and 2026 (the last
step is dated 2026-07-01; asked in 2026 or later, every step counts).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from alembic import command
from conftest import BACKENDS, Api
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.migrate import alembic_config, upgrade
from domain.calendar import today
from projections import IndexProjection, ViewStore, diffusion, queries
from projections.tables import innovations, modifications
from service.network import read_records

INDEX = "/api/v1/index"
INNOVATIONS = "/api/v1/innovations"
REPLICATIONS = "/api/v1/replications"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
STATUSES = ("diusulkan", "disepakati", "uji_coba", "penerapan", "ditolak", "dihentikan")
COMPONENTS = (
    "proses_bisnis",
    "teknologi",
    "regulasi",
    "kelembagaan",
    "sasaran",
    "pembiayaan",
    "sdm",
    "nama",
    "lainnya",
)
NATURES = ("penambahan", "pengurangan", "penyesuaian", "penggantian")


def statuses(**counts: int) -> dict[str, int]:
    return {status: counts.get(status, 0) for status in STATUSES}


def components(**counts: int) -> dict[str, int]:
    return {component: counts.get(component, 0) for component in COMPONENTS}


def natures(**counts: int) -> dict[str, int]:
    return {nature: counts.get(nature, 0) for nature in NATURES}


def months(year: int, **counts: dict[str, int]) -> list[dict[str, Any]]:
    """The twelve months of `year`; `m04={"proposals": 1}` sets April's figures, the rest are zero."""
    series = []
    for month in range(1, 13):
        figures = {"proposals": 0, "trials_started": 0, "implementations": 0}
        figures.update(counts.get(f"m{month:02d}", {}))
        series.append({"month": f"{year}-{month:02d}", **figures})
    return series


# --- the record, driven through the API --------------------------------------------------------


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


class Driver:
    def __init__(self, api: Api, token: str) -> None:
        self.api = api
        self.token = token

    def innovation(self, region: str, name: str, form: str, urusan: list[str], started_on: str) -> str:
        body = {
            "region": region,
            "name": name,
            "form": form,
            "urusan": urusan,
            "initiator": "perangkat_daerah",
            "stage": "penerapan",
            "digital": True,
            "started_on": started_on,
            "description": f"{name}.",
        }
        return str(ok(self.api.post(INNOVATIONS, body, self.token), 201)["id"])

    def propose(self, innovation_id: str, adopter: str, source: str, on: str) -> str:
        body = {
            "innovation_id": innovation_id,
            "adopting_region": adopter,
            "source_region": source,
            "rationale": "Cocok untuk daerah kami.",
            "proposed_on": on,
        }
        return str(ok(self.api.post(REPLICATIONS, body, self.token), 201)["id"])

    def step(self, replication_id: str, command: str, body: dict[str, Any]) -> None:
        ok(self.api.post(f"{REPLICATIONS}/{replication_id}/{command}", body, self.token))

    def sign(self, rid: str, on: str) -> None:
        self.step(rid, "agreement", {"document": "pks", "document_number": "PKS/7", "signed_on": on})

    def adopt(self, rid: str, stage: str, on: str) -> None:
        self.step(rid, "adoption", {"stage": stage, "effective_on": on})

    def reject(self, rid: str, on: str) -> None:
        self.step(rid, "rejection", {"reason": "Belum siap.", "rejected_on": on})

    def discontinue(self, rid: str, on: str) -> None:
        self.step(rid, "discontinuation", {"reason": "Anggaran habis.", "effective_on": on})

    def modify(self, rid: str, component: str, nature: str, core: bool, on: str) -> None:
        body = {
            "component": component,
            "nature": nature,
            "core": core,
            "description": f"{component} {nature}.",
            "reason": "Kondisi setempat.",
            "recorded_on": on,
        }
        self.step(rid, "modifications", body)

    def implemented(self, innovation: str, adopter: str, source: str, *dates: str) -> str:
        """Proposed, signed, at uji_coba and at penerapan on the dates given (as many steps as dates)."""
        rid = self.propose(innovation, adopter, source, dates[0])
        steps = [
            self.sign,
            lambda r, on: self.adopt(r, "uji_coba", on),
            lambda r, on: self.adopt(r, "penerapan", on),
        ]
        for step, on in zip(steps, dates[1:], strict=False):
            step(rid, on)
        return rid


def drive_the_record(api: Api, token: str) -> dict[str, str]:
    d = Driver(api, token)
    ids: dict[str, str] = {}
    ids["A"] = d.innovation(
        "35.04", "Layanan Kesehatan Keliling", "pelayanan_publik", ["kesehatan", "sosial"], "2024-01-10"
    )
    ids["B"] = d.innovation(
        "33.01",
        "Adminduk Keliling",
        "tata_kelola",
        ["administrasi_kependudukan_pencatatan_sipil"],
        "2024-03-01",
    )
    ids["C"] = d.innovation("11.01", "Petani Digital", "urusan_pemerintahan", ["pertanian"], "2024-02-01")
    ids["D"] = d.innovation("51.01", "Subak Digital", "tata_kelola", ["pertanian"], "2024-05-05")
    a, b, c = ids["A"], ids["B"], ids["C"]

    r1 = ids["R1"] = d.propose(a, "35.05", "35.04", "2025-01-10")
    d.sign(r1, "2025-01-20")
    d.modify(r1, "teknologi", "penyesuaian", False, "2025-01-25")
    d.adopt(r1, "uji_coba", "2025-02-15")
    d.modify(r1, "proses_bisnis", "pengurangan", True, "2025-02-20")
    d.adopt(r1, "penerapan", "2025-04-10")
    ids["R2"] = d.implemented(a, "33.02", "35.04", "2025-02-01", "2025-02-10", "2025-03-01", "2025-05-01")
    r5 = ids["R5"] = d.propose(a, "35.06", "35.04", "2025-03-01")
    d.reject(r5, "2025-03-15")
    r8 = ids["R8"] = d.propose(b, "35.05", "33.01", "2025-05-01")
    d.sign(r8, "2025-05-10")
    d.modify(r8, "teknologi", "penggantian", True, "2025-05-20")
    d.adopt(r8, "uji_coba", "2025-06-01")
    d.adopt(r8, "penerapan", "2025-08-01")
    ids["R3"] = d.implemented(a, "32.01", "35.05", "2025-06-01", "2025-06-10", "2025-07-01", "2025-09-01")
    ids["R6"] = d.implemented(a, "33.03", "35.05", "2025-07-01", "2025-07-10", "2025-08-01")
    ids["R10"] = d.implemented(b, "33.04", "33.01", "2025-09-01", "2025-09-05", "2025-09-20", "2025-11-20")
    ids["R4"] = d.implemented(a, "32.02", "32.01", "2025-10-01", "2025-10-15", "2025-11-01", "2026-02-01")
    d.discontinue(ids["R6"], "2026-01-15")
    d.modify(r1, "sasaran", "penambahan", False, "2026-01-10")
    d.discontinue(r1, "2026-03-01")
    r7 = ids["R7"] = d.propose(a, "35.05", "35.04", "2026-04-01")
    d.modify(r7, "regulasi", "penyesuaian", False, "2026-04-10")
    ids["R9"] = d.implemented(b, "35.04", "33.01", "2026-05-01", "2026-05-10")
    ids["R11"] = d.propose(c, "12.01", "11.01", "2026-06-01")
    ids["R12"] = d.propose(c, "13.01", "11.01", "2026-06-15")
    ids["R13"] = d.propose(c, "14.01", "11.01", "2026-07-01")
    return ids


@dataclass
class Record:
    api: Api
    ids: dict[str, str]
    server: str | None  # the PostgreSQL server of the postgres backend

    def get(self, path: str) -> Any:
        return ok(self.api.get(path))


def _database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def fresh_views(server: str | None, directory: Path) -> Iterator[ViewStore]:
    """An empty view store at the latest migration: a new database on `server`, else a new SQLite file."""
    name = f"test_views_{uuid.uuid4().hex[:12]}"
    if server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    store = ViewStore(_database(server, name) if server else f"sqlite:///{directory / name}.sqlite")
    try:
        upgrade(store.engine)
        yield store
    finally:
        store.dispose()
        if server:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rebuild(network: Any, store: ViewStore) -> None:
    """Lay every stored event down in `store` with a new index projection, as a rebuild does."""
    projection = IndexProjection()
    after = 0
    with store.begin() as conn:
        while batch := read_records(network, after, 500):
            projection.apply_all(conn, batch)
            after = batch[-1].position


@pytest.fixture(scope="module", params=BACKENDS)
def record(request: Any, tmp_path_factory: Any) -> Iterator[Record]:
    """The record above, on a fresh store of each backend, once for all the read-only tests of this module."""
    from app import create_app
    from app.runtime import Runtime
    from app.settings import Settings

    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    name = f"test_diffusion_{uuid.uuid4().hex[:12]}"
    if server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    runtime = Runtime.open(
        Settings(
            data_dir=tmp_path_factory.mktemp("var"), database_url=_database(server, name) if server else None
        )
    )
    try:
        app = create_app(runtime=runtime)
        app.testing = True
        api = Api(app.test_client(), runtime)
        ids = drive_the_record(api, api.token("golden-admin", "admin"))
        api.settle()
        yield Record(api, ids, server)
    finally:
        runtime.close()
        if server:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def metrics(record: Record, code: str, year: int) -> dict[str, Any]:
    metrics: dict[str, Any] = record.get(f"{INDEX}/regions/{code}?year={year}")["replication_metrics"]
    return metrics


# --- a region as source ------------------------------------------------------------------------


def test_source_counts_distinct_adopters_not_rejected_and_at_penerapan_as_of_the_year_end(
    record: Record,
) -> None:
    # 2025: R1 (35.05) and R2 (33.02) at penerapan; R5 (35.06) rejected does not count.
    assert metrics(record, "35.04", 2025)["as_source"] == {
        "adopters": 2,
        "at_penerapan": 2,
        "deepest_generation": 3,  # R4 (32.02) copies R3 (32.01) which copies R1 (35.05), proposed 2025-10-01
    }
    # 2026: R1 discontinued (still an adopter, no longer at penerapan); R7 is 35.05 again, not a new region.
    assert metrics(record, "35.04", 2026)["as_source"] == {
        "adopters": 2,
        "at_penerapan": 1,
        "deepest_generation": 3,
    }


def test_an_adopter_passing_a_practice_on_is_a_source_with_its_own_descendants(record: Record) -> None:
    # 35.05's practice R1 was copied by R3 (32.01, penerapan 2025-09-01) and R6 (33.03, uji_coba until its
    # discontinuation on 2026-01-15); R4 (generation 3) copies R3.
    assert metrics(record, "35.05", 2025)["as_source"] == {
        "adopters": 2,
        "at_penerapan": 1,
        "deepest_generation": 3,
    }
    assert metrics(record, "35.05", 2026)["as_source"] == {
        "adopters": 2,
        "at_penerapan": 1,
        "deepest_generation": 3,
    }
    # 32.01 passed R3 on to 32.02 (R4): uji_coba at the end of 2025, penerapan on 2026-02-01.
    assert metrics(record, "32.01", 2025)["as_source"] == {
        "adopters": 1,
        "at_penerapan": 0,
        "deepest_generation": 3,
    }
    assert metrics(record, "32.01", 2026)["as_source"] == {
        "adopters": 1,
        "at_penerapan": 1,
        "deepest_generation": 3,
    }


def test_before_anything_was_proposed_a_source_has_zeros_and_no_generation(record: Record) -> None:
    assert metrics(record, "35.04", 2024)["as_source"] == {
        "adopters": 0,
        "at_penerapan": 0,
        "deepest_generation": None,
    }


def test_a_source_whose_practice_is_copied_once_reaches_generation_one(record: Record) -> None:
    # B of 33.01: R8 (35.05), R10 (33.04) at penerapan, R9 (35.04) signed in 2026.
    assert metrics(record, "33.01", 2026)["as_source"] == {
        "adopters": 3,
        "at_penerapan": 2,
        "deepest_generation": 1,
    }


# --- a region as adopter -----------------------------------------------------------------------


def test_adopter_counts_its_replications_by_status_on_the_last_day_of_the_year(record: Record) -> None:
    # 35.05 at the end of 2025: R1 and R8 at penerapan (R1's discontinuation and R7 are dated 2026).
    assert metrics(record, "35.05", 2025)["as_adopter"] == {
        "replications": 2,
        "by_status": statuses(penerapan=2),
        "median_days_to_penerapan": 91.0,  # R1 90 and R8 92: an even count, the mean of the two
        "discontinued_share": 0.0,
    }


def test_adopter_figures_of_the_next_year_count_the_discontinuation_and_the_new_proposal(
    record: Record,
) -> None:
    assert metrics(record, "35.05", 2026)["as_adopter"] == {
        "replications": 3,
        "by_status": statuses(dihentikan=1, penerapan=1, diusulkan=1),
        "median_days_to_penerapan": 91.0,  # R1 reached penerapan before it was discontinued: still 90 and 92
        "discontinued_share": 0.3333,  # R1 of R1, R8, R7 (none rejected): 1/3
    }


def test_adopter_median_of_an_odd_count_is_the_middle_value(record: Record) -> None:
    assert metrics(record, "32.01", 2025)["as_adopter"]["median_days_to_penerapan"] == 92.0  # R3 alone


def test_an_adopter_without_replications_has_no_median_and_no_share(record: Record) -> None:
    assert metrics(record, "35.04", 2025)["as_adopter"] == {
        "replications": 0,
        "by_status": statuses(),
        "median_days_to_penerapan": None,
        "discontinued_share": None,
    }
    # In 2026 it signed R9 of B: not at penerapan yet.
    assert metrics(record, "35.04", 2026)["as_adopter"] == {
        "replications": 1,
        "by_status": statuses(disepakati=1),
        "median_days_to_penerapan": None,
        "discontinued_share": 0.0,
    }


def test_a_rejected_replication_is_counted_by_status_but_not_in_the_discontinued_share(
    record: Record,
) -> None:
    assert metrics(record, "35.06", 2025)["as_adopter"] == {
        "replications": 1,
        "by_status": statuses(ditolak=1),
        "median_days_to_penerapan": None,
        "discontinued_share": None,  # nothing went ahead
    }


def test_a_discontinued_replication_counts_from_its_effective_date(record: Record) -> None:
    # R6 of 33.03: uji_coba at the end of 2025, discontinued on 2026-01-15.
    assert metrics(record, "33.03", 2025)["as_adopter"]["by_status"] == statuses(uji_coba=1)
    assert metrics(record, "33.03", 2026)["as_adopter"]["by_status"] == statuses(dihentikan=1)
    assert metrics(record, "33.03", 2026)["as_adopter"]["discontinued_share"] == 1.0


# --- adaptation ----------------------------------------------------------------------------------


def test_adaptation_profile_counts_modifications_recorded_by_the_year_end(record: Record) -> None:
    # 2025: m1, m2 on R1 and m4 on R8 (m3 and m5 are dated 2026); two replications.
    assert metrics(record, "35.05", 2025)["adaptation"] == {
        "replications": 2,
        "modifications": 3,
        "per_replication": 1.5,
        "core_share": 0.6667,  # m2 and m4 of three: 2/3
        "by_component": components(teknologi=2, proses_bisnis=1),
        "by_nature": natures(penyesuaian=1, pengurangan=1, penggantian=1),
    }


def test_adaptation_profile_of_the_next_year_counts_every_modification(record: Record) -> None:
    assert metrics(record, "35.05", 2026)["adaptation"] == {
        "replications": 3,  # R1, R8, R7
        "modifications": 5,
        "per_replication": 1.67,  # 5/3 = 1.666.. half-up
        "core_share": 0.4,  # 2/5
        "by_component": components(teknologi=2, proses_bisnis=1, sasaran=1, regulasi=1),
        "by_nature": natures(penyesuaian=2, pengurangan=1, penambahan=1, penggantian=1),
    }


def test_a_region_without_modifications_has_no_ratios(record: Record) -> None:
    adaptation = metrics(record, "33.02", 2025)["adaptation"]
    assert (adaptation["replications"], adaptation["modifications"]) == (1, 0)
    assert adaptation["per_replication"] == 0.0
    assert adaptation["core_share"] is None
    assert metrics(record, "35.04", 2025)["adaptation"]["per_replication"] is None


def test_metrics_say_the_day_they_are_taken(record: Record) -> None:
    assert metrics(record, "35.05", 2025)["as_of"] == "2025-12-31"
    current = record.get(f"{INDEX}/regions/35.05")["replication_metrics"]
    assert current["as_of"] == today().isoformat()
    assert current == metrics(record, "35.05", today().year)


# --- lineage -------------------------------------------------------------------------------------


def node(
    record: Record, name: str, region: str, source: str, generation: int, status: str, **dates: str
) -> dict[str, Any]:
    return {
        "replication_id": record.ids[name],
        "adopting_region": region,
        "source_region": source,
        "generation": generation,
        "status": status,
        **dates,
    }


def shape(tree: dict[str, Any]) -> dict[str, Any]:
    """A lineage node without region names, its children shaped the same way."""
    keep = ("replication_id", "adopting_region", "source_region", "generation", "status")
    dated = {k: v for k, v in tree.items() if k.endswith("_on") and v is not None}
    return {**{k: tree[k] for k in keep}, **dated, "children": [shape(child) for child in tree["children"]]}


def test_lineage_puts_each_adopter_under_the_practice_it_copies(record: Record) -> None:
    tree = record.get(f"{INDEX}/innovations/{record.ids['A']}/lineage")
    root = tree["root"]
    assert (root["innovation_id"], root["region"], root["region_name"], root["generation"]) == (
        record.ids["A"],
        "35.04",
        "Kabupaten Tulungagung",
        0,
    )
    assert (root["stage"], root["started_on"], root["penerapan_on"]) == (
        "penerapan",
        "2024-01-10",
        "2024-01-10",
    )
    r4 = {
        **node(
            record,
            "R4",
            "32.02",
            "32.01",
            3,
            "penerapan",
            proposed_on="2025-10-01",
            signed_on="2025-10-15",
            uji_coba_on="2025-11-01",
            penerapan_on="2026-02-01",
        ),
        "children": [],
    }
    r3 = {
        **node(
            record,
            "R3",
            "32.01",
            "35.05",
            2,
            "penerapan",
            proposed_on="2025-06-01",
            signed_on="2025-06-10",
            uji_coba_on="2025-07-01",
            penerapan_on="2025-09-01",
        ),
        "children": [r4],
    }
    r6 = {
        **node(
            record,
            "R6",
            "33.03",
            "35.05",
            2,
            "dihentikan",
            proposed_on="2025-07-01",
            signed_on="2025-07-10",
            uji_coba_on="2025-08-01",
            discontinued_on="2026-01-15",
        ),
        "children": [],
    }
    r1 = {
        **node(
            record,
            "R1",
            "35.05",
            "35.04",
            1,
            "dihentikan",
            proposed_on="2025-01-10",
            signed_on="2025-01-20",
            uji_coba_on="2025-02-15",
            penerapan_on="2025-04-10",
            discontinued_on="2026-03-01",
        ),
        "children": [r3, r6],
    }
    r2 = {
        **node(
            record,
            "R2",
            "33.02",
            "35.04",
            1,
            "penerapan",
            proposed_on="2025-02-01",
            signed_on="2025-02-10",
            uji_coba_on="2025-03-01",
            penerapan_on="2025-05-01",
        ),
        "children": [],
    }
    r5 = {
        **node(
            record, "R5", "35.06", "35.04", 1, "ditolak", proposed_on="2025-03-01", rejected_on="2025-03-15"
        ),
        "children": [],
    }
    # 35.05's second replication (after R1 was discontinued) is a new practice: R3 and R6 stay under R1.
    r7 = {**node(record, "R7", "35.05", "35.04", 1, "diusulkan", proposed_on="2026-04-01"), "children": []}
    assert [shape(child) for child in root["children"]] == [r1, r2, r5, r7]


def test_lineage_nodes_carry_every_date_and_the_region_names(record: Record) -> None:
    tree = record.get(f"{INDEX}/innovations/{record.ids['A']}/lineage")
    [r5] = [child for child in tree["root"]["children"] if child["replication_id"] == record.ids["R5"]]
    assert r5["adopting_region_name"] == "Kabupaten Kediri"
    assert r5["source_region_name"] == "Kabupaten Tulungagung"
    assert {k: r5[k] for k in r5 if k.endswith("_on")} == {
        "proposed_on": "2025-03-01",
        "signed_on": None,
        "rejected_on": "2025-03-15",
        "uji_coba_on": None,
        "penerapan_on": None,
        "discontinued_on": None,
    }


def test_lineage_counts_adopters_generations_and_provinces_reached(record: Record) -> None:
    tree = record.get(f"{INDEX}/innovations/{record.ids['A']}/lineage")
    assert (tree["id"], tree["name"], tree["region"]) == (
        record.ids["A"],
        "Layanan Kesehatan Keliling",
        "35.04",
    )
    assert tree["replications"] == 7  # R1 R2 R5 R3 R6 R4 R7
    assert tree["adopters"] == 5  # 35.05 (R1, R7), 33.02, 32.01, 33.03, 32.02; not 35.06 (rejected)
    assert tree["at_penerapan"] == 3  # R2, R3, R4
    assert tree["by_status"] == statuses(diusulkan=1, penerapan=3, ditolak=1, dihentikan=2)
    assert tree["by_generation"] == {"1": 3, "2": 2, "3": 1}  # R1 R2 R7 | R3 R6 | R4
    assert tree["deepest_generation"] == 3
    assert tree["provinces_reached"] == [
        {"code": "32", "name": "Jawa Barat", "adopters": 2, "at_penerapan": 2},
        {"code": "33", "name": "Jawa Tengah", "adopters": 2, "at_penerapan": 1},
        {"code": "35", "name": "Jawa Timur", "adopters": 1, "at_penerapan": 0},
    ]


def test_lineage_of_an_innovation_nobody_replicates_is_its_root_alone(record: Record) -> None:
    tree = record.get(f"{INDEX}/innovations/{record.ids['D']}/lineage")
    assert tree["root"]["children"] == []
    assert (tree["replications"], tree["adopters"], tree["deepest_generation"]) == (0, 0, None)
    assert tree["by_generation"] == {}
    assert tree["provinces_reached"] == []


def test_lineage_of_an_unknown_innovation_is_404(record: Record) -> None:
    response = record.api.get(f"{INDEX}/innovations/{UNKNOWN_ID}/lineage")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "/problems/not-found"


def test_lineage_of_a_malformed_id_is_404(record: Record) -> None:
    assert record.api.get(f"{INDEX}/innovations/not-a-uuid/lineage").status_code == 404


# --- most replicated innovations ---------------------------------------------------------------


def every_page(record: Record, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while path:
        response = record.api.get(path)
        page = ok(response)
        items += page["items"]
        link = response.headers.get("Link")
        path = link[link.index("<") + 1 : link.index(">")] if link else ""
    return items


def ranked(record: Record, sort: str) -> list[tuple[str, int, int, int]]:
    ours = {record.ids[k]: k for k in "ABC"}
    return [
        (ours[item["id"]], item["adopters"], item["at_penerapan"], item["provinces"])
        for item in every_page(record, f"{INDEX}/innovations?sort={sort}&limit=1")
        if item["id"] in ours
    ]


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("at_penerapan", ["A", "B", "C"]),  # 3, 2, 0
        ("adopters", ["A", "B", "C"]),  # 5, then B and C have 3: B has more at penerapan
        ("provinces", ["A", "C", "B"]),  # 3, then C 3 (12, 13, 14), then B 2 (35, 33)
    ],
)
def test_innovations_rank_by_the_sort_asked_over_cursor_pages(
    record: Record, sort: str, order: list[str]
) -> None:
    rows = ranked(record, sort)
    assert [name for name, *_ in rows] == order
    assert sorted(rows) == [("A", 5, 3, 3), ("B", 3, 2, 2), ("C", 3, 0, 3)]


def test_innovation_rows_carry_replications_and_deepest_generation(record: Record) -> None:
    items = {item["id"]: item for item in every_page(record, f"{INDEX}/innovations?limit=1000")}
    a, b = items[record.ids["A"]], items[record.ids["B"]]
    assert (a["replications"], a["deepest_generation"], a["region_name"]) == (7, 3, "Kabupaten Tulungagung")
    assert (b["replications"], b["deepest_generation"]) == (3, 1)


def test_innovation_cursor_of_another_sort_is_400(record: Record) -> None:
    cursor = ok(record.api.get(f"{INDEX}/innovations?sort=provinces&limit=1"))["next_cursor"]
    response = record.api.get(f"{INDEX}/innovations?sort=adopters&cursor={cursor}")
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"cursor": ["Invalid cursor."]}


# --- summary -------------------------------------------------------------------------------------


def test_summary_of_a_past_year_counts_only_what_happened_by_its_last_day(record: Record) -> None:
    summary = record.get(f"{INDEX}/summary?year=2025")
    assert (summary["year"], summary["as_of"], summary["province"]) == (2025, "2025-12-31", None)
    totals = summary["totals"]
    # R1 R2 R5 R8 R3 R6 R10 R4 proposed in 2025; R6 at uji_coba and R4 at uji_coba on 2025-12-31.
    assert totals["replications"] == 8
    assert totals["by_status"] == statuses(penerapan=5, uji_coba=2, ditolak=1)
    assert totals["by_form"] == {"pelayanan_publik": 6, "tata_kelola": 2, "urusan_pemerintahan": 0}
    nonzero = {urusan: n for urusan, n in totals["by_urusan"].items() if n}
    assert nonzero == {"kesehatan": 6, "sosial": 6, "administrasi_kependudukan_pencatatan_sipil": 2}
    assert len(totals["by_urusan"]) == 32


def test_summary_series_counts_each_step_in_the_month_of_its_business_date(record: Record) -> None:
    summary = record.get(f"{INDEX}/summary?year=2025")
    assert summary["series"] == months(
        2025,
        m01={"proposals": 1},  # R1
        m02={"proposals": 1, "trials_started": 1},  # R2 | R1
        m03={"proposals": 1, "trials_started": 1},  # R5 | R2
        m04={"implementations": 1},  # R1
        m05={"proposals": 1, "implementations": 1},  # R8 | R2
        m06={"proposals": 1, "trials_started": 1},  # R3 | R8
        m07={"proposals": 1, "trials_started": 1},  # R6 | R3
        m08={"trials_started": 1, "implementations": 1},  # R6 | R8
        m09={"proposals": 1, "trials_started": 1, "implementations": 1},  # R10 | R10 | R3
        m10={"proposals": 1},  # R4
        m11={"trials_started": 1, "implementations": 1},  # R4 | R10 (R4's penerapan is in 2026)
    )


def test_summary_median_over_an_odd_count_of_implementations_in_the_year(record: Record) -> None:
    # 2025 implementations: R10 80, R2 89, R1 90, R8 92, R3 92.
    assert record.get(f"{INDEX}/summary?year=2025")["median_days_to_penerapan"] == 90.0


def test_summary_of_the_next_year(record: Record) -> None:
    summary = record.get(f"{INDEX}/summary?year=2026")
    totals = summary["totals"]
    assert totals["replications"] == 13
    assert totals["by_status"] == statuses(penerapan=5, dihentikan=2, ditolak=1, diusulkan=4, disepakati=1)
    assert totals["by_form"] == {"pelayanan_publik": 7, "tata_kelola": 3, "urusan_pemerintahan": 3}
    assert summary["series"] == months(
        2026,
        m02={"implementations": 1},  # R4
        m04={"proposals": 1},  # R7
        m05={"proposals": 1},  # R9
        m06={"proposals": 2},  # R11, R12
        m07={"proposals": 1},  # R13
    )
    assert summary["median_days_to_penerapan"] == 123.0  # R4 alone


def test_summary_filters_by_the_adopting_regions_province(record: Record) -> None:
    # Adopted in Jawa Tengah in 2025: R2 (33.02), R6 (33.03), R10 (33.04); not R8, which 33.01 is the source of.
    summary = record.get(f"{INDEX}/summary?year=2025&province=33")
    assert (summary["province"], summary["province_name"]) == ("33", "Jawa Tengah")
    assert summary["totals"]["replications"] == 3
    assert summary["totals"]["by_status"] == statuses(penerapan=2, uji_coba=1)
    assert summary["series"] == months(
        2025,
        m02={"proposals": 1},
        m03={"trials_started": 1},
        m05={"implementations": 1},
        m07={"proposals": 1},
        m08={"trials_started": 1},
        m09={"proposals": 1, "trials_started": 1},
        m11={"implementations": 1},
    )
    assert summary["median_days_to_penerapan"] == 84.5  # R10 80, R2 89: an even count


def test_summary_of_a_province_with_nothing_implemented_in_the_year_has_no_median(record: Record) -> None:
    # Adopted in Jawa Timur by 2026: R1, R5, R8 (35.05, 35.06, 35.05), R7 (35.05), R9 (35.04).
    summary = record.get(f"{INDEX}/summary?year=2026&province=35")
    assert summary["totals"]["replications"] == 5
    assert summary["totals"]["by_status"] == statuses(
        dihentikan=1, ditolak=1, penerapan=1, diusulkan=1, disepakati=1
    )
    assert summary["totals"]["by_form"] == {"pelayanan_publik": 3, "tata_kelola": 2, "urusan_pemerintahan": 0}
    assert summary["series"] == months(2026, m04={"proposals": 1}, m05={"proposals": 1})
    assert summary["median_days_to_penerapan"] is None


def test_summary_defaults_to_the_current_year(record: Record) -> None:
    summary = record.get(f"{INDEX}/summary")
    assert (summary["year"], summary["as_of"]) == (today().year, today().isoformat())


# --- bad parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{INDEX}/summary?year=last", "year"),
        (f"{INDEX}/summary?year=1999", "year"),
        (f"{INDEX}/summary?province=35.04", "province"),
        (f"{INDEX}/summary?province=99", "province"),
        (f"{INDEX}/innovations?sort=name", "sort"),
        (f"{INDEX}/innovations?limit=1001", "limit"),
    ],
)
def test_unparseable_or_out_of_range_parameters_are_400(record: Record, path: str, field: str) -> None:
    response = record.api.get(path)
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["type"] == "/problems/malformed-request"
    assert field in problem["errors"]


@pytest.mark.parametrize("path", [f"{INDEX}/summary?year={{next}}", f"{INDEX}/regions/35.05?year={{next}}"])
def test_a_year_that_has_not_begun_is_422(record: Record, path: str) -> None:
    response = record.api.get(path.format(next=today().year + 1))
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert list(problem["errors"]) == ["year"]


@pytest.mark.parametrize("view", ["summary?year=2025&", "innovations/{A}/lineage?", "regions/35.05?"])
def test_the_views_wait_for_a_position_and_report_the_one_they_read(record: Record, view: str) -> None:
    head = record.api.runtime.network.head_position()
    response = record.api.get(f"{INDEX}/{view.format(A=record.ids['A'])}min_position={head}")
    assert response.status_code == 200
    assert int(response.headers["X-Projection-Position"]) >= head


def test_the_new_views_are_in_the_openapi_document(record: Record) -> None:
    document = record.get("/openapi.json")
    for path in (
        f"{INDEX}/summary",
        f"{INDEX}/innovations/{{innovation_id}}/lineage",
        f"{INDEX}/innovations",
    ):
        assert "get" in document["paths"][path]
    parameters = {p["name"]: p for p in document["paths"][f"{INDEX}/summary"]["get"]["parameters"]}
    assert "adopting region" in parameters["province"]["description"]
    assert "31 December" in parameters["year"]["description"]
    schemas = document["components"]["schemas"]
    assert "median_days_to_penerapan" in schemas["Summary"]["properties"]
    assert "core_share" in schemas["Adaptation"]["properties"]
    assert "children" in schemas["LineageNode"]["properties"]


# --- rebuilt from the events ---------------------------------------------------------------------

FIGURE_REGIONS = ("35.04", "35.05", "33.01", "33.02", "32.01", "12.01")
YEARS = (2024, 2025, 2026)


def figures(store: ViewStore) -> dict[str, Any]:
    """Every figure of this module's views that the store answers."""
    with store.connect() as conn:
        innovation_ids = sorted(conn.execute(select(innovations.c.innovation_id)).scalars())
        logged = [
            tuple(row)
            for row in conn.execute(select(modifications).order_by(modifications.c.modification_id))
        ]
    answers: dict[str, Any] = {"modifications": logged}
    for year in YEARS:
        on = diffusion.as_of(year)
        for code in FIGURE_REGIONS:
            answers[f"metrics {code} {year}"] = diffusion.replication_metrics(store, code, on=on)
        for province in (None, "35", "33"):
            answers[f"summary {year} {province}"] = diffusion.summary(
                store, year=year, on=on, province=province
            )
    for innovation_id in innovation_ids:
        answers[f"lineage {innovation_id}"] = diffusion.lineage(store, innovation_id)
    for sort in queries.INNOVATION_SORTS:
        rows, cursor = [], None
        while True:
            page = queries.innovation_rows(store, sort=sort, limit=3, cursor=cursor)
            rows += page.items
            if (cursor := page.next_cursor) is None:
                break
        answers[f"innovations by {sort}"] = rows
    return answers


def test_the_record_rebuilt_into_a_fresh_view_store_answers_the_same_figures(
    record: Record, tmp_path: Path
) -> None:
    with fresh_views(record.server, tmp_path) as store:
        rebuild(record.api.runtime.network, store)
        assert figures(store) == figures(record.api.runtime.views)


def test_upgrading_a_view_store_fills_the_modification_log_from_the_replication_documents(
    record: Record, tmp_path: Path
) -> None:
    with fresh_views(record.server, tmp_path) as store:
        rebuild(record.api.runtime.network, store)
        before = figures(store)
        assert len(before["modifications"]) == 5
        config = alembic_config()
        with store.engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")  # a store as it was before the log existed
            connection.commit()
        upgrade(store.engine)
        assert figures(store) == before


def test_a_modification_delivered_again_is_logged_once(record: Record, tmp_path: Path) -> None:
    records = []
    after = 0
    while batch := read_records(record.api.runtime.network, after, 500):
        records += batch
        after = batch[-1].position
    with fresh_views(record.server, tmp_path) as store:
        projection = IndexProjection()
        with store.begin() as conn:
            for event in records + [r for r in records if r.type == "ModificationRecorded"]:
                projection.project(conn, event)  # no position tracking: the projection itself must not double
        assert figures(store) == figures(record.api.runtime.views)


# --- a property: any record, rebuilt, answers the same ---------------------------------------------

ADOPTERS = ("35.04", "35.05", "33.01", "33.02", "32.01", "12.01")
NEXT_STEP = {
    "diusulkan": ("agreement", "signed_on", {"document": "mou", "document_number": "MOU/1"}),
    "disepakati": ("adoption", "effective_on", {"stage": "uji_coba"}),
    "uji_coba": ("adoption", "effective_on", {"stage": "penerapan"}),
}
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ("propose", "propose", "advance", "advance", "advance", "reject", "discontinue", "modify")
        ),
        st.integers(0, 50),
        st.integers(0, 50),
        st.integers(1, 45),  # days after the operation before
    ),
    min_size=4,
    max_size=16,
)


def play(api: Api, token: str, home: str, operations: list[tuple[str, int, int, int]]) -> None:
    """A random but mostly lawful history of one new innovation, through the API. Refused commands (a rule the
    draw broke) store nothing and are part of the test: they must not disturb the figures either."""
    d = Driver(api, token)
    innovation = d.innovation(
        home, "Inovasi Acak", "pelayanan_publik", ["kesehatan", "pendidikan"], "2024-01-01"
    )
    clock = date(2024, 2, 1)
    held: list[dict[str, Any]] = []  # {"id", "adopter", "status"} of each replication proposed
    for operation, a, b, gap in operations:
        clock += timedelta(days=gap)
        on = clock.isoformat()
        if operation == "propose" or not held:
            source = home if b % 3 == 0 or not held else held[b % len(held)]["adopter"]
            body = {
                "innovation_id": innovation,
                "adopting_region": ADOPTERS[a % len(ADOPTERS)],
                "source_region": source,
                "rationale": "Acak.",
                "proposed_on": on,
            }
            response = api.post(REPLICATIONS, body, token)
            if response.status_code == 201:
                proposed = response.get_json()
                held.append(
                    {
                        "id": proposed["id"],
                        "adopter": body["adopting_region"],
                        "status": "diusulkan",
                        "generation": proposed["generation"],
                    }
                )
            assert response.status_code in (201, 409), response.get_json()
            continue
        replication = held[a % len(held)]
        if operation == "advance":  # one to three steps forward, a day apart
            for _ in range(b % 3 + 1):
                if replication["status"] not in NEXT_STEP:
                    break
                command, date_field, body = NEXT_STEP[replication["status"]]
                path = f"{REPLICATIONS}/{replication['id']}/{command}"
                response = api.post(path, {**body, date_field: clock.isoformat()}, token)
                assert response.status_code == 200, response.get_json()
                replication["status"] = response.get_json()["status"]
                clock += timedelta(days=1)
            continue
        if operation == "reject":
            command, body = "rejection", {"reason": "Tidak.", "rejected_on": on}
        elif operation == "discontinue":
            command, body = "discontinuation", {"reason": "Berhenti.", "effective_on": on}
        else:
            command = "modifications"
            body = {
                "component": COMPONENTS[b % len(COMPONENTS)],
                "nature": NATURES[b % len(NATURES)],
                "core": b % 2 == 0,
                "description": "Acak.",
                "reason": "Acak.",
                "recorded_on": on,
            }
        response = api.post(f"{REPLICATIONS}/{replication['id']}/{command}", body, token)
        assert response.status_code in (200, 409), response.get_json()
        if response.status_code == 200:
            replication["status"] = response.get_json()["status"]
    event(f"replications: {len(held)}")
    event(f"deepest generation: {max((r['generation'] for r in held), default=0)}")
    event(f"statuses reached: {' '.join(sorted({r['status'] for r in held}))}")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(home=st.sampled_from(("35.04", "33.01", "32.01")), operations=OPERATIONS)
def test_any_record_rebuilt_into_a_fresh_view_store_answers_the_same_figures(
    api: Api, admin_token: str, backend: str, request: Any, tmp_path: Path, home: str, operations: Any
) -> None:
    play(api, admin_token, home, operations)
    api.settle()
    server = request.getfixturevalue("postgres_server") if backend == "postgres" else None
    with fresh_views(server, tmp_path) as store:
        rebuild(api.runtime.network, store)
        assert figures(store) == figures(api.runtime.views)
