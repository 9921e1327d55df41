"""The innovations API (api.md "Innovations"): registration, reads, listings with every filter and cursor
pages, and the commands that move an innovation through its life, through HTTP on a real SQLite store."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import days_ago, innovation_fields

INNOVATIONS = "/api/v1/innovations"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
EVALUATION_YEAR = 2026  # covered by iid-2026 and not after any recent evaluation date


# --- helpers ----------------------------------------------------------------------------------


def as_json(fields: dict[str, Any]) -> dict[str, Any]:
    """Dates as `YYYY-MM-DD`, as a client sends them."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()}


def register(api: Any, token: str, **overrides: Any) -> Any:
    response = api.post(INNOVATIONS, as_json(innovation_fields(**overrides)), token)
    assert response.status_code == 201, response.get_json()
    return response


def registered(api: Any, token: str, **overrides: Any) -> dict[str, Any]:
    return register(api, token, **overrides).get_json()


def read(api: Any, path: str, response: Any) -> Any:
    """A GET that sees everything `response` stored."""
    return api.get(f"{path}{'&' if '?' in path else '?'}min_position={response.headers['X-Event-Position']}")


def listed_ids(api: Any, query: str) -> list[str]:
    api.settle()
    response = api.get(f"{INNOVATIONS}?{query}")
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def assert_refused(
    api: Any, path: str, body: dict[str, Any], token: str, status: int, slug: str, rule: str | None = None
) -> dict[str, Any]:
    """The command is refused with this problem, and nothing is stored."""
    before = api.runtime.network.head_position()
    response = api.post(path, as_json(body), token)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == f"/problems/{slug}"
    if rule is not None:
        assert problem["rule"] == rule
    assert api.runtime.network.head_position() == before
    return problem


def stage(api: Any, token: str, innovation_id: str, to: str, days: int) -> Any:
    return api.post(
        f"{INNOVATIONS}/{innovation_id}/stage",
        {"stage": to, "effective_on": days_ago(days).isoformat()},
        token,
    )


# --- registration -----------------------------------------------------------------------------


def test_registration_answers_201_with_location_etag_and_event_position(api: Any, admin_token: str) -> None:
    before = api.runtime.network.head_position()
    response = register(api, admin_token)
    body = response.get_json()
    assert response.headers["Location"] == f"{INNOVATIONS}/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers["X-Event-Position"]) == before + 1 == api.runtime.network.head_position()


def test_registration_answers_the_innovation_with_its_region_name_and_no_replications(
    api: Any, admin_token: str
) -> None:
    body = registered(api, admin_token, objectives="Reach every village.")
    assert body["region"] == "35.04"
    assert body["region_name"] == "Kabupaten Tulungagung"
    assert body["name"] == "Layanan Kesehatan Keliling"
    assert body["form"] == "pelayanan_publik"
    assert body["urusan"] == ["kesehatan"]
    assert body["initiator"] == "perangkat_daerah"
    assert body["stage"] == "penerapan"
    assert body["digital"] is False
    assert body["started_on"] == days_ago(400).isoformat()
    assert body["objectives"] == "Reach every village."
    assert body["retired"] is False
    assert body["evaluations"] == []
    assert body["version"] == 1
    assert body["replication_count"] == 0


def test_registration_trims_strings(api: Any, admin_token: str) -> None:
    body = registered(api, admin_token, name="  Sapa Warga  ")
    assert body["name"] == "Sapa Warga"


def test_registration_stores_an_empty_optional_text_as_null(api: Any, admin_token: str) -> None:
    body = registered(api, admin_token, objectives="   ", benefits="")
    assert body["objectives"] is None
    assert body["benefits"] is None


def test_registered_innovation_can_be_read_back(api: Any, admin_token: str) -> None:
    response = register(api, admin_token)
    answer = read(api, response.headers["Location"], response)
    assert answer.status_code == 200
    assert answer.get_json() == response.get_json()
    assert answer.headers["ETag"] == '"1"'
    assert int(answer.headers["X-Projection-Position"]) >= int(response.headers["X-Event-Position"])


