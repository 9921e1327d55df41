"""The bench's alternating windows (bench.common.run_alternating): loads take turns, each client's operation
is made once and goes on across windows, and what `after` returns is charged to the window."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bench.common import Measurement, alternate_windows, run_alternating


def test_loads_alternate_and_each_clients_operation_goes_on_across_windows() -> None:
    made: dict[str, list[int]] = {"a": [], "b": []}
    calls: dict[tuple[str, int], int] = {}
    lock = threading.Lock()
    windows: list[str] = []

    def load(name: str) -> Callable[[int], Callable[[], None]]:
        def make(client: int) -> Callable[[], None]:
            made[name].append(client)

            def operation() -> None:
                with lock:
                    calls[(name, client)] = calls.get((name, client), 0) + 1

            return operation

        return make

    def after(name: str, window: Measurement) -> float:
        windows.append(name)
        assert window.ops > 0
        return 1.0 if name == "b" else 0.0

    loads, rounds = run_alternating(
        {"a": load("a"), "b": load("b")}, clients=3, seconds=0.3, rounds=3, warmup=0.05, after=after
    )

    assert made == {"a": [0, 1, 2], "b": [0, 1, 2]}  # once per client, not once per window
    assert windows == ["a", "b", "b", "a", "a", "b"]  # the order turns every other round
    assert len(rounds) == 3 and all(set(r) == {"a", "b"} for r in rounds)
    # the warm-up's calls are not counted
    assert 0 < loads["a"].ops < sum(calls.get(("a", c), 0) for c in range(3))
    # b's windows are charged one second each: three seconds more than a's 0.3 s in all
    assert 3.2 < loads["b"].seconds < 3.6
    assert loads["a"].seconds < 0.6
    assert loads["b"].rate < loads["a"].rate


def test_loads_measured_by_a_window_of_their_own_take_turns_and_are_pooled() -> None:
    """The app scenario's loads at one client include pgbench runs: a load is then a function that measures
    one window of the length it is given."""
    asked: list[tuple[str, float]] = []

    def load(name: str, per_second: int) -> Callable[[float], Measurement]:
        def window(seconds: float) -> Measurement:
            asked.append((name, seconds))
            ops = int(per_second * seconds) + len(asked)  # every window a little different
            return Measurement(ops=ops, errors=0, seconds=seconds, latencies_ms=[1.0] * ops, clients=1)

        return window

    pooled, rounds = alternate_windows({"fast": load("fast", 1000), "slow": load("slow", 100)}, 6.0, 3)

    assert asked == [("fast", 2.0), ("slow", 2.0), ("slow", 2.0), ("fast", 2.0), ("fast", 2.0), ("slow", 2.0)]
    fast_ops = [2001, 2004, 2005]  # the windows' own counts, in the order they ran
    assert pooled["fast"].ops == sum(fast_ops) and pooled["fast"].seconds == 6.0
    assert len(pooled["slow"].latencies_ms) == pooled["slow"].ops == 202 + 203 + 206
    assert [r["fast"] for r in rounds] == [ops / 2.0 for ops in fast_ops]
    assert all(r["slow"] < r["fast"] for r in rounds)


def test_clients_spread_over_processes_take_disjoint_shares_and_are_pooled() -> None:
    """With processes, each client process runs every n-th client and takes its own share of a workload (as
    the command mix's Pairs does); every window pools what all of them did, and their reports come back."""
    from bench.workload import Pairs

    pairs = Pairs([("innovation-a", "11.01"), ("innovation-b", "12.01")])
    taken: list[tuple[str, str]] = []  # in each client process: the pairs its clients took
    reports: list[list[tuple[str, str]]] = []

    def make(client: int) -> Callable[[], None]:
        def operation() -> None:
            if len(taken) < 50:
                taken.append(pairs.next())

        return operation

    loads, rounds = run_alternating(
        {"a": make},
        clients=4,
        seconds=0.4,
        rounds=2,
        processes=2,
        in_client_process=pairs.take_share,
        client_report=lambda: list(taken),
        on_reports=reports.extend,
    )

    assert len(reports) == 2 and all(len(r) == 50 for r in reports)
    first, second = (set(r) for r in reports)
    assert not first & second  # no pair handed out twice across the processes
    assert loads["a"].ops > 0 and loads["a"].clients == 4 and len(rounds) == 2
    assert loads["a"].client_cpu_seconds > 0
    assert not taken  # the clients ran in the child processes, not here
