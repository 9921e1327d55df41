"""Random command sequences against the real InnovationNetwork on a fresh SQLite file per example.

After every step the whole notification log is replayed by an independent model of domain.md, which checks
that what was stored never breaks a rule:
- at most one open replication per (innovation, adopting region);
- every replication's status history follows the allowed moves (rule 6), and nothing follows a terminal one;
- no replication of an innovation that was retired or not at penerapan when it was proposed (rule 4);
- a second-generation source was an adopter at penerapan when proposed, and its generation is one more (rule 3);
- business dates never go back within an aggregate and are never in the future (rule 9);
- versions of every aggregate are contiguous from 1, and the replication registry agrees with the log;
- a derived `replikasi` level counts distinct adopters at penerapan from the practice's region, as of the date.
Every command is also judged by the model before it runs: a command breaking no rule must succeed, and a
refused one must name one of the rules it breaks and change nothing (the head position stays where it was).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from conftest import innovation_fields
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.catalogue import catalogues
from domain.errors import InvalidInput, RuleViolation, VersionConflict
from domain.evaluation import EvaluationInput
from service.network import InnovationNetwork, read_records
from service.store import open_sqlite_network

REGIONS = ["35.04", "35.05", "35.06", "35.07", "35.71", "35"]
STAGE_ORDER = ["inisiatif", "uji_coba", "penerapan"]
OPEN = {"diusulkan", "disepakati", "uji_coba", "penerapan"}
# domain.md rule 6, written out independently of domain/replication.py.
MOVES = {
    ("diusulkan", "disepakati"),
    ("diusulkan", "ditolak"),
    ("disepakati", "uji_coba"),
    ("uji_coba", "penerapan"),
    *((status, "dihentikan") for status in OPEN),
}
STATUS_AFTER = {
    "AgreementSigned": "disepakati",
    "ReplicationRejected": "ditolak",
    "ReplicationDiscontinued": "dihentikan",
}
DATE_FIELDS = (
    "started_on",
    "effective_on",
    "proposed_on",
    "signed_on",
    "rejected_on",
    "recorded_on",
    "evaluated_on",
)
FUTURE = 10_000  # a shift meaning "tomorrow"
INVALID_INPUT = "invalid-input"
VERSION_CONFLICT = "version-conflict"

# Mostly plausible: a few days before the step before (date-order) to weeks after it; 1 in 12 is tomorrow.
shifts = st.integers(min_value=-3, max_value=44).map(lambda days: FUTURE if days > 40 else days)
scores = st.dictionaries(
    st.sampled_from(["regulasi", "sdm", "video", "replikasi", "popularitas"]),
    st.integers(min_value=0, max_value=4),
    max_size=3,
)
if_versions = st.sampled_from([None, None, "current", "stale"])


def evaluation_year(on: date) -> int:
    if catalogues().for_year(on.year) is not None:
        return on.year
    return max(c.year_to for c in catalogues().all() if c.year_to is not None)


def shifted(base: date, shift: int) -> date:
    if shift == FUTURE:
        return today() + timedelta(days=1)
    return min(base + timedelta(days=shift), today())


def bad_scores(levels: dict[str, int]) -> bool:
    return any(code == "popularitas" or (code != "replikasi" and level > 3) for code, level in levels.items())


# --- the model: domain.md replayed over the notification log ---------------------------------


@dataclass
class InnovationModel:
    region: str
    stage: str
    name: str
    digital: bool
    last_on: date
    penerapan_on: date | None
    retired: bool = False
    version: int = 1


@dataclass
class ReplicationModel:
    innovation_id: str
    source_region: str
    adopting_region: str
    generation: int
    last_on: date
    status: str = "diusulkan"
    history: list[str] = field(default_factory=lambda: ["diusulkan"])
    penerapan_on: date | None = None
    discontinued_on: date | None = None
    version: int = 1


class Model:
    """The record as domain.md says it must be; `replay` fails on any stored event that breaks a rule."""

    def __init__(self) -> None:
        self.innovations: dict[str, InnovationModel] = {}
        self.replications: dict[str, ReplicationModel] = {}
        self.last_position = 0

    @classmethod
    def replay(cls, records: list[Any]) -> Model:
        model = cls()
        for record in records:
            assert record.position > model.last_position
            model.last_position = record.position
            model.apply(record)
        return model

    def open_replication(self, innovation_id: str, adopting: str) -> ReplicationModel | None:
        found = [
            r
            for r in self.replications.values()
            if r.innovation_id == innovation_id and r.adopting_region == adopting and r.status in OPEN
        ]
        assert len(found) <= 1, f"two open replications of {innovation_id} by {adopting}"
        return found[0] if found else None

    def replikasi(self, innovation_id: str, practice_region: str, as_of: date) -> int:
        adopters = {
            r.adopting_region
            for r in self.replications.values()
            if r.innovation_id == innovation_id
            and r.source_region == practice_region
            and r.penerapan_on is not None
            and r.penerapan_on <= as_of
            and (r.discontinued_on is None or r.discontinued_on > as_of)
        }
        return min(len(adopters), 3)

    def apply(self, record: Any) -> None:
        data, kind = record.data, record.type
        assert (
            record.actor == "machine"
            and record.actor_role == "admin"
            and record.request_id.startswith("req-")
        )
        dates = [date.fromisoformat(data[f]) for f in DATE_FIELDS if f in data]
        for on in dates:
            assert on <= today(), f"{kind} dated in the future"
        if kind == "InnovationRegistered":
            assert record.version == 1 and record.aggregate_id not in self.innovations
            self.innovations[record.aggregate_id] = InnovationModel(
                region=data["region"],
                stage=data["stage"],
                name=data["name"],
                digital=data["digital"],
                last_on=dates[0],
                penerapan_on=dates[0] if data["stage"] == "penerapan" else None,
            )
            return
        if kind == "ReplicationProposed":
            self.apply_proposal(record, dates[0])
            return
        if record.aggregate_type == "Innovation":
            self.apply_to_innovation(record, dates)
        else:
            self.apply_to_replication(record, dates)

    def apply_to_innovation(self, record: Any, dates: list[date]) -> None:
        innovation = self.innovations[record.aggregate_id]
        data, kind = record.data, record.type
        assert record.version == innovation.version + 1, "innovation versions are not contiguous"
        innovation.version = record.version
        assert not innovation.retired, f"{kind} stored on a retired innovation"
        for on in dates:
            assert on >= innovation.last_on, f"{kind} dated before the step before"
            innovation.last_on = on
        if kind == "InnovationStageAdvanced":
            assert STAGE_ORDER.index(data["stage"]) > STAGE_ORDER.index(innovation.stage)
            innovation.stage = data["stage"]
            if data["stage"] == "penerapan":
                innovation.penerapan_on = dates[0]
        elif kind == "InnovationRevised":
            assert data["changes"], "an empty revision was stored"
            for name, value in data["changes"].items():
                assert getattr(innovation, name, object()) != value, f"unchanged field {name} recorded"
                if name in ("name", "digital"):
                    setattr(innovation, name, value)
        elif kind == "InnovationEvaluated":
            assert innovation.stage in ("uji_coba", "penerapan")
            expected = self.replikasi(record.aggregate_id, innovation.region, dates[0])
            assert data["scores"]["replikasi"] == expected
        elif kind == "InnovationRetired":
            innovation.retired = True
        else:
            raise AssertionError(f"unexpected event {kind}")

    def apply_proposal(self, record: Any, proposed_on: date) -> None:
        data = record.data
        assert record.version == 1 and record.aggregate_id not in self.replications
        innovation = self.innovations[data["innovation_id"]]
        assert not innovation.retired, "a retired innovation was replicated"
        assert innovation.stage == "penerapan", "an innovation not at penerapan was replicated"
        source, adopting = data["source_region"], data["adopting_region"]
        assert adopting not in (source, innovation.region)
        assert self.open_replication(data["innovation_id"], adopting) is None, "second open replication"
        if source == innovation.region:
            assert data["generation"] == 1
            assert innovation.penerapan_on is not None and proposed_on >= innovation.penerapan_on
        else:
            parent = self.open_replication(data["innovation_id"], source)
            assert parent is not None and parent.status == "penerapan", "source was not at penerapan"
            assert parent.penerapan_on is not None and proposed_on >= parent.penerapan_on
            assert data["generation"] == parent.generation + 1
        self.replications[record.aggregate_id] = ReplicationModel(
            innovation_id=data["innovation_id"],
            source_region=source,
            adopting_region=adopting,
            generation=data["generation"],
            last_on=proposed_on,
        )

    def apply_to_replication(self, record: Any, dates: list[date]) -> None:
        replication = self.replications[record.aggregate_id]
        data, kind = record.data, record.type
        assert record.version == replication.version + 1, "replication versions are not contiguous"
        replication.version = record.version
        for on in dates:
            assert on >= replication.last_on, f"{kind} dated before the step before"
            replication.last_on = on
        if kind == "ModificationRecorded":
            assert replication.status in OPEN, "a closed replication was modified"
            return
        if kind == "EvaluationRecorded":
            assert replication.status in ("uji_coba", "penerapan")
            expected = self.replikasi(replication.innovation_id, replication.adopting_region, dates[0])
            assert data["scores"]["replikasi"] == expected
            return
        target = data["stage"] if kind == "AdoptionAdvanced" else STATUS_AFTER[kind]
        assert (replication.status, target) in MOVES, f"{replication.status} -> {target} stored"
        replication.status = target
        replication.history.append(target)
        if target == "penerapan":
            replication.penerapan_on = dates[0]
        if target == "dihentikan":
            replication.discontinued_on = dates[0]


# --- the machine ------------------------------------------------------------------------------


class NetworkMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="puja-hypothesis-"))
        self.network: InnovationNetwork = open_sqlite_network(self.directory / "events.sqlite")
        self.innovation_ids: list[UUID] = []
        self.replication_ids: list[UUID] = []
        self.requests = 0

    def teardown(self) -> None:
        self.network.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- running one command, judged by the model ---------------------------------------------

    def model(self) -> Model:
        return Model.replay(read_records(self.network, 0, 1_000_000))

    def attempt(self, label: str, allowed_failures: set[str], command: Any, *aggregate_ids: UUID) -> Any:
        """Run `command`; it must succeed if `allowed_failures` is empty, else fail with one of them."""
        head = self.network.head_position()
        versions: dict[UUID, int] = {i: self.network.repository.get(i).version for i in aggregate_ids}
        self.requests += 1
        with acting_as(Actor("machine", "admin", f"req-{self.requests}")):
            try:
                outcome = command()
            except (RuleViolation, InvalidInput, VersionConflict) as error:
                kind = (
                    error.rule.value
                    if isinstance(error, RuleViolation)
                    else INVALID_INPUT
                    if isinstance(error, InvalidInput)
                    else VERSION_CONFLICT
                )
                event(f"{label}: {kind}")
                assert kind in allowed_failures, f"refused with {kind} ({error}); expected {allowed_failures}"
                assert self.network.head_position() == head, "a refused command stored something"
                for aggregate_id, version in versions.items():
                    assert self.network.repository.get(aggregate_id).version == version
                return None
        event(f"{label}: stored")
        assert not allowed_failures, f"accepted, but it breaks {allowed_failures}"
        assert outcome.position == self.network.head_position() == head + 1
        return outcome

    def if_version(self, choice: str | None, current: int) -> int | None:
        return {None: None, "current": current, "stale": current - 1}[choice]

    # --- innovations --------------------------------------------------------------------------

    @initialize(implemented=st.booleans())
    def two_replicable_innovations_and_two_proposals(self, implemented: bool) -> None:
        """Two innovations at penerapan and two proposals for the first, one of them sometimes already
        implemented so that the diffusion can go on from it."""
        self.register("35.04", "penerapan", 300)
        self.register("35.06", "penerapan", 250)
        for adopting in ("35.05", "35.07"):
            outcome = self.attempt(
                "propose",
                set(),
                lambda adopting=adopting: self.network.propose_replication(
                    innovation_id=self.innovation_ids[0],
                    adopting_region=adopting,
                    rationale="seen next door",
                    proposed_on=today() - timedelta(days=200),
                ),
            )
            self.replication_ids.append(outcome.aggregate.id)
        if implemented:
            self.network_path(self.replication_ids[0], [10, 10, 10])

    def network_path(self, replication_id: UUID, shifts: list[int]) -> None:
        """Agreement, trial and implementation of one replication, each judged on its own."""
        commands = [
            (
                "disepakati",
                lambda r, on, v: self.network.sign_agreement(
                    r, document="pks", document_number="9", signed_on=on
                ),
            ),
            (
                "uji_coba",
                lambda r, on, v: self.network.advance_adoption(r, stage="uji_coba", effective_on=on),
            ),
            (
                "penerapan",
                lambda r, on, v: self.network.advance_adoption(r, stage="penerapan", effective_on=on),
            ),
        ]
        for (target, act), shift in zip(commands, shifts, strict=True):
            self.replication_command(None, target, shift, None, act, replication_id)

    @rule(region=st.sampled_from(REGIONS), stage=st.sampled_from(STAGE_ORDER), age=st.integers(-1, 400))
    def register(self, region: str, stage: str, age: int) -> None:
        started_on = today() - timedelta(days=age)
        failures = {INVALID_INPUT} if age < 0 else set()
        fields = innovation_fields(region=region, stage=stage, started_on=started_on)
        outcome = self.attempt("register", failures, lambda: self.network.register_innovation(**fields))
        if outcome is not None:
            self.innovation_ids.append(outcome.aggregate.id)

    @precondition(lambda self: self.innovation_ids)
    @rule(data=st.data(), stage=st.sampled_from(STAGE_ORDER), shift=shifts, if_version=if_versions)
    def advance_innovation(self, data: st.DataObject, stage: str, shift: int, if_version: str | None) -> None:
        innovation_id = data.draw(st.sampled_from(self.innovation_ids))
        model = self.model().innovations[str(innovation_id)]
        on = shifted(model.last_on, shift)
        failures = self.innovation_failures(model, on, if_version)
        if STAGE_ORDER.index(stage) <= STAGE_ORDER.index(model.stage):
            failures.add("invalid-transition")
        self.attempt(
            "advance stage",
            failures,
            lambda: self.network.advance_innovation_stage(
                innovation_id, stage, on, if_version=self.if_version(if_version, model.version)
            ),
            innovation_id,
        )

    @precondition(lambda self: self.innovation_ids)
    @rule(data=st.data(), name=st.sampled_from(["Layanan Kesehatan Keliling", "Puskesmas Keliling"]))
    def revise_innovation(self, data: st.DataObject, name: str) -> None:
        innovation_id = data.draw(st.sampled_from(self.innovation_ids))
        digital = data.draw(st.booleans())
        model = self.model().innovations[str(innovation_id)]
        failures = {"retired"} if model.retired else set()
        if model.name == name and model.digital == digital:
            failures.add(INVALID_INPUT)
        self.attempt(
            "revise",
            failures,
            lambda: self.network.revise_innovation(
                innovation_id, {"name": name, "digital": digital}, "update"
            ),
            innovation_id,
        )

    @precondition(lambda self: self.innovation_ids)
    @rule(data=st.data(), levels=scores, shift=shifts)
    def evaluate_innovation(self, data: st.DataObject, levels: dict[str, int], shift: int) -> None:
        innovation_id = data.draw(st.sampled_from(self.innovation_ids))
        model = self.model().innovations[str(innovation_id)]
        on = shifted(model.last_on, shift)
        failures = self.innovation_failures(model, on, None)
        if model.stage == "inisiatif":
            failures.add("invalid-transition")
        if bad_scores(levels):
            failures.add(INVALID_INPUT)
        evaluation = EvaluationInput(year=evaluation_year(on), scores=levels, evaluated_on=on, evidence={})
        self.attempt(
            "evaluate innovation",
            failures,
            lambda: self.network.evaluate_innovation(innovation_id, evaluation),
            innovation_id,
        )

    @precondition(lambda self: len(self.innovation_ids) > 1)
    @rule(data=st.data(), shift=shifts)
    def retire_innovation(self, data: st.DataObject, shift: int) -> None:
        # The first innovation stays in service, so that its replications can grow over generations.
        innovation_id = data.draw(st.sampled_from(self.innovation_ids[1:]))
        model = self.model().innovations[str(innovation_id)]
        on = shifted(model.last_on, shift)
        failures = self.innovation_failures(model, on, None)
        self.attempt(
            "retire",
            failures,
            lambda: self.network.retire_innovation(innovation_id, "ended", on),
            innovation_id,
        )

    @staticmethod
    def innovation_failures(model: InnovationModel, on: date, if_version: str | None) -> set[str]:
        failures = set()
        if model.retired:
            failures.add("retired")
        if on > today():
            failures.add(INVALID_INPUT)
        if on < model.last_on:
            failures.add("date-order")
        if if_version == "stale":
            failures.add(VERSION_CONFLICT)
        return failures

    # --- replications -------------------------------------------------------------------------

    @precondition(lambda self: self.innovation_ids)
    @rule(
        data=st.data(),
        adopting=st.sampled_from(REGIONS),
        source_kind=st.sampled_from(["default", "origin", "adopter", "any"]),
        shift=shifts,
    )
    def propose(self, data: st.DataObject, adopting: str, source_kind: str, shift: int) -> None:
        innovation_id = data.draw(st.sampled_from([self.innovation_ids[0], *self.innovation_ids]))
        state = self.model()
        innovation = state.innovations[str(innovation_id)]
        replications = [r for r in state.replications.values() if r.innovation_id == str(innovation_id)]
        # Mostly adopters at penerapan (valid second-generation sources), sometimes any adopter.
        adopters = sorted(r.adopting_region for r in replications if r.status == "penerapan") or sorted(
            r.adopting_region for r in replications
        )
        source = {
            "default": None,
            "origin": innovation.region,
            "adopter": data.draw(st.sampled_from(adopters)) if adopters else None,
            "any": data.draw(st.sampled_from(REGIONS)),
        }[source_kind]
        self.propose_and_judge(state, innovation_id, adopting, source, shift)

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), adopting=st.sampled_from(REGIONS), shift=st.integers(-3, 30))
    def pass_on(self, data: st.DataObject, adopting: str, shift: int) -> None:
        """Diffusion: an adopter (preferably one at penerapan) becomes the source of a next generation."""
        state = self.model()
        candidates = [r for r in state.replications.values() if r.status == "penerapan"]
        parent = data.draw(st.sampled_from(candidates or list(state.replications.values())))
        self.propose_and_judge(state, UUID(parent.innovation_id), adopting, parent.adopting_region, shift)

    def propose_and_judge(
        self, state: Model, innovation_id: UUID, adopting: str, source: str | None, shift: int
    ) -> None:
        innovation = state.innovations[str(innovation_id)]
        effective_source = source or innovation.region
        parent = state.open_replication(str(innovation_id), effective_source)
        base = parent.penerapan_on if parent and parent.penerapan_on else innovation.penerapan_on
        on = shifted(base or innovation.last_on, shift)

        failures = set()
        if on > today():
            failures.add(INVALID_INPUT)
        if innovation.retired or innovation.stage != "penerapan":
            failures.add("innovation-not-replicable")
        if adopting in (effective_source, innovation.region):
            failures.add("same-region")
        if effective_source == innovation.region:
            if innovation.penerapan_on is not None and on < innovation.penerapan_on:
                failures.add("date-order")
        elif parent is None or parent.status != "penerapan":
            failures.add("invalid-source")
        elif parent.penerapan_on is not None and on < parent.penerapan_on:
            failures.add("date-order")
        if state.open_replication(str(innovation_id), adopting) is not None:
            failures.add("duplicate-open-replication")

        outcome = self.attempt(
            "propose",
            failures,
            lambda: self.network.propose_replication(
                innovation_id=innovation_id,
                adopting_region=adopting,
                source_region=source,
                rationale="seen next door",
                proposed_on=on,
            ),
            innovation_id,
        )
        if outcome is not None:
            self.replication_ids.append(outcome.aggregate.id)
            event(f"propose: generation {outcome.aggregate.generation}")

    def replication_command(
        self,
        data: st.DataObject | None,
        target: str | None,
        shift: int,
        if_version: str | None,
        act: Any,
        replication_id: UUID | None = None,
    ) -> None:
        """A status move to `target` (or, with None, a modification) dated `shift` days after the last step."""
        if replication_id is None:
            assert data is not None
            # Mostly one still on its way (where most moves are still possible), sometimes any of them.
            replications = self.model().replications.items()
            on_the_way = [
                UUID(k) for k, r in replications if r.status in ("diusulkan", "disepakati", "uji_coba")
            ]
            any_of = data.draw(st.integers(0, 2)) == 0 or not on_the_way
            replication_id = data.draw(st.sampled_from(self.replication_ids if any_of else on_the_way))
        model = self.model().replications[str(replication_id)]
        on = shifted(model.last_on, shift)
        failures = set()
        if target is None:
            if model.status not in OPEN:
                failures.add("invalid-transition")
        elif (model.status, target) not in MOVES:
            failures.add("invalid-transition")
        if on > today():
            failures.add(INVALID_INPUT)
        if on < model.last_on:
            failures.add("date-order")
        if if_version == "stale":
            failures.add(VERSION_CONFLICT)
        version = self.if_version(if_version, model.version)
        self.attempt(target or "modify", failures, lambda: act(replication_id, on, version), replication_id)

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), shift=shifts, if_version=if_versions)
    def sign(self, data: st.DataObject, shift: int, if_version: str | None) -> None:
        self.replication_command(
            data,
            "disepakati",
            shift,
            if_version,
            lambda r, on, v: self.network.sign_agreement(
                r, document="mou", document_number="7", signed_on=on, if_version=v
            ),
        )

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), shift=shifts)
    def reject(self, data: st.DataObject, shift: int) -> None:
        self.replication_command(
            data,
            "ditolak",
            shift,
            None,
            lambda r, on, v: self.network.reject_replication(r, reason="no", rejected_on=on),
        )

    @precondition(lambda self: self.replication_ids)
    @rule(
        data=st.data(), stage=st.sampled_from(["uji_coba", "penerapan"]), shift=shifts, if_version=if_versions
    )
    def adopt(self, data: st.DataObject, stage: str, shift: int, if_version: str | None) -> None:
        self.replication_command(
            data,
            stage,
            shift,
            if_version,
            lambda r, on, v: self.network.advance_adoption(r, stage=stage, effective_on=on, if_version=v),
        )

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), shift=shifts, if_version=if_versions)
    def modify(self, data: st.DataObject, shift: int, if_version: str | None) -> None:
        self.replication_command(
            data,
            None,
            shift,
            if_version,
            lambda r, on, v: self.network.record_modification(
                r,
                component="sasaran",
                nature="pengurangan",
                core=True,
                description="fewer villages",
                reason="budget",
                recorded_on=on,
                if_version=v,
            ),
        )

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), shifts=st.lists(st.integers(0, 30), min_size=3, max_size=3))
    def agree_try_and_implement(self, data: st.DataObject, shifts: list[int]) -> None:
        """The usual path in one step, for a replication still on it: agreement, trial, implementation
        (each judged on its own)."""
        on_the_way = [
            UUID(key)
            for key, r in self.model().replications.items()
            if r.status in ("diusulkan", "disepakati", "uji_coba")
        ]
        replication_id = data.draw(st.sampled_from(on_the_way or self.replication_ids))
        self.network_path(replication_id, shifts)

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), shift=shifts)
    def discontinue(self, data: st.DataObject, shift: int) -> None:
        self.replication_command(
            data,
            "dihentikan",
            shift,
            None,
            lambda r, on, v: self.network.discontinue_replication(r, reason="stopped", effective_on=on),
        )

    @precondition(lambda self: self.replication_ids)
    @rule(data=st.data(), levels=scores, shift=shifts)
    def evaluate_replication(self, data: st.DataObject, levels: dict[str, int], shift: int) -> None:
        replication_id = data.draw(st.sampled_from(self.replication_ids))
        model = self.model().replications[str(replication_id)]
        on = shifted(model.last_on, shift)
        failures = set()
        if model.status not in ("uji_coba", "penerapan"):
            failures.add("invalid-transition")
        if on > today() or bad_scores(levels):
            failures.add(INVALID_INPUT)
        if on < model.last_on:
            failures.add("date-order")
        evaluation = EvaluationInput(year=evaluation_year(on), scores=levels, evaluated_on=on, evidence={})
        self.attempt(
            "evaluate replication",
            failures,
            lambda: self.network.evaluate_replication(replication_id, evaluation),
            replication_id,
        )

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def the_record_keeps_every_rule(self) -> None:
        model = self.model()  # replaying asserts every rule on every stored event
        assert model.last_position == self.network.head_position()
        for pair in {(r.innovation_id, r.adopting_region) for r in model.replications.values()}:
            model.open_replication(*pair)
        for replication_id, replication in model.replications.items():
            assert all(
                pair in MOVES for pair in zip(replication.history, replication.history[1:], strict=False)
            )
            stored = self.network.replication(UUID(replication_id))
            assert (stored.status, stored.version) == (replication.status, replication.version)
        for innovation_id, innovation in model.innovations.items():
            stored_innovation = self.network.innovation(UUID(innovation_id))
            assert (stored_innovation.stage, stored_innovation.retired, stored_innovation.version) == (
                innovation.stage,
                innovation.retired,
                innovation.version,
            )
            registry = {str(row.replication_id): row for row in self.network.registry_of(UUID(innovation_id))}
            expected = {k: r for k, r in model.replications.items() if r.innovation_id == innovation_id}
            assert set(registry) == set(expected)
            for key, row in registry.items():
                assert (row.status, row.adopting_region, row.source_region, row.penerapan_on) == (
                    expected[key].status,
                    expected[key].adopting_region,
                    expected[key].source_region,
                    expected[key].penerapan_on,
                )


NetworkMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestNetworkRules = NetworkMachine.TestCase
