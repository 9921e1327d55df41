"""Peak memory of the audit export (`service.audit.records` + `jsonl_lines`, what `GET /api/v1/audit/export` and
`puja audit export` stream) over a small and a large window of one store, beside a baseline in the same run:
the same events read into one list first (what a non-streamed export would hold). Measured with tracemalloc.

    .venv/bin/python -m bench.export_memory                    # 10,000 vs 100,000 events, SQLite
    .venv/bin/python -m bench.export_memory --events 200000 --small 20000

A streamed export keeps a page of events at a time, so its peak should not grow with the size of the log.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PER_SAVE = 500  # events per save() while building the store


def build(
    network: Any, events: int, per_save: int = PER_SAVE, progress: Callable[[int], None] | None = None
) -> int:
    """`events` events: registrations, each followed by revisions, `per_save` events per save()."""
    from bench.workload import innovation_fields
    from domain.acting import Actor, acting_as
    from domain.innovation import Innovation

    stored, number = 0, 0
    with acting_as(Actor("bench-admin", "admin", uuid.uuid4().hex)):
        while stored < events:
            number += 1
            innovation = Innovation.register(**innovation_fields("35.04", number))
            while innovation.version < min(per_save, events - stored):
                innovation.revise(
                    {"description": f"Revisi ke-{innovation.version} — layanan desa"}, "pembaruan"
                )
            network.save(innovation)
            stored += innovation.version
            if progress:
                progress(innovation.version)
    return stored


def peak_of(work: Callable[[], Any]) -> tuple[int, Any]:
    """Peak bytes allocated while `work` runs, and its result."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


def drain(lines: Iterable[str]) -> int:
    """Consume an export as a client would (each line written out and forgotten); returns the bytes."""
    return sum(len(line.encode()) for line in lines)


def streamed(network: Any, before: int | None) -> int:
    from service.audit import jsonl_lines, records

    return drain(jsonl_lines(records(network, 0, before)))


def listed(network: Any, before: int | None) -> int:
    from service.audit import jsonl_lines, records

    everything = list(records(network, 0, before))
    return drain(jsonl_lines(everything))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the store (large window)")
    parser.add_argument("--small", type=int, default=10_000, help="events of the small window")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from service.store import open_sqlite_network

    with tempfile.TemporaryDirectory(prefix="puja-bench-export-") as directory:
        network = open_sqlite_network(Path(directory) / "events.sqlite")
        try:
            with tqdm(total=args.events, unit="ev", desc="recording") as bar:
                stored = build(network, args.events, progress=bar.update)
            rows = []
            for name, size, before in (("small", args.small, args.small + 1), ("large", stored, None)):
                peak, exported = peak_of(lambda before=before: streamed(network, before))
                baseline, _ = peak_of(lambda before=before: listed(network, before))
                rows.append((name, size, peak, baseline, exported))
            t0 = time.perf_counter()
            streamed(network, None)  # untraced: the export's own speed
            rate = stored / (time.perf_counter() - t0)
        finally:
            network.close()

    print(f"{'window':<6} {'events':>9} {'streamed peak':>14} {'list peak':>12} {'ratio':>6} {'MiB out':>8}")
    for name, size, peak, baseline, exported in rows:
        print(
            f"{name:<6} {size:>9,} {peak / 2**20:>10.2f} MiB {baseline / 2**20:>8.2f} MiB "
            f"{peak / baseline:>6.3f} {exported / 2**20:>8.1f}"
        )
    (_, small_size, small_peak, *_), (_, large_size, large_peak, *_) = rows
    print(
        f"streamed peak, large / small window: {large_peak / small_peak:.2f} "
        f"for {large_size / small_size:.0f}x the events; export speed (untraced) {rate:,.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
