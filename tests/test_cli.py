"""The `puja` command line on a real data directory."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from app.cli import main
from app.runtime import Runtime
from app.settings import Settings


@pytest.fixture
def cli(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PUJA_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    run.data_dir = tmp_path / "var"  # type: ignore[attr-defined]
    return run


def test_token_create_prints_the_token_once_as_the_last_line_and_stores_only_its_hash(cli: Any) -> None:
    result = cli(
        "tokens", "create", "--role", "operator", "--region", "35", "--region", "32.73", "--name", "op"
    )
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("puja_")
    runtime = Runtime.open(Settings(data_dir=cli.data_dir))
    try:
        principal = runtime.tokens.authenticate(token)
        assert principal is not None and principal.subject == "op" and principal.regions == ("35", "32.73")
        raw = runtime.views.engine.raw_connection()
        try:
            dumped = "\n".join(raw.iterdump())  # type: ignore[attr-defined]
        finally:
            raw.close()
        assert token not in dumped
    finally:
        runtime.close()


def test_operator_token_needs_a_valid_region(cli: Any) -> None:
    result = CliRunner().invoke(
        main, ["tokens", "create", "--role", "operator", "--region", "3504", "--name", "x"]
    )
    assert result.exit_code != 0
    assert "35.04" in result.output


def test_revoked_token_no_longer_authenticates_and_list_shows_it(cli: Any) -> None:
    token = cli("tokens", "create", "--role", "auditor", "--name", "bpk").stdout.strip().splitlines()[-1]
    assert cli("tokens", "revoke", "bpk").exit_code == 0
    listing = cli("tokens", "list").stdout
    assert "bpk\tauditor\t-\trevoked" in listing
    runtime = Runtime.open(Settings(data_dir=cli.data_dir))
    try:
        assert runtime.tokens.authenticate(token) is None
    finally:
        runtime.close()


def test_seed_demo_records_every_status_and_a_second_generation(cli: Any) -> None:
    result = cli("seed-demo")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    runtime = Runtime.open(Settings(data_dir=cli.data_dir))
    try:
        runtime.runner.catch_up()
        assert runtime.network.head_position() == summary["head_position"]
        from projections import queries

        replications = queries.list_replications(runtime.views, limit=500).items
        innovations = queries.list_innovations(runtime.views, limit=500).items
    finally:
        runtime.close()
    assert {r["status"] for r in replications} == {
        "diusulkan",
        "disepakati",
        "uji_coba",
        "penerapan",
        "ditolak",
        "dihentikan",
    }
    assert max(r["generation"] for r in replications) == 2
    assert {i["form"] for i in innovations} == {"tata_kelola", "pelayanan_publik", "urusan_pemerintahan"}
    assert len({i["region"][:2] for i in innovations}) >= 4
    assert any(i["retired"] for i in innovations)


def test_seed_demo_refuses_a_store_that_holds_events(cli: Any) -> None:
    assert cli("seed-demo").exit_code == 0
    again = CliRunner().invoke(main, ["seed-demo"])
    assert again.exit_code != 0
    assert "--force" in again.output


def test_the_stream_commands_start_without_the_http_stack() -> None:
    """`puja relay` and `puja consume` import the command line, the runtime and the stream code, not Flask or
    the region reference data (a second of start-up for each process, paid again at every restart)."""
    import subprocess
    import sys

    probe = (
        "import sys, app.cli, consumers.relay, consumers.projector;"
        "print(sorted(m for m in ('flask', 'flask_smorest', 'lokal') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
