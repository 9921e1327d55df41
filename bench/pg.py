"""A throwaway PostgreSQL cluster (scripts/pg-cluster) and pgbench, for the PostgreSQL scenarios."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.common import Measurement, free_port

ROOT = Path(__file__).resolve().parent.parent
PG_CLUSTER = ROOT / "scripts" / "pg-cluster"


class PostgresCluster:
    """`scripts/pg-cluster start` in a fresh temporary directory on a free loopback port; `stop()` stops it
    and removes the directory. Each scenario gets its own database (`database(name)`)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="puja-bench-pg-"))
        self.port = free_port()
        self.url = ""
        self.started = False

    def start(self) -> str:
        result = subprocess.run(
            [str(PG_CLUSTER), "start", str(self.dir), str(self.port)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.started = True  # even a failed start may have left a server behind: stop() handles both
        if result.returncode != 0:
            raise RuntimeError(f"pg-cluster start failed: {result.stderr.strip()[-2000:]}")
        self.url = result.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                [str(PG_CLUSTER), "stop", str(self.dir)], capture_output=True, text=True, timeout=120
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def database(self, name: str) -> str:
        """Create a fresh database `name` and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def server_version(self) -> str:
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def settings(self) -> dict[str, str]:
        import psycopg

        names = ("fsync", "synchronous_commit", "shared_buffers", "max_connections", "wal_level")
        with psycopg.connect(self.url) as conn:
            return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


def pgbench_path() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)
    return found[0] if found else shutil.which("pgbench")


@dataclass
class PgbenchResult:
    measurement: Measurement
    command: str


PAYLOAD = "x" * 400  # about the size of one stored event's state
INSERT_STATEMENT = f"INSERT INTO bench_commit_ceiling (payload) VALUES ('{PAYLOAD}');"


def create_ceiling_table(url: str) -> None:
    """The scratch table of the single-row INSERT loops (pgbench's and psycopg's)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_commit_ceiling "
            "(id bigserial PRIMARY KEY, payload text NOT NULL)"
        )


def pgbench_insert_loop(url: str, clients: int, seconds: float, workdir: Path) -> PgbenchResult:
    """The database's commit ceiling: `clients` pgbench connections, each a loop of one single-row INSERT
    per transaction (autocommit) into a scratch table, for `seconds`."""
    create_ceiling_table(url)
    return pgbench_loop(url, INSERT_STATEMENT, clients, seconds, workdir, "insert")


def pgbench_loop(
    url: str, statement: str, clients: int, seconds: float, workdir: Path, name: str
) -> PgbenchResult:
    """`clients` pgbench connections, each running `statement` (one line of SQL, its own autocommitted
    transaction) in a loop for `seconds`. pgbench reads `:name` in a script as a variable: the statement has no
    colons."""
    exe = pgbench_path()
    if exe is None:
        raise FileNotFoundError("pgbench")
    if ":" in statement:
        raise ValueError("pgbench would read a colon in the statement as a variable")
    script = workdir / f"{name}.sql"
    script.write_text(statement + "\n")
    logdir = workdir / f"pgbench-{name}-c{clients}"
    logdir.mkdir(parents=True, exist_ok=True)
    parts = urlsplit(url)
    command = [
        exe,
        "-n",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 1)),
        "-T",
        str(max(1, round(seconds))),
        "-l",
        "--log-prefix",
        str(logdir / "tx"),
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        parts.path.strip("/"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed: {result.stderr.strip()[-2000:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    duration = re.search(r"duration: (\d+) s", result.stdout)
    latencies: list[float] = []
    for path in logdir.glob("tx*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1000)  # per-transaction latency in microseconds
    shutil.rmtree(logdir, ignore_errors=True)
    seconds_run = float(duration.group(1)) if duration else seconds
    rate = float(tps.group(1)) if tps else len(latencies) / seconds_run
    measurement = Measurement(
        ops=len(latencies),
        errors=int(failed.group(1)) if failed else 0,
        seconds=len(latencies) / rate if rate else seconds_run,
        latencies_ms=latencies,
        clients=clients,
    )
    shown = " ".join(command).replace(str(workdir), "$WORK")
    return PgbenchResult(measurement, shown)
