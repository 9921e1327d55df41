"""Encryption at rest (PUJA_CIPHER_KEY, operations.md): stored events and snapshots hold no plaintext, everything
still works through the API and the notification log, and a store the key does not open is refused loudly."""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from conftest import Api, days_ago, innovation_fields
from sqlalchemy import create_engine, text

from app.cli import main
from app.runtime import Runtime
from app.settings import Settings
from domain.published import GENESIS_HASH
from service import audit
from service.network import read_records
from service.store import CipherKeyError, CipherMismatch, new_cipher_key, open_network

SECRET_NAME = "Lumbung Zamrud Rahasia 7741"
SECRET = b"Zamrud Rahasia 7741"
KEY = new_cipher_key()
INNOVATIONS = "/api/v1/innovations"
REPLICATIONS = "/api/v1/replications"


def as_json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in fields.items()}


def settings(tmp_path: Path, database_url: str | None, key: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=database_url, cipher_key=key)


@pytest.fixture
def encrypted(tmp_path: Path, database_url: str | None) -> Iterator[Api]:
    from app import create_app

    runtime = Runtime.open(settings(tmp_path, database_url, KEY))
    app = create_app(runtime=runtime)
    app.testing = True
    yield Api(app.test_client(), runtime)
    runtime.close()


def record_a_replication(api: Api) -> tuple[str, str]:
    admin = api.token("admin-test", "admin")
    registered = api.post(INNOVATIONS, as_json(innovation_fields(name=SECRET_NAME)), admin)
    assert registered.status_code == 201, registered.get_json()
    innovation_id = registered.get_json()["id"]
    proposed = api.post(
        REPLICATIONS,
        {
            "innovation_id": innovation_id,
            "adopting_region": "32.73",
            "rationale": f"Kami ingin meniru {SECRET_NAME}.",
            "proposed_on": days_ago(20).isoformat(),
        },
        admin,
    )
    assert proposed.status_code == 201, proposed.get_json()
    replication_id = proposed.get_json()["id"]
    signed = api.post(
        f"{REPLICATIONS}/{replication_id}/agreement",
        {"document": "pks", "document_number": "PKS/7741", "signed_on": days_ago(10).isoformat()},
        admin,
        **{"If-Match": '"1"'},
    )
    assert signed.status_code == 200, signed.get_json()
    api.runtime.network.take_snapshot(UUID(innovation_id))
    api.settle()
    return innovation_id, replication_id


def stored_states(api: Api) -> list[bytes]:
    """The raw `state` column of every stored event and snapshot, as the database holds it."""
    network = api.runtime.network
    assert network.snapshots is not None
    tables = [network.recorder.events_table_name, network.snapshots.recorder.events_table_name]  # type: ignore[attr-defined]
    url = api.runtime.settings.database_url or f"sqlite:///{api.runtime.settings.event_store_path}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [
                bytes(row[0]) for table in tables for row in conn.execute(text(f"SELECT state FROM {table}"))
            ]
    finally:
        engine.dispose()


def test_stored_events_and_snapshots_hold_no_plaintext(encrypted: Api) -> None:
    record_a_replication(encrypted)
    states = stored_states(encrypted)
    assert len(states) == 4  # three events and one snapshot
    assert not any(SECRET in state for state in states)
    cipher = encrypted.runtime.network.mapper.cipher
    assert cipher is not None
    assert sum(SECRET in cipher.decrypt(state) for state in states) == 3  # registration, proposal, snapshot


