"""The audit export streams: its peak memory does not grow with the log (bench/export_memory.py measures the
same at 10,000 vs 100,000 events; this keeps the property under test at a size the suite can afford)."""

from __future__ import annotations

from pathlib import Path

from bench.export_memory import build, listed, peak_of, streamed
from service.store import open_sqlite_network

SMALL, LARGE = 1_000, 10_000


def test_exporting_ten_times_the_events_takes_no_more_memory(tmp_path: Path) -> None:
    network = open_sqlite_network(tmp_path / "events.sqlite")
    try:
        assert build(network, LARGE) == LARGE
        small_peak, small_bytes = peak_of(lambda: streamed(network, SMALL + 1))
        large_peak, large_bytes = peak_of(lambda: streamed(network, None))
        listed_peak, _ = peak_of(lambda: listed(network, None))
    finally:
        network.close()
    assert large_bytes > 9 * small_bytes  # ten times the events really went out
    assert large_peak < 1.25 * small_peak  # ... within the same memory
    assert (
        listed_peak > 5 * large_peak
    )  # and holding them all at once, as a non-streamed export would, does not
