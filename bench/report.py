"""The table printed at the end of a run, and the JSON written beside it."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Row

COLUMNS = (
    ("scenario / baseline", "<"),
    ("backend", "<"),
    ("measured", ">"),
    ("baseline", ">"),
    ("unit", "<"),
    ("ratio", ">"),
    ("target", "<"),
    ("met", "<"),
    ("p50 ms", ">"),
    ("p95 ms", ">"),
    ("p99 ms", ">"),
    ("n", ">"),
    ("errors", ">"),
)


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ms" or abs(value) < 10:
        return f"{value:,.2f}"
    if abs(value) < 100:
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def cells(row: Row) -> list[str]:
    met = {True: "yes", False: "NO", None: ""}[row.met]
    return [
        row.scenario,
        row.backend,
        number(row.measured, row.unit),
        number(row.baseline, row.unit),
        row.unit,
        "-" if row.ratio is None else f"{row.ratio:.3f}",
        row.target or "",
        met,
        number(row.p50_ms, "ms"),
        number(row.p95_ms, "ms"),
        number(row.p99_ms, "ms"),
        f"{row.n:,}",
        str(row.errors) if row.errors else "",
    ]


def table(rows: Sequence[Row]) -> str:
    body = [cells(row) for row in rows]
    widths = [max([len(header), *(len(r[i]) for r in body)]) for i, (header, _) in enumerate(COLUMNS)]

    def line(values: Sequence[str]) -> str:
        parts = []
        for (_, align), width, value in zip(COLUMNS, widths, values, strict=True):
            parts.append(value.ljust(width) if align == "<" else value.rjust(width))
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line([h for h, _ in COLUMNS]), rule, *(line(r) for r in body)]
    return "\n".join(out)


def notes(rows: Sequence[Row]) -> str:
    out = []
    for i, row in enumerate(rows, 1):
        text = f"{i:>2}. {row.scenario} [{row.backend}]: baseline = {row.baseline_name}"
        if row.baseline_p50_ms is not None:
            text += (
                f" (p50 {number(row.baseline_p50_ms, 'ms')} ms, p99 {number(row.baseline_p99_ms, 'ms')} ms)"
            )
        if row.notes:
            text += f"; {row.notes}"
        kinds = row.extra.get("error_kinds")
        if kinds:
            text += f"; errors: {kinds}"
        out.append(text)
    return "\n".join(out)


def machine(postgres: dict[str, Any] | None, load_at_start: tuple[float, float, float]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "eventsourcing": installed("eventsourcing"),
        "psycopg": f"{installed('psycopg')} ({_psycopg_impl()} implementation)",
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
    }
    if postgres:
        info["postgres"] = postgres
    return info


def _psycopg_impl() -> str:
    try:
        import psycopg

        return str(psycopg.pq.__impl__)
    except ImportError:
        return "-"


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any], details: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
        "rows": [row.to_dict() for row in rows],
        "details": details,
    }
    text = json.dumps(document, indent=2, default=str)
    path.write_text(text + "\n")
    stamped = path.with_name(f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json")
    stamped.write_text(text + "\n")
    return path