def test_unknown_innovation_is_404(api: Any) -> None:
    response = api.get(f"{INNOVATIONS}/{UNKNOWN_ID}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "/problems/not-found"


def test_command_on_unknown_innovation_is_404(api: Any, admin_token: str) -> None:
    assert_refused(
        api,
        f"{INNOVATIONS}/{UNKNOWN_ID}/stage",
        {"stage": "penerapan", "effective_on": days_ago(1)},
        admin_token,
        404,
        "not-found",
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"form": "unknown_form"}, "form"),
        ({"urusan": ["kesehatan", "astrologi"]}, "urusan.1"),
        ({"urusan": []}, "urusan"),
        ({"region": "99.99"}, "region"),
        ({"region": "3504"}, "region"),
        ({"started_on": days_ago(-2)}, "started_on"),
        ({"name": "   "}, "name"),
        ({"digital": "yes"}, "digital"),
        ({"colour": "red"}, "colour"),
    ],
    ids=[
        "unknown-form",
        "unknown-urusan",
        "no-urusan",
        "unknown-region",
        "undotted-region",
        "future-start",
        "empty-name",
        "non-boolean-digital",
        "unknown-field",
    ],
)
def test_invalid_registration_is_422_naming_the_field(
    api: Any, admin_token: str, overrides: dict[str, Any], field: str
) -> None:
    problem = assert_refused(
        api, INNOVATIONS, innovation_fields(**overrides), admin_token, 422, "validation-error"
    )
    assert field in problem["errors"]


def test_registration_without_a_required_field_is_422(api: Any, admin_token: str) -> None:
    fields = innovation_fields()
    del fields["description"]
    problem = assert_refused(api, INNOVATIONS, fields, admin_token, 422, "validation-error")
    assert "description" in problem["errors"]


# --- listing: filters -------------------------------------------------------------------------


@pytest.fixture
def catalogue(api: Any, admin_token: str) -> dict[str, str]:
    """Five innovations that differ in one filterable facet each, by name."""
    made = {
        "tulungagung": registered(api, admin_token, name="Sapa Warga Tulungagung"),
        "malang": registered(
            api,
            admin_token,
            region="35.07",
            name="Klinik Pertanian Keliling",
            form="tata_kelola",
            urusan=["pertanian", "pangan"],
            stage="uji_coba",
        ),
        "bandung": registered(
            api, admin_token, region="32.04", name="Pasar Digital", urusan=["perdagangan"], stage="inisiatif"
        ),
        "jatim": registered(
            api,
            admin_token,
            region="35",
            name="Beasiswa Provinsi",
            form="urusan_pemerintahan",
            urusan=["pendidikan"],
        ),
        "retired": registered(api, admin_token, region="35.05", name="Arsip Lama", urusan=["kearsipan"]),
    }
    retired = api.post(
        f"{INNOVATIONS}/{made['retired']['id']}/retirement",
        {"reason": "Replaced", "effective_on": days_ago(1).isoformat()},
        admin_token,
    )
    assert retired.status_code == 200, retired.get_json()
    return {key: doc["id"] for key, doc in made.items()}


def test_list_without_filters_answers_every_innovation_in_registration_order(
    api: Any, catalogue: dict[str, str]
) -> None:
    assert listed_ids(api, "") == list(catalogue.values())


def test_list_filters_by_region(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "region=35.07") == [catalogue["malang"]]


def test_list_filters_by_province_covering_its_kabupaten_and_itself(
    api: Any, catalogue: dict[str, str]
) -> None:
    assert listed_ids(api, "province=35") == [
        catalogue["tulungagung"],
        catalogue["malang"],
        catalogue["jatim"],
        catalogue["retired"],
    ]


def test_list_filters_by_form(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "form=tata_kelola") == [catalogue["malang"]]


def test_list_filters_by_any_of_its_urusan(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "urusan=pangan") == [catalogue["malang"]]


def test_list_filters_by_stage(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "stage=inisiatif") == [catalogue["bandung"]]


def test_list_filters_by_name_search_ignoring_case(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "q=KELILING") == [catalogue["malang"]]


