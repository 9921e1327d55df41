"""docker-compose.yml describes the production topology of operations.md; there is no Docker engine here, so
its structure is checked, and every command it runs is a real `puja` command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from app.cli import main

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = {
    "PUJA_DATA_DIR",
    "PUJA_DATABASE_URL",
    "PUJA_KAFKA_BOOTSTRAP",
    "PUJA_KAFKA_TOPIC_PREFIX",
    "PUJA_BOOTSTRAP_ADMIN_TOKEN",
    "PUJA_CIPHER_KEY",
    "PUJA_LOG_LEVEL",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_topology_has_every_service_of_operations_md(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgres",
        "kafka",
        "api",
        "relay",
        "consumer-index",
        "consumer-audit",
    }
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_kafka_runs_in_kraft_mode_without_zookeeper(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("name", ["api", "relay", "consumer-index", "consumer-audit"])
def test_service_processes_are_built_from_this_repository_and_configured_only_by_puja_variables(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    assert service["build"] == "."
    assert set(service["environment"]) <= VARIABLES
    assert service["environment"]["PUJA_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert service["environment"]["PUJA_DATABASE_URL"].startswith("postgresql://puja:${POSTGRES_PASSWORD")
    assert service["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
    }


@pytest.mark.parametrize("name", ["api", "relay", "consumer-index", "consumer-audit"])
def test_every_command_the_topology_runs_is_a_puja_command(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    for command in (service["command"], service["healthcheck"]["test"][1:]):
        if command[0] != "puja":
            continue
        result = CliRunner().invoke(main, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_no_secret_is_written_into_the_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|TOKEN)\s*:", line) and "${" not in line:
            pytest.fail(f"a literal secret: {line.strip()}")
    assert "puja_" not in text


def test_the_image_serves_the_api_with_gunicorn() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.11" in dockerfile
    assert re.search(r'CMD \["puja", "serve", "--host", "0.0.0.0"', dockerfile)
    assert "USER puja" in dockerfile
