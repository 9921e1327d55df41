"""Projection catch-up: events/s that the projection runner applies to fresh projections (index and audit, as
the service runs them) from a store of 200,000 events, beside the raw rate of reading the notification log
(`recorder.select_notifications` over the whole log, in the runner's batch size) and, for the cost of
decoding, the rate of `read_records` (notifications decoded into EventRecords). Then `puja projections rebuild`
and `verify` (projections/rebuild.py) of every projection over the same store, beside that catch-up."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from bench.common import Row
from bench.context import Context
from bench.workload import (
    EARLY_TRIAL,
    GOOD_PRACTICE,
    command_body,
    days_ago,
    evaluation_year,
    innovation_fields,
)

STEPS = 6
REPLICATIONS_PER_INNOVATION = 12  # each with the 8 events of a whole life: 97 events per innovation
INNOVATIONS_PER_SAVE = 10


def run(ctx: Context, backend: str) -> list[Row]:
    from app.runtime import Runtime
    from app.settings import Settings
    from service.network import read_records

    workdir = ctx.scratch(f"catchup-{backend}")
    target = ctx.sizes.catchup_events
    url = ctx.database("bench_catchup") if backend == "postgres" else None
    runtime = Runtime.open(Settings(data_dir=workdir / "var", database_url=url))
    try:
        network = runtime.network
        with ctx.step(f"catchup/{backend}: record {target:,} events"):
            stored = generate(network, target, ctx)
        head = network.head_position()
        batch = runtime.runner.batch_size

        with ctx.step(f"catchup/{backend}: raw notification reads"):
            read_log(network, batch)  # once untimed, so that both sides find the file in the page cache
            raw_seconds, raw_count = read_log(network, batch)

        with ctx.step(f"catchup/{backend}: read_records"):
            t0 = time.perf_counter()
            decoded, after = 0, 0
            while records := read_records(network, after, batch):
                decoded += len(records)
                after = records[-1].position
            decode_seconds = time.perf_counter() - t0

        with ctx.step(f"catchup/{backend}: projection catch-up"):
            bar = ctx.bar(head, "applied")
            watching = threading.Event()

            def watch() -> None:
                while not watching.wait(0.5):
                    bar.n = runtime.runner.position_of(runtime.runner.names)
                    bar.refresh()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t0 = time.perf_counter()
            try:
                reached = runtime.runner.catch_up()
            finally:
                catchup_seconds = time.perf_counter() - t0
                watching.set()
                watcher.join()
                bar.close()
            if reached < head:
                raise AssertionError(f"catch-up stopped at {reached} of {head}")

        rebuild_seconds = timed_for_every_projection(ctx, runtime, "rebuild", backend, head)
        verify_seconds = timed_for_every_projection(ctx, runtime, "verify", backend, head)
    finally:
        runtime.close()

    raw_rate = raw_count / raw_seconds
    decode_rate = decoded / decode_seconds
    catchup_rate = head / catchup_seconds
    projections = ", ".join(runtime.runner.names)
    ctx.details[f"catchup/{backend}"] = {
        "events": stored,
        "head_position": head,
        "batch_size": batch,
        "projections": projections,
        "catch_up_seconds": round(catchup_seconds, 2),
        "raw_read_seconds": round(raw_seconds, 3),
        "read_records_seconds": round(decode_seconds, 3),
        "rebuild_seconds": round(rebuild_seconds, 2),
        "verify_seconds": round(verify_seconds, 2),
    }
    common: dict[str, Any] = {
        "backend": backend,
        "measured": catchup_rate,
        "unit": "ev/s",
        "n": head,
        "extra": {"catch_up_seconds": round(catchup_seconds, 2)},
    }
    return [
        Row(
            scenario=f"projection catch-up ({head:,} events) / raw notification reads",
            baseline=raw_rate,
            target=">= 0.25",
            baseline_name=f"recorder.select_notifications, {batch} per call, whole log",
            baseline_n=raw_count,
            notes=f"projections {projections}, batches of {batch}, into a fresh view store",
            **common,
        ),
        Row(
            scenario=f"projection catch-up ({head:,} events) / read + decode",
            baseline=decode_rate,
            baseline_name=f"service.network.read_records, {batch} per call (select + decode to EventRecord)",
            baseline_n=decoded,
            notes="informative: how much of the catch-up is reading and decoding",
            **common,
        ),
        Row(
            scenario=f"projection rebuild, fresh tables swapped in ({head:,} events) / projection catch-up",
            backend=backend,
            measured=head / rebuild_seconds,
            baseline=catchup_rate,
            unit="ev/s",
            n=head,
            baseline_name="the projection catch-up above (runner into a fresh view store)",
            baseline_n=head,
            notes="every projection, one after the other, build + swap (projections/rebuild.py)",
            extra={"rebuild_seconds": round(rebuild_seconds, 2)},
        ),
        Row(
            scenario=f"projection verify, rebuild + content digests ({head:,} events) / projection catch-up",
            backend=backend,
            measured=head / verify_seconds,
            baseline=catchup_rate,
            unit="ev/s",
            n=head,
            baseline_name="the projection catch-up above (runner into a fresh view store)",
            baseline_n=head,
            notes="every projection: build into scratch tables, digest live and rebuilt tables",
            extra={"verify_seconds": round(verify_seconds, 2)},
        ),
    ]


def timed_for_every_projection(ctx: Context, runtime: Any, what: str, backend: str, head: int) -> float:
    """Seconds to rebuild (or verify) every projection of the runtime, one after the other."""
    from projections.rebuild import rebuild, verify
    from service.network import read_records

    seconds = 0.0
    with ctx.step(f"catchup/{backend}: projection {what}"):
        for projection in runtime.runner.projections:
            bar = ctx.bar(head, f"{what} {projection.name}")

            def progress(position: int, bar: Any = bar) -> None:
                bar.update(position - bar.n)

            def read(after: int, limit: int) -> list[Any]:
                return read_records(runtime.network, after, limit)

            t0 = time.perf_counter()
            try:
                if what == "rebuild":
                    rebuild(runtime.views, projection, read, progress=progress)
                else:
                    found = verify(runtime.views, projection, read, progress=progress)
                    if not found.ok:
                        raise AssertionError(
                            f"verify found differences in {projection.name}: {found.differing}"
                        )
            finally:
                seconds += time.perf_counter() - t0
                bar.close()
    return seconds


def read_log(network: Any, batch: int) -> tuple[float, int]:
    recorder = network.recorder
    t0 = time.perf_counter()
    count, start = 0, 0
    while notifications := recorder.select_notifications(start=start, limit=batch, inclusive_of_start=False):
        count += len(notifications)
        start = notifications[-1].id
    return time.perf_counter() - t0, count


def generate(network: Any, target: int, ctx: Context) -> int:
    """At least `target` events of innovations and replications in every stage of life, saved through the
    application in large batches (several innovations and their replications per save)."""
    from domain import regions
    from domain.acting import Actor, acting_as
    from domain.catalogue import catalogues
    from domain.evaluation import EvaluationInput
    from domain.innovation import Innovation
    from domain.replication import Replication
    from service.network import registry_rows

    rng = random.Random(5)
    kabkota = [r.code for r in regions.all_regions() if not r.is_province]
    early_on, late_on = days_ago(250), days_ago(10)
    early = EvaluationInput(evaluation_year(early_on), EARLY_TRIAL, early_on, {}, "Uji coba.")
    late = EvaluationInput(evaluation_year(late_on), GOOD_PRACTICE, late_on, {}, "Penerapan.")
    catalogue_early = catalogues().for_year(early.year)
    catalogue_late = catalogues().for_year(late.year)
    assert catalogue_early is not None and catalogue_late is not None  # evaluation_year() found them
    stored, number = 0, 0
    bar = ctx.bar(target, "recorded")
    try:
        with acting_as(Actor("bench-seed", "admin", uuid.uuid4().hex)):
            while stored < target:
                aggregates: list[Any] = []
                for _ in range(INNOVATIONS_PER_SAVE):
                    number += 1
                    region = kabkota[number % len(kabkota)]
                    innovation = Innovation.register(**innovation_fields(region, number))
                    aggregates.append(innovation)
                    for adopter in rng.sample(
                        [c for c in kabkota if c != region], REPLICATIONS_PER_INNOVATION
                    ):
                        replication = Replication.propose(
                            innovation=innovation,
                            adopting_region=adopter,
                            facilitator="Kementerian Dalam Negeri",
                            rationale="Kebutuhan layanan serupa.",
                            proposed_on=days_ago(500),
                        )
                        replication.sign_agreement(**command_body("agree", 1, rng))
                        replication.record_modification(**command_body("modify", 2, rng))
                        replication.advance_adoption(**command_body("trial", 3, rng))
                        replication.record_modification(**command_body("modify", 4, rng))
                        replication.evaluate(early, catalogue_early, 0)
                        replication.advance_adoption(**command_body("implement", 6, rng))
                        replication.evaluate(late, catalogue_late, 1)
                        aggregates.append(replication)
                registry = [row for a in aggregates for row in registry_rows(a)]
                recordings = network.save(*aggregates, registry=registry)
                stored += len(recordings)
                bar.update(len(recordings))
    finally:
        bar.close()
    return stored
