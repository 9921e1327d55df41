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
    from service.store import CipherKeyError, CipherMismatch

    try:
        return Runtime.open(Settings.from_env())
    except (CipherKeyError, CipherMismatch) as error:
        raise click.ClickException(str(error)) from None


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
    runtime = _runtime()  # refuses to start on a store it cannot read (PUJA_CIPHER_KEY)
    try:
        if first_run_token and runtime.tokens.count() == 0 and not settings.bootstrap_admin_token:
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
    if projection == "index":
        from domain import regions

        regions.all_regions()  # the index names regions: read the reference data now, not in its first transaction
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
    """Projection status, rebuilds and verification."""


PROJECTION_NAMES = ["index", "audit"]


def _chosen(name: str | None) -> list[Any]:
    from projections import all_projections

    return [p for p in all_projections() if name is None or p.name == name]


def _from_the_record(runtime: Runtime, projection: Any, verb: str, work: Any) -> Any:
    """Run `work(views, projection, read, progress=...)` (projections/rebuild.py) with a progress bar over the
    record."""
    from tqdm import tqdm

    from projections.rebuild import RebuildBusy
    from service.network import read_records

    head = runtime.network.head_position()
    with tqdm(total=head, desc=f"{verb} {projection.name}", unit="event", file=sys.stderr) as bar:

        def progress(position: int) -> None:
            if position > bar.total:
                bar.total = position
            bar.update(position - bar.n)

        try:
            return work(
                runtime.views,
                projection,
                lambda after, limit: read_records(runtime.network, after, limit),
                progress=progress,
            )
        except RebuildBusy as error:
            raise click.ClickException(str(error)) from None


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


@projections.command("rebuild")
@click.option(
    "--name", type=click.Choice(PROJECTION_NAMES), default=None, help="One projection (default: all)."
)
def projections_rebuild(name: str | None) -> None:
    """Rebuild projections from the event store into fresh tables and swap them in; the API keeps serving."""
    from projections.rebuild import rebuild

    runtime = _runtime()
    try:
        for projection in _chosen(name):
            done = _from_the_record(runtime, projection, "rebuilding", rebuild)
            rows = ", ".join(f"{table} {count}" for table, count in done.rows.items())
            click.echo(f"{done.name}: rebuilt at position {done.position} ({rows})")
    finally:
        runtime.close()


@projections.command("verify")
@click.option(
    "--name", type=click.Choice(PROJECTION_NAMES), default=None, help="One projection (default: all)."
)
def projections_verify(name: str | None) -> None:
    """Rebuild projections into scratch tables and compare their content with the live tables (exit 0 only when
    every table is equal)."""
    from projections.rebuild import verify

    runtime = _runtime()
    failed = False
    try:
        for projection in _chosen(name):
            found = _from_the_record(runtime, projection, "verifying", verify)
            for table in found.tables:
                if table.equal:
                    click.echo(
                        f"{found.name}: {table.table} equal ({table.live_rows} rows, {table.live_digest[:16]})"
                    )
                else:
                    failed = True
                    click.echo(
                        f"{found.name}: {table.table} DIFFERS at position {found.position}: "
                        f"{table.only_live} live rows not in the rebuild, "
                        f"{table.only_rebuilt} rebuilt rows not live"
                    )
    finally:
        runtime.close()
    if failed:
        raise SystemExit(1)


@main.command("cipher-key")
def cipher_key() -> None:
    """Print a new random key for PUJA_CIPHER_KEY (AES-256, base64). Keep it safe: events written with it
    cannot be read without it."""
    from service.store import new_cipher_key

    click.echo(new_cipher_key())


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


@main.command()
@click.argument("kind", type=click.Choice(["innovation", "replication"]))
@click.argument("aggregate_id", type=click.UUID)
@click.option("--version", "version", help="The state at this version (1 or more).")
@click.option("--at", "at", help="The state at this time (RFC 3339 with offset), by record time.")
def replay(kind: str, aggregate_id: Any, version: str | None, at: str | None) -> None:
    """Print an innovation or replication as it was (exactly one of --version, --at), rebuilt from the event
    store; the same JSON as GET /api/v1/<kind>s/ID/state."""
    from app.replay import parse_state_query, past_state
    from domain.errors import AggregateNotFound, InvalidInput
    from service.audit import NotInHistory

    try:
        asked_version, asked_at = parse_state_query(version, at)
    except InvalidInput as error:
        raise click.UsageError(str(error)) from None
    runtime = _runtime()
    try:
        doc = past_state(runtime.network, kind, aggregate_id, asked_version, asked_at)
    except (AggregateNotFound, NotInHistory) as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


@main.group()
def audit() -> None:
    """The hash chain over the event store: verify it, publish its head, export the log (docs/audit.md)."""


@audit.command("verify")
@click.option("--head", "published", help="A head published earlier (POSITION:HASH from `puja audit head`).")
def audit_verify(published: str | None) -> None:
    """Recompute the chain over the whole event store; exit 0 only when all of it verifies."""
    from service import audit as chain

    try:
        head = chain.parse_head(published) if published is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--head") from None
    runtime = _runtime()
    try:
        verdict = chain.verify(runtime.network, head)
    finally:
        runtime.close()
    click.echo(json.dumps(verdict.to_dict(), indent=2))
    if not verdict.ok:
        raise SystemExit(1)


@audit.command("head")
def audit_head() -> None:
    """Print the last link of the chain as POSITION:HASH, to publish or countersign outside the database."""
    from service import audit as chain

    runtime = _runtime()
    try:
        link = chain.head(runtime.network)
    finally:
        runtime.close()
    click.echo(f"{link.position}:{link.hash}")


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--after", type=click.IntRange(min=0), default=0, help="Positions after this one.")
@click.option("--before", type=click.IntRange(min=1), default=None, help="Positions before this one.")
@click.option(
    "--output", type=click.File("w", encoding="utf-8"), default="-", help="A file (default stdout)."
)
def audit_export(fmt: str, after: int, before: int | None, output: Any) -> None:
    """Write the log from the event store, with each event's hash and prev_hash (docs/audit.md)."""
    from service import audit as chain

    lines, _ = chain.EXPORT_FORMATS[fmt]
    runtime = _runtime()
    try:
        for line in lines(chain.records(runtime.network, after, before)):
            output.write(line)
    finally:
        runtime.close()