def test_list_filters_by_retired(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "retired=true") == [catalogue["retired"]]
    assert catalogue["retired"] not in listed_ids(api, "retired=false")
    assert len(listed_ids(api, "retired=false")) == 4


def test_list_combines_filters(api: Any, catalogue: dict[str, str]) -> None:
    assert listed_ids(api, "province=35&form=pelayanan_publik&retired=false") == [catalogue["tulungagung"]]


def test_name_search_takes_wildcards_literally(api: Any, admin_token: str) -> None:
    literal = registered(api, admin_token, name="Layanan 100% Online")["id"]
    registered(api, admin_token, name="Layanan Cepat")
    assert listed_ids(api, "q=100%25") == [literal]
    assert listed_ids(api, "q=%25") == [literal]


@pytest.mark.parametrize(
    "query",
    ["region=3504", "form=nope", "stage=selesai", "urusan=astrologi", "retired=maybe", "province=35.04"],
)
def test_list_with_an_unparseable_filter_is_400(api: Any, query: str) -> None:
    response = api.get(f"{INNOVATIONS}?{query}")
    assert response.status_code == 400
    assert response.get_json()["type"] == "/problems/malformed-request"


# --- listing: cursors -------------------------------------------------------------------------


def test_a_page_holds_at_most_limit_items_with_a_next_cursor_and_link(api: Any, admin_token: str) -> None:
    for n in range(3):
        register(api, admin_token, name=f"Inovasi {n}")
    api.settle()
    response = api.get(f"{INNOVATIONS}?limit=2&form=pelayanan_publik")
    page = response.get_json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    link = response.headers["Link"]
    assert link.endswith('; rel="next"')
    target = urlsplit(link[link.index("<") + 1 : link.index(">")])
    assert target.path == INNOVATIONS
    assert parse_qs(target.query) == {
        "limit": ["2"],
        "form": ["pelayanan_publik"],
        "cursor": [page["next_cursor"]],
    }


def test_the_last_page_has_no_next_cursor_and_no_link(api: Any, admin_token: str) -> None:
    for n in range(3):
        register(api, admin_token, name=f"Inovasi {n}")
    api.settle()
    first = api.get(f"{INNOVATIONS}?limit=2").get_json()
    last = api.get(f"{INNOVATIONS}?limit=2&cursor={first['next_cursor']}")
    assert len(last.get_json()["items"]) == 1
    assert last.get_json()["next_cursor"] is None
    assert "Link" not in last.headers


def test_default_page_size_is_50(api: Any, admin_token: str) -> None:
    for n in range(51):
        register(api, admin_token, name=f"Inovasi {n}")
    api.settle()
    page = api.get(INNOVATIONS).get_json()
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["0", "501", "abc"])
def test_limit_outside_1_to_500_is_400(api: Any, limit: str) -> None:
    response = api.get(f"{INNOVATIONS}?limit={limit}")
    assert response.status_code == 400
    assert response.get_json()["type"] == "/problems/malformed-request"


def test_iterating_while_innovations_arrive_never_skips_or_repeats(api: Any, admin_token: str) -> None:
    expected = [registered(api, admin_token, name=f"Awal {n}")["id"] for n in range(5)]
    api.settle()
    seen: list[str] = []
    cursor = None
    while True:
        query = f"limit=2&cursor={cursor}" if cursor else "limit=2"
        page = api.get(f"{INNOVATIONS}?{query}").get_json()
        seen += [item["id"] for item in page["items"]]
        expected.append(registered(api, admin_token, name=f"Baru {len(seen)}")["id"])
        api.settle()
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert seen == expected[: len(seen)]
    assert len(seen) >= 5


# --- stages -----------------------------------------------------------------------------------


def test_stage_advance_moves_forward_and_dates_the_stage(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, stage="inisiatif")
    response = stage(api, admin_token, innovation["id"], "uji_coba", 30)
    assert response.status_code == 200
    body = response.get_json()
    assert body["stage"] == "uji_coba"
    assert body["stage_dates"]["uji_coba"] == days_ago(30).isoformat()
    assert body["version"] == 2
    assert response.headers["ETag"] == '"2"'


