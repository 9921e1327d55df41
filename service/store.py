"""Where the event store lives: the library is configured through its environment keys."""

from __future__ import annotations

from pathlib import Path

from service.network import InnovationNetwork


def sqlite_env(path: Path | str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "service.recorder:StoreRecorder",
    }


def open_sqlite_network(path: Path | str) -> InnovationNetwork:
    return InnovationNetwork(env=sqlite_env(path))
