"""What every scenario shares: result rows, percentiles, a bounded concurrent load loop, free ports."""

from __future__ import annotations

import multiprocessing
import resource
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


class Exhausted(Exception):
    """A worker has nothing more to do (e.g. no unused adopting region is left); it stops early."""


@dataclass
class Row:
    """One comparison: a measured figure beside its baseline taken in the same run.

    `ratio` is measured / baseline. For throughputs a target reads ">= x"; for durations "<= x". The
    percentiles are the measured side's latencies (ms); the baseline's are kept under `baseline_*`."""

    scenario: str
    backend: str
    measured: float | None
    baseline: float | None
    unit: str
    target: str | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    n: int = 0
    baseline_name: str = ""
    baseline_p50_ms: float | None = None
    baseline_p99_ms: float | None = None
    baseline_n: int = 0
    errors: int = 0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_rates(
        cls, scenario: str, backend: str, measured: Measurement, baseline: Measurement, **fields: Any
    ) -> Row:
        """A throughput beside a throughput baseline, each with its latencies."""
        return cls(
            scenario=scenario,
            backend=backend,
            measured=measured.rate,
            baseline=baseline.rate,
            unit="/s",
            p50_ms=measured.p(50),
            p95_ms=measured.p(95),
            p99_ms=measured.p(99),
            n=measured.ops,
            errors=measured.errors,
            baseline_p50_ms=baseline.p(50),
            baseline_p99_ms=baseline.p(99),
            baseline_n=baseline.ops,
            **fields,
        )

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.baseline:
            return None
        return self.measured / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None when there is no target or nothing was measured)."""
        if self.target is None or self.ratio is None:
            return None
        op, _, value = self.target.partition(" ")
        bound = float(value)
        return self.ratio >= bound if op == ">=" else self.ratio <= bound

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Measurement:
    """Operations completed in a measured window by a number of concurrent clients."""

    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    clients: int
    error_kinds: Counter[str] = field(default_factory=Counter)
    window: tuple[float, float] = (0.0, 0.0)  # perf_counter() bounds of the measured window
    client_cpu_seconds: float = 0.0  # CPU of the clients' process(es) over the run, warm-up included

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def p(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "clients": self.clients,
            "p50_ms": _round(self.p(50)),
            "p95_ms": _round(self.p(95)),
            "p99_ms": _round(self.p(99)),
            "mean_ms": _round(statistics.fmean(self.latencies_ms)) if self.latencies_ms else None,
            "error_kinds": dict(self.error_kinds.most_common(5)),
        }


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


Operation = Callable[[], None]


def run_concurrent(
    make_operation: Callable[[int], Operation],
    clients: int,
    seconds: float,
    *,
    warmup: float = 0.0,
    max_ops: int | None = None,
    stop: threading.Event | None = None,
) -> Measurement:
    """Run `clients` threads, each calling its own operation (made by `make_operation(i)` before the clock
    starts) in a loop for `warmup + seconds`. Only operations that finish inside the measured window count;
    an operation that raises counts as an error. `max_ops` ends the window early once that many counted."""
    operations = [make_operation(i) for i in range(clients)]
    cpu_at_start = _process_cpu()
    start_gate = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    error_kinds: Counter[str] = Counter()
    counted = [0, 0]  # ops, errors
    window: dict[str, float] = {}
    done = threading.Event()

    def worker(operation: Operation) -> None:
        local: list[float] = []
        local_errors: Counter[str] = Counter()
        ops = errors = 0
        start_gate.wait()
        begin, end = window["begin"], window["end"]
        try:
            while not done.is_set() and not (stop is not None and stop.is_set()):
                t0 = time.perf_counter()
                if t0 >= end:
                    break
                failed: str | None = None
                try:
                    operation()
                except Exhausted:
                    break
                except Exception as error:  # counted, the load goes on
                    failed = _kind(error)
                t1 = time.perf_counter()
                if begin <= t1 <= end:
                    if failed is None:
                        ops += 1
                        local.append((t1 - t0) * 1000)
                        if max_ops is not None and ops % 16 == 0:
                            with lock:
                                if counted[0] + ops >= max_ops:
                                    done.set()
                    else:
                        errors += 1
                        local_errors[failed] += 1
        finally:
            with lock:
                latencies.extend(local)
                error_kinds.update(local_errors)
                counted[0] += ops
                counted[1] += errors
                window["last"] = max(window.get("last", 0.0), time.perf_counter())

    threads = [threading.Thread(target=worker, args=(op,), daemon=True) for op in operations]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window["begin"] = now + warmup
    window["end"] = now + warmup + seconds
    start_gate.wait()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        done.set()
        for thread in threads:
            thread.join(30)
        raise
    elapsed = min(window.get("last", window["end"]), window["end"]) - window["begin"]
    return Measurement(
        ops=counted[0],
        errors=counted[1],
        seconds=max(elapsed, 1e-9),
        latencies_ms=latencies,
        clients=clients,
        error_kinds=error_kinds,
        window=(window["begin"], window["end"]),
        client_cpu_seconds=_process_cpu() - cpu_at_start,
    )


def run_alternating(
    phases: Mapping[str, Callable[[int], Operation]],
    clients: int,
    seconds: float,
    rounds: int,
    *,
    warmup: float = 0.0,
    stop: threading.Event | None = None,
    before: Callable[[str], None] | None = None,
    after: Callable[[str, Measurement], float] | None = None,
    processes: int = 1,
    in_client_process: Callable[[int, int], None] | None = None,
    client_report: Callable[[], Any] | None = None,
    on_reports: Callable[[list[Any]], None] | None = None,
) -> tuple[dict[str, Measurement], list[dict[str, float]]]:
    """Measure several loads on the same server in alternating windows (`seconds` of each load in all, split
    into `rounds` windows, the order reversed every other round), so that a machine whose speed drifts during
    the run (other tenants, clock) weighs on every load alike and their ratio keeps still. Each client's
    operation is made once per load and goes on from window to window (a command mix keeps its lifecycles).
    `before(name)` runs before each window of a load, `after(name, window)` after it and returns seconds to
    add to that window's measured time (e.g. the work the window left behind). Returns each load's windows
    pooled into one Measurement, and the rate of every window, round by round.

    With `processes` > 1 the clients are spread over that many forked processes (ClientProcesses), so that
    one interpreter's lock does not cap the load: `in_client_process(k, processes)` runs in process k before
    its clients are made (e.g. to take its own share of a workload), and what `client_report()` returns there
    at the end is handed to `on_reports` here."""
    clients_of: Callable[[str, float, float], Measurement]
    group: ClientProcesses | None = None
    if processes > 1:
        group = ClientProcesses(phases, clients, processes, in_client_process, client_report)
        clients_of = group.window
    else:
        made = {name: [make(i) for i in range(clients)] for name, make in phases.items()}

        def clients_of(name: str, seconds: float, warmup: float) -> Measurement:
            return run_concurrent(made[name].__getitem__, clients, seconds, warmup=warmup, stop=stop)

    def load(name: str) -> Callable[[float], Measurement]:
        def window(length: float) -> Measurement:
            if before is not None:
                before(name)
            measured = clients_of(name, length, 0.0)
            if after is not None:
                measured.seconds += after(name, measured)
            return measured

        return window

    try:
        if warmup > 0:
            for name in phases:
                clients_of(name, 0.0, warmup)
        return alternate_windows({name: load(name) for name in phases}, seconds, rounds)
    finally:
        if group is not None:
            reports = group.close()
            if on_reports is not None:
                on_reports(reports)


def alternate_windows(
    loads: Mapping[str, Callable[[float], Measurement]], seconds: float, rounds: int
) -> tuple[dict[str, Measurement], list[dict[str, float]]]:
    """Measure loads in turn: `seconds` of each in all, split into `rounds` windows, the order reversed every
    other round; `loads[name](length)` measures one window of that load. Returns each load's windows pooled
    into one Measurement, and the rate of every window, round by round."""
    pooled: dict[str, list[Measurement]] = {name: [] for name in loads}
    per_round: list[dict[str, float]] = []
    for round_ in range(rounds):
        order = list(loads) if round_ % 2 == 0 else list(reversed(list(loads)))
        rates: dict[str, float] = {}
        for name in order:
            window = loads[name](seconds / rounds)
            pooled[name].append(window)
            rates[name] = window.rate
        per_round.append(rates)
    return {name: _pooled(windows) for name, windows in pooled.items()}, per_round


class ClientProcesses:
    """Clients spread over forked processes, each with its own interpreter lock: one Python process with 16
    client threads cannot send more than about one core's worth of requests. Process k runs the clients
    k, k + n, k + 2n, ... of every load; a window starts in all of them at once and is pooled when all have
    answered: operations and errors summed, the window as long as the longest, the clients' CPU summed."""

    def __init__(
        self,
        phases: Mapping[str, Callable[[int], Operation]],
        clients: int,
        processes: int,
        in_client_process: Callable[[int, int], None] | None,
        client_report: Callable[[], Any] | None,
    ) -> None:
        # The loads are closures: forked, the children get them as they were made.
        context = multiprocessing.get_context("fork")
        self.clients = clients
        self._pipes = []
        self._children = []
        for k in range(processes):
            ours, theirs = context.Pipe()
            child = context.Process(
                target=_client_process,
                args=(k, processes, phases, clients, theirs, in_client_process, client_report),
                daemon=True,
                name=f"bench-clients-{k}",
            )
            child.start()
            theirs.close()
            self._pipes.append(ours)
            self._children.append(child)

    def window(self, name: str, seconds: float, warmup: float) -> Measurement:
        for pipe in self._pipes:
            pipe.send((name, seconds, warmup))
        parts: list[Measurement] = [pipe.recv() for pipe in self._pipes]
        return _combined(
            parts,
            seconds=max(p.seconds for p in parts),
            window=(min(p.window[0] for p in parts), max(p.window[1] for p in parts)),
            clients=self.clients,
        )

    def close(self) -> list[Any]:
        reports = []
        for pipe, child in zip(self._pipes, self._children, strict=True):
            try:
                pipe.send(None)
                reports.append(pipe.recv())
            except (EOFError, OSError):
                pass
            child.join(10)
            if child.is_alive():
                child.kill()
            pipe.close()
        return reports