def test_stage_advance_may_skip_a_stage(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, stage="inisiatif")
    response = stage(api, admin_token, innovation["id"], "penerapan", 30)
    assert response.status_code == 200
    assert response.get_json()["stage"] == "penerapan"


def test_stage_advance_is_visible_to_reads(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, stage="inisiatif")
    response = stage(api, admin_token, innovation["id"], "uji_coba", 30)
    answer = read(api, f"{INNOVATIONS}/{innovation['id']}", response).get_json()
    assert answer["stage"] == "uji_coba"
    assert answer["version"] == 2


@pytest.mark.parametrize("to", ["inisiatif", "uji_coba"])
def test_stage_going_back_or_standing_still_is_invalid_transition(
    api: Any, admin_token: str, to: str
) -> None:
    innovation = registered(api, admin_token, stage="uji_coba")
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/stage",
        {"stage": to, "effective_on": days_ago(1)},
        admin_token,
        409,
        "rule-violation",
        "invalid-transition",
    )


def test_stage_dated_before_the_step_before_is_date_order(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, stage="inisiatif", started_on=days_ago(100))
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/stage",
        {"stage": "uji_coba", "effective_on": days_ago(101)},
        admin_token,
        409,
        "rule-violation",
        "date-order",
    )


def test_stage_dated_in_the_future_is_422(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, stage="inisiatif")
    problem = assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/stage",
        {"stage": "uji_coba", "effective_on": days_ago(-1)},
        admin_token,
        422,
        "validation-error",
    )
    assert "effective_on" in problem["errors"]


# --- revisions --------------------------------------------------------------------------------