def test_the_sqlite_files_hold_no_plaintext(encrypted: Api, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the embedded store's files")
    record_a_replication(encrypted)
    path = encrypted.runtime.settings.event_store_path
    files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
    assert path in files
    assert not any(SECRET in p.read_bytes() for p in files)


def test_the_api_answers_in_plaintext_from_an_encrypted_store(encrypted: Api) -> None:
    innovation_id, replication_id = record_a_replication(encrypted)
    auditor = encrypted.token("bpk", "auditor")
    assert encrypted.get(f"{INNOVATIONS}/{innovation_id}").get_json()["name"] == SECRET_NAME
    listed = encrypted.get(f"{REPLICATIONS}?innovation_id={innovation_id}").get_json()["items"]
    assert [(r["id"], r["status"], r["innovation_name"]) for r in listed] == [
        (replication_id, "disepakati", SECRET_NAME)
    ]
    history = encrypted.get(f"{INNOVATIONS}/{innovation_id}/history", auditor).get_json()["items"]
    assert history[0]["data"]["name"] == SECRET_NAME
    assert [e["type"] for e in history] == ["InnovationRegistered"]


def test_the_notification_log_yields_plaintext_records(encrypted: Api) -> None:
    record_a_replication(encrypted)
    records = read_records(encrypted.runtime.network, 0, 10)
    assert [r.type for r in records] == ["InnovationRegistered", "ReplicationProposed", "AgreementSigned"]
    assert records[0].data["name"] == SECRET_NAME
    assert records[2].data["document_number"] == "PKS/7741"


def test_an_aggregate_is_rebuilt_from_an_encrypted_snapshot(encrypted: Api, tmp_path: Path) -> None:
    innovation_id, _ = record_a_replication(encrypted)
    rt = encrypted.runtime
    fresh = open_network(rt.settings.database_url, rt.settings.event_store_path, KEY)
    try:
        assert fresh.snapshots is not None
        (snapshot,) = fresh.snapshots.get(UUID(innovation_id))
        assert snapshot.state["name"] == SECRET_NAME
        assert fresh.innovation(UUID(innovation_id)).name == SECRET_NAME
    finally:
        fresh.close()


# --- a store the key does not open --------------------------------------------------------------


def stored_encrypted(tmp_path: Path, database_url: str | None) -> None:
    runtime = Runtime.open(settings(tmp_path, database_url, KEY))
    try:
        from domain.acting import Actor, acting_as

        with acting_as(Actor("test-admin", "admin", "req")):
            runtime.network.register_innovation(**innovation_fields(name=SECRET_NAME))
    finally:
        runtime.close()


def test_a_wrong_key_is_refused_at_start_up(tmp_path: Path, database_url: str | None) -> None:
    stored_encrypted(tmp_path, database_url)
    with pytest.raises(CipherMismatch, match="does not decrypt the stored events"):
        Runtime.open(settings(tmp_path, database_url, new_cipher_key()))


def test_a_missing_key_is_refused_at_start_up(tmp_path: Path, database_url: str | None) -> None:
    stored_encrypted(tmp_path, database_url)
    with pytest.raises(CipherMismatch, match="encrypted events: set PUJA_CIPHER_KEY"):
        Runtime.open(settings(tmp_path, database_url, None))


def test_a_key_for_a_plaintext_store_is_refused_at_start_up(tmp_path: Path, database_url: str | None) -> None:
    runtime = Runtime.open(settings(tmp_path, database_url, None))
    try:
        from domain.acting import Actor, acting_as

        with acting_as(Actor("test-admin", "admin", "req")):
            runtime.network.register_innovation(**innovation_fields())
    finally:
        runtime.close()
    with pytest.raises(CipherMismatch, match="holds unencrypted events"):
        Runtime.open(settings(tmp_path, database_url, KEY))


@pytest.mark.parametrize("key", ["not base64!", "c2hvcnQ=", new_cipher_key()[:-4]])
def test_a_malformed_key_is_refused_before_anything_is_opened(tmp_path: Path, key: str) -> None:
    with pytest.raises(CipherKeyError, match="base64 of 16, 24 or 32 random bytes"):
        open_network(None, tmp_path / "events.sqlite", key)
    assert not (tmp_path / "events.sqlite").exists()


def test_the_command_line_refuses_a_wrong_key_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored_encrypted(tmp_path, None)
    monkeypatch.setenv("PUJA_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PUJA_CIPHER_KEY", new_cipher_key())
    result = CliRunner().invoke(main, ["projections", "status"])
    assert result.exit_code == 1
    assert "PUJA_CIPHER_KEY does not decrypt the stored events" in result.output


def test_cipher_key_prints_a_fresh_256_bit_key() -> None:
    first = CliRunner().invoke(main, ["cipher-key"])
    second = CliRunner().invoke(main, ["cipher-key"])
    assert first.exit_code == 0
    assert len(b64decode(first.stdout.strip(), validate=True)) == 32
    assert first.stdout != second.stdout


def test_projections_rebuild_and_verify_from_an_encrypted_store(encrypted: Api) -> None:
    from projections import all_projections
    from projections.rebuild import rebuild, verify

    innovation_id, _ = record_a_replication(encrypted)
    rt = encrypted.runtime

    def read(after: int, limit: int) -> list[Any]:
        return read_records(rt.network, after, limit)

    for projection in all_projections():
        assert rebuild(rt.views, projection, read).position == rt.network.head_position()
        assert verify(rt.views, projection, read).ok
    assert encrypted.get(f"{INNOVATIONS}/{innovation_id}").get_json()["name"] == SECRET_NAME


def test_the_hash_chain_verifies_over_an_encrypted_store_and_finds_an_altered_ciphertext(
    encrypted: Api,
) -> None:
    record_a_replication(encrypted)
    network = encrypted.runtime.network
    verdict = audit.verify(network)
    assert verdict.ok and verdict.checked == 3, verdict

    exported = list(audit.records(network))
    assert exported[0].data["name"] == SECRET_NAME
    prev = GENESIS_HASH
    for record in exported:
        assert record.prev_hash == prev and record.expected_hash(prev) == record.hash
        prev = record.hash or ""

    url = (
        encrypted.runtime.settings.database_url or f"sqlite:///{encrypted.runtime.settings.event_store_path}"
    )
    position = "notification_id" if encrypted.runtime.settings.database_url else "position"
    table = network.recorder.events_table_name  # type: ignore[attr-defined]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            state = bytearray(
                conn.execute(text(f"SELECT state FROM {table} WHERE {position} = 2")).scalar_one()
            )
            state[-1] ^= 0x01
            conn.execute(text(f"UPDATE {table} SET state = :s WHERE {position} = 2"), {"s": bytes(state)})
    finally:
        engine.dispose()
    verdict = audit.verify(network)
    assert not verdict.ok and verdict.first_bad_position == 2 and verdict.checked == 1, verdict
