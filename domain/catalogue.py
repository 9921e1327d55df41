"""Versioned IID indicator catalogues and the pure scoring functions built on them.

A catalogue is data, not code: every ``*.json`` file in the package folder
``domain/catalogues/`` is one catalogue (see ``iid-2026.json``). Adding a further year needs
only a new file. This module validates those files, scores an evaluation against a catalogue
and computes the innovation-based region index (spec ``index.md``, "Region score").

Standard library only; all rounded arithmetic uses :class:`decimal.Decimal`.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "LEVELS",
    "REPLIKASI",
    "Catalogue",
    "CatalogueError",
    "Catalogues",
    "CategoryThreshold",
    "Indicator",
    "InvalidScores",
    "RegionIndex",
    "Scoring",
    "catalogues",
    "load_catalogue_file",
    "parse_catalogue",
    "region_index",
    "region_index_of",
    "replikasi_level",
    "round_half_up",
]

#: The levels an indicator can be scored at (0 = not met).
LEVELS: tuple[int, ...] = (0, 1, 2, 3)
#: The indicator whose level is derived from the record, never taken from the client.
REPLIKASI = "replikasi"
#: Highest level; ``max_total`` is the sum of ``weight * MAX_LEVEL``.
MAX_LEVEL = 3

# Context for every computation here, independent of the caller's thread context.
_CONTEXT = Context(prec=28)
_HUNDRED = Decimal(100)
_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS_REQUIRED = frozenset(
    {"version", "years", "source", "indicators", "divisor_floor", "count_score", "categories"}
)
_TOP_KEYS_OPTIONAL = frozenset({"max_total"})
_INDICATOR_KEYS = frozenset({"code", "name", "description", "weight", "levels"})
_CATEGORY_KEYS = frozenset({"category", "min", "inclusive"})
_LEVEL_KEYS = tuple(str(level) for level in LEVELS[1:])


class CatalogueError(ValueError):
    """A catalogue file is missing, unreadable or does not follow the catalogue format."""


class InvalidScores(ValueError):
    """The scores of an evaluation do not fit the catalogue; ``errors`` is {field: [messages]}."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(msgs) for key, msgs in errors.items()}
        detail = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in self.errors.items())
        super().__init__(f"invalid scores: {detail}")


def round_half_up(value: Decimal | int, places: int = 2) -> Decimal:
    """Round ``value`` half-up (away from zero on a tie) to ``places`` decimal places."""
    if places < 0:
        raise ValueError("places must be 0 or more")
    with localcontext(_CONTEXT):
        return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def replikasi_level(distinct_regions: int) -> int:
    """Level of the ``replikasi`` indicator: distinct replicating regions, capped at 3."""
    if isinstance(distinct_regions, bool) or not isinstance(distinct_regions, int):
        raise TypeError("distinct_regions must be an int")
    if distinct_regions < 0:
        raise ValueError("distinct_regions cannot be negative")
    return min(distinct_regions, MAX_LEVEL)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Indicator:
    """One innovation-level indicator: levels 1..3 mean ``levels[level]``; 0 means not met."""

    code: str
    name: str
    description: str
    weight: int
    levels: Mapping[int, str]

    @property
    def max_score(self) -> int:
        return self.weight * MAX_LEVEL

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "description": self.description,
            "weight": self.weight,
            "levels": {str(level): text for level, text in sorted(self.levels.items())},
        }


@dataclass(frozen=True)
class CategoryThreshold:
    """A value gets ``category`` if it is >= ``minimum`` (``inclusive``) or > ``minimum``."""

    category: str
    minimum: Decimal
    inclusive: bool

    def admits(self, value: Decimal) -> bool:
        return value >= self.minimum if self.inclusive else value > self.minimum

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "min": str(self.minimum), "inclusive": self.inclusive}


@dataclass(frozen=True)
class Scoring:
    """An evaluation scored against a catalogue.

    ``levels`` has every code of the catalogue in catalogue order; ``score`` is
    ``total / max_total * 100`` rounded half-up to 2 decimals; ``category`` is that score's.
    """

    levels: dict[str, int]
    total: int
    score: Decimal
    category: str


