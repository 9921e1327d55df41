"""The realistic command mix, the same through HTTP and in-process.

Each client drives a few replications of its own through their whole life, choosing at random which one moves
next: proposal -> agreement -> modification -> uji_coba -> modification -> evaluation -> penerapan ->
evaluation. In the long run the mix is 1/8 proposals, 1/8 agreements, 2/8 modifications, 2/8 adoption steps and
2/8 evaluations. Proposals go to (innovation, adopting region) pairs never used before, from 16 innovations of
16 provinces (514 kabupaten/kota each: over 8,000 proposals before any pair repeats).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from app.demo import EARLY_TRIAL, GOOD_PRACTICE
from bench.common import Exhausted, percentile
from domain import regions
from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.catalogue import catalogues
from domain.evaluation import EvaluationInput

STEPS = ("propose", "agree", "modify", "trial", "modify", "evaluate", "implement", "evaluate")
DAYS_AGO = (500, 450, 400, 350, 300, 250, 200, 10)  # business dates of the steps, in order
ACTIVE_PER_CLIENT = 4
INNOVATIONS = 16

COMPONENTS = ("proses_bisnis", "teknologi", "regulasi", "kelembagaan", "sasaran", "pembiayaan", "sdm")
NATURES = ("penambahan", "pengurangan", "penyesuaian", "penggantian")


def days_ago(days: int) -> date:
    return today() - timedelta(days=days)


def evaluation_year(evaluated_on: date) -> int:
    """The latest year on or before the evaluation that an indicator catalogue covers."""
    for year in range(evaluated_on.year, 1999, -1):
        if catalogues().for_year(year) is not None:
            return year
    raise RuntimeError("No indicator catalogue covers any year up to the evaluation date.")


def source_regions(count: int = INNOVATIONS) -> list[str]:
    """One kabupaten/kota from each of `count` provinces."""
    chosen: dict[str, str] = {}
    for region in regions.all_regions():
        if not region.is_province and region.province not in chosen:
            chosen[region.province] = region.code
    return list(chosen.values())[:count]


def innovation_fields(region: str, number: int) -> dict[str, Any]:
    return {
        "region": region,
        "name": f"Inovasi Pelayanan Terpadu {number:03d}",
        "form": "pelayanan_publik",
        "urusan": ["kesehatan", "administrasi_kependudukan_pencatatan_sipil"],
        "initiator": "perangkat_daerah",
        "stage": "penerapan",
        "digital": True,
        "started_on": days_ago(1000),
        "description": "Layanan terpadu satu pintu untuk kesehatan dan administrasi kependudukan di desa, "
        "dengan jadwal keliling dan pendaftaran daring.",
        "objectives": "Pelayanan lebih cepat dan dekat dengan warga.",
    }


class Pairs:
    """Unused (innovation id, adopting region) pairs, handed out once each, across threads."""

    def __init__(self, innovations: list[tuple[str, str]], seed: int = 7) -> None:
        rng = random.Random(seed)
        kabkota = [r.code for r in regions.all_regions() if not r.is_province]
        queues = []
        for innovation_id, region in innovations:
            adopters = [code for code in kabkota if code != region]
            rng.shuffle(adopters)
            queues.append([(innovation_id, code) for code in adopters])
        # Interleaved, so that consecutive proposals go to different innovations.
        self._pairs: Iterator[tuple[str, str]] = iter(
            [pair for row in zip(*queues, strict=False) for pair in row]
        )
        self._lock = threading.Lock()

    def take_share(self, k: int, of: int) -> None:
        """In client process k of `of`: hand out only every `of`-th pair from the k-th on, so that processes
        that each hold a copy never hand out the same pair."""
        self._pairs = itertools.islice(self._pairs, k, None, of)

    def next(self) -> tuple[str, str]:
        with self._lock:
            try:
                return next(self._pairs)
            except StopIteration:
                raise Exhausted("no unused (innovation, adopting region) pair is left") from None


@dataclass
class Lifecycle:
    innovation_id: str
    adopting_region: str
    step: int = 0
    replication_id: str | None = None


def command_body(kind: str, step: int, rng: random.Random) -> dict[str, Any]:
    """The body of a command (dates as `date`), as api.md defines it."""
    on = days_ago(DAYS_AGO[step])
    if kind == "agree":
        return {
            "document": "pks",
            "document_number": f"PKS/{rng.randrange(1, 999)}/{on.year}",
            "signed_on": on,
            "document_url": "https://jdih.example.go.id/pks/2025/replikasi.pdf",
        }
    if kind == "modify":
        return {
            "component": rng.choice(COMPONENTS),
            "nature": rng.choice(NATURES),
            "core": False,
            "description": "Aplikasi dipasang di pusat data provinsi dan formulir disesuaikan dengan "
            "kebutuhan layanan setempat.",
            "reason": "Belum memiliki pusat data sendiri; prosedur daerah berbeda.",
            "recorded_on": on,
        }
    if kind in ("trial", "implement"):
        return {
            "stage": "uji_coba" if kind == "trial" else "penerapan",
            "effective_on": on,
            "legal_basis": f"Peraturan Bupati No. {rng.randrange(1, 99)}/{on.year}",
            "evidence_urls": ["https://example.go.id/bukti/replikasi"] if kind == "implement" else [],
        }
    if kind == "evaluate":
        return {
            "year": evaluation_year(on),
            "scores": GOOD_PRACTICE if step == len(STEPS) - 1 else EARLY_TRIAL,
            "evaluated_on": on,
            "notes": "Penilaian lapangan oleh tim penilai.",
        }
    raise ValueError(kind)


def proposal_body(lifecycle: Lifecycle) -> dict[str, Any]:
    return {
        "innovation_id": lifecycle.innovation_id,
        "adopting_region": lifecycle.adopting_region,
        "facilitator": "Kementerian Dalam Negeri",
        "rationale": "Kebutuhan layanan serupa dan hasil kunjungan kerja ke daerah asal.",
        "proposed_on": days_ago(DAYS_AGO[0]),
    }


def rejected_proposals(
    base_url: str, operator_token: str, idempotency: bool, innovation_id: str
) -> Callable[[int], Callable[[], None]]:
    """Per client: a proposal like the mix's that names an adopting region that does not exist, sent as the
    mix sends its commands (keep-alive session, bearer token, by default an Idempotency-Key). The server
    answers 422 `validation-error` and stores nothing: what a command costs the HTTP stack (the token, the
    key's claim and its kept answer, the body and its schema, a problem+json answer) without a decision, an
    event or projection work."""
    import requests

    url = base_url.rstrip("/") + "/api/v1/replications"
    body = as_json(proposal_body(Lifecycle(innovation_id, "99.99")))

    def make(_: int) -> Callable[[], None]:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {operator_token}"}

        def post() -> None:
            if idempotency:
                headers["Idempotency-Key"] = uuid.uuid4().hex
            response = session.post(url, json=body, headers=headers, timeout=120)
            if response.status_code != 422 or not response.json()["type"].endswith("/validation-error"):
                raise CommandFailed(
                    f"rejected proposal answered {response.status_code}: {response.text[:80]}"
                )

        return post

    return make


class Executor(Protocol):
    def run(self, kind: str, lifecycle: Lifecycle, body: dict[str, Any]) -> None: ...


class CommandFailed(Exception):
    pass


@dataclass
class MixLog:
    """Per-command-kind latencies of every client, filtered later to the measured window."""

    entries: list[tuple[float, str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, finished: float, kind: str, ms: float) -> None:
        with self.lock:
            self.entries.append((finished, kind, ms))

    def by_kind(self, window: tuple[float, float]) -> dict[str, dict[str, float | int | None]]:
        kinds: dict[str, list[float]] = defaultdict(list)
        for finished, kind, ms in self.entries:
            if window[0] <= finished <= window[1]:
                kinds[kind].append(ms)
        total = sum(len(v) for v in kinds.values()) or 1
        return {
            kind: {
                "n": len(values),
                "share": round(len(values) / total, 3),
                "p50_ms": _r(percentile(values, 50)),
                "p99_ms": _r(percentile(values, 99)),
            }
            for kind, values in sorted(kinds.items())
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Mix:
    """One client's stream of commands: call it to issue the next one."""

    def __init__(self, pairs: Pairs, executor: Executor, log: MixLog, seed: int) -> None:
        self.pairs = pairs
        self.executor = executor
        self.log = log
        self.rng = random.Random(seed)
        self.active: list[Lifecycle] = []

    def __call__(self) -> None:
        if len(self.active) < ACTIVE_PER_CLIENT:
            innovation_id, region = self.pairs.next()
            lifecycle = Lifecycle(innovation_id, region)
            self.active.append(lifecycle)
        else:
            lifecycle = self.rng.choice(self.active)
        kind = STEPS[lifecycle.step]
        body = proposal_body(lifecycle) if kind == "propose" else command_body(kind, lifecycle.step, self.rng)
        t0 = time.perf_counter()
        try:
            self.executor.run(kind, lifecycle, body)
        except Exception:
            self.active.remove(lifecycle)  # a failed step ends that replication's life here
            raise
        t1 = time.perf_counter()
        self.log.add(t1, kind, (t1 - t0) * 1000)
        lifecycle.step += 1
        if lifecycle.step == len(STEPS):
            self.active.remove(lifecycle)


# --- through HTTP ------------------------------------------------------------------------------------


def as_json(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in body.items()}


class HttpExecutor:
    """Commands as an integrator sends them: keep-alive session, bearer token, JSON body and (by default) an
    Idempotency-Key on every POST."""

    def __init__(
        self,
        base_url: str,
        operator_token: str,
        evaluator_token: str,
        idempotency: bool,
        session: Any = None,
    ) -> None:
        import requests

        self.base = base_url.rstrip("/") + "/api/v1/replications"
        self.session = session if session is not None else requests.Session()
        self.operator = {"Authorization": f"Bearer {operator_token}"}
        self.evaluator = {"Authorization": f"Bearer {evaluator_token}"}
        self.idempotency = idempotency

    def run(self, kind: str, lifecycle: Lifecycle, body: dict[str, Any]) -> None:
        headers = dict(self.evaluator if kind == "evaluate" else self.operator)
        if self.idempotency:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        if kind == "propose":
            url = self.base
        else:
            suffix = {
                "agree": "agreement",
                "modify": "modifications",
                "trial": "adoption",
                "implement": "adoption",
                "evaluate": "evaluations",
            }[kind]
            url = f"{self.base}/{lifecycle.replication_id}/{suffix}"
        response = self.session.post(url, json=as_json(body), headers=headers, timeout=120)
        if response.status_code not in (200, 201):
            try:
                problem = response.json()
                slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
                detail = problem.get("rule") or problem.get("detail", "")
            except ValueError:
                slug, detail = "", response.text[:60]
            raise CommandFailed(f"{kind} {response.status_code} {slug} {detail}"[:120])
        if kind == "propose":
            lifecycle.replication_id = response.json()["id"]


def register_innovations_http(base_url: str, token: str, session: Any = None) -> list[tuple[str, str]]:
    import requests

    created = []
    session = session if session is not None else requests.Session()
    try:
        for number, region in enumerate(source_regions(), 1):
            # Retried on a dropped connection with the same Idempotency-Key: never registered twice.
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            for attempt in range(3):
                try:
                    response = session.post(
                        base_url.rstrip("/") + "/api/v1/innovations",
                        json=as_json(innovation_fields(region, number)),
                        headers=headers,
                        timeout=60,
                    )
                    break
                except requests.ConnectionError:
                    if attempt == 2:
                        raise
                    time.sleep(1)
            if response.status_code != 201:
                raise RuntimeError(
                    f"registering an innovation failed: {response.status_code} {response.text}"
                )
            created.append((response.json()["id"], region))
    finally:
        session.close()
    return created


# --- in-process, through the application layer --------------------------------------------------------


class AppExecutor:
    """Commands straight to `InnovationNetwork`, as the HTTP handlers call it (inside `acting_as`)."""

    def __init__(self, network: Any) -> None:
        self.network = network

    def run(self, kind: str, lifecycle: Lifecycle, body: dict[str, Any]) -> None:
        network = self.network
        role = "evaluator" if kind == "evaluate" else "admin"
        with acting_as(Actor(f"bench-{role}", role, uuid.uuid4().hex)):
            if kind == "propose":
                outcome = network.propose_replication(
                    **{**body, "innovation_id": uuid.UUID(body["innovation_id"])}
                )
                lifecycle.replication_id = str(outcome.aggregate.id)
                return
            replication_id = uuid.UUID(lifecycle.replication_id)
            if kind == "agree":
                network.sign_agreement(replication_id, **body)
            elif kind == "modify":
                network.record_modification(replication_id, **body)
            elif kind in ("trial", "implement"):
                network.advance_adoption(replication_id, **body)
            elif kind == "evaluate":
                evaluation = EvaluationInput(
                    year=body["year"],
                    scores=body["scores"],
                    evaluated_on=body["evaluated_on"],
                    evidence={},
                    notes=body["notes"],
                )
                network.evaluate_replication(replication_id, evaluation)
            else:
                raise ValueError(kind)


def register_innovations_app(network: Any) -> list[tuple[str, str]]:
    created = []
    with acting_as(Actor("bench-admin", "admin", uuid.uuid4().hex)):
        for number, region in enumerate(source_regions(), 1):
            outcome = network.register_innovation(**innovation_fields(region, number))
            created.append((str(outcome.aggregate.id), region))
    return created


def mixes(pairs: Pairs, make_executor: Callable[[int], Executor], log: MixLog) -> Callable[[int], Mix]:
    return lambda i: Mix(pairs, make_executor(i), log, seed=1000 + i)
