"""Replication metrics (index.md "Replication metrics"): how far a region's practice spreads, how a region adopts
and adapts what it copies, each innovation's diffusion tree, and a yearly summary.

Everything is read from the index projection's tables (`replications`, `modifications`, `innovations`), so the
figures are rebuilt with the projection. Figures "as of" a day count by business dates: a replication exists
from its `proposed_on`, and its status on a day is the last step dated on or before that day (a replication
rejected or discontinued after that day still counts with the status it had then).

Lineage (domain.md): the practice a replication copies is the source region's own practice of the innovation —
the innovation itself when the source is the innovation's region (generation 0), else the source region's
replication of the innovation that was open (and at penerapan) when the proposal was made. Since a region has
at most one open replication of an innovation, that is its latest replication of it created before the proposal.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, or_, select

from domain import calendar, regions
from domain.enums import Form, ModificationComponent, ModificationNature, ReplicationStatus, Urusan
from domain.errors import InvalidInput
from projections.store import ViewStore
from projections.tables import innovation_urusan, innovations, modifications, replications

S = ReplicationStatus
STATUSES = tuple(s.value for s in ReplicationStatus)
COMPONENTS = tuple(c.value for c in ModificationComponent)
NATURES = tuple(n.value for n in ModificationNature)
FORMS = tuple(f.value for f in Form)
URUSAN = tuple(u.value for u in Urusan)


def as_of(year: int | None) -> date:
    """The day the figures of `year` are taken: 31 December, or today (Asia/Jayapura) for the current year
    (None). A later year has no figures yet."""
    today = calendar.today()
    if year is None or year == today.year:
        return today
    if year > today.year:
        raise InvalidInput.field("year", f"{year} has not begun; the current year is {today.year}.")
    return date(year, 12, 31)


# --- replications as the tables hold them ------------------------------------------------------


@dataclass(frozen=True)
class _Replication:
    id: str
    innovation_id: str
    source_region: str
    adopting_region: str
    adopting_province: str
    status: str  # as recorded now
    generation: int
    created_position: int
    proposed_on: date
    signed_on: date | None
    rejected_on: date | None
    uji_coba_on: date | None
    penerapan_on: date | None
    discontinued_on: date | None

    def exists_on(self, day: date) -> bool:
        return self.proposed_on <= day

    def status_on(self, day: date) -> str:
        """The status the replication had at the end of `day` (it must exist by then)."""
        for step, status in (
            (self.rejected_on, S.DITOLAK),
            (self.discontinued_on, S.DIHENTIKAN),
            (self.penerapan_on, S.PENERAPAN),
            (self.uji_coba_on, S.UJI_COBA),
            (self.signed_on, S.DISEPAKATI),
        ):
            if step is not None and step <= day:
                return status.value
        return S.DIUSULKAN.value

    def days_to_penerapan(self) -> int | None:
        return (self.penerapan_on - self.proposed_on).days if self.penerapan_on else None

    def dates(self) -> dict[str, str | None]:
        return {
            name: _iso(getattr(self, name))
            for name in (
                "proposed_on",
                "signed_on",
                "rejected_on",
                "uji_coba_on",
                "penerapan_on",
                "discontinued_on",
            )
        }


_COLUMNS = (
    replications.c.replication_id,
    replications.c.innovation_id,
    replications.c.source_region,
    replications.c.adopting_region,
    replications.c.adopting_province,
    replications.c.status,
    replications.c.generation,
    replications.c.created_position,
    replications.c.proposed_on,
    replications.c.signed_on,
    replications.c.rejected_on,
    replications.c.uji_coba_on,
    replications.c.penerapan_on,
    replications.c.discontinued_on,
)


def _replications(conn: Connection, *where: ColumnElement[bool]) -> list[_Replication]:
    query = select(*_COLUMNS).where(*where).order_by(replications.c.created_position)
    return [_Replication(*row) for row in conn.execute(query)]


def _parents(family: Iterable[_Replication]) -> dict[str, _Replication | None]:
    """Each replication's parent practice among the replications of the same innovations: None for the first
    generation (it copies the innovation itself) and for one whose parent is not projected yet."""
    by_adopter: dict[tuple[str, str], list[_Replication]] = defaultdict(list)
    ordered = sorted(family, key=lambda x: x.created_position)
    for x in ordered:
        by_adopter[(x.innovation_id, x.adopting_region)].append(x)
    parents: dict[str, _Replication | None] = {}
    for x in ordered:
        earlier = [
            p
            for p in by_adopter.get((x.innovation_id, x.source_region), ())
            if p.created_position < x.created_position
        ]
        parents[x.id] = earlier[-1] if x.generation > 1 and earlier else None
    return parents


def _counted_on(family: Iterable[_Replication], day: date) -> list[_Replication]:
    """The replications that exist on `day` and were not rejected by then."""
    return [x for x in family if x.exists_on(day) and x.status_on(day) != S.DITOLAK.value]


# --- figures ----------------------------------------------------------------------------------


def _ratio(numerator: int, denominator: int, places: int) -> float | None:
    """numerator / denominator rounded half-up to `places` decimals; None when there is nothing to divide by."""
    if denominator == 0:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _median(days: list[int]) -> float | None:
    """The median number of days (the mean of the two middle values for an even count); None for none."""
    return float(statistics.median(days)) if days else None


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _zeros(keys: Iterable[str]) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


# --- a region's replication metrics ------------------------------------------------------------


def replication_metrics(store: ViewStore, code: str, *, on: date) -> dict[str, Any]:
    """A region's replication metrics as of the end of `on` (index.md "Replication metrics").

    - `as_source`: `adopters` — distinct regions that replicate a practice of this region (its innovations, or
      its own replications passed on) and were not rejected by `on`; `at_penerapan` — those at penerapan on
      `on`; `deepest_generation` — the highest generation (the innovation's own region is 0) among replications
      not rejected by `on` that descend from a practice of this region, directly or through later adopters;
      null when none does.
    - `as_adopter`: `by_status` — its replications proposed by `on`, by their status on `on`; `replications` —
      their number; `median_days_to_penerapan` — median days from `proposed_on` to penerapan over those that
      reached penerapan by `on` (also if discontinued later); `discontinued_share` — discontinued by `on` /
      those not rejected by `on` (4 decimals).
    - `adaptation`: over its replications proposed by `on` and their modifications recorded by `on`:
      `modifications`, `per_replication` (2 decimals), `core_share` (modifications marked core / all, 4
      decimals), `by_component`, `by_nature`.
    """
    r = replications.c
    with store.connect() as conn:
        involved = select(r.innovation_id).where(or_(r.source_region == code, r.adopting_region == code))
        family = _replications(conn, r.innovation_id.in_(involved))
        logged = conn.execute(
            select(modifications.c.component, modifications.c.nature, modifications.c.core)
            .join(replications, r.replication_id == modifications.c.replication_id)
            .where(r.adopting_region == code, modifications.c.recorded_on <= on)
        ).all()
    own = [x for x in family if x.adopting_region == code and x.exists_on(on)]
    return {
        "as_of": on.isoformat(),
        "as_source": _as_source(family, code, on),
        "as_adopter": _as_adopter(own, on),
        "adaptation": _adaptation(len(own), logged),
    }


def metrics_of_year(store: ViewStore, code: str, year: int | None) -> dict[str, Any]:
    """`replication_metrics` as of the end of `year` (None: the current year, as of today)."""
    return replication_metrics(store, code, on=as_of(year))


def _as_source(family: list[_Replication], code: str, on: date) -> dict[str, Any]:
    counted = _counted_on(family, on)
    direct = [x for x in counted if x.source_region == code]
    parents = _parents(family)
    deepest: int | None = None
    for x in counted:
        node: _Replication | None = x
        while node is not None:
            if node.source_region == code:
                deepest = max(deepest or 0, x.generation)
                break
            node = parents.get(node.id)
    return {
        "adopters": len({x.adopting_region for x in direct}),
        "at_penerapan": len({x.adopting_region for x in direct if x.status_on(on) == S.PENERAPAN.value}),
        "deepest_generation": deepest,
    }


def _as_adopter(own: list[_Replication], on: date) -> dict[str, Any]:
    by_status = _zeros(STATUSES)
    for x in own:
        by_status[x.status_on(on)] += 1
    reached = [x.days_to_penerapan() for x in own if x.penerapan_on is not None and x.penerapan_on <= on]
    going_ahead = len(own) - by_status[S.DITOLAK.value]
    return {
        "replications": len(own),
        "by_status": by_status,
        "median_days_to_penerapan": _median([d for d in reached if d is not None]),
        "discontinued_share": _ratio(by_status[S.DIHENTIKAN.value], going_ahead, 4),
    }


def _adaptation(replication_count: int, logged: Sequence[Any]) -> dict[str, Any]:
    by_component, by_nature = _zeros(COMPONENTS), _zeros(NATURES)
    core = 0
    for component, nature, is_core in logged:
        by_component[component] += 1
        by_nature[nature] += 1
        core += bool(is_core)
    return {
        "replications": replication_count,
        "modifications": len(logged),
        "per_replication": _ratio(len(logged), replication_count, 2),
        "core_share": _ratio(core, len(logged), 4),
        "by_component": by_component,
        "by_nature": by_nature,
    }


# --- an innovation's diffusion tree -----------------------------------------------------------


def lineage(store: ViewStore, innovation_id: str) -> dict[str, Any] | None:
    """The innovation's diffusion tree as recorded now: the innovation at the root (generation 0), each
    replication under the practice it copies, with its status, dates and children; and its adopter counts.
    None for an unknown innovation."""
    with store.connect() as conn:
        doc = conn.execute(
            select(innovations.c.doc).where(innovations.c.innovation_id == innovation_id)
        ).scalar_one_or_none()
        if doc is None:
            return None
        family = _replications(conn, replications.c.innovation_id == innovation_id)
    parents = _parents(family)
    children: dict[str | None, list[_Replication]] = defaultdict(list)
    for x in family:
        if x.generation == 1 or parents[x.id] is not None:  # one whose parent is not projected yet waits
            parent = parents[x.id]
            children[parent.id if parent else None].append(x)

    def node(x: _Replication) -> dict[str, Any]:
        return {
            "replication_id": x.id,
            "adopting_region": x.adopting_region,
            "adopting_region_name": regions.name_of(x.adopting_region),
            "source_region": x.source_region,
            "source_region_name": regions.name_of(x.source_region),
            "generation": x.generation,
            "status": x.status,
            **x.dates(),
            "children": [node(child) for child in children[x.id]],
        }

    going = [x for x in family if x.status != S.DITOLAK.value]
    by_generation: dict[str, int] = {}
    for x in sorted(going, key=lambda x: x.generation):
        by_generation[str(x.generation)] = by_generation.get(str(x.generation), 0) + 1
    by_status = _zeros(STATUSES)
    for x in family:
        by_status[x.status] += 1
    stage_dates: dict[str, str] = doc["stage_dates"]
    return {
        "id": doc["id"],
        "name": doc["name"],
        "region": doc["region"],
        "region_name": doc["region_name"],
        "replications": len(family),
        "adopters": len({x.adopting_region for x in going}),
        "at_penerapan": len({x.adopting_region for x in going if x.status == S.PENERAPAN.value}),
        "by_status": by_status,
        "by_generation": by_generation,
        "deepest_generation": max((x.generation for x in going), default=None),
        "provinces_reached": _provinces_reached(going),
        "root": {
            "innovation_id": doc["id"],
            "region": doc["region"],
            "region_name": doc["region_name"],
            "generation": 0,
            "stage": doc["stage"],
            "started_on": doc["started_on"],
            "penerapan_on": stage_dates.get(S.PENERAPAN.value),
            "retired": doc["retired"],
            "retired_on": doc["retired_on"],
            "children": [node(x) for x in children[None]],
        },
    }


def _provinces_reached(going: list[_Replication]) -> list[dict[str, Any]]:
    adopters: dict[str, set[str]] = defaultdict(set)
    at_penerapan: dict[str, set[str]] = defaultdict(set)
    for x in going:
        adopters[x.adopting_province].add(x.adopting_region)
        if x.status == S.PENERAPAN.value:
            at_penerapan[x.adopting_province].add(x.adopting_region)
    return [
        {
            "code": province,
            "name": regions.name_of(province),
            "adopters": len(adopters[province]),
            "at_penerapan": len(at_penerapan[province]),
        }
        for province in sorted(adopters)
    ]


# --- the yearly summary -----------------------------------------------------------------------


def _status_on(day: date) -> ColumnElement[str]:
    """The SQL twin of `_Replication.status_on`."""
    r = replications.c
    return case(
        (r.rejected_on <= day, S.DITOLAK.value),
        (r.discontinued_on <= day, S.DIHENTIKAN.value),
        (r.penerapan_on <= day, S.PENERAPAN.value),
        (r.uji_coba_on <= day, S.UJI_COBA.value),
        (r.signed_on <= day, S.DISEPAKATI.value),
        else_=S.DIUSULKAN.value,
    )


def summary(store: ViewStore, *, year: int, on: date, province: str | None = None) -> dict[str, Any]:
    """Replications of year `year` as of the end of `on` (31 December, or today in the current year), all
    regions or those whose adopting region lies in `province` (the province itself or its kabupaten/kota).

    - `totals`: replications proposed by `on` (`replications`), by their status on `on`, by their innovation's
      form, and by urusan (one replication counts once under each urusan of its innovation, so these can sum
      to more than `replications`; form and urusan are the innovation's current ones).
    - `series`: for each month of the year, replications proposed (`proposals`), trials started (`uji_coba`
      reached, `trials_started`) and implementations (`penerapan` reached, `implementations`) by business date,
      up to `on`.
    - `median_days_to_penerapan`: median days from `proposed_on` to penerapan over the replications that
      reached penerapan in the year, up to `on`; null when none did.
    """
    r = replications.c
    where: list[ColumnElement[bool]] = [r.proposed_on <= on]
    if province is not None:
        where.append(r.adopting_province == province)
    start = date(year, 1, 1)
    status = _status_on(on).label("status")
    with store.connect() as conn:
        by_status = _zeros(STATUSES)
        for value, n in conn.execute(select(status, func.count()).where(*where).group_by(status)):
            by_status[value] = int(n)
        by_form = _zeros(FORMS)
        for value, n in conn.execute(
            select(r.form, func.count()).where(*where, r.form.is_not(None)).group_by(r.form)
        ):
            by_form[value] = int(n)
        u = innovation_urusan.c
        by_urusan = _zeros(URUSAN)
        for value, n in conn.execute(
            select(u.urusan, func.count())
            .select_from(replications.join(innovation_urusan, u.innovation_id == r.innovation_id))
            .where(*where)
            .group_by(u.urusan)
        ):
            by_urusan[value] = int(n)
        dated = conn.execute(
            select(r.proposed_on, r.uji_coba_on, r.penerapan_on).where(
                *where, or_(r.proposed_on >= start, r.uji_coba_on >= start, r.penerapan_on >= start)
            )
        ).all()
    months = {month: {"proposals": 0, "trials_started": 0, "implementations": 0} for month in range(1, 13)}
    days: list[int] = []
    for proposed_on, uji_coba_on, penerapan_on in dated:
        for day, figure in (
            (proposed_on, "proposals"),
            (uji_coba_on, "trials_started"),
            (penerapan_on, "implementations"),
        ):
            if day is not None and start <= day <= on:
                months[day.month][figure] += 1
        if penerapan_on is not None and start <= penerapan_on <= on:
            days.append((penerapan_on - proposed_on).days)
    return {
        "year": year,
        "as_of": on.isoformat(),
        "province": province,
        "province_name": regions.name_of(province),
        "totals": {
            "replications": sum(by_status.values()),
            "by_status": by_status,
            "by_form": by_form,
            "by_urusan": by_urusan,
        },
        "series": [{"month": f"{year}-{month:02d}", **figures} for month, figures in months.items()],
        "median_days_to_penerapan": _median(days),
    }