@dataclass(frozen=True)
class RegionIndex:
    """The innovation-based region index for one year (spec ``index.md``, "Region score").

    ``sid`` and ``count_score`` are reported rounded half-up to 2 decimals; ``index`` is
    computed from the unrounded values and then rounded half-up to 2 decimals.
    """

    evaluations: int
    evaluated_total: int
    practices: int
    divisor: int
    sid: Decimal
    count_score: Decimal
    index: Decimal
    category: str


@dataclass(frozen=True)
class Catalogue:
    """One versioned indicator catalogue (IID method of some years)."""

    version: str
    year_from: int | None
    year_to: int | None
    indicators: tuple[Indicator, ...]
    divisor_floor: int
    count_factor: Decimal
    count_cap: int
    categories: tuple[CategoryThreshold, ...]
    source: str

    @property
    def max_total(self) -> int:
        """Highest possible evaluation total: every indicator at level 3."""
        return sum(indicator.max_score for indicator in self.indicators)

    @property
    def codes(self) -> tuple[str, ...]:
        """Indicator codes in catalogue order."""
        return tuple(indicator.code for indicator in self.indicators)

    @property
    def max_count_score(self) -> Decimal:
        """Highest possible count score: ``count_cap * count_factor``."""
        with localcontext(_CONTEXT):
            return self.count_factor * self.count_cap

    def indicator(self, code: str) -> Indicator | None:
        for indicator in self.indicators:
            if indicator.code == code:
                return indicator
        return None

    def covers(self, year: int) -> bool:
        """Whether the catalogue applies to ``year`` (bounds inclusive; None is open)."""
        if self.year_from is not None and year < self.year_from:
            return False
        return self.year_to is None or year <= self.year_to

    def validation_errors(self, scores: Mapping[str, object]) -> dict[str, list[str]]:
        """Problems with client-sent ``scores``, keyed ``scores.<code>``; empty when valid.

        Each level must be an int 0..3 (a bool is not accepted). Unknown codes are errors.
        A ``replikasi`` entry is accepted whatever its value: it is ignored and replaced by
        the level the service derives.
        """
        if not isinstance(scores, Mapping):
            return {"scores": ["must be an object mapping indicator codes to levels 0-3"]}
        known = set(self.codes)
        errors: dict[str, list[str]] = {}
        for code, level in scores.items():
            field = f"scores.{code}"
            if code == REPLIKASI:
                continue
            if not isinstance(code, str) or code not in known:
                errors[field] = [f"unknown indicator code for catalogue {self.version}"]
            elif not _is_int(level) or level not in LEVELS:
                errors[field] = ["level must be an integer from 0 to 3"]
        return errors

    def evaluate(self, scores: Mapping[str, int], replikasi_level: int) -> Scoring:
        """Score an evaluation. Left-out indicators score 0; ``replikasi`` is replaced by
        ``replikasi_level`` (clamped to 0..3). Raises :class:`InvalidScores` (a ValueError)
        when :meth:`validation_errors` reports anything."""
        errors = self.validation_errors(scores)
        if errors:
            raise InvalidScores(errors)
        if not _is_int(replikasi_level):
            raise TypeError("replikasi_level must be an int")
        derived = max(0, min(MAX_LEVEL, replikasi_level))
        levels: dict[str, int] = {}
        for code in self.codes:
            levels[code] = derived if code == REPLIKASI else int(scores.get(code, 0))
        total = sum(levels[ind.code] * ind.weight for ind in self.indicators)
        with localcontext(_CONTEXT):
            score = round_half_up(Decimal(total) * _HUNDRED / Decimal(self.max_total))
        return Scoring(levels=levels, total=total, score=score, category=self.category(score))

    def category(self, value: Decimal) -> str:
        """The category of an index or score value (first threshold, from the top, it meets)."""
        value = Decimal(value)
        for threshold in self.categories:
            if threshold.admits(value):
                return threshold.category
        raise ValueError(f"{value} is below every category threshold of {self.version}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (decimals as strings); the catalogue file format plus ``max_total``."""
        return {
            "version": self.version,
            "years": {"from": self.year_from, "to": self.year_to},
            "source": self.source,
            "divisor_floor": self.divisor_floor,
            "count_score": {"factor": str(self.count_factor), "cap": self.count_cap},
            "categories": [threshold.to_dict() for threshold in self.categories],
            "max_total": self.max_total,
            "indicators": [indicator.to_dict() for indicator in self.indicators],
        }


def region_index(totals: Sequence[int], practices: int, catalogue: Catalogue) -> RegionIndex:
    """The innovation-based region index for a year.

    ``totals`` are the totals of E (the latest evaluation of the year of each practice) and
    ``practices`` is n. ``sid = S / max(k, n_e)``; ``count_score = min(n, cap) * factor``;
    ``index = (sid + count_score) / (max_total + cap * factor) * 100``, rounded half-up to
    2 decimals; ``category`` from the catalogue thresholds.
    """
    for total in totals:
        if not _is_int(total) or total < 0:
            raise ValueError(f"evaluation totals must be non-negative ints, got {total!r}")
    return region_index_of(len(totals), sum(totals), practices, catalogue)


def region_index_of(
    evaluations: int, evaluated_total: int, practices: int, catalogue: Catalogue
) -> RegionIndex:
    """:func:`region_index` from n_e, S and n alone (what a query can sum without fetching every total)."""
    for name, value in (("practices", practices), ("evaluations", evaluations), ("S", evaluated_total)):
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if evaluations > practices:
        raise ValueError("there cannot be more evaluations than practices (one per practice)")
    divisor = max(catalogue.divisor_floor, evaluations)
    with localcontext(_CONTEXT):
        sid = Decimal(evaluated_total) / Decimal(divisor)
        count_score = catalogue.count_factor * min(practices, catalogue.count_cap)
        maximum = Decimal(catalogue.max_total) + catalogue.max_count_score
        index = round_half_up((sid + count_score) * _HUNDRED / maximum)
    return RegionIndex(
        evaluations=evaluations,
        evaluated_total=evaluated_total,
        practices=practices,
        divisor=divisor,
        sid=round_half_up(sid),
        count_score=round_half_up(count_score),
        index=index,
        category=catalogue.category(index),
    )


# --------------------------------------------------------------------------- loading


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CatalogueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _check_keys(
    obj: Mapping[str, Any], where: str, required: frozenset[str], optional: frozenset[str]
) -> None:
    missing = sorted(required - obj.keys())
    if missing:
        raise CatalogueError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _text(value: object, where: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise CatalogueError(f"{where} must be a non-empty string")
    return value


def _int(value: object, where: str, *, minimum: int | None = None) -> int:
    if not _is_int(value):
        raise CatalogueError(f"{where} must be an integer")
    assert isinstance(value, int)
    if minimum is not None and value < minimum:
        raise CatalogueError(f"{where} must be {minimum} or more")
    return value


def _decimal(value: object, where: str) -> Decimal:
    # Strings (or ints) only, so that the file states the exact decimal value.
    if _is_int(value):
        assert isinstance(value, int)
        return Decimal(value)
    if not isinstance(value, str):
        raise CatalogueError(f'{where} must be a decimal written as a string, e.g. "0.38"')
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise CatalogueError(f"{where} is not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise CatalogueError(f"{where} must be a finite number")
    return number


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where} must be an object")
    return value


def _parse_indicator(raw: object, where: str) -> Indicator:
    obj = _object(raw, where)
    _check_keys(obj, where, _INDICATOR_KEYS, frozenset())
    code = _text(obj["code"], f"{where}.code")
    if not _CODE_RE.match(code):
        raise CatalogueError(f"{where}.code {code!r} must be lowercase letters, digits and _")
    where = f"indicator {code!r}"
    levels_raw = _object(obj["levels"], f"{where}: levels")
    if sorted(levels_raw.keys()) != list(_LEVEL_KEYS):
        raise CatalogueError(
            f"{where}: levels must have exactly the keys {', '.join(_LEVEL_KEYS)}, "
            f"got {', '.join(sorted(map(str, levels_raw.keys()))) or 'none'}"
        )
    levels = {int(key): _text(levels_raw[key], f"{where}: level {key}") for key in _LEVEL_KEYS}
    return Indicator(
        code=code,
        name=_text(obj["name"], f"{where}: name"),
        description=_text(obj["description"], f"{where}: description"),
        weight=_int(obj["weight"], f"{where}: weight", minimum=1),
        levels=MappingProxyType(levels),
    )


def _parse_categories(raw: object) -> tuple[CategoryThreshold, ...]:
    if not isinstance(raw, list) or not raw:
        raise CatalogueError("categories must be a non-empty list")
    thresholds: list[CategoryThreshold] = []
    for position, item in enumerate(raw):
        where = f"categories[{position}]"
        obj = _object(item, where)
        _check_keys(obj, where, _CATEGORY_KEYS, frozenset())
        inclusive = obj["inclusive"]
        if not isinstance(inclusive, bool):
            raise CatalogueError(f"{where}.inclusive must be true or false")
        thresholds.append(
            CategoryThreshold(
                category=_text(obj["category"], f"{where}.category"),
                minimum=_decimal(obj["min"], f"{where}.min"),
                inclusive=inclusive,
            )
        )
    names = [threshold.category for threshold in thresholds]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CatalogueError(f"categories: duplicate category {', '.join(duplicates)}")
    for upper, lower in zip(thresholds, thresholds[1:], strict=False):
        # From the top down each threshold must admit strictly less than the one before:
        # a lower minimum, or the same minimum going from exclusive (>) to inclusive (>=).
        ordered = upper.minimum > lower.minimum or (
            upper.minimum == lower.minimum and not upper.inclusive and lower.inclusive
        )
        if not ordered:
            raise CatalogueError(
                f"categories must be ordered from the highest threshold down: "
                f"{lower.category} (min {lower.minimum}) cannot follow "
                f"{upper.category} (min {upper.minimum})"
            )
    if not thresholds[-1].admits(Decimal(0)):
        raise CatalogueError("categories: the lowest category must admit a value of 0")
    return tuple(thresholds)


def parse_catalogue(data: object, origin: str = "<data>") -> Catalogue:
    """Build and validate a catalogue from its decoded JSON form; raises CatalogueError."""
    try:
        return _parse_catalogue(data)
    except CatalogueError as exc:
        raise CatalogueError(f"catalogue {origin}: {exc}") from None


def _parse_catalogue(data: object) -> Catalogue:
    obj = _object(data, "the catalogue")
    _check_keys(obj, "the catalogue", _TOP_KEYS_REQUIRED, _TOP_KEYS_OPTIONAL)
    version = _text(obj["version"], "version")

    years = _object(obj["years"], "years")
    _check_keys(years, "years", frozenset({"from", "to"}), frozenset())
    year_from = None if years["from"] is None else _int(years["from"], "years.from")
    year_to = None if years["to"] is None else _int(years["to"], "years.to")
    if year_from is not None and year_to is not None and year_from > year_to:
        raise CatalogueError("years.from must not be after years.to")

    raw_indicators = obj["indicators"]
    if not isinstance(raw_indicators, list) or not raw_indicators:
        raise CatalogueError("indicators must be a non-empty list")
    indicators = tuple(
        _parse_indicator(item, f"indicators[{position}]") for position, item in enumerate(raw_indicators)
    )
    codes = [indicator.code for indicator in indicators]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        raise CatalogueError(f"duplicate indicator code(s) {', '.join(duplicates)}")

    count = _object(obj["count_score"], "count_score")
    _check_keys(count, "count_score", frozenset({"factor", "cap"}), frozenset())
    count_factor = _decimal(count["factor"], "count_score.factor")
    if count_factor < 0:
        raise CatalogueError("count_score.factor cannot be negative")

    catalogue = Catalogue(
        version=version,
        year_from=year_from,
        year_to=year_to,
        indicators=indicators,
        divisor_floor=_int(obj["divisor_floor"], "divisor_floor", minimum=1),
        count_factor=count_factor,
        count_cap=_int(count["cap"], "count_score.cap", minimum=0),
        categories=_parse_categories(obj["categories"]),
        source=_text(obj["source"], "source"),
    )
    if "max_total" in obj:
        stated = _int(obj["max_total"], "max_total")
        if stated != catalogue.max_total:
            raise CatalogueError(
                f"max_total is {stated} but the weights give {catalogue.max_total} "
                f"(sum of weights x {MAX_LEVEL})"
            )
    return catalogue


def load_catalogue_file(source: str | os.PathLike[str] | Traversable) -> Catalogue:
    """Load one catalogue from a file path, a package resource, or JSON text.

    A ``str`` whose first non-blank character is ``{`` is taken as the JSON text itself;
    any other ``str`` or path is a file to read. Raises :class:`CatalogueError`.
    """
    if isinstance(source, str) and source.lstrip().startswith("{"):
        origin, text = "<text>", source
    else:
        file: Traversable = Path(source) if isinstance(source, str | os.PathLike) else source
        origin = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogueError(f"catalogue {origin}: cannot read it: {exc}") from None
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except CatalogueError as exc:
        raise CatalogueError(f"catalogue {origin}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"catalogue {origin}: not valid JSON: {exc}") from None
    return parse_catalogue(data, origin)


class Catalogues:
    """A set of catalogues with distinct versions."""

    def __init__(self, items: Iterable[Catalogue]) -> None:
        by_version: dict[str, Catalogue] = {}
        for catalogue in items:
            if catalogue.version in by_version:
                raise CatalogueError(f"two catalogues have the version {catalogue.version!r}")
            by_version[catalogue.version] = catalogue
        self._by_version = dict(sorted(by_version.items()))

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str] | Traversable) -> Catalogues:
        """Every ``*.json`` file directly in ``directory``; raises CatalogueError if none."""
        folder: Traversable = Path(directory) if isinstance(directory, str | os.PathLike) else directory
        if not folder.is_dir():
            raise CatalogueError(f"catalogue folder {folder} does not exist")
        files = sorted(
            (entry for entry in folder.iterdir() if entry.name.endswith(".json")),
            key=lambda entry: entry.name,
        )
        files = [entry for entry in files if entry.is_file()]
        if not files:
            raise CatalogueError(f"no catalogue (*.json) in {folder}")
        return cls(load_catalogue_file(entry) for entry in files)

    @classmethod
    def packaged(cls) -> Catalogues:
        """The catalogues shipped in the package folder ``domain/catalogues/``."""
        return cls.from_directory(resources.files(__package__ or "domain") / "catalogues")

    def get(self, version: str) -> Catalogue | None:
        return self._by_version.get(version)

    def for_year(self, year: int) -> Catalogue | None:
        """The catalogue covering ``year``; None if none does.

        If several cover it, the most specific wins: fewest open ends, then the narrowest
        span around ``year`` (sum of its distances to the finite bounds), then the highest
        version. So a catalogue added for an earlier year takes over that year from an
        open-ended one such as ``iid-2026`` (every year up to 2026).
        """

        def specificity(catalogue: Catalogue) -> tuple[int, int]:
            open_ends = (catalogue.year_from is None) + (catalogue.year_to is None)
            span = 0
            if catalogue.year_from is not None:
                span += year - catalogue.year_from
            if catalogue.year_to is not None:
                span += catalogue.year_to - year
            return (open_ends, span)

        candidates = [c for c in reversed(self._by_version.values()) if c.covers(year)]
        return min(candidates, key=specificity) if candidates else None

    def all(self) -> list[Catalogue]:
        """Every catalogue, by version."""
        return list(self._by_version.values())

    def __len__(self) -> int:
        return len(self._by_version)


@functools.cache
def catalogues() -> Catalogues:
    """The packaged catalogues, loaded once per process."""
    return Catalogues.packaged()
