"""`puja replay` and `puja audit verify|head|export` on both backends, and the offline check of an export with
the exact script that docs/audit.md shows (examples/verify_export.py)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import ROOT, days_ago, innovation_fields

from app.cli import main
from app.replay import past_state
from app.runtime import Runtime
from app.settings import Settings
from domain.acting import Actor, acting_as
from service.store import libpq_url

SCRIPT = ROOT / "examples" / "verify_export.py"


class Cli:
    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.settings = Settings(data_dir=data_dir, database_url=database_url)
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Any:
        return self.runner.invoke(main, list(args), catch_exceptions=False)

    @contextmanager
    def runtime(self) -> Iterator[Runtime]:
        runtime = Runtime.open(self.settings)
        try:
            yield runtime
        finally:
            runtime.close()

    def tamper(self, position: int, old: bytes, new: bytes) -> None:
        with self.runtime() as runtime:
            table = runtime.network.recorder.events_table_name  # type: ignore[attr-defined]
        if self.settings.uses_postgres:
            with psycopg.connect(libpq_url(str(self.settings.database_url))) as conn:
                (state,) = conn.execute(
                    f"SELECT state FROM {table} WHERE notification_id = %s", (position,)
                ).fetchone()  # type: ignore[misc]
                conn.execute(
                    f"UPDATE {table} SET state = %s WHERE notification_id = %s",
                    (bytes(state).replace(old, new), position),
                )
            return
        conn = sqlite3.connect(self.settings.event_store_path)
        with conn:
            conn.execute(
                f"UPDATE {table} SET state = replace(state, ?, ?) WHERE position = ?", (old, new, position)
            )
        conn.close()

    def truncate_after(self, position: int) -> None:
        with self.runtime() as runtime:
            table = runtime.network.recorder.events_table_name  # type: ignore[attr-defined]
        if self.settings.uses_postgres:
            with psycopg.connect(libpq_url(str(self.settings.database_url))) as conn:
                conn.execute(f"DELETE FROM {table} WHERE notification_id > %s", (position,))
            return
        conn = sqlite3.connect(self.settings.event_store_path)
        with conn:
            conn.execute(f"DELETE FROM {table} WHERE position > ?", (position,))
        conn.close()


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """`puja` against this test's store: the SQLite files of a data directory, or a fresh PostgreSQL database."""
    monkeypatch.setenv("PUJA_DATA_DIR", str(tmp_path / "var"))
    if database_url:
        monkeypatch.setenv("PUJA_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("PUJA_DATABASE_URL", raising=False)
    yield Cli(tmp_path / "var", database_url)


@pytest.fixture
def recorded(cli: Cli) -> dict[str, Any]:
    """An innovation (renamed once) and a replication of it, signed: five events."""
    with cli.runtime() as runtime, acting_as(Actor("operator", "admin", "req-cli")):
        network = runtime.network
        innovation = network.register_innovation(**innovation_fields(name="Layanan Désa")).aggregate
        replication = network.propose_replication(
            innovation_id=innovation.id, adopting_region="35.05", rationale="x", proposed_on=days_ago(30)
        ).aggregate
        network.sign_agreement(replication.id, document="pks", document_number="1", signed_on=days_ago(20))
        network.revise_innovation(innovation.id, {"digital": True}, "online")
        network.record_modification(
            replication.id,
            component="sdm",
            nature="penyesuaian",
            core=False,
            description="d",
            reason="r",
            recorded_on=days_ago(10),
        )
        expected = past_state(network, "replication", replication.id, 2, None)
    return {"innovation": str(innovation.id), "replication": str(replication.id), "version_2": expected}


# --- replay -------------------------------------------------------------------------------------


def test_replay_prints_the_state_the_api_answers(cli: Cli, recorded: dict[str, Any]) -> None:
    result = cli("replay", "replication", recorded["replication"], "--version", "2")
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state == recorded["version_2"]
    assert (state["version"], state["status"]) == (2, "disepakati")


def test_replay_at_a_time(cli: Cli, recorded: dict[str, Any]) -> None:
    first = json.loads(cli("replay", "innovation", recorded["innovation"], "--version", "1").stdout)
    with cli.runtime() as runtime:
        from service.audit import records

        registered = next(records(runtime.network))
    result = cli("replay", "innovation", recorded["innovation"], "--at", registered.recorded_at)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == first
    assert first["digital"] is False


@pytest.mark.parametrize(
    "options", [(), ("--version", "1", "--at", "2026-01-01T00:00:00Z"), ("--version", "x"), ("--at", "today")]
)
def test_replay_needs_exactly_one_valid_option(
    cli: Cli, recorded: dict[str, Any], options: tuple[str, ...]
) -> None:
    result = CliRunner().invoke(main, ["replay", "replication", recorded["replication"], *options])
    assert result.exit_code == 2
    assert "version" in result.output or "at" in result.output


@pytest.mark.parametrize(
    "options", [("--version", "4"), ("--version", "0"), ("--at", "2001-01-01T00:00:00+07:00")]
)
def test_replay_of_a_state_it_never_had_fails(
    cli: Cli, recorded: dict[str, Any], options: tuple[str, ...]
) -> None:
    result = CliRunner().invoke(main, ["replay", "replication", recorded["replication"], *options])
    assert result.exit_code == 1
    assert "no state" in result.output


def test_replay_of_an_unknown_id_fails(cli: Cli, recorded: dict[str, Any]) -> None:
    result = CliRunner().invoke(main, ["replay", "innovation", recorded["replication"], "--version", "1"])
    assert result.exit_code == 1
    assert "No innovation" in result.output


# --- verify and head ----------------------------------------------------------------------------


def test_verify_exits_0_on_a_whole_chain(cli: Cli, recorded: dict[str, Any]) -> None:
    result = cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "ok": True,
        "checked": 5,
        "last_position": 5,
        "first_bad_position": None,
        "problem": None,
    }


