"""`make bench`: every scenario beside its baseline in one run; prints a table and writes
bench/results/latest.json (and a time-stamped copy).

    .venv/bin/python -m bench.run            # full sizes (what `make bench` runs)
    .venv/bin/python -m bench.run --quick    # small sizes, for development
    .venv/bin/python -m bench.run --only http,snapshots --backends sqlite
    .venv/bin/python -m bench.run --only index   # index views at national scale (SQLite)
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import report
from bench.common import Row
from bench.context import Context, PostgresUnavailable, Sizes
from bench.pg import PostgresCluster, pgbench_path

SCENARIOS = ("http", "app", "snapshots", "catchup", "stream", "index")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows (development)")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="for http, snapshots and stream")
    parser.add_argument("--catchup-backend", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2: one per core)")
    parser.add_argument(
        "--threads", type=int, default=8, help="threads per worker (default 8: 2x8 = 16 clients)"
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=4,
        help="HTTP clients spread over this many processes (default 4: 4x4 = 16 clients; 1 = all in this one)",
    )
    parser.add_argument("--seconds", type=float, help="each measured window (default 10, --quick 3)")
    parser.add_argument("--catchup-events", type=int, help="size of the catch-up store (default 200,000)")
    parser.add_argument("--stream-events", type=int, help="size of the streamed store (default 20,000)")
    parser.add_argument("--snapshot-events", type=int, help="events of the long replication (default 10,000)")
    parser.add_argument(
        "--no-idempotency-keys", action="store_true", help="send HTTP commands without an Idempotency-Key"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (for inspection)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def sizes_of(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes.full()
    changes: dict[str, Any] = {}
    if args.seconds:
        changes["seconds"] = args.seconds
    if args.catchup_events:
        changes["catchup_events"] = args.catchup_events
    if args.stream_events:
        changes["stream_events"] = args.stream_events
    if args.snapshot_events:
        changes["snapshot_events"] = args.snapshot_events
    return Sizes(**{**sizes.__dict__, **changes})


def plan(ctx: Context, only: list[str]) -> list[tuple[str, str, Callable[[], list[Row]], int]]:
    """(scenario, backend, run, steps) in the order they run."""
    from bench.scenarios import app_layer, catchup, http, index, snapshots, stream

    steps: list[tuple[str, str, Callable[[], list[Row]], int]] = []
    if "http" in only:
        for backend in ctx.backends:
            steps.append(("http", backend, functools.partial(http.run, ctx, backend), http.STEPS_PER_BACKEND))
    if "app" in only:
        steps.append(("app", "postgres", functools.partial(app_layer.run, ctx), 4 + len({1, ctx.clients})))
    if "snapshots" in only:
        for backend in ctx.backends:
            run = functools.partial(snapshots.run, ctx, backend)
            steps.append(("snapshots", backend, run, snapshots.STEPS_PER_BACKEND))
    if "catchup" in only:
        steps.append(
            (
                "catchup",
                ctx.catchup_backend,
                functools.partial(catchup.run, ctx, ctx.catchup_backend),
                catchup.STEPS,
            )
        )
    if "stream" in only:
        run = functools.partial(stream.run, ctx, ctx.backends)
        steps.append(
            ("stream", ",".join(ctx.backends), run, 1 + stream.STEPS_PER_BACKEND * len(ctx.backends))
        )
    if "index" in only:
        steps.append(("index", "sqlite", functools.partial(index.run, ctx), index.STEPS))
    return steps


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = args.only.split(",")
    backends = tuple(b for b in args.backends.split(",") if b)
    needs_postgres = (
        "app" in only
        or ("postgres" in backends and ({"http", "snapshots", "stream"} & set(only)))
        or ("catchup" in only and args.catchup_backend == "postgres")
    )
    # A stop by SIGTERM unwinds like Ctrl-C, so that the server and the cluster are stopped in `finally`.
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="puja-bench-"))
    ctx = Context(
        sizes=sizes_of(args),
        clients=args.clients,
        workers=args.workers,
        threads=args.threads,
        client_processes=args.client_processes,
        idempotency=not args.no_idempotency_keys,
        backends=backends,
        catchup_backend=args.catchup_backend,
        workdir=workdir,
    )
    rows: list[Row] = []
    failures: list[str] = []
    postgres_info: dict[str, Any] | None = None
    started = time.monotonic()
    load_at_start = os.getloadavg()
    interrupted = False
    try:
        if needs_postgres:
            print("starting a throwaway PostgreSQL (scripts/pg-cluster) ...", file=sys.stderr)
            cluster = PostgresCluster()
            ctx.pg = cluster
            try:
                cluster.start()
                postgres_info = {"version": cluster.server_version(), **cluster.settings()}
                postgres_info["pgbench"] = pgbench_path()
            except Exception as error:  # the SQLite scenarios still run
                ctx.pg_error = str(error)
                ctx.pg = None
                cluster.stop()
                print(f"PostgreSQL unavailable, its scenarios are skipped: {error}", file=sys.stderr)
        steps = plan(ctx, only)
        with tqdm(total=sum(s[3] for s in steps), unit="step", position=0, file=sys.stderr) as progress:
            ctx.progress = progress
            for name, backend, run, _ in steps:
                try:
                    rows.extend(run())
                except PostgresUnavailable as error:
                    failures.append(f"{name}/{backend}: skipped, {error}")
                except KeyboardInterrupt:
                    raise
                except Exception:
                    failures.append(f"{name}/{backend}: failed\n{traceback.format_exc()}")
    except KeyboardInterrupt:
        interrupted = True
        ctx.stop.set()
        print("\ninterrupted: stopping the server and the database ...", file=sys.stderr)
    finally:
        if ctx.pg is not None:
            ctx.pg.stop()
        if args.keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else shlex.join([sys.executable, "-m", "bench.run", *(argv or sys.argv[1:])])
    )
    machine = report.machine(postgres_info, load_at_start)
    settings = {
        **ctx.sizes.__dict__,
        "clients": ctx.clients,
        "gunicorn": f"{ctx.workers} workers x {ctx.threads} threads (gthread)",
        "idempotency_keys": ctx.idempotency,
        "backends": list(ctx.backends),
        "catchup_backend": ctx.catchup_backend,
    }
    meta: dict[str, Any] = {
        "command": command,
        "interrupted": interrupted,
        "seconds": round(elapsed, 1),
        "machine": machine,
        "settings": settings,
        "failures": failures,
    }
    print()
    print(
        f"PUJA INDAH bench: {machine['cpus']} cores, {settings['gunicorn']}, "
        f"{ctx.clients} clients, {ctx.sizes.seconds:g} s windows, {elapsed:.0f} s in all"
        + (" (INTERRUPTED: partial)" if interrupted else "")
    )
    load = "/".join(f"{x:.1f}" for x in load_at_start)
    end = "/".join(f"{x:.1f}" for x in machine["load_average_at_end"])
    line = f"load average {load} at start, {end} at end; eventsourcing {machine['eventsourcing']}; psycopg {machine['psycopg']}"
    if postgres_info:
        line += f"; PostgreSQL {postgres_info['version']} (fsync {postgres_info['fsync']})"
    print(line)
    print(report.table(rows))
    print()
    print(report.notes(rows))
    for failure in failures:
        print(f"\n!! {failure}")
    path = report.write_json(args.output, rows, meta, ctx.details)
    print(f"\nwritten: {path}")
    return 130 if interrupted else (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main())