def test_revision_changes_the_named_fields_only(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    response = api.post(
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {"name": "Layanan Kesehatan Terpadu", "urusan": ["kesehatan", "sosial"], "reason": "Renamed"},
        admin_token,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["name"] == "Layanan Kesehatan Terpadu"
    assert body["urusan"] == ["kesehatan", "sosial"]
    assert body["description"] == innovation["description"]
    assert body["version"] == 2


def test_revision_without_a_changed_field_is_422(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {"reason": "Nothing"},
        admin_token,
        422,
        "validation-error",
    )


def test_revision_to_the_same_values_is_422(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {"name": innovation["name"], "reason": "Same"},
        admin_token,
        422,
        "validation-error",
    )


@pytest.mark.parametrize("field", ["name", "description"])
def test_revision_to_an_empty_name_or_description_is_422(api: Any, admin_token: str, field: str) -> None:
    innovation = registered(api, admin_token)
    problem = assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {field: "   ", "reason": "Blanked"},
        admin_token,
        422,
        "validation-error",
    )
    assert field in problem["errors"]


def test_revision_without_a_reason_is_422(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    problem = assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {"name": "Baru"},
        admin_token,
        422,
        "validation-error",
    )
    assert "reason" in problem["errors"]


def test_revision_of_a_field_that_cannot_be_revised_is_422(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    problem = assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/revisions",
        {"region": "35.05", "reason": "Moved"},
        admin_token,
        422,
        "validation-error",
    )
    assert "region" in problem["errors"]


# --- evaluations ------------------------------------------------------------------------------


def evaluation(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "year": EVALUATION_YEAR,
        "scores": {"regulasi": 3, "sdm": 2, "video": 1},
        "evaluated_on": days_ago(10),
    }
    body.update(overrides)
    return body


def test_evaluation_computes_total_score_and_category(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    response = api.post(f"{INNOVATIONS}/{innovation['id']}/evaluations", as_json(evaluation()), admin_token)
    assert response.status_code == 200, response.get_json()
    [recorded] = response.get_json()["evaluations"]
    # regulasi 3 x 3 + sdm 2 x 2 + video 1 x 4 = 17 of 111
    assert recorded["total"] == 17
    assert recorded["score"] == pytest.approx(15.32)
    assert recorded["category"] == "kurang_inovatif"
    assert recorded["catalogue"] == "iid-2026"
    assert recorded["scores"]["anggaran"] == 0
    assert len(recorded["scores"]) == 20


def test_evaluation_ignores_a_replikasi_level_sent_by_the_client(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    response = api.post(
        f"{INNOVATIONS}/{innovation['id']}/evaluations",
        as_json(evaluation(scores={"regulasi": 3, "replikasi": 3})),
        admin_token,
    )
    assert response.status_code == 200, response.get_json()
    [recorded] = response.get_json()["evaluations"]
    assert recorded["scores"]["replikasi"] == 0
    assert recorded["total"] == 9


def test_evaluation_refuses_a_client_total_or_category(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    response = api.post(
        f"{INNOVATIONS}/{innovation['id']}/evaluations",
        as_json(evaluation(total=111, category="sangat_inovatif")),
        admin_token,
    )
    assert response.status_code == 422
    assert {"total", "category"} <= set(response.get_json()["errors"])


def test_evaluation_is_visible_to_reads(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    response = api.post(f"{INNOVATIONS}/{innovation['id']}/evaluations", as_json(evaluation()), admin_token)
    answer = read(api, f"{INNOVATIONS}/{innovation['id']}", response).get_json()
    assert [e["total"] for e in answer["evaluations"]] == [17]


@pytest.mark.parametrize(
    ("scores", "field"),
    [({"astrologi": 1}, "scores.astrologi"), ({"regulasi": 4}, "scores.regulasi")],
    ids=["unknown-indicator", "level-above-3"],
)
def test_evaluation_with_invalid_scores_is_422(
    api: Any, admin_token: str, scores: dict[str, int], field: str
) -> None:
    innovation = registered(api, admin_token)
    problem = assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/evaluations",
        evaluation(scores=scores),
        admin_token,
        422,
        "validation-error",
    )
    assert field in problem["errors"]


def test_evaluation_at_inisiatif_is_invalid_transition(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, stage="inisiatif")
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/evaluations",
        evaluation(),
        admin_token,
        409,
        "rule-violation",
        "invalid-transition",
    )


def test_evaluation_dated_before_the_step_before_is_date_order(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, started_on=days_ago(5))
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/evaluations",
        evaluation(evaluated_on=days_ago(10)),
        admin_token,
        409,
        "rule-violation",
        "date-order",
    )


# --- retirement -------------------------------------------------------------------------------


def test_retirement_marks_the_innovation_retired(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token)
    response = api.post(
        f"{INNOVATIONS}/{innovation['id']}/retirement",
        {"reason": "Replaced by a national system", "effective_on": days_ago(2).isoformat()},
        admin_token,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["retired"] is True
    assert body["retired_on"] == days_ago(2).isoformat()
    assert read(api, f"{INNOVATIONS}/{innovation['id']}", response).get_json()["retired"] is True


@pytest.mark.parametrize(
    ("command", "body"),
    [
        ("stage", {"stage": "penerapan", "effective_on": days_ago(1)}),
        ("revisions", {"name": "Baru", "reason": "r"}),
        ("evaluations", evaluation(evaluated_on=days_ago(1))),
        ("retirement", {"reason": "again", "effective_on": days_ago(1)}),
    ],
)
def test_any_command_on_a_retired_innovation_is_retired(
    api: Any, admin_token: str, command: str, body: dict[str, Any]
) -> None:
    innovation = registered(api, admin_token, stage="uji_coba")
    retired = api.post(
        f"{INNOVATIONS}/{innovation['id']}/retirement",
        {"reason": "Stopped", "effective_on": days_ago(3).isoformat()},
        admin_token,
    )
    assert retired.status_code == 200
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/{command}",
        body,
        admin_token,
        409,
        "rule-violation",
        "retired",
    )


def test_retirement_dated_before_the_step_before_is_date_order(api: Any, admin_token: str) -> None:
    innovation = registered(api, admin_token, started_on=days_ago(5))
    assert_refused(
        api,
        f"{INNOVATIONS}/{innovation['id']}/retirement",
        {"reason": "Stopped", "effective_on": days_ago(6)},
        admin_token,
        409,
        "rule-violation",
        "date-order",
    )
