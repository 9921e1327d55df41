"""Indicator catalogues (domain/catalogues/*.json) and the pure scoring functions."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.catalogue import (
    Catalogue,
    CatalogueError,
    Catalogues,
    InvalidScores,
    catalogues,
    load_catalogue_file,
    parse_catalogue,
    region_index,
    replikasi_level,
    round_half_up,
)

PACKAGED_FILE = Path(__file__).resolve().parent.parent / "domain" / "catalogues" / "iid-2026.json"

# index.md, "Indicator catalogues": code -> weight, in the order of the table.
SPEC_WEIGHTS = {
    "regulasi": 3,
    "sdm": 2,
    "anggaran": 2,
    "alat_kerja": 2,
    "bimtek": 1,
    "rkpd": 2,
    "keterlibatan_aktor": 1,
    "pelaksana": 1,
    "jejaring": 1,
    "sosialisasi": 1,
    "pedoman_teknis": 1,
    "informasi_layanan": 1,
    "kecepatan_hasil": 2,
    "pengaduan": 1,
    "layanan_terintegrasi": 2,
    "replikasi": 3,
    "kecepatan_penciptaan": 2,
    "kemanfaatan": 3,
    "monev": 2,
    "video": 4,
}


@pytest.fixture
def iid() -> Catalogue:
    catalogue = catalogues().get("iid-2026")
    assert catalogue is not None
    return catalogue


def base_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PACKAGED_FILE.read_text(encoding="utf-8"))
    return data


def small_catalogue(version: str, year_from: int | None, year_to: int | None) -> dict[str, Any]:
    """A two-indicator catalogue: weights 1 and 2, so max_total = 9."""
    levels = {"1": "low", "2": "medium", "3": "high"}
    return {
        "version": version,
        "years": {"from": year_from, "to": year_to},
        "source": "test catalogue",
        "divisor_floor": 10,
        "count_score": {"factor": "0.5", "cap": 10},
        "categories": [
            {"category": "baik", "min": "50", "inclusive": True},
            {"category": "kurang", "min": "0", "inclusive": False},
            {"category": "nol", "min": "0", "inclusive": True},
        ],
        "indicators": [
            {"code": "alpha", "name": "Alpha", "description": "a", "weight": 1, "levels": levels},
            {
                "code": "replikasi",
                "name": "Replikasi",
                "description": "r",
                "weight": 2,
                "levels": levels,
            },
        ],
    }


# ------------------------------------------------------------------ the iid-2026 data


def test_iid_2026_has_the_indicators_and_weights_of_the_spec_in_order(iid: Catalogue) -> None:
    assert iid.codes == tuple(SPEC_WEIGHTS)
    assert {ind.code: ind.weight for ind in iid.indicators} == SPEC_WEIGHTS
    assert sum(ind.weight for ind in iid.indicators) == 37
    assert iid.max_total == 111  # 37 x 3


def test_iid_2026_parameters(iid: Catalogue) -> None:
    assert iid.version == "iid-2026"
    assert (iid.year_from, iid.year_to) == (None, 2026)
    assert iid.divisor_floor == 12
    assert iid.count_factor == Decimal("0.38")
    assert iid.count_cap == 200
    assert iid.max_count_score == Decimal("76")
    assert [t.category for t in iid.categories] == [
        "sangat_inovatif",
        "inovatif",
        "kurang_inovatif",
        "tidak_dapat_dinilai",
    ]
    assert "check against the official guide before official use" in iid.source


def test_iid_2026_indicators_are_fully_described(iid: Catalogue) -> None:
    regulasi = iid.indicator("regulasi")
    assert regulasi is not None
    assert regulasi.name == "Regulasi Inovasi Daerah"
    assert "Perda" in regulasi.levels[3]
    assert iid.indicator("nope") is None
    for indicator in iid.indicators:
        assert indicator.name.strip() and indicator.description.strip()
        assert sorted(indicator.levels) == [1, 2, 3]
        assert all(text.strip() for text in indicator.levels.values())
        assert len(set(indicator.levels.values())) == 3, indicator.code


def test_to_dict_is_json_ready_and_round_trips(iid: Catalogue) -> None:
    data = json.loads(json.dumps(iid.to_dict()))
    assert data["version"] == "iid-2026"
    assert data["years"] == {"from": None, "to": 2026}
    assert data["max_total"] == 111
    assert data["count_score"] == {"factor": "0.38", "cap": 200}
    assert data["categories"][0] == {
        "category": "sangat_inovatif",
        "min": "60.01",
        "inclusive": True,
    }
    assert data["indicators"][0]["levels"]["1"] == iid.indicators[0].levels[1]
    assert [ind["code"] for ind in data["indicators"]] == list(SPEC_WEIGHTS)
    assert parse_catalogue(data) == iid


# ------------------------------------------------------------------ categories


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100.00", "sangat_inovatif"),
        ("60.01", "sangat_inovatif"),
        ("60.00", "inovatif"),
        ("35.00", "inovatif"),
        ("34.99", "kurang_inovatif"),
        ("0.01", "kurang_inovatif"),
        ("0.00", "tidak_dapat_dinilai"),
        ("0", "tidak_dapat_dinilai"),
    ],
)
def test_category_boundaries(iid: Catalogue, value: str, expected: str) -> None:
    assert iid.category(Decimal(value)) == expected


def test_category_below_every_threshold_is_an_error(iid: Catalogue) -> None:
    with pytest.raises(ValueError):
        iid.category(Decimal("-0.01"))


# ------------------------------------------------------------------ evaluation scoring


def test_all_threes_score_111_and_100(iid: Catalogue) -> None:
    scores = {code: 3 for code in iid.codes}
    result = iid.evaluate(scores, replikasi_level=3)
    assert result.total == 111
    assert result.score == Decimal("100.00")
    assert str(result.score) == "100.00"
    assert result.category == "sangat_inovatif"
    assert result.levels == scores


def test_client_replikasi_is_replaced_by_the_derived_level(iid: Catalogue) -> None:
    # All 3s, but the record shows no replication: 111 - 3 x 3 = 102; 102 / 111 = 91.89%.
    result = iid.evaluate({code: 3 for code in iid.codes}, replikasi_level=0)
    assert result.levels["replikasi"] == 0
    assert result.total == 102
    assert result.score == Decimal("91.89")
    assert result.category == "sangat_inovatif"

    # replikasi 3 from the client, 1 derived; regulasi 1: 1 x 3 + 1 x 3 = 6; 6 / 111 = 5.41%.
    result = iid.evaluate({"replikasi": 3, "regulasi": 1}, replikasi_level=1)
    assert result.levels["replikasi"] == 1
    assert result.total == 6
    assert result.score == Decimal("5.41")
    assert result.category == "kurang_inovatif"


def test_any_client_replikasi_value_is_accepted_and_ignored(iid: Catalogue) -> None:
    assert iid.validation_errors({"replikasi": "lots", "sdm": 2}) == {}
    result = iid.evaluate({"replikasi": "lots", "sdm": 2}, replikasi_level=2)  # type: ignore[dict-item]
    assert result.levels["replikasi"] == 2
    assert result.total == 2 * 2 + 2 * 3


def test_derived_replikasi_level_is_clamped(iid: Catalogue) -> None:
    assert iid.evaluate({}, replikasi_level=7).levels["replikasi"] == 3
    assert iid.evaluate({}, replikasi_level=7).total == 9
    assert iid.evaluate({}, replikasi_level=-2).levels["replikasi"] == 0


def test_left_out_indicators_score_zero(iid: Catalogue) -> None:
    result = iid.evaluate({"video": 2}, replikasi_level=0)
    assert list(result.levels) == list(iid.codes)
    assert result.levels["video"] == 2
    assert all(level == 0 for code, level in result.levels.items() if code != "video")
    assert result.total == 8  # 2 x weight 4
    assert result.score == Decimal("7.21")  # 8 / 111 x 100 = 7.207...


def test_nothing_scored_is_tidak_dapat_dinilai(iid: Catalogue) -> None:
    result = iid.evaluate({}, replikasi_level=0)
    assert result.total == 0
    assert result.score == Decimal("0.00")
    assert result.category == "tidak_dapat_dinilai"


def test_unknown_code_is_rejected(iid: Catalogue) -> None:
    errors = iid.validation_errors({"regulasi": 2, "inovasi_baru": 1})
    assert list(errors) == ["scores.inovasi_baru"]
    with pytest.raises(InvalidScores) as caught:
        iid.evaluate({"regulasi": 2, "inovasi_baru": 1}, replikasi_level=0)
    assert isinstance(caught.value, ValueError)
    assert list(caught.value.errors) == ["scores.inovasi_baru"]


@pytest.mark.parametrize("level", [4, -1, "2", 1.0, 2.5, None, True, False, [1]])
def test_level_that_is_not_an_int_from_0_to_3_is_rejected(iid: Catalogue, level: object) -> None:
    errors = iid.validation_errors({"sdm": level, "anggaran": 1})
    assert list(errors) == ["scores.sdm"]
    assert errors["scores.sdm"]
    with pytest.raises(ValueError):
        iid.evaluate({"sdm": level}, replikasi_level=0)  # type: ignore[dict-item]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_levels_0_to_3_are_accepted(iid: Catalogue, level: int) -> None:
    assert iid.validation_errors({"monev": level}) == {}
    assert iid.evaluate({"monev": level}, replikasi_level=0).total == 2 * level


def test_scores_that_are_not_an_object_are_rejected(iid: Catalogue) -> None:
    assert list(iid.validation_errors([1, 2])) == ["scores"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("regions", "level"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3), (250, 3)])
def test_replikasi_level(regions: int, level: int) -> None:
    assert replikasi_level(regions) == level


def test_replikasi_level_rejects_negative() -> None:
    with pytest.raises(ValueError):
        replikasi_level(-1)


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [("2.345", 2, "2.35"), ("0.125", 2, "0.13"), ("2.344", 2, "2.34"), ("-1.005", 2, "-1.01")],
)
def test_round_half_up(value: str, places: int, expected: str) -> None:
    # Banker's rounding would give 2.34 and 0.12 for the first two.
    assert str(round_half_up(Decimal(value), places)) == expected


def test_round_half_up_other_places() -> None:
    assert str(round_half_up(Decimal("7.5"), 0)) == "8"
    assert str(round_half_up(Decimal("1"), 3)) == "1.000"


# ------------------------------------------------------------------ region index


def test_region_index_worked_example(iid: Catalogue) -> None:
    # index.md: totals 60 and 90, two practices at penerapan, k = 12:
    # sid = 150 / 12 = 12.5; count_score = 2 x 0.38 = 0.76; 13.26 / 187 x 100 = 7.0909 -> 7.09.
    result = region_index([60, 90], 2, iid)
    assert result.evaluations == 2
    assert result.evaluated_total == 150
    assert result.practices == 2
    assert result.divisor == 12
    assert result.sid == Decimal("12.5")
    assert result.count_score == Decimal("0.76")
    assert result.index == Decimal("7.09")
    assert result.category == "kurang_inovatif"


def test_region_index_divisor_is_n_e_above_the_floor(iid: Catalogue) -> None:
    # 13 evaluations of 111: sid = 1443 / 13 = 111; count = 13 x 0.38 = 4.94;
    # (111 + 4.94) / 187 x 100 = 62.00.
    result = region_index([111] * 13, 13, iid)
    assert result.divisor == 13
    assert result.sid == Decimal("111")
    assert result.count_score == Decimal("4.94")
    assert result.index == Decimal("62.00")
    assert result.category == "sangat_inovatif"


def test_region_index_count_score_is_capped(iid: Catalogue) -> None:
    # 250 practices, none evaluated: count = 200 x 0.38 = 76; 76 / 187 x 100 = 40.64.
    result = region_index([], 250, iid)
    assert result.sid == Decimal("0")
    assert result.count_score == Decimal("76.00")
    assert result.index == Decimal("40.64")
    assert result.category == "inovatif"


def test_region_index_uses_the_unrounded_sid(iid: Catalogue) -> None:
    # sid = 100 / 12 = 8.333..., reported 8.33; (8.3333 + 0.38) / 187 x 100 = 4.6595 -> 4.66.
    result = region_index([100], 1, iid)
    assert result.sid == Decimal("8.33")
    assert result.index == Decimal("4.66")


def test_region_index_of_a_region_with_nothing(iid: Catalogue) -> None:
    result = region_index([], 0, iid)
    assert result.index == Decimal("0.00")
    assert result.category == "tidak_dapat_dinilai"


@pytest.mark.parametrize(("totals", "practices"), [([10, 20], 1), ([-5], 1), ([10], -1)])
def test_region_index_rejects_impossible_input(iid: Catalogue, totals: list[int], practices: int) -> None:
    with pytest.raises(ValueError):
        region_index(totals, practices, iid)


# ------------------------------------------------------------------ catalogue selection


def test_default_catalogues_are_cached_and_complete() -> None:
    assert catalogues() is catalogues()
    assert "iid-2026" in [c.version for c in catalogues().all()]
    assert catalogues().get("iid-1999") is None


@pytest.mark.parametrize("year", [2026, 2019, 2000])
def test_iid_2026_covers_every_year_up_to_2026(year: int) -> None:
    catalogue = catalogues().for_year(year)
    assert catalogue is not None
    assert catalogue.version == "iid-2026"


def test_no_catalogue_covers_2027() -> None:
    assert catalogues().for_year(2027) is None
    iid = catalogues().get("iid-2026")
    assert iid is not None
    assert iid.covers(2026) and not iid.covers(2027)


def test_a_new_catalogue_file_in_the_folder_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "iid-2026.json").write_text(PACKAGED_FILE.read_text(encoding="utf-8"))
    (tmp_path / "iid-2025.json").write_text(json.dumps(small_catalogue("iid-2025", 2025, 2025)))
    (tmp_path / "README.txt").write_text("not a catalogue")
    found = Catalogues.from_directory(tmp_path)
    assert [c.version for c in found.all()] == ["iid-2025", "iid-2026"]

    chosen = found.for_year(2025)
    assert chosen is not None and chosen.version == "iid-2025"  # more specific than iid-2026
    for year in (2024, 2026):
        other = found.for_year(year)
        assert other is not None and other.version == "iid-2026"

    # It scores with its own weights: alpha 2 x 1 + replikasi 1 x 2 = 4 of 9 -> 44.44.
    new = found.get("iid-2025")
    assert new is not None and new.max_total == 9
    result = new.evaluate({"alpha": 2}, replikasi_level=1)
    assert (result.total, result.score, result.category) == (4, Decimal("44.44"), "kurang")


def test_for_year_prefers_the_narrower_open_ended_catalogue(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(small_catalogue("upto-2026", None, 2026)))
    (tmp_path / "b.json").write_text(json.dumps(small_catalogue("upto-2024", None, 2024)))
    found = Catalogues.from_directory(tmp_path)
    early, late = found.for_year(2019), found.for_year(2025)
    assert early is not None and early.version == "upto-2024"
    assert late is not None and late.version == "upto-2026"


def test_from_directory_without_catalogues_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError):
        Catalogues.from_directory(tmp_path)
    with pytest.raises(CatalogueError):
        Catalogues.from_directory(tmp_path / "missing")


def test_two_files_with_the_same_version_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(small_catalogue("same", 2020, 2020)))
    (tmp_path / "b.json").write_text(json.dumps(small_catalogue("same", 2021, 2021)))
    with pytest.raises(CatalogueError, match="same"):
        Catalogues.from_directory(tmp_path)


def test_load_catalogue_file_takes_a_path_or_text(tmp_path: Path) -> None:
    text = json.dumps(small_catalogue("x-1", 2020, 2021))
    (tmp_path / "x.json").write_text(text)
    assert load_catalogue_file(text).version == "x-1"
    assert load_catalogue_file(tmp_path / "x.json").version == "x-1"
    assert load_catalogue_file(str(tmp_path / "x.json")).version == "x-1"
    with pytest.raises(CatalogueError):
        load_catalogue_file(tmp_path / "absent.json")


# ------------------------------------------------------------------ malformed files


def _drop_last_category(d: dict[str, Any]) -> None:
    d["categories"].pop()


def _swap_first_categories(d: dict[str, Any]) -> None:
    d["categories"][0], d["categories"][1] = d["categories"][1], d["categories"][0]


def _duplicate_code(d: dict[str, Any]) -> None:
    d["indicators"][1]["code"] = "regulasi"


MUTATIONS: dict[str, Any] = {
    "duplicate code": _duplicate_code,
    "weight 0": lambda d: d["indicators"][0].update(weight=0),
    "weight as text": lambda d: d["indicators"][0].update(weight="3"),
    "weight as bool": lambda d: d["indicators"][0].update(weight=True),
    "weight as float": lambda d: d["indicators"][0].update(weight=1.5),
    "level 3 missing": lambda d: d["indicators"][0]["levels"].pop("3"),
    "level 0 described": lambda d: d["indicators"][0]["levels"].update({"0": "none"}),
    "level 4 described": lambda d: d["indicators"][0]["levels"].update({"4": "more"}),
    "empty level text": lambda d: d["indicators"][0]["levels"].update({"2": " "}),
    "thresholds out of order": _swap_first_categories,
    "zero not categorised": _drop_last_category,
    "threshold not a number": lambda d: d["categories"][0].update(min="sixty"),
    "inclusive not a bool": lambda d: d["categories"][0].update(inclusive="yes"),
    "max_total mismatch": lambda d: d.update(max_total=110),
    "unknown key": lambda d: d.update(divisor_flor=12),
    "missing version": lambda d: d.pop("version"),
    "missing source": lambda d: d.pop("source"),
    "factor as float": lambda d: d["count_score"].update(factor=0.38),
    "negative factor": lambda d: d["count_score"].update(factor="-0.38"),
    "divisor floor 0": lambda d: d.update(divisor_floor=0),
    "years reversed": lambda d: d.update(years={"from": 2027, "to": 2026}),
    "no indicators": lambda d: d.update(indicators=[]),
    "bad code": lambda d: d["indicators"][0].update(code="Regulasi Daerah"),
    "not an object": lambda d: d["indicators"].__setitem__(0, "regulasi"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_malformed_catalogues_raise_catalogue_error(tmp_path: Path, mutation: str) -> None:
    data = copy.deepcopy(base_data())
    assert parse_catalogue(copy.deepcopy(data)).max_total == 111  # the base is valid
    MUTATIONS[mutation](data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue_file(path)
    assert "broken.json" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "text",
    ["{not json", '{"version": "a", "version": "b"}', "[]", '{"version": "a"}'],
    ids=["invalid json", "duplicate key", "not an object", "incomplete"],
)
def test_malformed_text_raises_catalogue_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(CatalogueError):
        load_catalogue_file(path)


def test_a_malformed_file_in_the_folder_fails_loading(tmp_path: Path) -> None:
    (tmp_path / "iid-2026.json").write_text(PACKAGED_FILE.read_text(encoding="utf-8"))
    (tmp_path / "zz-broken.json").write_text("{}")
    with pytest.raises(CatalogueError, match="zz-broken.json"):
        Catalogues.from_directory(tmp_path)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ("weight 0", "indicator 'regulasi': weight must be 1 or more"),
        (
            "level 3 missing",
            "indicator 'regulasi': levels must have exactly the keys 1, 2, 3, got 1, 2",
        ),
        ("thresholds out of order", "categories must be ordered from the highest threshold down"),
        ("zero not categorised", "categories: the lowest category must admit a value of 0"),
        ("years reversed", "years.from must not be after years.to"),
        ("max_total mismatch", "max_total is 110 but the weights give 111 (sum of weights x 3)"),
    ],
)
def test_a_malformed_file_fails_with_a_message_naming_the_file_and_the_fault(
    tmp_path: Path, mutation: str, message: str
) -> None:
    data = copy.deepcopy(base_data())
    MUTATIONS[mutation](data)
    (tmp_path / "iid-2026.json").write_text(PACKAGED_FILE.read_text(encoding="utf-8"))
    (tmp_path / "broken.json").write_text(json.dumps(data))
    with pytest.raises(CatalogueError) as caught:
        Catalogues.from_directory(tmp_path)  # one bad file fails the whole folder, on load
    assert message in str(caught.value)
    assert str(tmp_path / "broken.json") in str(caught.value)
