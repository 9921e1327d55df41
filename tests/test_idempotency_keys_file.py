"""On SQLite the idempotency keys live in a file of their own (Settings.keys_url), so that keyed commands and
the projections never wait for each other's write lock; keys a previous version kept with the views move
there at start-up, and none is lost on the way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, insert, inspect, select

from app.idempotency import fingerprint
from app.migrate import upgrade
from app.runtime import Runtime
from app.settings import Settings
from app.storage import idempotency_keys


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=None)


def kept_with_the_views(settings: Settings, body: bytes, key: str = "k-1") -> str:
    """A finished keyed request as a previous version kept it: in the views file."""
    print_ = fingerprint("POST", "/api/v1/innovations", b"{}")
    engine = create_engine(settings.views_url)
    with engine.begin() as conn:
        conn.execute(
            insert(idempotency_keys).values(
                subject="admin",
                key=key,
                fingerprint=print_,
                state="done",
                created_at=datetime.now(UTC),
                status=201,
                headers={"Content-Type": "application/json"},
                body=body,
                request_id="req-1",
            )
        )
    engine.dispose()
    return print_


def rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())
    finally:
        engine.dispose()


def test_the_keys_have_a_file_of_their_own_with_only_their_table(tmp_path: Path) -> None:
    s = settings(tmp_path)
    Runtime.open(s).close()
    assert s.keys_url != s.views_url
    engine = create_engine(s.keys_url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version", "idempotency_keys"}
    engine.dispose()


def test_keys_kept_with_the_views_by_a_previous_version_are_moved_and_still_answer_a_retry(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path)
    Runtime.open(s).close()
    print_ = kept_with_the_views(s, b'{"id": "first"}')

    runtime = Runtime.open(s)
    try:
        claim = runtime.idempotency.claim("admin", "k-1", print_, "req-2")
    finally:
        runtime.close()

    assert claim.outcome == "replay"
    assert claim.response is not None and claim.response.body == b'{"id": "first"}'
    assert rows(s.views_url) == 0 and rows(s.keys_url) == 1


def test_a_move_cut_short_is_taken_up_again_and_keeps_the_key_once(tmp_path: Path) -> None:
    s = settings(tmp_path)
    Runtime.open(s).close()
    # Cut short after the page was written to the keys file, before it left the views file.
    kept_with_the_views(s, b'{"id": "first"}')
    keys = create_engine(s.keys_url)
    upgrade(keys, tree="keys")
    views = create_engine(s.views_url)
    with views.connect() as conn:
        row = conn.execute(select(idempotency_keys)).one()._asdict()
    with keys.begin() as conn:
        conn.execute(insert(idempotency_keys).values(**row))
    keys.dispose()
    views.dispose()
    for n in range(1, 6):
        kept_with_the_views(s, b"{}", key=f"k-{n + 1}")

    Runtime.open(s).close()

    assert rows(s.views_url) == 0
    assert rows(s.keys_url) == 6


def test_on_postgresql_the_keys_stay_in_the_one_database() -> None:
    s = Settings(data_dir=Path("/nonexistent"), database_url="postgresql://u@127.0.0.1:1/puja")
    assert s.keys_url == s.views_url == s.database_url
