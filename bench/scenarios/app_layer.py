"""Commands/s of the application layer without HTTP on PostgreSQL (InnovationNetwork in-process, the same
mix as through HTTP), with 1 client and with N, beside the commit ceiling of the same database at the same
concurrency: pgbench running single-row INSERT transactions into a scratch table (and, for a ceiling that pays
a Python client's costs too, a psycopg loop doing the same). Informative, the raw library's own `save()` of one
event per call at the same concurrency against the same ceiling: what the event-store library reaches before
any rule, guard or domain logic of ours."""

from __future__ import annotations

from collections.abc import Callable

from bench.common import Measurement, Row, run_concurrent
from bench.context import Context
from bench.pg import PAYLOAD, pgbench_insert_loop, pgbench_path
from bench.raw import RawLibrary, raw_env, saver
from bench.workload import AppExecutor, MixLog, Pairs, mixes, register_innovations_app


def run(ctx: Context) -> list[Row]:
    from service.store import open_network

    sizes = ctx.sizes
    workdir = ctx.scratch("app-postgres")
    concurrencies = sorted({1, ctx.clients})
    with ctx.step("app/postgres: prepare"):
        url = ctx.database("bench_app")
        network = open_network(url, workdir / "unused.sqlite")
    commands: dict[int, Measurement] = {}
    mix: dict[int, object] = {}
    try:
        pairs = Pairs(register_innovations_app(network))
        for clients in concurrencies:
            with ctx.step(f"app/postgres: commands x{clients}"):
                log = MixLog()
                commands[clients] = run_concurrent(
                    mixes(pairs, lambda _: AppExecutor(network), log),
                    clients,
                    sizes.seconds,
                    warmup=sizes.warmup,
                    stop=ctx.stop,
                )
                mix[clients] = log.by_kind(commands[clients].window)
    finally:
        network.close()

    ceiling: dict[int, Measurement] = {}
    loop: dict[int, Measurement] = {}
    command_line = ""
    with ctx.step("app/postgres: commit ceiling"):
        for clients in concurrencies:
            if pgbench_path() is not None:
                result = pgbench_insert_loop(url, clients, sizes.seconds, workdir)
                ceiling[clients] = result.measurement
                command_line = result.command
    with ctx.step("app/postgres: psycopg insert loop"):
        for clients in concurrencies:
            loop[clients] = psycopg_insert_loop(url, clients, sizes.seconds, sizes.warmup, ctx)
    raw: dict[int, Measurement] = {}
    with ctx.step("app/postgres: raw library save()"):
        library = RawLibrary(
            env=raw_env(
                "postgres",
                sqlite_path=workdir / "unused-raw.sqlite",
                database_url=ctx.database("bench_app_raw"),
            )
        )
        try:
            for clients in concurrencies:
                raw[clients] = run_concurrent(
                    saver(library), clients, sizes.seconds, warmup=sizes.warmup, stop=ctx.stop
                )
        finally:
            library.close()

    ctx.details["app/postgres"] = {
        "commands": {c: m.summary() for c, m in commands.items()},
        "mix": mix,
        "pgbench": {c: m.summary() for c, m in ceiling.items()},
        "pgbench_command": command_line,
        "psycopg_loop": {c: m.summary() for c, m in loop.items()},
        "raw_library_save": {c: m.summary() for c, m in raw.items()},
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
                + ("" if clients == 1 else "; informative"),
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
    return rows


def psycopg_insert_loop(url: str, clients: int, seconds: float, warmup: float, ctx: Context) -> Measurement:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_commit_ceiling "
            "(id bigserial PRIMARY KEY, payload text NOT NULL)"
        )
    connections: list[psycopg.Connection] = []

    def make(_: int) -> Callable[[], None]:
        conn = psycopg.connect(url, autocommit=True)
        connections.append(conn)

        def insert() -> None:
            conn.execute("INSERT INTO bench_commit_ceiling (payload) VALUES (%s)", (PAYLOAD,), prepare=True)

        return insert

    try:
        return run_concurrent(make, clients, seconds, warmup=warmup, stop=ctx.stop)
    finally:
        for conn in connections:
            conn.close()