def test_verify_exits_1_on_an_altered_event(cli: Cli, recorded: dict[str, Any]) -> None:
    cli.tamper(3, b'"pks"', b'"mou"')
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_position"] == 3


def test_head_then_verify_against_it_finds_a_truncated_tail(cli: Cli, recorded: dict[str, Any]) -> None:
    head = cli("audit", "head").stdout.strip()
    assert re.fullmatch(r"5:[0-9a-f]{64}", head)
    assert cli("audit", "verify", "--head", head).exit_code == 0
    cli.truncate_after(3)
    assert cli("audit", "verify").exit_code == 0  # what is left is consistent
    result = CliRunner().invoke(main, ["audit", "verify", "--head", head])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_position"] == 4


def test_verify_refuses_a_malformed_head(cli: Cli, recorded: dict[str, Any]) -> None:
    result = CliRunner().invoke(main, ["audit", "verify", "--head", "5"])
    assert result.exit_code == 2
    assert "POSITION:HASH" in result.output


# --- export, and the offline check ------------------------------------------------------------------


def test_export_writes_json_lines_with_hashes(cli: Cli, recorded: dict[str, Any], tmp_path: Path) -> None:
    result = cli("audit", "export")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["position"] for e in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:], strict=False))
    assert "Layanan Désa" in result.stdout  # non-ASCII kept
    window = cli("audit", "export", "--after", "1", "--before", "4", "--format", "csv").stdout.splitlines()
    assert window[0].startswith("position,aggregate_id,")
    assert [row.split(",")[0] for row in window[1:]] == ["2", "3"]


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def test_the_documented_script_is_the_example_file() -> None:
    document = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", document, flags=re.S)
    assert SCRIPT.read_text(encoding="utf-8") in blocks


def test_the_script_verifies_an_export_and_its_head(
    cli: Cli, recorded: dict[str, Any], tmp_path: Path
) -> None:
    export = tmp_path / "export.jsonl"
    assert cli("audit", "export", "--output", str(export)).exit_code == 0
    head = cli("audit", "head").stdout.strip()
    checked = run_script(export, head)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("verified: 5 events")
    later = tmp_path / "later.jsonl"
    later.write_text(cli("audit", "export", "--after", "2").stdout, encoding="utf-8")
    assert run_script(later, head).returncode == 0  # a window links to what came before it


def test_the_script_rejects_a_tampered_export(cli: Cli, recorded: dict[str, Any], tmp_path: Path) -> None:
    lines = cli("audit", "export").stdout.splitlines()
    event = json.loads(lines[2])
    event["data"]["document_number"] = "2"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(
        "\n".join([*lines[:2], json.dumps(event, ensure_ascii=False), *lines[3:]]) + "\n", encoding="utf-8"
    )
    checked = run_script(tampered)
    assert checked.returncode == 1
    assert "NOT VERIFIED at position 3" in checked.stderr
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(lines[:2] + lines[3:]) + "\n", encoding="utf-8")
    assert "position 4" in run_script(dropped).stderr


def test_the_script_rejects_an_export_that_misses_the_published_head(
    cli: Cli, recorded: dict[str, Any], tmp_path: Path
) -> None:
    head = cli("audit", "head").stdout.strip()
    short = tmp_path / "short.jsonl"
    short.write_text(cli("audit", "export", "--before", "5").stdout, encoding="utf-8")
    checked = run_script(short, head)
    assert checked.returncode == 1
    assert "published head" in checked.stderr
