"""Rebuilding the state of one long replication (10,000 events: a proposal and modifications) at random
versions, with the application's snapshots (every SNAPSHOT_INTERVAL events), beside a full replay of all its
events without snapshots (a repository over the same event store with no snapshot store)."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from bench.common import Row, percentile, timed
from bench.context import Context
from bench.workload import Lifecycle, command_body, days_ago, innovation_fields, proposal_body

STEPS_PER_BACKEND = 2
SAVE_EVERY = 500  # events per save() while building the replication


def run(ctx: Context, backend: str) -> list[Row]:
    from eventsourcing.application import Repository

    from service.network import SNAPSHOT_INTERVAL
    from service.store import open_network

    sizes = ctx.sizes
    events = sizes.snapshot_events
    workdir = ctx.scratch(f"snapshots-{backend}")
    url = ctx.database("bench_snapshots") if backend == "postgres" else None
    network = open_network(url, workdir / "events.sqlite")
    try:
        with ctx.step(f"snapshots/{backend}: record {events:,} events"):
            replication_id = build(network, events)
        with ctx.step(f"snapshots/{backend}: rebuild"):
            rng = random.Random(11)
            # Random versions, plus the worst cases: just below a snapshot, and the latest.
            versions = [rng.randint(1, events) for _ in range(sizes.snapshot_samples)]
            worst = list(range(SNAPSHOT_INTERVAL - 1, events, SNAPSHOT_INTERVAL))
            versions += rng.sample(worst, min(10, len(worst))) + [events]
            network.replication(replication_id, version=events)  # warm the connection and caches
            with_snapshots = [state_at(network, replication_id, version) for version in versions]
            no_snapshots = Repository(event_store=network.events)
            full = timed(lambda: no_snapshots.get(replication_id), sizes.full_replays)
            # Informative: the modifications of a state are parsed when first read (domain.ModificationLog).
            read_all = timed(
                lambda: list(network.replication(replication_id, version=events).modifications), 3
            )
    finally:
        network.close()
    snapshot_p99 = percentile(with_snapshots, 99)
    full_p50 = percentile(full, 50)
    ctx.details[f"snapshots/{backend}"] = {
        "events": events,
        "snapshot_interval": SNAPSHOT_INTERVAL,
        "samples": len(versions),
        "with_snapshots_ms": {
            "p50": percentile(with_snapshots, 50),
            "p95": percentile(with_snapshots, 95),
            "p99": snapshot_p99,
            "max": max(with_snapshots),
        },
        "full_replay_ms": {"runs": [round(d, 2) for d in full], "p50": full_p50},
        "state_and_all_modifications_read_ms": {"version": events, "p50": percentile(read_all, 50)},
    }
    return [
        Row(
            scenario=f"state at version N / full replay ({events:,} events)",
            backend=backend,
            measured=snapshot_p99,
            baseline=full_p50,
            unit="ms",
            target="<= 0.05",
            p50_ms=percentile(with_snapshots, 50),
            p95_ms=percentile(with_snapshots, 95),
            p99_ms=snapshot_p99,
            n=len(with_snapshots),
            baseline_name=f"repository without snapshots, all {events:,} events (median of {len(full)})",
            baseline_p50_ms=full_p50,
            baseline_p99_ms=percentile(full, 99),
            baseline_n=len(full),
            notes=f"measured = p99 of network.replication(id, version=N), N random; snapshots every "
            f"{SNAPSHOT_INTERVAL} events",
        )
    ]


def state_at(network: Any, replication_id: uuid.UUID, version: int) -> float:
    """Milliseconds to rebuild the replication at `version` (checked)."""
    t0 = time.perf_counter()
    state = network.replication(replication_id, version=version)
    elapsed = (time.perf_counter() - t0) * 1000
    if state.version != version or len(state.modifications) != version - 1:
        raise AssertionError(f"asked for version {version}, got {state.version}")
    return elapsed


def build(network: Any, events: int) -> uuid.UUID:
    """One replication with `events` events: its proposal, then modifications saved `SAVE_EVERY` at a time
    through the application (which takes its snapshots as it saves)."""
    from domain.acting import Actor, acting_as

    rng = random.Random(3)
    with acting_as(Actor("bench-admin", "admin", uuid.uuid4().hex)):
        innovation = network.register_innovation(**innovation_fields("35.78", 1)).aggregate
        lifecycle = Lifecycle(str(innovation.id), "35.73")
        body = proposal_body(lifecycle)
        replication = network.propose_replication(**{**body, "innovation_id": innovation.id}).aggregate
        pending = 0
        while replication.version < events:
            replication.record_modification(
                **{**command_body("modify", 2, rng), "recorded_on": days_ago(400)}
            )
            pending += 1
            if pending == SAVE_EVERY or replication.version == events:
                network.save(replication)
                pending = 0
    return replication.id
