"""One process of a deployment leads the projections (app/leadership.py); the others try again and take over."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.leadership import AdvisoryLeadership, FileLeadership


def taken_within(leadership: AdvisoryLeadership, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if leadership():
            return True
    return False


@pytest.mark.parametrize("backend", ["postgres"])
def test_advisory_leadership_is_held_by_one_and_taken_over_when_released(database_url: str) -> None:
    first, second = AdvisoryLeadership(database_url), AdvisoryLeadership(database_url)
    try:
        assert first()
        assert first()  # still held
        assert not second()
        follower_session = second._conn.info.backend_pid
        assert [second() for _ in range(5)] == [False] * 5
        assert second._conn.info.backend_pid == follower_session  # tries again on its session, not a new one
        first.release()
        assert taken_within(second, seconds=10)  # once the server has ended the leader's session
        assert not first()
    finally:
        first.release()
        second.release()


def test_file_leadership_is_held_by_one_and_taken_over_when_released(tmp_path: Any) -> None:
    first, second = FileLeadership(tmp_path / "runner.lock"), FileLeadership(tmp_path / "runner.lock")
    try:
        assert first() and first()
        assert not second()
        first.release()
        assert second()
        assert not first()
    finally:
        first.release()
        second.release()
