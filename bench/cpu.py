"""Where the CPU of the HTTP scenario goes: server and load generator, per request, for `/healthz` and for the
command mix, on the same `puja serve` as `bench.run --only http` starts.

On two cores shared by the server (and the database) and the 16 client threads, both phases run CPU-bound, so
their throughput ratio is about the ratio of the CPU each request costs in all:

    commands/s / healthz/s  ~  (server + client per healthz) / (server + client per command)

CPU times are far steadier than requests per second on a busy machine: a change to the command path shows here as
server milliseconds per command, from one run. The server's CPU is read from /proc for gunicorn's arbiter and its
workers (user + system), PostgreSQL's for its postmaster and backends (on that backend), the client's from this
processes' rusage. The phases alternate in windows (`--rounds`, bench.common.run_alternating), so that a drift in
the machine's speed weighs on both alike; a commands window includes the projections' catch-up after it.

    .venv/bin/python -m bench.cpu                                  # SQLite, 8 s of each phase in 4 windows
    .venv/bin/python -m bench.cpu --backend postgres --seconds 10 --no-idempotency-keys
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests

from bench.common import Measurement, run_alternating
from bench.pg import PostgresCluster
from bench.server import serve
from bench.workload import HttpExecutor, MixLog, Pairs, mixes, register_innovations_http

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(pid: int) -> tuple[float, float]:
    """(user, system) seconds of a process and its children, as /proc has them now."""
    user = system = 0
    for task in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a worker that ended meanwhile
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / TICKS, system / TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def postmaster_pid(cluster: PostgresCluster) -> int:
    return int((cluster.dir / "data" / "postmaster.pid").read_text().split()[0])


class Phase:
    """Server, database and client CPU over the measured windows of one load (bench.common.run_alternating)."""

    def __init__(self, name: str, server_pid: int, database_pid: int | None) -> None:
        self.name = name
        self.server_pid = server_pid
        self.database_pid = database_pid
        self.server_user = self.server_system = self.database = self.client = 0.0
        self._start = (0.0, 0.0, 0.0)

    def _database_cpu(self) -> float:
        return sum(process_tree_cpu(self.database_pid)) if self.database_pid else 0.0

    def _now(self) -> tuple[float, float, float]:
        user, system = process_tree_cpu(self.server_pid)
        return user, system, self._database_cpu()

    def begin(self) -> None:
        self._start = self._now()

    def end(self, window: Measurement) -> None:
        user, system, database = (b - a for a, b in zip(self._start, self._now(), strict=True))
        self.server_user += user
        self.server_system += system
        self.database += database
        self.client += window.client_cpu_seconds

    def measured(self, measurement: Measurement) -> None:
        self.ops = measurement.ops
        self.rate = measurement.rate
        self.errors = measurement.errors

    def per_request_ms(self) -> tuple[float, float, float, float]:
        """(server, of it system, database, client) milliseconds per request."""
        n = max(self.ops, 1) / 1000
        return (
            (self.server_user + self.server_system) / n,
            self.server_system / n,
            self.database / n,
            self.client / n,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds of each phase")
    parser.add_argument("--rounds", type=int, default=4, help="alternating windows of each phase")
    parser.add_argument(
        "--client-processes", type=int, default=4, help="processes the clients are spread over"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-idempotency-keys", dest="idempotency", action="store_false")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="puja-bench-cpu-"))
    cluster = PostgresCluster() if args.backend == "postgres" else None
    try:
        database_url = None
        if cluster is not None:
            cluster.start()
            database_url = cluster.database("bench_cpu")
        served = serve(workdir, database_url=database_url, workers=args.workers, threads=args.threads)
        server, operator, evaluator = served.server, served.operator, served.evaluator
        try:
            server.wait_ready()
            innovations = register_innovations_http(server.url, served.bootstrap)
            server.wait_projections()

            def healthz_client(_: int) -> Callable[[], None]:
                session = requests.Session()
                url = server.url + "/healthz"
                return lambda: session.get(url, timeout=60).raise_for_status()

            database_pid = postmaster_pid(cluster) if cluster is not None else None
            healthz = Phase("GET /healthz", server.process.pid, database_pid)
            commands = Phase("commands", server.process.pid, database_pid)
            phases = {phase.name: phase for phase in (healthz, commands)}

            def settle(name: str, window: Measurement) -> float:
                """A commands window is charged the projections' catch-up after it: its time and CPU."""
                waited = served.catch_up()[1] if name == "commands" else 0.0
                phases[name].end(window)
                return waited

            log = MixLog()
            pairs = Pairs(innovations)
            loads, _ = run_alternating(
                {
                    healthz.name: healthz_client,
                    commands.name: mixes(
                        pairs,
                        lambda _: HttpExecutor(server.url, operator, evaluator, args.idempotency),
                        log,
                    ),
                },
                args.clients,
                args.seconds,
                args.rounds,
                warmup=1,
                before=lambda name: phases[name].begin(),
                after=settle,
                processes=args.client_processes,
                in_client_process=pairs.take_share,
            )
            for name, phase in phases.items():
                phase.measured(loads[name])
            lag = server.projection_lag()
        finally:
            server.stop()
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    keys = "with" if args.idempotency else "without"
    print(
        f"{args.backend}, {args.workers} workers x {args.threads} threads, {args.clients} clients in "
        f"{args.client_processes} process(es), "
        f"{keys} Idempotency-Key; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'phase':<14}{'req/s':>8}{'server ms':>11}{'of it sys':>11}{'database ms':>13}{'client ms':>11}"
        f"{'total ms':>10}"
    )
    totals = {}
    for phase in (healthz, commands):
        server_ms, system_ms, database_ms, client_ms = phase.per_request_ms()
        totals[phase.name] = server_ms + database_ms + client_ms
        print(
            f"{phase.name:<14}{phase.rate:>8.0f}{server_ms:>11.2f}{system_ms:>11.2f}{database_ms:>13.2f}"
            f"{client_ms:>11.2f}{totals[phase.name]:>10.2f}"
        )
    print(
        f"ratio measured {commands.rate / healthz.rate:.3f}; "
        f"from CPU per request {totals['GET /healthz'] / totals['commands']:.3f}; "
        f"errors {healthz.errors + commands.errors}; projection lag after the load {lag}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
