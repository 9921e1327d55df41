"""The region score of a year (index.md "Region score for year Y") and the region rows of the index views.

Every figure is as of a date — 31 December of the year, or today for the current year — by business dates: an
innovation counts from its `started_on`, a replication from its `proposed_on`, and each reaches a status on the
date of that step. A *practice* of a region is one of its innovations or one of its replications as adopter that
is at `penerapan` on that date and not retired or discontinued by then; E is the latest evaluation with `year` = Y
of each practice (latest by `evaluated_on`, then position: the `latest` column the projection keeps).

The national standings of a (year, date) are computed once per state of the index projection (its position and
the stream-fed positions applied above it) and reused by every request until the projection moves on.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from domain import regions
from domain.calendar import today
from domain.catalogue import Catalogue, Catalogues, RegionIndex, catalogues, region_index_of
from domain.enums import ReplicationStatus
from domain.regions import REGION_TYPES
from projections.queries import Page, _check_limit, _keyed_page, _sorted_cursor
from projections.store import ViewStore
from projections.tables import (
    applied_positions,
    evaluations,
    innovations,
    projection_positions,
    replications,
)

PROJECTION = "index"
STATUSES = tuple(s.value for s in ReplicationStatus)
PENERAPAN = ReplicationStatus.PENERAPAN.value
DITOLAK = ReplicationStatus.DITOLAK.value
DIHENTIKAN = ReplicationStatus.DIHENTIKAN.value
REGION_SORTS = ("code", "index", "innovations", "adopters", "at_penerapan")
SCOPE = (
    "The innovation-based part of the Indeks Inovasi Daerah, normalised to 100: the innovation-level "
    "evaluations of the region's practices and their number. The IID's region-level aspect (SPD: regional "
    "statistics such as PAD growth or the audit opinion) is not recorded by this service and is not part of "
    "this score."
)
CACHED_PERIODS = 8


class UncoveredYear(ValueError):
    """No indicator catalogue covers the year asked for."""


@dataclass(frozen=True)
class Period:
    """The year of a score, the date its figures are taken at, and the catalogue that scores it."""

    year: int
    as_of: date
    catalogue: Catalogue


def period_of(year: int | None, on: date | None = None, within: Catalogues | None = None) -> Period:
    """`year` (default: the current year in Asia/Jayapura) as of 31 December, or as of `on` (default: today)
    for the current year, scored by the catalogue of `within` (default: the packaged ones) that covers it;
    raises `UncoveredYear` when none does."""
    current = on or today()
    year = current.year if year is None else year
    catalogue = (within or catalogues()).for_year(year)
    if catalogue is None:
        raise UncoveredYear(f"No indicator catalogue covers {year}.")
    return Period(year, min(date(year, 12, 31), current), catalogue)


# --- figures as of a date ---------------------------------------------------------------------


@dataclass
class Figures:
    """What a region's row is made of, as of the period's date."""

    innovations: int = 0
    practices: int = 0  # n
    evaluated: int = 0  # n_e
    evaluated_total: int = 0  # S
    adopters: int = 0
    at_penerapan: int = 0
    as_adopter: dict[str, int] = field(default_factory=dict)


# Statements are built once, with the date, year and region as parameters: building and keying a statement
# costs more than running it on SQLite.
ON = bindparam("b_on", type_=Date)
YEAR = bindparam("b_year", type_=Integer)
CODE = bindparam("b_code", type_=String)


def _innovation_alive() -> ColumnElement[bool]:
    i = innovations.c
    return and_(i.started_on <= ON, or_(i.retired_on.is_(None), i.retired_on > ON))


def _innovation_practice() -> ColumnElement[bool]:
    i = innovations.c
    return and_(i.penerapan_on <= ON, or_(i.retired_on.is_(None), i.retired_on > ON))


def _replication_practice() -> ColumnElement[bool]:
    r = replications.c
    return and_(r.penerapan_on <= ON, or_(r.discontinued_on.is_(None), r.discontinued_on > ON))


def _replication_status() -> ColumnElement[Any]:
    """A replication's status on a date, from the business dates of its steps (terminal steps first)."""
    r = replications.c
    return case(
        (r.rejected_on <= ON, literal(DITOLAK)),
        (r.discontinued_on <= ON, literal(DIHENTIKAN)),
        (r.penerapan_on <= ON, literal(PENERAPAN)),
        (r.uji_coba_on <= ON, literal(ReplicationStatus.UJI_COBA.value)),
        (r.signed_on <= ON, literal(ReplicationStatus.DISEPAKATI.value)),
        else_=literal(ReplicationStatus.DIUSULKAN.value),
    )


