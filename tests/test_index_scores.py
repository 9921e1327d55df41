"""The region score of a year (index.md "Region score for year Y"; api.md "Index views"), golden figures.

A fixed record is driven through the HTTP API (commands only, with business dates in 2024-2026 so that the
figures never depend on the day the tests run), and every expected figure below is worked out by hand from the
method: sid = S / max(12, n_e); count_score = min(n, 200) x 0.38; index = (sid + count_score) / 187 x 100,
rounded half-up to 2 decimals. Weights (iid-2026): video 4; regulasi, kemanfaatan, replikasi 3; sdm, anggaran,
alat_kerja, rkpd, kecepatan_hasil, layanan_terintegrasi, kecepatan_penciptaan, monev 2; the others 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import innovation_fields
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.catalogue import Catalogues, region_index
from domain.errors import InvalidInput, RuleViolation
from domain.evaluation import EvaluationInput
from projections import ProjectionRunner, ViewStore, all_projections, scores
from service.network import read_records

INNOVATIONS = "/api/v1/innovations"
REPLICATIONS = "/api/v1/replications"
REGIONS = "/api/v1/index/regions"

# Levels stated by the evaluator (replikasi is derived by the service, never sent).
LEVELS_30 = {"video": 3, "regulasi": 3, "kemanfaatan": 3}  # 12 + 9 + 9 = 30
LEVELS_60 = {**LEVELS_30, "sdm": 3, "anggaran": 3, "alat_kerja": 3, "rkpd": 3, "monev": 3}  # 30 + 5 x 6 = 60
LEVELS_90 = {  # 60 + 3 x 6 + 4 x 3 = 90
    **LEVELS_60,
    "kecepatan_hasil": 3,
    "layanan_terintegrasi": 3,
    "kecepatan_penciptaan": 3,
    "bimtek": 3,
    "keterlibatan_aktor": 3,
    "pelaksana": 3,
    "jejaring": 3,
}


# --- driving the record through the API -----------------------------------------------------------


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def register(api: Any, token: str, region: str, name: str, started_on: str, stage: str = "penerapan") -> str:
    fields = innovation_fields(region=region, name=name, stage=stage)
    fields["started_on"] = started_on
    return str(ok(api.post(INNOVATIONS, fields, token), 201)["id"])


def replicate(api: Any, token: str, innovation_id: str, adopter: str, *dates: str) -> str:
    """Propose, sign, trial and implement: `dates` are the business dates of the steps taken, in order."""
    proposed, *steps = dates
    body = {
        "innovation_id": innovation_id,
        "adopting_region": adopter,
        "rationale": "Fits us.",
        "proposed_on": proposed,
    }
    replication_id = str(ok(api.post(REPLICATIONS, body, token), 201)["id"])
    path = f"{REPLICATIONS}/{replication_id}"
    commands = [
        ("agreement", lambda on: {"document": "pks", "document_number": "PKS/1", "signed_on": on}),
        ("adoption", lambda on: {"stage": "uji_coba", "effective_on": on}),
        ("adoption", lambda on: {"stage": "penerapan", "effective_on": on}),
    ]
    for (command, body_of), on in zip(commands, steps, strict=False):
        ok(api.post(f"{path}/{command}", body_of(on), token))
    return replication_id


def evaluate(api: Any, token: str, path: str, year: int, on: str, levels: dict[str, int]) -> int:
    """Record an evaluation; answers the total the service computed (with the derived replikasi)."""
    body = {"year": year, "scores": levels, "evaluated_on": on}
    answer = ok(api.post(f"{path}/evaluations", body, token))
    return int(answer["evaluations"][-1]["total"])


@pytest.fixture
def record(api: Any, admin_token: str) -> dict[str, Any]:
    """The fixed record; answers the ids and the totals the service computed."""
    t = admin_token
    ids: dict[str, Any] = {}
    # 35.71 Kota Kediri: a source innovation, at penerapan since 2024, never evaluated.
    ids["source"] = source = register(api, t, "35.71", "Sumber", "2024-01-02")

    # 35.05 adopts it in 2024, is evaluated for 2024 (30) and 2025 (90), and is discontinued in February 2025.
    ids["r_0505"] = r = replicate(
        api, t, source, "35.05", "2024-02-01", "2024-02-10", "2024-03-01", "2024-04-01"
    )
    ids["t_0505_2024"] = evaluate(api, t, f"{REPLICATIONS}/{r}", 2024, "2024-06-01", LEVELS_30)
    ids["t_0505_2025"] = evaluate(api, t, f"{REPLICATIONS}/{r}", 2025, "2025-01-15", LEVELS_90)
    stop = {"reason": "Budget cut", "effective_on": "2025-02-01"}
    ok(api.post(f"{REPLICATIONS}/{r}/discontinuation", stop, t))

    # 35.04 Tulungagung, the worked example of index.md: its own innovation (evaluated 30, then 60: the later
    # counts) and its replication of the source (evaluated 90), both at penerapan in 2025.
    ids["own_0504"] = own = register(api, t, "35.04", "Sendiri", "2025-02-01")
    ids["t_0504_first"] = evaluate(api, t, f"{INNOVATIONS}/{own}", 2025, "2025-02-15", LEVELS_30)
    ids["t_0504_own"] = evaluate(api, t, f"{INNOVATIONS}/{own}", 2025, "2025-03-01", LEVELS_60)
    ids["r_0504"] = r = replicate(
        api, t, source, "35.04", "2025-01-10", "2025-01-20", "2025-02-01", "2025-03-01"
    )
    ids["t_0504_adopted"] = evaluate(api, t, f"{REPLICATIONS}/{r}", 2025, "2025-04-01", LEVELS_90)

    # 35.06: its innovation is evaluated for 2024 as adopters reach penerapan (replikasi 0, 1, 2), twice on the
    # last day (the later position counts).
    ids["own_0506"] = own = register(api, t, "35.06", "Replikasi", "2024-01-05")
    path = f"{INNOVATIONS}/{own}"
    ids["t_0506_none"] = evaluate(api, t, path, 2024, "2024-03-01", LEVELS_30)
    ids["r_0507"] = replicate(api, t, own, "35.07", "2024-03-05", "2024-03-10", "2024-03-20", "2024-04-01")
    ids["t_0506_one"] = evaluate(api, t, path, 2024, "2024-05-01", LEVELS_30)
    ids["r_0508"] = replicate(api, t, own, "35.08", "2024-05-05", "2024-05-10", "2024-05-20", "2024-06-01")
    ids["t_0506_two"] = evaluate(api, t, path, 2024, "2024-07-01", LEVELS_30)
    ids["t_0506_last"] = evaluate(api, t, path, 2024, "2024-07-01", LEVELS_60)

    # 35.09: an innovation on trial in 2025, evaluated then (90), at penerapan only from 10 January 2026.
    ids["own_0509"] = own = register(api, t, "35.09", "Terlambat", "2025-06-01", stage="uji_coba")
    ids["t_0509"] = evaluate(api, t, f"{INNOVATIONS}/{own}", 2025, "2025-09-01", LEVELS_90)
    ok(api.post(f"{INNOVATIONS}/{own}/stage", {"stage": "penerapan", "effective_on": "2026-01-10"}, t))
    # 35.10 adopts the source: on trial in December 2025, at penerapan on 5 January 2026.
    ids["r_0510"] = replicate(api, t, source, "35.10", "2025-11-01", "2025-11-10", "2025-12-01", "2026-01-05")
    api.settle()
    return ids


def region(api: Any, code: str, year: int) -> Any:
    return ok(api.get(f"{REGIONS}/{code}?year={year}"))


def rows(api: Any, query: str) -> list[dict[str, Any]]:
    return list(ok(api.get(f"{REGIONS}?limit=1000&{query}"))["items"])


def by_code(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["code"]: row for row in items}


# --- the figures ----------------------------------------------------------------------------------


def test_evaluation_totals_derive_replikasi_from_adopters_at_penerapan(record: dict[str, Any]) -> None:
    assert record["t_0504_own"] == 60  # nothing replicated from 35.04: replikasi 0
    assert record["t_0504_adopted"] == 90
    assert record["t_0506_none"] == 30  # no adopter yet
    assert record["t_0506_one"] == 30 + 3  # 35.07 at penerapan: replikasi 1 x weight 3
    assert record["t_0506_two"] == 30 + 6  # 35.07 and 35.08: replikasi 2
    assert record["t_0506_last"] == 60 + 6


def test_worked_example_of_index_md(api: Any, record: dict[str, Any]) -> None:
    row = region(api, "35.04", 2025)
    # sid = (60 + 90) / max(12, 2) = 12.5; count = 2 x 0.38 = 0.76; 13.26 / 187 x 100 = 7.0909 -> 7.09
    assert (row["index"], row["category"]) == (7.09, "kurang_inovatif")
    score = row["breakdown"]
    assert (score["n"], score["n_e"], score["S"], score["k"], score["divisor"]) == (2, 2, 150, 12, 12)
    assert (score["sid"], score["count_score"], score["index"]) == (12.5, 0.76, 7.09)
    assert score["catalogue"] == "iid-2026"
    assert score["as_of"] == "2025-12-31"
    assert "SPD" in score["scope"]


def test_breakdown_lists_each_counted_evaluation(api: Any, record: dict[str, Any]) -> None:
    score = region(api, "35.04", 2025)["breakdown"]
    counted = [
        (e["subject_kind"], e["subject_id"], e["evaluated_on"], e["total"]) for e in score["evaluations"]
    ]
    # the innovation's first 2025 evaluation (30, 15 February) is replaced by its later one
    assert counted == [
        ("innovation", record["own_0504"], "2025-03-01", 60),
        ("replication", record["r_0504"], "2025-04-01", 90),
    ]
    assert [e["score"] for e in score["evaluations"]] == [54.05, 81.08]  # 60 / 111, 90 / 111 x 100
    practices = {(p["kind"], p["id"], p["penerapan_on"]) for p in score["practices"]}
    assert practices == {
        ("innovation", record["own_0504"], "2025-02-01"),  # registered at penerapan: its started_on
        ("replication", record["r_0504"], "2025-03-01"),
    }


def test_the_latest_evaluation_of_the_year_counts_later_position_on_the_same_day(
    api: Any, record: dict[str, Any]
) -> None:
    row = region(api, "35.06", 2024)
    # one practice, E = {66}: sid = 66 / 12 = 5.5; + 0.38 = 5.88; / 187 x 100 = 3.1444 -> 3.14
    assert row["index"] == 3.14
    assert [e["total"] for e in row["breakdown"]["evaluations"]] == [66]


def test_a_region_with_practices_but_no_evaluations_has_the_count_score_only(
    api: Any, record: dict[str, Any]
) -> None:
    row = region(api, "35.71", 2024)
    score = row["breakdown"]
    # n = 1, n_e = 0: sid = 0 / 12 = 0; count = 0.38; 0.38 / 187 x 100 = 0.2032 -> 0.20
    assert (score["n"], score["n_e"], score["sid"], score["count_score"]) == (1, 0, 0.0, 0.38)
    assert (row["index"], row["category"]) == (0.2, "kurang_inovatif")


def test_a_region_with_nothing_recorded_cannot_be_assessed(api: Any, record: dict[str, Any]) -> None:
    row = region(api, "35.01", 2025)
    assert (row["index"], row["category"], row["innovations"]) == (0.0, "tidak_dapat_dinilai", 0)
    assert row["replications_as_source"] == {"adopters": 0, "at_penerapan": 0}
    assert set(row["replications_as_adopter"].values()) == {0}
    assert row["breakdown"]["practices"] == []


def test_a_discontinued_replication_drops_out_of_the_next_year(api: Any, record: dict[str, Any]) -> None:
    in_2024 = region(api, "35.05", 2024)
    # sid = 30 / 12 = 2.5; + 0.38 = 2.88; / 187 x 100 = 1.5401 -> 1.54
    assert (in_2024["index"], in_2024["category"]) == (1.54, "kurang_inovatif")
    assert in_2024["replications_as_adopter"]["penerapan"] == 1
    in_2025 = region(api, "35.05", 2025)
    # discontinued on 1 February 2025: no practice, so its 2025 evaluation (90) counts for nothing
    assert (in_2025["index"], in_2025["category"]) == (0.0, "tidak_dapat_dinilai")
    assert in_2025["breakdown"]["evaluations"] == []
    assert in_2025["replications_as_adopter"]["dihentikan"] == 1
    assert in_2025["replications_as_adopter"]["penerapan"] == 0


def test_reaching_penerapan_in_the_next_year_does_not_count(api: Any, record: dict[str, Any]) -> None:
    late = region(api, "35.09", 2025)
    # on trial at the end of 2025: not a practice, its 2025 evaluation (90) is not counted
    assert (late["index"], late["innovations"]) == (0.0, 1)
    assert late["breakdown"]["n"] == 0
    assert late["breakdown"]["practices"] == []
    adopter = region(api, "35.10", 2025)
    assert adopter["index"] == 0.0
    assert adopter["replications_as_adopter"]["uji_coba"] == 1
    assert adopter["replications_as_adopter"]["penerapan"] == 0
    source = region(api, "35.71", 2025)
    # 35.04 at penerapan; 35.05 discontinued (an adopter, not at penerapan); 35.10 on trial
    assert source["replications_as_source"] == {"adopters": 3, "at_penerapan": 1}


def test_the_next_year_counts_what_reached_penerapan_in_it(api: Any, record: dict[str, Any]) -> None:
    if today() < date(2026, 1, 10):
        pytest.skip("needs 2026-01-10 to be past")
    # one practice each from January 2026, no 2026 evaluations: 0.38 / 187 x 100 = 0.20
    assert region(api, "35.09", 2026)["index"] == 0.2
    assert region(api, "35.10", 2026)["index"] == 0.2
    assert region(api, "35.71", 2026)["replications_as_source"] == {"adopters": 3, "at_penerapan": 2}


def test_ranking_orders_by_index_then_adopters_at_penerapan_then_code(
    api: Any, record: dict[str, Any]
) -> None:
    ranked = rows(api, "year=2025&province=35&sort=index")
    # 7.09; then 0.20 each: 35.06 (2 adopters at penerapan), 35.71 (1), 35.07 and 35.08 (0, by code);
    # then index 0, all without adopters, by code: the province itself first
    assert [(row["code"], row["rank"]) for row in ranked[:7]] == [
        ("35.04", 1),
        ("35.06", 2),
        ("35.71", 3),
        ("35.07", 4),
        ("35.08", 5),
        ("35", 6),
        ("35.01", 7),
    ]
    assert [row["index"] for row in ranked[:6]] == [7.09, 0.2, 0.2, 0.2, 0.2, 0.0]
    assert [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))


def test_ranking_of_2024(api: Any, record: dict[str, Any]) -> None:
    ranked = rows(api, "year=2024&province=35&sort=index")
    # 35.06 3.14; 35.05 1.54; 0.20: 35.71 (35.05 at penerapan), 35.07, 35.08; 35.04 had nothing in 2024
    assert [(row["code"], row["index"]) for row in ranked[:6]] == [
        ("35.06", 3.14),
        ("35.05", 1.54),
        ("35.71", 0.2),
        ("35.07", 0.2),
        ("35.08", 0.2),
        ("35", 0.0),
    ]
    assert by_code(ranked)["35.04"]["category"] == "tidak_dapat_dinilai"


def test_rank_is_the_position_within_the_filter(api: Any, record: dict[str, Any]) -> None:
    kota = rows(api, "year=2025&province=35&type=kota&sort=index")
    assert (kota[0]["code"], kota[0]["rank"]) == ("35.71", 1)
    national = by_code(rows(api, "year=2025"))
    assert national["35.04"]["rank"] == 1  # nothing else recorded anywhere scores higher
    assert national["35.71"]["rank"] == 3
    by_code_order = rows(api, "year=2025&province=35")  # sorted by code, ranks unchanged
    assert by_code(by_code_order)["35.06"]["rank"] == 2
    assert region(api, "35.71", 2025)["rank"] == 3  # the detail is ranked nationally


def test_every_region_has_a_row_whatever_the_year(api: Any, record: dict[str, Any]) -> None:
    for year in (2024, 2025):
        items = rows(api, f"year={year}")
        assert len(items) == 552
        assert {row["year"] for row in items} == {year}


def test_sorting_by_index_pages_without_skipping_or_repeating(api: Any, record: dict[str, Any]) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        query = f"{REGIONS}?year=2025&sort=index&limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = ok(api.get(query))
        seen += [row["code"] for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [row["code"] for row in rows(api, "year=2025&sort=index")]
    assert len(set(seen)) == 552


def test_the_default_year_is_the_current_one(api: Any, record: dict[str, Any]) -> None:
    year = today().year
    if scores.catalogues().for_year(year) is None:
        assert ok(api.get(REGIONS), 422)["errors"]["year"]
        return
    assert ok(api.get(f"{REGIONS}?province=35"))["items"] == rows(api, f"year={year}&province=35")[:50]
    detail = ok(api.get(f"{REGIONS}/35.04"))
    assert detail["year"] == year
    assert detail["breakdown"]["as_of"] == today().isoformat()


@pytest.mark.parametrize("path", [f"{REGIONS}?year=2027", f"{REGIONS}/35.04?year=2027"])
def test_a_year_no_catalogue_covers_is_a_422(api: Any, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert "2027" in problem["errors"]["year"][0]


def test_the_row_of_the_detail_is_the_row_of_the_listing(api: Any, record: dict[str, Any]) -> None:
    listed = by_code(rows(api, "year=2025"))
    for code in ("35.04", "35.05", "35.06", "35.71", "35.01"):
        detail = region(api, code, 2025)
        breakdown = detail.pop("breakdown")
        assert set(detail.pop("replication_metrics")) == {"as_of", "as_source", "as_adopter", "adaptation"}
        assert detail == listed[code]
        assert breakdown["index"] == detail["index"]


def test_a_further_year_is_scored_by_adding_a_catalogue_file_only(
    api: Any, record: dict[str, Any], tmp_path: Path
) -> None:
    packaged = Path(scores.__file__).resolve().parent.parent / "domain" / "catalogues" / "iid-2026.json"
    data = json.loads(packaged.read_text(encoding="utf-8"))
    data.update(version="iid-2027", years={"from": 2027, "to": 2027}, divisor_floor=10)
    data["count_score"] = {"factor": "0.5", "cap": 200}
    folder = tmp_path / "catalogues"
    folder.mkdir()
    (folder / "iid-2026.json").write_text(packaged.read_text(encoding="utf-8"))
    (folder / "iid-2027.json").write_text(json.dumps(data))
    found = Catalogues.from_directory(folder)
    with pytest.raises(scores.UncoveredYear):
        scores.period_of(2027, on=date(2027, 3, 1))  # the packaged catalogues do not cover 2027

    period = scores.period_of(2027, on=date(2027, 3, 1), within=found)
    assert (period.catalogue.version, period.as_of) == ("iid-2027", date(2027, 3, 1))
    row = scores.region_detail(api.runtime.views, period, "35.04")
    assert row is not None
    # 2027: the two practices go on, no 2027 evaluation; count = 2 x 0.5 = 1; max 111 + 200 x 0.5 = 211;
    # 1 / 211 x 100 = 0.4739 -> 0.47
    score = row["breakdown"]
    assert (score["catalogue"], score["k"], score["count_score"], row["index"]) == ("iid-2027", 10, 1.0, 0.47)
    same_year_2025 = scores.period_of(2025, within=found)
    assert same_year_2025.catalogue.version == "iid-2026"


# --- rebuilding ---------------------------------------------------------------------------------


def test_rebuilding_the_projection_from_the_events_gives_the_same_figures(
    api: Any, record: dict[str, Any], tmp_path: Path
) -> None:
    network = api.runtime.network
    fresh = ViewStore(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    fresh.create_all()
    runner = ProjectionRunner(
        fresh,
        lambda after, limit: read_records(network, after, limit),
        network.head_position,
        all_projections(),
    )
    try:
        assert runner.catch_up() == network.head_position()
        for year in (2024, 2025):
            period = scores.period_of(year)
            served = scores.region_rows(api.runtime.views, period, limit=1000, sort="index").items
            rebuilt = scores.region_rows(fresh, period, limit=1000, sort="index").items
            assert rebuilt == served
            for code in ("35.04", "35.05", "35.06"):
                assert scores.region_detail(fresh, period, code) == scores.region_detail(
                    api.runtime.views, period, code
                )
    finally:
        runner.stop()
        fresh.dispose()


# --- property: any history, rebuilt into a fresh view store, gives the same figures ----------------

PLACES = ("35.04", "35.05", "35.06", "35.07", "35.71")
FIRST_DAY = date(2024, 1, 1)
Op = tuple[str, int, int]

operations = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "register",
                "register_trial",
                "innovation_penerapan",
                "propose",
                "agree",
                "trial",
                "implement",
                "reject",
                "discontinue",
                "evaluate_innovation",
                "evaluate_replication",
                "retire",
            ]
        ),
        st.integers(0, 20),
        st.integers(0, 20),
    ),
    min_size=5,
    max_size=36,
)


def play(network: Any, ops: list[Op], after_each: Callable[[], Any]) -> None:
    """Apply the operations in the order given, one every 20 days from 2024-01-01; refused ones are skipped
    (the rules decide what a history can contain)."""
    own: list[UUID] = []
    adopted: list[UUID] = []
    levels = list(LEVELS_90)
    for number, (kind, a, b) in enumerate(ops):
        on = FIRST_DAY + timedelta(days=20 * number)
        pick = own[a % len(own)] if own else None
        chosen = adopted[a % len(adopted)] if adopted else None
        stated = {code: (a + b + i) % 4 for i, code in enumerate(levels[: 1 + b % len(levels)])}
        try:
            if kind in ("register", "register_trial"):
                fields = innovation_fields(region=PLACES[a % len(PLACES)], name=f"Inovasi {number}")
                fields.update(stage="penerapan" if kind == "register" else "uji_coba", started_on=on)
                own.append(network.register_innovation(**fields).aggregate.id)
            elif pick is None:
                continue
            elif kind == "innovation_penerapan":
                network.advance_innovation_stage(pick, "penerapan", on)
            elif kind == "propose":
                adopter = PLACES[b % len(PLACES)]
                outcome = network.propose_replication(
                    innovation_id=pick, adopting_region=adopter, rationale="Cocok.", proposed_on=on
                )
                adopted.append(outcome.aggregate.id)
            elif kind == "evaluate_innovation":
                network.evaluate_innovation(pick, EvaluationInput(on.year, stated, on, {}))
            elif kind == "retire":
                network.retire_innovation(pick, "Selesai.", on)
            elif chosen is None:
                continue
            elif kind == "agree":
                network.sign_agreement(chosen, document="pks", document_number="PKS/1", signed_on=on)
            elif kind in ("trial", "implement"):
                stage = "uji_coba" if kind == "trial" else "penerapan"
                network.advance_adoption(chosen, stage=stage, effective_on=on)
            elif kind == "reject":
                network.reject_replication(chosen, reason="Belum siap.", rejected_on=on)
            elif kind == "discontinue":
                network.discontinue_replication(chosen, reason="Anggaran habis.", effective_on=on)
            elif kind == "evaluate_replication":
                network.evaluate_replication(chosen, EvaluationInput(on.year, stated, on, {}))
        except (RuleViolation, InvalidInput):
            continue
        after_each()


def figures_of(store: ViewStore) -> dict[int, Any]:
    answer: dict[int, Any] = {}
    for year in (2024, 2025, 2026):
        period = scores.period_of(year, on=date(2026, 6, 30))
        answer[year] = (
            scores.region_rows(store, period, province="35", limit=1000, sort="index").items,
            [scores.region_detail(store, period, code) for code in PLACES],
        )
    return answer


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_any_history_rebuilt_from_the_events_gives_the_same_figures(
    runtime: Any, tmp_path_factory: Any, ops: list[Op]
) -> None:
    network = runtime.network
    with acting_as(Actor("property", "admin", "req-property")):
        play(network, ops, runtime.runner.catch_up)  # the served views follow event by event
    assert runtime.runner.catch_up() == network.head_position()
    fresh = ViewStore(f"sqlite:///{tmp_path_factory.mktemp('rebuilt') / 'views.sqlite'}")
    fresh.create_all()
    runner = ProjectionRunner(
        fresh,
        lambda after, limit: read_records(network, after, limit),
        network.head_position,
        all_projections(),
    )
    try:
        assert runner.catch_up() == network.head_position()
        served, rebuilt = figures_of(runtime.views), figures_of(fresh)
        assert rebuilt == served
        scored = sum(1 for items, _ in served.values() for row in items if row["index"] > 0)
        event(f"rows with an index above 0: {min(scored, 5)}{'+' if scored >= 5 else ''}")
        for rows_of_year, details in served.values():
            assert [row["rank"] for row in rows_of_year] == list(range(1, len(rows_of_year) + 1))
            for detail in details:  # the breakdown recomputes the figure
                score = detail["breakdown"]
                catalogue = scores.catalogues().get(score["catalogue"])
                totals = [e["total"] for e in score["evaluations"]]
                again = region_index(totals, len(score["practices"]), catalogue)
                assert float(again.index) == detail["index"] == score["index"]
    finally:
        runner.stop()
        fresh.dispose()
