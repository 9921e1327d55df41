"""Commands/s through HTTP (gunicorn, N concurrent clients, the realistic mix of bench/workload.py) beside
two baselines of the same run: GET /healthz of the same server at the same concurrency, and the raw library's
`save()` of the same kind of events at the same concurrency on the same backend."""

from __future__ import annotations

from collections.abc import Callable

import requests

from bench.common import Row, run_concurrent
from bench.context import Context
from bench.raw import RawLibrary, raw_env, saver
from bench.server import serve
from bench.workload import HttpExecutor, MixLog, Pairs, mixes, register_innovations_http

STEPS_PER_BACKEND = 4


def run(ctx: Context, backend: str) -> list[Row]:
    workdir = ctx.scratch(f"http-{backend}")
    sizes = ctx.sizes
    with ctx.step(f"http/{backend}: start server"):
        database_url = ctx.database("bench_http") if backend == "postgres" else None
        served = serve(workdir, database_url=database_url, workers=ctx.workers, threads=ctx.threads)
    server, operator, evaluator = served.server, served.operator, served.evaluator
    try:
        server.wait_ready()
        innovations = register_innovations_http(server.url, served.bootstrap)
        server.wait_projections()

        with ctx.step(f"http/{backend}: GET /healthz x{ctx.clients}"):

            def healthz_client(_: int) -> Callable[[], None]:
                session = requests.Session()
                url = server.url + "/healthz"

                def get() -> None:
                    response = session.get(url, timeout=60)
                    if response.status_code != 200:
                        raise RuntimeError(f"healthz {response.status_code}")

                return get

            healthz = run_concurrent(
                healthz_client, ctx.clients, sizes.seconds, warmup=sizes.warmup, stop=ctx.stop
            )

        with ctx.step(f"http/{backend}: commands x{ctx.clients}"):
            pairs = Pairs(innovations)
            log = MixLog()
            commands = run_concurrent(
                mixes(
                    pairs,
                    lambda _: HttpExecutor(server.url, operator, evaluator, ctx.idempotency),
                    log,
                ),
                ctx.clients,
                sizes.seconds,
                warmup=sizes.warmup,
                stop=ctx.stop,
            )
            lag = server.projection_lag()
            caught_up_in = server.wait_projections()
    except Exception as error:
        raise RuntimeError(f"{error}\n--- server log (last lines) ---\n{server.log_tail()}") from error
    finally:
        server.stop()

    with ctx.step(f"http/{backend}: raw library save() x{ctx.clients}"):
        raw_url = ctx.database("bench_raw") if backend == "postgres" else None
        app = RawLibrary(env=raw_env(backend, sqlite_path=workdir / "raw.sqlite", database_url=raw_url))
        try:
            raw = run_concurrent(saver(app), ctx.clients, sizes.seconds, warmup=sizes.warmup, stop=ctx.stop)
        finally:
            app.close()

    server_config = f"gunicorn gthread, {ctx.workers} workers x {ctx.threads} threads"
    keys = "with" if ctx.idempotency else "without"
    details = {
        "server": server_config,
        "idempotency_keys": ctx.idempotency,
        "commands": commands.summary(),
        "mix": log.by_kind(commands.window),
        "healthz": healthz.summary(),
        "raw_save": raw.summary(),
        "projection_lag_after_load": lag,
        "projections_caught_up_in_s": round(caught_up_in, 2),
    }
    ctx.details[f"http/{backend}"] = details
    common = {
        "backend": backend,
        "measured": commands.rate,
        "unit": "/s",
        "p50_ms": commands.p(50),
        "p95_ms": commands.p(95),
        "p99_ms": commands.p(99),
        "n": commands.ops,
        "errors": commands.errors,
        "extra": {"mix": details["mix"], "error_kinds": dict(commands.error_kinds.most_common(5))},
    }
    return [
        Row(
            scenario=f"HTTP commands x{ctx.clients} / GET /healthz",
            baseline=healthz.rate,
            target=">= 0.5",
            baseline_name=f"GET /healthz, same server, {ctx.clients} clients",
            baseline_p50_ms=healthz.p(50),
            baseline_p99_ms=healthz.p(99),
            baseline_n=healthz.ops,
            notes=f"{server_config}; {keys} Idempotency-Key; projections lag {lag} events after the load",
            **common,  # type: ignore[arg-type]
        ),
        Row(
            scenario=f"HTTP commands x{ctx.clients} / raw library save()",
            baseline=raw.rate,
            baseline_name=f"eventsourcing Application.save() of one event, {ctx.clients} threads",
            baseline_p50_ms=raw.p(50),
            baseline_p99_ms=raw.p(99),
            baseline_n=raw.ops,
            notes="informative (no target): one event per save, library's own recorder",
            **common,  # type: ignore[arg-type]
        ),
    ]
