"""Commands/s through HTTP (gunicorn, N concurrent clients, the realistic mix of bench/workload.py) beside
two baselines of the same run: GET /healthz of the same server at the same concurrency, and the raw library's
`save()` of the same kind of events at the same concurrency on the same backend. Informative, in the same
alternating windows: proposals the server rejects (422) before any decision, which is what the HTTP stack alone
costs a command."""

from __future__ import annotations

from collections.abc import Callable

import requests

from bench.common import Measurement, Row, run_alternating, run_concurrent
from bench.context import Context
from bench.raw import RawLibrary, raw_env, saver
from bench.server import serve
from bench.workload import HttpExecutor, MixLog, Pairs, mixes, register_innovations_http, rejected_proposals

STEPS_PER_BACKEND = 3


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

        with ctx.step(f"http/{backend}: GET /healthz and commands x{ctx.clients}, alternating"):

            def healthz_client(_: int) -> Callable[[], None]:
                session = requests.Session()
                url = server.url + "/healthz"

                def get() -> None:
                    response = session.get(url, timeout=60)
                    if response.status_code != 200:
                        raise RuntimeError(f"healthz {response.status_code}")

                return get

            log = MixLog()
            lags: list[int] = []
            settling: list[float] = []

            def settle(name: str, window: Measurement) -> float:
                """A commands window is charged the time its projections take to apply what it left
                behind, so that no healthz window pays for it."""
                if name != "commands":
                    return 0.0
                lag, seconds = served.catch_up()
                lags.append(lag)
                settling.append(seconds)
                return settling[-1]

            pairs = Pairs(innovations)
            loads, rounds = run_alternating(
                {
                    "healthz": healthz_client,
                    "commands": mixes(
                        pairs,
                        lambda _: HttpExecutor(server.url, operator, evaluator, ctx.idempotency),
                        log,
                    ),
                    "rejected": rejected_proposals(server.url, operator, ctx.idempotency, innovations[0][0]),
                },
                ctx.clients,
                sizes.seconds,
                sizes.rounds,
                warmup=sizes.warmup,
                stop=ctx.stop,
                after=settle,
                processes=ctx.client_processes,
                in_client_process=pairs.take_share,
                client_report=lambda: log.entries,
                on_reports=lambda reports: log.entries.extend(e for r in reports if r for e in r),
            )
            healthz, commands, rejected = loads["healthz"], loads["commands"], loads["rejected"]
            lag = max(lags, default=0)
            caught_up_in = sum(settling)
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
    client_config = f"{ctx.clients} clients in {ctx.client_processes} process(es)"
    keys = "with" if ctx.idempotency else "without"
    details = {
        "server": server_config,
        "clients": client_config,
        "idempotency_keys": ctx.idempotency,
        "commands": commands.summary(),
        "mix": log.by_kind(commands.window),
        "healthz": healthz.summary(),
        "rejected": rejected.summary(),
        "raw_save": raw.summary(),
        "rounds": [{name: round(rate, 1) for name, rate in r.items()} for r in rounds],
        "ratio_by_round": [round(r["commands"] / r["healthz"], 3) for r in rounds if r.get("healthz")],
        "projection_lag_after_each_window": lags,
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
            notes=(
                f"{server_config}; {client_config}; {keys} Idempotency-Key; {sizes.rounds} alternating windows "
                "of each; a "
                f"commands window includes the {caught_up_in:.2f} s its projections then took to catch up "
                f"(lag at most {lag} events); ratio by round {_spread(rounds)}"
            ),
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
        Row.of_rates(
            f"HTTP rejected commands x{ctx.clients} / GET /healthz",
            backend,
            rejected,
            healthz,
            baseline_name=f"GET /healthz, same server, {ctx.clients} clients",
            notes=(
                "informative, the HTTP stack's part of a command: a proposal naming a region that does not exist, "
                f"sent as the mix's commands are ({keys} Idempotency-Key), answered 422 with nothing stored; in "
                "the same alternating windows"
            ),
        ),
    ]


def _spread(rounds: list[dict[str, float]]) -> str:
    ratios = sorted(r["commands"] / r["healthz"] for r in rounds if r.get("healthz"))
    return f"{ratios[0]:.3f}-{ratios[-1]:.3f}" if ratios else "-"