def _client_process(
    k: int,
    processes: int,
    phases: Mapping[str, Callable[[int], Operation]],
    clients: int,
    pipe: Any,
    in_client_process: Callable[[int, int], None] | None,
    client_report: Callable[[], Any] | None,
) -> None:
    if in_client_process is not None:
        in_client_process(k, processes)
    ours = range(k, clients, processes)
    made = {name: [make(i) for i in ours] for name, make in phases.items()}
    while (message := pipe.recv()) is not None:
        name, seconds, warmup = message
        pipe.send(run_concurrent(made[name].__getitem__, len(ours), seconds, warmup=warmup))
    pipe.send(client_report() if client_report is not None else None)


def _pooled(windows: Sequence[Measurement]) -> Measurement:
    """One load's windows, one after another, as one measurement."""
    return _combined(
        windows,
        seconds=sum(w.seconds for w in windows),
        window=(windows[0].window[0], windows[-1].window[1]),
        clients=windows[0].clients,
    )


def _combined(
    parts: Sequence[Measurement], *, seconds: float, window: tuple[float, float], clients: int
) -> Measurement:
    kinds: Counter[str] = Counter()
    for part in parts:
        kinds.update(part.error_kinds)
    return Measurement(
        ops=sum(p.ops for p in parts),
        errors=sum(p.errors for p in parts),
        seconds=seconds,
        latencies_ms=[ms for p in parts for ms in p.latencies_ms],
        clients=clients,
        error_kinds=kinds,
        window=window,
        client_cpu_seconds=sum(p.client_cpu_seconds for p in parts),
    )


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _kind(error: Exception) -> str:
    text = str(error).splitlines()[0][:80] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Durations (ms) of `repeat` calls of `fn`, one after another."""
    durations = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        durations.append((time.perf_counter() - t0) * 1000)
    return durations


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