@functools.cache
def _figure_statements() -> tuple[Select[Any], ...]:
    i, r, e = innovations.c, replications.c, evaluations.c
    status = _replication_status()
    own = (
        select(i.region, func.count(), func.sum(case((_innovation_practice(), 1), else_=0)))
        .where(_innovation_alive())
        .group_by(i.region)
    )
    as_adopter = (
        select(r.adopting_region, status, func.count())
        .where(r.proposed_on <= ON)
        .group_by(r.adopting_region, status)
    )
    not_rejected = or_(r.rejected_on.is_(None), r.rejected_on > ON)
    as_source = (
        select(
            r.source_region,
            func.count(case((not_rejected, r.adopting_region)).distinct()),
            func.count(case((_replication_practice(), r.adopting_region)).distinct()),
        )
        .where(r.proposed_on <= ON)
        .group_by(r.source_region)
    )
    counted = and_(e.year == YEAR, e.latest.is_(True))
    evaluated_innovations = (
        select(e.region, func.count(), func.sum(e.total))
        .select_from(evaluations.join(innovations, i.innovation_id == e.subject_id))
        .where(counted, _innovation_practice())
        .group_by(e.region)
    )
    evaluated_replications = (
        select(e.region, func.count(), func.sum(e.total))
        .select_from(evaluations.join(replications, r.replication_id == e.subject_id))
        .where(counted, _replication_practice())
        .group_by(e.region)
    )
    return own, as_adopter, as_source, evaluated_innovations, evaluated_replications


def figures(conn: Connection, period: Period) -> dict[str, Figures]:
    """Every region's figures, keyed by region code; absent = all zeros."""
    found: dict[str, Figures] = {}

    def of(region: str) -> Figures:
        return found.setdefault(region, Figures())

    params = {"b_on": period.as_of, "b_year": period.year}
    own, as_adopter, as_source, *evaluated = _figure_statements()
    for region, n, practices in conn.execute(own, params):
        of(region).innovations = int(n)
        of(region).practices += int(practices or 0)
    for region, state, n in conn.execute(as_adopter, params):
        of(region).as_adopter[state] = int(n)
        if state == PENERAPAN:
            of(region).practices += int(n)
    for region, adopters, at_penerapan in conn.execute(as_source, params):
        of(region).adopters = int(adopters)
        of(region).at_penerapan = int(at_penerapan)
    for query in evaluated:
        for region, n, total in conn.execute(query, params):
            of(region).evaluated += int(n)
            of(region).evaluated_total += int(total or 0)
    return found


# --- the standings of a period, computed once per projection state -----------------------------


@dataclass(frozen=True)
class Standing:
    region: regions.Region
    figures: Figures
    score: RegionIndex


class _Standings:
    """Every region's standing in a period, at one state of the index projection: its row (without rank),
    ranked nationally, and the ranking within each filter asked for (kept once computed)."""

    def __init__(self, period: Period, found: dict[str, Figures]) -> None:
        self.period = period
        self.by_code: dict[str, Standing] = {}
        for region in regions.all_regions():
            fig = found.get(region.code) or Figures()
            score = region_index_of(fig.evaluated, fig.evaluated_total, fig.practices, period.catalogue)
            self.by_code[region.code] = Standing(region, fig, score)
        self.ranked: list[Standing] = sorted(self.by_code.values(), key=_rank_key)
        self.rows = {code: _row(standing, period) for code, standing in self.by_code.items()}
        self._national_rank = {s.region.code: n for n, s in enumerate(self.ranked, start=1)}
        self._filtered: dict[tuple[str | None, str | None], list[Standing]] = {}
        self._lock = threading.Lock()

    def within(self, province: str | None, type: str | None) -> list[Standing]:
        """The standings within a filter, in rank order (rank = position + 1)."""
        key = (province, type)
        found = self._filtered.get(key)
        if found is None:
            found = [
                s
                for s in self.ranked
                if (province is None or s.region.province == province)
                and (type is None or s.region.type == type)
            ]
            with self._lock:
                self._filtered[key] = found
        return found

    def national_rank(self, code: str) -> int:
        return self._national_rank[code]


def _rank_key(standing: Standing) -> tuple[Decimal, int, str]:
    """index.md: index descending, then adopting regions at penerapan as source descending, then code."""
    return (-standing.score.index, -standing.figures.at_penerapan, standing.region.code)


