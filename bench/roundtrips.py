"""Round trips to PostgreSQL per command of the application layer: the bench mix (bench/workload.py) through
`InnovationNetwork` in-process, one client, on a throwaway cluster, with libpq's protocol trace on every
connection of the event store and the snapshot store. A number that does not depend on the machine's load.

A round trip is a message after which the client waits for the server: a simple `Query`, or a `Sync` that
ends an extended-protocol exchange (Parse/Bind/Describe/Execute of one `execute`). BEGIN, SAVEPOINT, RELEASE and
COMMIT are simple queries, so they count.

    .venv/bin/python -m bench.roundtrips                 # 300 commands after 80 of warm-up
    .venv/bin/python -m bench.roundtrips --commands 500 --show-statements
    .venv/bin/python -m bench.roundtrips --clients 16 --commands 50   # concurrent saves in group-commit batches
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.pg import PostgresCluster
from bench.workload import AppExecutor, MixLog, Pairs, mixes, register_innovations_app

WAITS = ("Query", "Sync")
PARSE = re.compile(r'"([^"]*)" "(.*)" \d+')
BIND = re.compile(r'"[^"]*" "([^"]*)"')


class Tracer:
    """Turns libpq's trace on for every connection that a datastore hands out, one file per connection (the
    names of prepared statements are per connection); `mark()` notes where the measured part starts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[int, Any] = {}
        self.marks: dict[int, int] = {}

    def wrap(self, datastore: Any) -> None:
        original = datastore.get_connection
        getconn = datastore.pool.getconn

        def traced(conn: Any) -> Any:
            if id(conn) not in self.files:
                file = (self.directory / f"trace-{len(self.files)}.txt").open("w")
                self.files[id(conn)] = file
                conn.pgconn.trace(file.fileno())
            return conn

        @contextlib.contextmanager
        def get_connection() -> Iterator[Any]:
            with original() as conn:
                yield traced(conn)

        datastore.get_connection = get_connection
        # The group commit's writer takes its connection from the pool itself (service/postgres.py).
        datastore.pool.getconn = lambda *args, **kwargs: traced(getconn(*args, **kwargs))

    def mark(self) -> None:
        self.marks = {key: Path(file.name).stat().st_size for key, file in self.files.items()}

    def read(self) -> list[tuple[str, int]]:
        """Each connection's trace and the offset where the measured part starts."""
        return [(Path(file.name).read_text(), self.marks.get(key, 0)) for key, file in self.files.items()]


def count(traces: list[tuple[str, int]]) -> tuple[Counter[str], Counter[str]]:
    """Frontend messages by type after each trace's offset, and the statements executed there (simple queries,
    and binds of parsed statements named by their SQL)."""
    messages: Counter[str] = Counter()
    statements: Counter[str] = Counter()
    for trace, offset in traces:
        parsed: dict[str, str] = {}
        position = 0
        for line in trace.splitlines(keepends=True):
            measured = position >= offset
            position += len(line.encode())
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 4 or fields[1] != "F":
                continue
            kind = fields[3]
            detail = fields[4].strip() if len(fields) > 4 else ""
            if kind == "Parse" and (parse := PARSE.match(detail)):
                parsed[parse[1]] = " ".join(parse[2].split())[:120]
            if not measured:
                continue
            messages[kind] += 1
            if kind == "Query":
                statements[" ".join(detail.strip('"').split())[:120]] += 1
            elif kind == "Bind" and (bind := BIND.match(detail)):
                statements[parsed.get(bind[1], "?")] += 1
    return messages, statements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrips", description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=80)
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="threads, each running --commands commands (group commit batches)",
    )
    parser.add_argument("--show-statements", action="store_true")
    args = parser.parse_args(argv)

    from service.store import open_network

    workdir = Path(tempfile.mkdtemp(prefix="puja-roundtrips-"))
    cluster = PostgresCluster()
    try:
        cluster.start()
        url = cluster.database("bench_roundtrips")
        network = open_network(url, workdir / "unused.sqlite")
        try:
            datastores = [network.recorder.datastore]  # type: ignore[attr-defined]
            if network.snapshots is not None:
                snapshot_store = network.snapshots.recorder.datastore  # type: ignore[attr-defined]
                if snapshot_store is not datastores[0]:
                    datastores.append(snapshot_store)
            tracer = Tracer(workdir)
            for datastore in datastores:
                tracer.wrap(datastore)
            pairs = Pairs(register_innovations_app(network))
            log = MixLog()
            clients = [mixes(pairs, lambda _: AppExecutor(network), log)(i) for i in range(args.clients)]

            def run(mix: Any, commands: int) -> None:
                for _ in range(commands):
                    mix()

            def all_clients(commands: int) -> None:
                threads = [threading.Thread(target=run, args=(mix, commands)) for mix in clients]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

            all_clients(args.warmup)
            tracer.mark()
            t0 = time.perf_counter()
            all_clients(args.commands)
            elapsed = time.perf_counter() - t0
            traces = tracer.read()
        finally:
            network.close()
        messages, statements = count(traces)
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    per = args.commands * args.clients
    waits = sum(messages[k] for k in WAITS)
    print(
        f"{per} commands of the bench mix, in-process, {args.clients} client(s), PostgreSQL: "
        f"{waits / per:.2f} round trips per command ({elapsed * 1000 / per:.2f} ms per command, traced)"
    )
    for kind, n in sorted(messages.items(), key=lambda kv: -kv[1]):
        print(f"  {n / per:6.2f} {kind}")
    if args.show_statements:
        print("statements (simple queries and parses), per command:")
        for text, n in statements.most_common(30):
            print(f"  {n / per:6.2f} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
