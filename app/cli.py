"""The `puja` command line (operations.md)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from app.runtime import Runtime
from app.settings import Settings


def _runtime() -> Runtime:
    return Runtime.open(Settings.from_env())


def _kafka() -> tuple[str, str]:
    settings = Settings.from_env()
    if not settings.kafka_bootstrap:
        raise click.ClickException("Set PUJA_KAFKA_BOOTSTRAP to the Kafka bootstrap servers.")
    return settings.kafka_bootstrap, settings.kafka_topic_prefix


@click.group()
def main() -> None:
    """PUJA INDAH replication tracker."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker")
@click.option("--first-run-token", is_flag=True, help="Create and print an admin token if none exists yet.")
def serve(host: str, port: int, workers: int, threads: int, first_run_token: bool) -> None:
    """Serve the API under gunicorn."""
    from gunicorn.app.base import BaseApplication

    settings = Settings.from_env()
    if first_run_token:
        runtime = Runtime.open(settings)
        try:
            if runtime.tokens.count() == 0 and not settings.bootstrap_admin_token:
                token = runtime.tokens.create("admin", "admin")
                click.echo("Created the first admin token (shown once, keep it safe):", err=True)
                click.echo(token)
        finally:
            runtime.close()

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 10)

        def load(self) -> Any:
            from app import create_app

            return create_app(settings)

    Server().run()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so that a long-running command stops between two batches."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


@main.command()
@click.option("--once", is_flag=True, help="Publish what is stored now, then stop.")
def relay(once: bool) -> None:
    """Publish every stored event to Kafka (PUJA_KAFKA_BOOTSTRAP), in order, at least once."""
    from consumers.relay import run_relay
    from service.network import read_records

    bootstrap, prefix = _kafka()
    runtime = _runtime()
    try:
        published = run_relay(
            runtime.views,
            lambda after, limit: read_records(runtime.network, after, limit),
            bootstrap,
            prefix,
            _stop_on_signals(),
            once=once,
        )
        if once:
            click.echo(f"published {published} events")
    finally:
        runtime.close()


@main.command()
@click.argument("projection", type=click.Choice(["index", "audit"]))
def consume(projection: str) -> None:
    """Feed a projection from the Kafka topics (consumer group <prefix>-<projection>)."""
    from consumers.projector import run_consumer
    from projections.audit import AuditProjection
    from projections.index import IndexProjection

    bootstrap, prefix = _kafka()
    runtime = _runtime()
    chosen = IndexProjection() if projection == "index" else AuditProjection()
    try:
        run_consumer(runtime.views, chosen, bootstrap, prefix, _stop_on_signals())
    finally:
        runtime.close()


@main.group()
def tokens() -> None:
    """Issue, list and revoke API tokens."""


@tokens.command("create")
@click.option(
    "--role", required=True, type=click.Choice(["admin", "operator", "evaluator", "auditor", "integrator"])
)
@click.option("--region", "regions", multiple=True, help="Region code an operator acts for (repeatable).")
@click.option("--name", required=True, help="The token's subject, recorded as actor on its events.")
def tokens_create(role: str, regions: tuple[str, ...], name: str) -> None:
    """Create a token; it is printed once, as the last line."""
    from app.auth import TokenError

    runtime = _runtime()
    try:
        token = runtime.tokens.create(name, role, list(regions))
    except TokenError as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()
    click.echo(f"Created {role} token '{name}'. It is shown only now:", err=True)
    click.echo(token)


@tokens.command("list")
def tokens_list() -> None:
    runtime = _runtime()
    try:
        for token in runtime.tokens.list():
            state = "revoked" if token["revoked"] else "active"
            scope = ",".join(token["regions"]) or "-"
            click.echo(f"{token['name']}\t{token['role']}\t{scope}\t{state}\t{token['created_at']}")
    finally:
        runtime.close()


@tokens.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    runtime = _runtime()
    try:
        if not runtime.tokens.revoke(name):
            raise click.ClickException(f"No active token named '{name}'.")
    finally:
        runtime.close()
    click.echo(f"Revoked '{name}'.")


@main.group()
def projections() -> None:
    """Projection status."""


@projections.command("status")
@click.option("--max-lag", type=int, default=None, help="Exit 1 when a projection lags more than this.")
def projections_status(max_lag: int | None) -> None:
    """Each projection's (and the relay's) position, head, lag and state (exit 0 when the store is reachable:
    a health check)."""
    from app.status import statuses as progress_of

    runtime = _runtime()
    try:
        statuses = progress_of(runtime)
        json.dump(statuses, sys.stdout, indent=2)
        click.echo()
    finally:
        runtime.close()
    if max_lag is not None and any(s["lag"] > max_lag for s in statuses):
        raise SystemExit(1)


@main.command("seed-demo")
@click.option("--force", is_flag=True, help="Seed even if the store already holds events.")
def seed_demo(force: bool) -> None:
    """Load a realistic demo data set through the domain commands."""
    from app.demo import seed

    runtime = _runtime()
    try:
        if runtime.network.head_position() and not force:
            raise click.ClickException("The store already holds events; use --force to add the demo anyway.")
        summary = seed(runtime.network)
        runtime.runner.catch_up()
    finally:
        runtime.close()
    click.echo(json.dumps(summary, indent=2))
