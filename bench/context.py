"""What a run hands to each scenario: its options and sizes, a scratch directory, PostgreSQL, progress."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.pg import PostgresCluster


@dataclass(frozen=True)
class Sizes:
    seconds: float  # each measured window of a load
    warmup: float  # before each measured window, not counted
    rounds: int  # loads compared on one server alternate in this many windows (bench.common.run_alternating)
    snapshot_events: int
    snapshot_samples: int
    full_replays: int
    catchup_events: int
    index_innovations: int
    index_replications: int
    stream_events: int = 20_000

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            seconds=10,
            warmup=2,
            rounds=5,
            snapshot_events=10_000,
            snapshot_samples=300,
            full_replays=5,
            catchup_events=200_000,
            index_innovations=40_000,
            index_replications=20_000,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            seconds=3,
            warmup=1,
            rounds=3,
            snapshot_events=2_000,
            snapshot_samples=100,
            full_replays=3,
            catchup_events=20_000,
            index_innovations=4_000,
            index_replications=2_000,
            stream_events=5_000,
        )


@dataclass
class Context:
    sizes: Sizes
    clients: int
    workers: int
    threads: int
    client_processes: int  # the HTTP clients spread over this many processes (bench.common.ClientProcesses)
    idempotency: bool
    backends: tuple[str, ...]
    catchup_backend: str
    workdir: Path
    pg: PostgresCluster | None = None
    pg_error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def database(self, name: str) -> str:
        """A fresh PostgreSQL database of the throwaway cluster (PostgresUnavailable when there is none)."""
        if self.pg is None:
            raise PostgresUnavailable(self.pg_error or "PostgreSQL was not started")
        return self.pg.database(name)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """One measurement (or preparation) of the plan: shown on the progress bar, counted when done."""
        if self.progress is not None:
            self.progress.set_description(label)
        try:
            yield
        finally:
            if self.progress is not None:
                self.progress.update(1)

    def bar(self, total: int, label: str) -> Any:
        return tqdm(total=total, desc=label, leave=False, unit="ev", unit_scale=True, position=1)


class PostgresUnavailable(RuntimeError):
    pass
