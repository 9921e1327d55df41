"""What the hash chain adds to the write path, beside what a command costs, measured in one process and in
alternating rounds (so that a busy machine weighs on both sides alike):

- outside the writer lock, per event: `InnovationNetwork.canonical_parts` (decode the stored event as the audit log
  shows it, and its canonical JSON around the position);
- under the writer lock, per event: `CanonicalParts.link` (put the position in, one SHA-256); per transaction one
  indexed lookup of the last link (part of the measured command);
- baseline: one command through `InnovationNetwork` (a modification: read, decide, save one event), which
  includes both.

    .venv/bin/python -m bench.chain_cost [--rounds 5] [--backend sqlite|postgres]

The events hashed are the demo data set (`puja seed-demo`: every event type, evaluations included).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def per_event_us(work: Any, items: list[Any]) -> float:
    t0 = time.perf_counter()
    for item in items:
        work(item)
    return (time.perf_counter() - t0) / len(items) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commands", type=int, default=200, help="commands per round (baseline)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)

    from app.demo import seed
    from bench.workload import days_ago
    from domain.acting import Actor, acting_as
    from service.store import open_network

    with tempfile.TemporaryDirectory(prefix="puja-bench-chain-") as directory:
        from bench.pg import PostgresCluster

        cluster = PostgresCluster() if args.backend == "postgres" else None
        network = None
        try:
            url = None
            if cluster is not None:
                cluster.start()
                url = cluster.database("bench_chain")
            network = open_network(url, Path(directory) / "events.sqlite")
            seed(network)
            stored = list(network.recorder.select_notifications(start=1, limit=100_000))
            parts = [network.canonical_parts(s) for s in stored]
            replication_id = next(
                s.originator_id for s in stored if s.topic.endswith("Replication.ReplicationProposed")
            )
            # A replication of its own, so that modifications never meet a terminal status.
            with acting_as(Actor("bench", "admin", uuid.uuid4().hex)):
                demo = network.replication(replication_id)
                fresh = network.propose_replication(
                    innovation_id=demo.innovation_id,
                    adopting_region="11.01",
                    rationale="bench",
                    proposed_on=days_ago(30),
                ).aggregate
            outside, under, command = [], [], []
            for _ in range(args.rounds):
                outside.append(per_event_us(network.canonical_parts, stored))
                under.append(per_event_us(lambda p: p.link(123_456, "0" * 64), parts))
                with acting_as(Actor("bench", "admin", uuid.uuid4().hex)):
                    command.append(
                        per_event_us(
                            lambda i: network.record_modification(
                                fresh.id,
                                component="sdm",
                                nature="penyesuaian",
                                core=False,
                                description=f"bench {i}",
                                reason="bench",
                                recorded_on=days_ago(1),
                            ),
                            list(range(args.commands)),
                        )
                    )
        finally:
            if network is not None:
                network.close()
            if cluster is not None:
                cluster.stop()

    o, u, c = (statistics.median(v) for v in (outside, under, command))
    print(f"{len(stored)} demo events hashed, {args.rounds} rounds, {args.backend}; medians of the rounds:")
    print(f"  outside the lock, per event (decode + canonical JSON): {o:8.1f} us")
    print(f"  under the lock, per event (position + SHA-256):         {u:8.1f} us")
    print(f"  one command (read, decide, save one event):            {c:8.1f} us")
    print(f"  chain work / command: {(o + u) / c:.3f}   (under the lock / command: {u / c:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
