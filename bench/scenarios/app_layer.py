"""Commands/s of the application layer without HTTP on PostgreSQL (InnovationNetwork in-process, the same
mix as through HTTP), with 1 client and with N, beside the commit ceiling of the same database at the same
concurrency: pgbench running single-row INSERT transactions into a scratch table (and, for a ceiling that pays
a Python client's costs too, a psycopg loop doing the same). Informative, the raw library's own `save()` of one
event per call at the same concurrency against the same ceiling: what the event-store library reaches before
any rule, guard or domain logic of ours; and, at one client, pgbench calling the event store's append function
for one event: what the save of a command costs the database and a C client, before any Python.

At one client (the target) the loads take turns in windows (`Sizes.rounds`), since each waits for the disk's
flush, whose time drifts; at N clients (informative) they run one after another."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import Measurement, Row, alternate_windows, run_concurrent
from bench.context import Context
from bench.pg import (
    INSERT_STATEMENT,
    PAYLOAD,
    create_ceiling_table,
    pgbench_insert_loop,
    pgbench_loop,
    pgbench_path,
)
from bench.raw import RawLibrary, raw_env, saver
from bench.workload import AppExecutor, MixLog, Pairs, mixes, register_innovations_app

if TYPE_CHECKING:
    from service.network import InnovationNetwork


def run(ctx: Context) -> list[Row]:
    from service.store import open_network

    sizes = ctx.sizes
    workdir = ctx.scratch("app-postgres")
    concurrencies = sorted({1, ctx.clients})
    with ctx.step("app/postgres: prepare"):
        url = ctx.database("bench_app")
        network = open_network(url, workdir / "unused.sqlite")
        library = RawLibrary(
            env=raw_env(
                "postgres",
                sqlite_path=workdir / "unused-raw.sqlite",
                database_url=ctx.database("bench_app_raw"),
            )
        )
        create_ceiling_table(url)
    has_pgbench = pgbench_path() is not None
    commands: dict[int, Measurement] = {}
    mix: dict[int, object] = {}
    ceiling: dict[int, Measurement] = {}
    loop: dict[int, Measurement] = {}
    raw: dict[int, Measurement] = {}
    append_alone: Measurement | None = None
    append_statement = ""
    command_line = ""
    per_round: list[dict[str, float]] = []
    command_lines: list[str] = []
    connections: list[Any] = []
    try:
        pairs = Pairs(register_innovations_app(network))
        for clients in concurrencies:
            log = MixLog()
            mixed = mixes(pairs, lambda _: AppExecutor(network), log)
            if clients == 1:
                # The target's loads take turns in windows, so that a change in the disk's flush time (which
                # every one of them waits for) weighs on all of them alike.
                append_statement = append_alone_statement(network)
                loads = {
                    "commands": in_turn(mixed, ctx),
                    "psycopg loop": in_turn(psycopg_inserter(url, connections), ctx),
                    "raw library": in_turn(saver(library), ctx),
                }
                if has_pgbench:
                    loads["pgbench"] = pgbench_window(url, INSERT_STATEMENT, workdir, "insert", command_lines)
                    loads["append alone"] = pgbench_window(
                        url, append_statement, workdir, "append", command_lines
                    )
                with ctx.step("app/postgres: x1, the loads in turn"):
                    for name in ("commands", "psycopg loop", "raw library"):
                        loads[name](-sizes.warmup)  # warm-up
                    pooled, per_round = alternate_windows(loads, sizes.seconds, sizes.rounds)
                commands[1], loop[1], raw[1] = (
                    pooled["commands"],
                    pooled["psycopg loop"],
                    pooled["raw library"],
                )
                if has_pgbench:
                    ceiling[1], append_alone = pooled["pgbench"], pooled["append alone"]
                    command_line = command_lines[0]
            else:
                with ctx.step(f"app/postgres: x{clients}, one load after another"):
                    commands[clients] = run_concurrent(
                        mixed, clients, sizes.seconds, warmup=sizes.warmup, stop=ctx.stop
                    )
                    if has_pgbench:
                        result = pgbench_insert_loop(url, clients, sizes.seconds, workdir)
                        ceiling[clients] = result.measurement
                    loop[clients] = run_concurrent(
                        psycopg_inserter(url, connections),
                        clients,
                        sizes.seconds,
                        warmup=sizes.warmup,
                        stop=ctx.stop,
                    )
                    raw[clients] = run_concurrent(
                        saver(library), clients, sizes.seconds, warmup=sizes.warmup, stop=ctx.stop
                    )
            mix[clients] = log.by_kind(commands[clients].window)
    finally:
        network.close()
        library.close()
        for conn in connections:
            conn.close()

    ctx.details["app/postgres"] = {
        "commands": {c: m.summary() for c, m in commands.items()},
        "mix": mix,
        "pgbench": {c: m.summary() for c, m in ceiling.items()},
        "pgbench_command": command_line,
        "psycopg_loop": {c: m.summary() for c, m in loop.items()},
        "raw_library_save": {c: m.summary() for c, m in raw.items()},
        "append_alone": append_alone.summary() if append_alone else None,
        "x1_windows": per_round,
        "append_statement": append_statement[:300],
    }
    rows = []
    for clients in concurrencies:
        measured = commands[clients]
        common = {
            "backend": "postgres",
            "measured": measured.rate,
            "unit": "/s",
            "p50_ms": measured.p(50),
            "p95_ms": measured.p(95),
            "p99_ms": measured.p(99),
            "n": measured.ops,
            "errors": measured.errors,
            "extra": {"mix": mix[clients], "error_kinds": dict(measured.error_kinds.most_common(5))},
        }
        base = ceiling.get(clients) or loop[clients]
        rows.append(
            Row(
                scenario=f"app commands x{clients} / commit ceiling",
                baseline=base.rate,
                target=">= 0.5" if clients == 1 else None,
                baseline_name=(
                    f"pgbench, {clients} client(s), one single-row INSERT per transaction"
                    if clients in ceiling
                    else f"psycopg loop, {clients} thread(s), one single-row INSERT per commit (no pgbench)"
                ),
                baseline_p50_ms=base.p(50),
                baseline_p99_ms=base.p(99),
                baseline_n=base.ops,
                notes="in-process InnovationNetwork, the HTTP mix"
                + (window_spread(per_round) if clients == 1 else "; informative, one load after another"),
                **common,  # type: ignore[arg-type]
            )
        )
        if clients in ceiling:
            rows.append(
                Row(
                    scenario=f"app commands x{clients} / psycopg insert loop",
                    baseline=loop[clients].rate,
                    baseline_name=f"psycopg, {clients} thread(s), INSERT + commit per row (Python client)",
                    baseline_p50_ms=loop[clients].p(50),
                    baseline_p99_ms=loop[clients].p(99),
                    baseline_n=loop[clients].ops,
                    notes="informative: the ceiling as a Python client sees it",
                    **common,  # type: ignore[arg-type]
                )
            )
            rows.append(
                Row(
                    scenario=f"raw library save() x{clients} / commit ceiling",
                    backend="postgres",
                    measured=raw[clients].rate,
                    baseline=ceiling[clients].rate,
                    unit="/s",
                    p50_ms=raw[clients].p(50),
                    p95_ms=raw[clients].p(95),
                    p99_ms=raw[clients].p(99),
                    n=raw[clients].ops,
                    errors=raw[clients].errors,
                    baseline_name=f"pgbench, {clients} client(s), one single-row INSERT per transaction",
                    baseline_p50_ms=ceiling[clients].p(50),
                    baseline_p99_ms=ceiling[clients].p(99),
                    baseline_n=ceiling[clients].ops,
                    notes="informative: eventsourcing's Application.save() of one event per call, its own "
                    "recorder, no rules of ours",
                )
            )
            if clients == 1 and append_alone is not None:
                rows.append(
                    Row.of_rates(
                        "append function alone x1 (pgbench) / commit ceiling",
                        "postgres",
                        append_alone,
                        ceiling[clients],
                        baseline_name="pgbench, 1 client, one single-row INSERT per transaction",
                        notes="informative, the floor under a command: pgbench (a C client, no Python) calling "
                        "the event store's append function for one event as a command's save does (the lock, "
                        "the last link, the guards, the chain's SHA-256, the insert), a new aggregate each time",
                    )
                )
    return rows


def append_alone_statement(network: InnovationNetwork) -> str:
    """One call of the event store's append function as pgbench can send it: the statement the service
    prepares (service/postgres.py), with the last stored event's topic, state and canonical parts as literals
    under a new originator id. Text goes hex-encoded: pgbench would read a colon as a variable."""
    recorder: Any = network.recorder
    last = recorder.select_notifications(start=recorder.max_notification_id(), limit=1)[-1]
    (part,) = recorder.canonical_parts([last])

    def text(value: str) -> str:
        return f"convert_from(decode('{value.encode().hex()}', 'hex'), 'UTF8')"

    new_id = (
        "gen_random_uuid()"
        if recorder.datastore.originator_id_type == "uuid"
        else "CAST(gen_random_uuid() AS text)"
    )
    values = [
        new_id,
        "1",
        text(last.topic),
        f"decode('{bytes(last.state).hex()}', 'hex')",
        text(part.head),
        text(part.tail),
    ]
    values += ["NULL"] * (16 - len(values))  # no expected versions, no registry row
    return re.sub(r"\$(\d+)", lambda m: values[int(m[1]) - 1], recorder.append_one.sql.decode()) + ";"


def psycopg_inserter(url: str, connections: list[Any]) -> Callable[[int], Callable[[], None]]:
    """Per client: its own autocommitted connection (added to `connections`, for the caller to close), one
    prepared single-row INSERT per call."""
    import psycopg

    def make(_: int) -> Callable[[], None]:
        conn = psycopg.connect(url, autocommit=True)
        connections.append(conn)

        def insert() -> None:
            conn.execute("INSERT INTO bench_commit_ceiling (payload) VALUES (%s)", (PAYLOAD,), prepare=True)

        return insert

    return make


def window_spread(per_round: list[dict[str, float]]) -> str:
    """The spread of the commands' ratio to pgbench over the windows in which the loads took turns."""
    ratios = [r["commands"] / r["pgbench"] for r in per_round if r.get("pgbench")]
    if not ratios:
        return ""
    return (
        f"; every load in {len(ratios)} windows in turn, the ratio of each window "
        f"{min(ratios):.3f}-{max(ratios):.3f}"
    )


def pgbench_window(
    url: str, statement: str, workdir: Path, name: str, command_lines: list[str]
) -> Callable[[float], Measurement]:
    """One window of pgbench at one client running `statement`; its command line is noted."""

    def window(seconds: float) -> Measurement:
        result = pgbench_loop(url, statement, 1, seconds, workdir, name)
        command_lines.append(result.command)
        return result.measurement

    return window


def in_turn(make: Callable[[int], Callable[[], None]], ctx: Context) -> Callable[[float], Measurement]:
    """One client's operation, made once, measured window after window (a negative length: a warm-up of that
    many seconds, not measured)."""
    operation = make(0)

    def window(seconds: float) -> Measurement:
        if seconds < 0:
            return run_concurrent(lambda _: operation, 1, 0.0, warmup=-seconds, stop=ctx.stop)
        return run_concurrent(lambda _: operation, 1, seconds, stop=ctx.stop)

    return window