_cache: weakref.WeakKeyDictionary[ViewStore, OrderedDict[Any, _Standings]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()
_compute_locks: weakref.WeakKeyDictionary[ViewStore, threading.Lock] = weakref.WeakKeyDictionary()


_TRACKED = select(projection_positions.c.position).where(projection_positions.c.name == PROJECTION)
_APPLIED_ABOVE = (
    select(func.count()).select_from(applied_positions).where(applied_positions.c.name == PROJECTION)
)


def _projection_state(conn: Connection) -> tuple[int, int]:
    """What identifies the index projection's content: its position, and how many stream-fed positions above
    it are applied (that set only grows while the position stays)."""
    position = conn.execute(_TRACKED).scalar_one_or_none()
    return int(position or 0), int(conn.execute(_APPLIED_ABOVE).scalar_one())


def standings(store: ViewStore, conn: Connection, period: Period) -> _Standings:
    """The standings of `period` as `conn` sees the projection: from the cache when the projection has not
    moved since they were computed, else computed in `conn` (one snapshot) and kept."""
    key = (period.year, period.as_of, period.catalogue.version, _projection_state(conn))
    with _cache_lock:
        kept = _cache.setdefault(store, OrderedDict())
        lock = _compute_locks.setdefault(store, threading.Lock())
        found = kept.get(key)
    if found is not None:
        return found
    with lock:  # one computation at a time: concurrent requests for the same state wait and reuse it
        with _cache_lock:
            found = kept.get(key)
        if found is not None:
            return found
        computed = _Standings(period, figures(conn, period))
        with _cache_lock:
            kept[key] = computed
            while len(kept) > CACHED_PERIODS:
                kept.popitem(last=False)
        return computed


# --- rows -------------------------------------------------------------------------------------


def _row(standing: Standing, period: Period) -> dict[str, Any]:
    region, fig, score = standing.region, standing.figures, standing.score
    return {
        "code": region.code,
        "name": region.name,
        "type": region.type,
        "province": region.province,
        "year": period.year,
        "index": float(score.index),
        "category": score.category,
        "innovations": fig.innovations,
        "replications_as_source": {"adopters": fig.adopters, "at_penerapan": fig.at_penerapan},
        "replications_as_adopter": {status: fig.as_adopter.get(status, 0) for status in STATUSES},
    }


def _sort_key(sort: str, standing: Standing) -> list[Any]:
    fig, code = standing.figures, standing.region.code
    if sort == "code":
        return [code]
    if sort == "index":
        return [-int(standing.score.index * 100), -fig.at_penerapan, code]
    value = fig.innovations if sort == "innovations" else getattr(fig, sort)
    return [-value, code]


_CURSOR_SHAPES = {"code": ["str"], "index": ["int", "int", "str"]}


def region_rows(
    store: ViewStore,
    period: Period,
    *,
    province: str | None = None,
    type: str | None = None,
    sort: str = "code",
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """One row per valid region (zeros where nothing is recorded) for the period, filtered, sorted and paged.
    `rank` is the position in the index order within the filter; sorts other than `code` are descending,
    ties by code (`index`: the rank order)."""
    _check_limit(limit)
    if sort not in REGION_SORTS:
        raise ValueError(f"sort is one of {', '.join(REGION_SORTS)}")
    if type is not None and type not in REGION_TYPES:
        raise ValueError(f"type is one of {', '.join(REGION_TYPES)}")
    after = _sorted_cursor(cursor, sort, _CURSOR_SHAPES.get(sort, ["int", "str"]))
    with store.connect() as conn:
        board = standings(store, conn, period)
    chosen = board.within(province, type)
    rank = {s.region.code: number for number, s in enumerate(chosen, start=1)}
    keyed = [(_sort_key(sort, s), s.region.code) for s in chosen]
    if sort != "index":  # the standings are in index order already
        keyed.sort(key=lambda kc: kc[0])
    if after is not None:
        keyed = [(key, code) for key, code in keyed if key > after]
    page = keyed[: limit + 1]
    return _keyed_page([(key, {**board.rows[code], "rank": rank[code]}) for key, code in page], sort, limit)


def region_detail(store: ViewStore, period: Period, code: str) -> dict[str, Any] | None:
    """A region's row (ranked nationally) with its breakdown: the practices and evaluations its score counts
    and every term of the formula, so that a reader can recompute the figure. (The region's innovations and
    replications themselves are listed by /innovations?region= and /replications?adopting_region=.)"""
    region = regions.find(code)
    if region is None:
        return None
    params = {"b_on": period.as_of, "b_year": period.year, "b_code": code}
    statements = _detail_statements()
    with store.connect() as conn:
        board = standings(store, conn, period)
        found = {name: conn.execute(statement, params).all() for name, statement in statements.items()}
    row = {**board.rows[code], "rank": board.national_rank(code)}
    practices = _practices(found["own_practices"], found["adopted_practices"])
    counted = _counted([*found["evaluated_innovations"], *found["evaluated_replications"]])
    row["breakdown"] = _score_breakdown(period, practices, counted)
    return row


@functools.cache
def _detail_statements() -> dict[str, Select[Any]]:
    i, r, e = innovations.c, replications.c, evaluations.c
    counted_columns = (
        e.subject_kind,
        e.subject_id,
        e.evaluation_id,
        e.year,
        e.catalogue,
        e.evaluated_on,
        e.total,
        e.score,
        e.category,
        e.position,
    )
    counted = and_(e.region == CODE, e.year == YEAR, e.latest.is_(True))
    with_names = replications.outerjoin(innovations, i.innovation_id == r.innovation_id)
    return {
        "own_practices": select(i.innovation_id, i.name, i.penerapan_on)
        .where(i.region == CODE, _innovation_practice())
        .order_by(i.penerapan_on, i.created_position),
        "adopted_practices": select(r.replication_id, r.innovation_id, i.name, r.penerapan_on)
        .select_from(with_names)
        .where(r.adopting_region == CODE, _replication_practice())
        .order_by(r.penerapan_on, r.created_position),
        "evaluated_innovations": select(*counted_columns)
        .select_from(evaluations.join(innovations, i.innovation_id == e.subject_id))
        .where(counted, _innovation_practice()),
        "evaluated_replications": select(*counted_columns)
        .select_from(evaluations.join(replications, r.replication_id == e.subject_id))
        .where(counted, _replication_practice()),
    }


def _practices(own: Sequence[Any], adopted: Sequence[Any]) -> list[dict[str, Any]]:
    practices = [
        {"kind": "innovation", "id": row.innovation_id, "name": row.name, "penerapan_on": row.penerapan_on}
        for row in own
    ]
    practices += [
        {
            "kind": "replication",
            "id": row.replication_id,
            "innovation_id": row.innovation_id,
            "name": row.name,
            "penerapan_on": row.penerapan_on,
        }
        for row in adopted
    ]
    for practice in practices:
        practice["penerapan_on"] = practice["penerapan_on"].isoformat()
    return practices


def _counted(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "subject_kind": row.subject_kind,
            "subject_id": row.subject_id,
            "evaluation_id": row.evaluation_id,
            "year": row.year,
            "catalogue": row.catalogue,
            "evaluated_on": row.evaluated_on.isoformat(),
            "total": row.total,
            "score": float(Decimal(row.score)),
            "category": row.category,
        }
        for row in sorted(rows, key=lambda row: row.position)
    ]


def _score_breakdown(
    period: Period, practices: list[dict[str, Any]], counted: list[dict[str, Any]]
) -> dict[str, Any]:
    catalogue = period.catalogue
    total = sum(item["total"] for item in counted)
    score = region_index_of(len(counted), total, len(practices), catalogue)
    return {
        "year": period.year,
        "as_of": period.as_of.isoformat(),
        "catalogue": catalogue.version,
        "scope": SCOPE,
        "practices": practices,
        "evaluations": counted,
        "n": score.practices,
        "n_e": score.evaluations,
        "S": score.evaluated_total,
        "k": catalogue.divisor_floor,
        "divisor": score.divisor,
        "sid": float(score.sid),
        "count_factor": float(catalogue.count_factor),
        "count_cap": catalogue.count_cap,
        "count_score": float(score.count_score),
        "max_total": catalogue.max_total,
        "max_count_score": float(catalogue.max_count_score),
        "index": float(score.index),
        "category": score.category,
        "formula": {
            "sid": f"S / max(k, n_e) = {score.evaluated_total} / {score.divisor}",
            "count_score": f"min(n, {catalogue.count_cap}) x {catalogue.count_factor} = "
            f"{min(score.practices, catalogue.count_cap)} x {catalogue.count_factor}",
            "index": f"(sid + count_score) / ({catalogue.max_total} + {catalogue.max_count_score}) x 100, "
            "rounded half-up to 2 decimals (sid unrounded)",
        },
    }
