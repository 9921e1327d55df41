"""Business dates. "Not in the future" means not after today in Asia/Jayapura (UTC+9), Indonesia's
easternmost zone, so that no region's today is refused."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from domain.errors import InvalidInput, Rule, RuleViolation

EASTERNMOST = ZoneInfo("Asia/Jayapura")


def today() -> date:
    return datetime.now(EASTERNMOST).date()


def check_not_in_future(field: str, value: date) -> None:
    if value > today():
        raise InvalidInput.field(field, f"{value.isoformat()} is in the future.")


def check_not_before(field: str, value: date, previous: date | None, previous_step: str) -> None:
    if previous is not None and value < previous:
        raise RuleViolation(
            Rule.DATE_ORDER,
            f"{field} {value.isoformat()} is earlier than {previous_step} ({previous.isoformat()}).",
        )
