"""Where the time of one command goes: the HTTP mix of bench/workload.py through the whole Flask application
(request id, authentication, idempotency, schema, service, recorder, answer) under cProfile, in-process with
Flask's test client (no socket, no gunicorn), on a fresh SQLite store or a throwaway PostgreSQL.

    .venv/bin/python -m bench.profile                       # SQLite, 400 commands
    .venv/bin/python -m bench.profile --backend postgres --commands 400 --top 30
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.pg import PostgresCluster
from bench.workload import HttpExecutor, MixLog, Pairs, mixes, register_innovations_http

LAYERS = (
    ("app/", "app (HTTP layer: auth, idempotency, handlers)"),
    ("service/", "service (InnovationNetwork, recorders)"),
    ("domain/", "domain (aggregates, rules)"),
    ("projections/", "projections"),
    ("eventsourcing/", "eventsourcing (library)"),
    ("sqlalchemy/", "sqlalchemy"),
    ("psycopg", "psycopg (PostgreSQL driver)"),
    ("psycopg_pool", "psycopg pool"),
    ("marshmallow/", "marshmallow (validation)"),
    ("flask_smorest/", "flask-smorest"),
    ("webargs/", "webargs"),
    ("flask/", "flask"),
    ("werkzeug/", "werkzeug"),
    ("alembic/", "alembic"),
    ("json/", "json (stdlib)"),
    ("uuid", "uuid (stdlib)"),
    ("logging/", "logging (stdlib)"),
    ("threading", "threading (locks, waits)"),
)


class TestClientSession:
    """What HttpExecutor needs of a requests.Session, over Flask's test client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, url: str, json: Any, headers: dict[str, str], timeout: float) -> Any:
        return _Response(self.client.post(url, json=json, headers=headers))

    def close(self) -> None:
        pass


class _Response:
    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self._response = response
        self.text = response.get_data(as_text=True)

    def json(self) -> Any:
        return self._response.get_json()


def layer_of(filename: str, function: str) -> str:
    if filename == "~":  # built-ins: the C functions (sqlite3 calls, socket waits, ...)
        if "sqlite3" in function:
            return "sqlite3 (C)"
        if "psycopg" in function or "pq" in function:
            return "psycopg (C)"
        if "lock" in function or "wait" in function or "select" in function:
            return "waiting (locks, sockets)"
        return "built-ins"
    for marker, name in LAYERS:
        if marker in filename:
            return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--commands", type=int, default=400)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-idempotency-keys", action="store_true")
    parser.add_argument("--dump", type=Path, help="also write the raw profile (for snakeviz and the like)")
    args = parser.parse_args(argv)

    from app import create_app
    from app.runtime import Runtime
    from app.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="puja-profile-"))
    cluster: PostgresCluster | None = None
    try:
        url = None
        if args.backend == "postgres":
            cluster = PostgresCluster()
            cluster.start()
            url = cluster.database("bench_profile")
        bootstrap = "puja_bench_" + secrets.token_urlsafe(16)
        settings = Settings(
            data_dir=workdir / "var", database_url=url, bootstrap_admin_token=bootstrap, log_level="WARNING"
        )
        runtime = Runtime.open(settings)
        try:
            app = create_app(runtime=runtime)
            operator = runtime.tokens.create("bench-operator", "admin")
            evaluator = runtime.tokens.create("bench-evaluator", "evaluator")
            client = app.test_client()
            session = TestClientSession(client)
            innovations = register_innovations_http("", bootstrap, session)
            executor = HttpExecutor("", operator, evaluator, not args.no_idempotency_keys, session)
            mix = mixes(Pairs(innovations), lambda _: executor, MixLog())(0)
            for _ in range(80):  # warm up: imports, caches, prepared statements
                mix()
            profiler = cProfile.Profile()
            t0 = time.perf_counter()
            profiler.enable()
            for _ in range(args.commands):
                mix()
            profiler.disable()
            elapsed = time.perf_counter() - t0
        finally:
            runtime.close()
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"{args.commands} commands (the bench mix) through the Flask app on {args.backend}: "
        f"{elapsed:.2f} s under the profiler, {1000 * elapsed / args.commands:.2f} ms per command "
        "(profiling adds overhead; compare shares, not absolute times)\n"
    )
    stats = pstats.Stats(profiler)
    if args.dump:
        stats.dump_stats(str(args.dump))
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    layers: dict[str, float] = defaultdict(float)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        layers[layer_of(filename, function)] += row[2]
    print("own time by layer (tottime):")
    for name, seconds in sorted(layers.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * seconds / total:5.1f}%  {1000 * seconds / args.commands:7.3f} ms/command  {name}")
    root = str(Path(__file__).resolve().parent.parent)
    out = io.StringIO()
    project = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    project.print_stats(rf"^{root}/(app|service|domain|projections)/", args.top)
    print(
        f"\n--- the service's own functions (app, service, domain, projections), top {args.top} by cumulative ---"
    )
    print(out.getvalue().split("\n\n", 2)[-1].rstrip().replace(root + "/", ""))
    for sort in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(args.top)
        print(f"\n--- top {args.top} by {sort} ---")
        print(out.getvalue().split("\n\n", 2)[-1].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
