"""Projection rebuilds and verification (operations.md `puja projections rebuild|verify`; index.md: every figure can
be rebuilt from the events and is the same after a rebuild), on SQLite and PostgreSQL, while the API serves."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from conftest import innovation_fields
from sqlalchemy import delete, inspect, select, update

from app.cli import main
from app.runtime import Runtime
from domain import regions
from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.errors import AggregateNotFound, InvalidInput, RuleViolation, VersionConflict
from domain.evaluation import EvaluationInput
from projections import all_projections
from projections.rebuild import RebuildBusy, Scratch, content_digest, rebuild, row_digests, verify
from projections.tables import AUDIT_TABLES, INDEX_TABLES, audit_events, innovations, projection_positions
from projections.tracking import advance_watermark
from service.network import InnovationNetwork, read_records

INNOVATIONS = "/api/v1/innovations"
REGENCIES = [r.code for r in regions.all_regions() if not r.is_province][:40]


# --- a long random sequence of commands -------------------------------------------------------


def random_commands(network: InnovationNetwork, seed: int, count: int) -> int:
    """`count` commands of every kind on random aggregates, with business dates moving forward; commands the rules
    refuse are part of the mix. Returns how many were stored."""
    rng = random.Random(seed)
    innovation_ids: list[UUID] = []
    replication_ids: list[UUID] = []
    start = today() - timedelta(days=count + 30)
    stored = 0
    for step in range(count):
        command = random_command(network, rng, step, start, innovation_ids, replication_ids)
        with acting_as(Actor("random", "admin", f"req-{seed}-{step}")):
            try:
                outcome = command()
            except (RuleViolation, InvalidInput, VersionConflict, AggregateNotFound):
                continue
        stored += 1
        ids = innovation_ids if type(outcome.aggregate).__name__ == "Innovation" else replication_ids
        if outcome.aggregate.id not in ids:
            ids.append(outcome.aggregate.id)
    return stored


def random_command(
    network: InnovationNetwork,
    rng: random.Random,
    step: int,
    start: date,
    innovation_ids: list[UUID],
    replication_ids: list[UUID],
) -> Callable[[], Any]:
    when = start + timedelta(days=step + 1)
    choice = rng.random()

    def evaluation(on: date) -> EvaluationInput:
        levels = {"regulasi": rng.randint(0, 3), "sdm": rng.randint(0, 3), "anggaran": rng.randint(0, 3)}
        return EvaluationInput(year=on.year, scores=levels, evaluated_on=on, evidence={})

    if choice < 0.15 or not innovation_ids:
        fields = innovation_fields(
            region=rng.choice(REGENCIES),
            name=f"Inovasi {step} {rng.choice(['Sehat', 'Cerdas', 'Tangguh'])}",
            stage=rng.choice(["inisiatif", "uji_coba", "penerapan", "penerapan"]),
            urusan=rng.sample(["kesehatan", "pendidikan", "sosial", "pangan"], rng.randint(1, 2)),
            started_on=start,
        )
        return lambda: network.register_innovation(**fields)
    innovation = rng.choice(innovation_ids)
    if choice < 0.35:
        adopting = rng.choice(REGENCIES)
        return lambda: network.propose_replication(
            innovation_id=innovation,
            adopting_region=adopting,
            rationale="Cocok untuk daerah kami.",
            proposed_on=when,
        )
    if choice < 0.42:
        return lambda: network.advance_innovation_stage(innovation, "penerapan", when)
    if choice < 0.47:
        return lambda: network.revise_innovation(innovation, {"name": f"Inovasi revisi {step}"}, "Nama baru.")
    if choice < 0.52:
        return lambda: network.evaluate_innovation(innovation, evaluation(when))
    if choice < 0.54 or not replication_ids:
        return lambda: network.retire_innovation(innovation, "Tidak dilanjutkan.", when)
    replication = rng.choice(replication_ids)
    natural = {
        "diusulkan": "sign",
        "disepakati": "uji_coba",
        "uji_coba": rng.choice(["penerapan", "evaluate"]),
        "penerapan": rng.choice(["evaluate", "modify"]),
    }.get(network.replication(replication).status, "sign")
    pick = natural if rng.random() < 0.7 else rng.choice(["modify", "reject", "discontinue", "sign"])
    return replication_command(network, replication, pick, when, evaluation, step, rng)


def replication_command(
    network: InnovationNetwork,
    replication_id: UUID,
    pick: str,
    when: date,
    evaluation: Callable[[date], EvaluationInput],
    step: int,
    rng: random.Random,
) -> Callable[[], Any]:
    return {
        "sign": lambda: network.sign_agreement(
            replication_id, document="pks", document_number=f"PKS/{step}", signed_on=when
        ),
        "uji_coba": lambda: network.advance_adoption(replication_id, stage="uji_coba", effective_on=when),
        "penerapan": lambda: network.advance_adoption(
            replication_id, stage="penerapan", effective_on=when, legal_basis="Perbup 1/2026"
        ),
        "modify": lambda: network.record_modification(
            replication_id,
            component="teknologi",
            nature="penyesuaian",
            core=rng.random() < 0.3,
            description="Aplikasi disesuaikan.",
            reason="Jaringan terbatas.",
            recorded_on=when,
        ),
        "evaluate": lambda: network.evaluate_replication(replication_id, evaluation(when)),
        "reject": lambda: network.reject_replication(replication_id, reason="Belum siap.", rejected_on=when),
        "discontinue": lambda: network.discontinue_replication(
            replication_id, reason="Anggaran habis.", effective_on=when
        ),
    }[pick]


def digests(runtime: Runtime) -> dict[str, str]:
    with runtime.views.connect() as conn:
        return {t.name: content_digest(row_digests(conn, t)) for t in (*INDEX_TABLES, *AUDIT_TABLES)}


def positions(runtime: Runtime) -> dict[str, int]:
    with runtime.views.connect() as conn:
        return dict(conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all())


def reading(runtime: Runtime) -> dict[str, Any]:
    return {"read": lambda after, limit: read_records(runtime.network, after, limit)}


def scratch_left(runtime: Runtime) -> list[str]:
    """Schemas or files a rebuild left behind."""
    if runtime.views.is_sqlite:
        return [p.name for p in runtime.settings.event_store_path.parent.glob("*puja_rebuild*")]
    return [
        s
        for s in inspect(runtime.views.engine).get_schema_names()
        if s.startswith(("puja_rebuild", "puja_ret"))
    ]


# --- rebuild and verify -----------------------------------------------------------------------


def test_rebuilt_views_equal_the_live_ones_after_a_long_random_command_sequence(runtime: Runtime) -> None:
    stored = random_commands(runtime.network, seed=2026, count=700)
    head = runtime.network.head_position()
    assert stored == head and head >= 250
    assert len({r.type for r in read_records(runtime.network, 0, head)}) == 12  # every kind of event
    assert runtime.runner.catch_up() == head
    live = digests(runtime)

    for projection in all_projections():
        checked = verify(runtime.views, projection, batch_size=37, **reading(runtime))
        assert checked.ok, checked.differing
        assert checked.position == head
        assert {t.table for t in checked.tables} == {t.name for t in projection.tables}

    for projection in all_projections():
        done = rebuild(runtime.views, projection, batch_size=37, **reading(runtime))
        assert done.position == head
    assert digests(runtime) == live
    assert positions(runtime) == {"index": head, "audit": head}
    with runtime.views.connect() as conn:
        assert list(conn.execute(select(audit_events.c.position).order_by("position")).scalars()) == list(
            range(1, head + 1)
        )
    assert scratch_left(runtime) == []


def test_verify_names_the_table_a_tampered_live_row_is_in(runtime: Runtime) -> None:
    random_commands(runtime.network, seed=7, count=60)
    runtime.runner.catch_up()
    with runtime.views.begin() as conn:
        victim = conn.execute(select(innovations.c.innovation_id).limit(1)).scalar_one()
        conn.execute(
            update(innovations).where(innovations.c.innovation_id == victim).values(name="Dipalsukan")
        )
        conn.execute(delete(audit_events).where(audit_events.c.position == 3))
    index, audit = (verify(runtime.views, p, **reading(runtime)) for p in all_projections())
    assert not index.ok
    assert [(t.table, t.only_live, t.only_rebuilt) for t in index.differing] == [("innovations", 1, 1)]
    assert not audit.ok
    assert [(t.table, t.only_live, t.only_rebuilt) for t in audit.differing] == [("audit_events", 0, 1)]
    assert scratch_left(runtime) == []


def test_a_rebuild_repairs_a_tampered_view(runtime: Runtime) -> None:
    random_commands(runtime.network, seed=8, count=60)
    runtime.runner.catch_up()
    before = digests(runtime)
    with runtime.views.begin() as conn:
        conn.execute(update(innovations).values(stage="inisiatif"))
    assert digests(runtime) != before
    index = all_projections()[0]
    rebuild(runtime.views, index, **reading(runtime))
    assert digests(runtime) == before
    assert verify(runtime.views, index, **reading(runtime)).ok


def test_a_stream_fed_projection_keeps_the_events_it_applied_out_of_order(runtime: Runtime) -> None:
    """Fed from Kafka, a projection may hold events above its contiguous position (projections/tracking.py);
    the rebuild holds them too, so the consumer, which will not see them again, loses nothing."""
    random_commands(runtime.network, seed=9, count=40)
    records = read_records(runtime.network, 0, 1000)
    gap = records[len(records) // 2]
    audit = all_projections()[1]
    with runtime.views.begin() as conn:
        for record in records:
            if record.position != gap.position:
                audit.project(conn, record)
        advance_watermark(conn, "audit", [r.position for r in records if r.position != gap.position])
    assert positions(runtime)["audit"] == gap.position - 1
    live = digests(runtime)["audit_events"]

    assert verify(runtime.views, audit, **reading(runtime)).ok
    done = rebuild(runtime.views, audit, **reading(runtime))
    assert done.position == gap.position - 1
    assert digests(runtime)["audit_events"] == live
    with runtime.views.begin() as conn:  # the late event arrives
        audit.project(conn, gap)
        assert advance_watermark(conn, "audit", [gap.position]) == records[-1].position
    with runtime.views.connect() as conn:
        held = list(conn.execute(select(audit_events.c.position).order_by("position")).scalars())
    assert held == [r.position for r in records]


def test_one_rebuild_of_a_projection_at_a_time(runtime: Runtime) -> None:
    index, audit = all_projections()
    with Scratch(runtime.views, index).exclusive():
        with pytest.raises(RebuildBusy, match="'index' is running"):
            rebuild(runtime.views, index, **reading(runtime))
        assert verify(runtime.views, audit, **reading(runtime)).ok  # another projection may go on
    assert verify(runtime.views, index, **reading(runtime)).ok


# --- while the API serves -----------------------------------------------------------------------


def test_a_rebuild_while_the_api_serves_keeps_reads_answering_and_loses_no_command(api: Any) -> None:
    admin = api.token("admin-test", "admin")
    auditor = api.token("bpk", "auditor")
    for n in range(30):
        fields = innovation_fields(name=f"Sebelum {n}", region=REGENCIES[n % len(REGENCIES)])
        assert (
            api.post(
                INNOVATIONS, {k: str(v) if isinstance(v, date) else v for k, v in fields.items()}, admin
            ).status_code
            == 201
        )
    api.settle()

    paused, resume = threading.Event(), threading.Event()
    statuses: list[int] = []
    stop_reading = threading.Event()

    def read_all_the_time() -> None:
        client = api.client.application.test_client()
        headers = {"Authorization": f"Bearer {auditor}"}
        while not stop_reading.is_set():
            statuses.append(client.get(f"{INNOVATIONS}?limit=500").status_code)
            statuses.append(client.get("/api/v1/audit/events?limit=500", headers=headers).status_code)

    def progress(position: int) -> None:
        if not paused.is_set():
            paused.set()
            assert resume.wait(60)

    results: dict[str, Any] = {}

    def rebuild_everything() -> None:
        for projection in all_projections():
            results[projection.name] = rebuild(
                api.runtime.views, projection, batch_size=4, progress=progress, **reading(api.runtime)
            )

    reader = threading.Thread(target=read_all_the_time)
    rebuilder = threading.Thread(target=rebuild_everything)
    reader.start()
    rebuilder.start()
    try:
        assert paused.wait(60)
        during = []
        for n in range(5):  # commands while the index is half rebuilt
            fields = innovation_fields(name=f"Selama {n}", region=REGENCIES[n])
            response = api.post(
                INNOVATIONS, {k: str(v) if isinstance(v, date) else v for k, v in fields.items()}, admin
            )
            assert response.status_code == 201
            during.append(response.get_json()["id"])
        api.settle()  # the live runner applied them to the live tables
        listed = {i["id"] for i in api.get(f"{INNOVATIONS}?limit=500").get_json()["items"]}
        assert set(during) <= listed
        reads_while_paused = len(statuses)
    finally:
        resume.set()
        rebuilder.join(120)
        stop_reading.set()
        reader.join(60)
    assert not rebuilder.is_alive() and set(results) == {"index", "audit"}
    assert len(statuses) > reads_while_paused > 0
    assert set(statuses) == {200}

    fields = innovation_fields(name="Sesudah", region=REGENCIES[0])  # the runner goes on in the new tables
    after = api.post(INNOVATIONS, {k: str(v) if isinstance(v, date) else v for k, v in fields.items()}, admin)
    assert after.status_code == 201
    head = api.settle(after)
    items = api.get(f"{INNOVATIONS}?limit=500").get_json()["items"]
    assert len(items) == 36 and {*during, after.get_json()["id"]} <= {i["id"] for i in items}
    log = api.get("/api/v1/audit/events?limit=500", auditor).get_json()["items"]
    assert [e["position"] for e in log] == list(range(1, head + 1))
    for projection in all_projections():
        assert verify(api.runtime.views, projection, **reading(api.runtime)).ok
    assert scratch_left(api.runtime) == []


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Any, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PUJA_DATA_DIR", str(tmp_path / "var"))
    if database_url:
        monkeypatch.setenv("PUJA_DATABASE_URL", database_url)
    from app.settings import Settings

    return Settings.from_env()


def test_the_command_line_rebuilds_with_a_progress_bar_and_verify_finds_a_tampered_table(
    cli_env: Any,
) -> None:
    runtime = Runtime.open(cli_env)
    try:
        random_commands(runtime.network, seed=11, count=40)
        runtime.runner.catch_up()
        head = runtime.network.head_position()
    finally:
        runtime.close()

    rebuilt = CliRunner().invoke(main, ["projections", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"index: rebuilt at position {head}" in rebuilt.stdout
    assert f"audit: rebuilt at position {head} (audit_events {head})" in rebuilt.stdout
    assert "rebuilding index" in rebuilt.stderr and f"{head}/{head}" in rebuilt.stderr

    verified = CliRunner().invoke(main, ["projections", "verify", "--name", "audit"])
    assert verified.exit_code == 0, verified.output
    assert "audit: audit_events equal" in verified.stdout and "index" not in verified.stdout

    runtime = Runtime.open(cli_env)
    try:
        with runtime.views.begin() as conn:
            conn.execute(update(innovations).values(retired=True))
    finally:
        runtime.close()
    tampered = CliRunner().invoke(main, ["projections", "verify"])
    assert tampered.exit_code == 1
    assert "index: innovations DIFFERS" in tampered.stdout
    assert "index: replications equal" in tampered.stdout
    assert "audit: audit_events equal" in tampered.stdout
