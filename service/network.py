"""The application service: one method per command of api.md — get, decide, save — over the event store.

Cross-aggregate rules (domain.md 3, 4, 5) are decided on what was read and guarded in the save's own
transaction (service/recorder.py): when a guard finds that the record moved underneath, the command is read and
decided again, so concurrent requests can neither break a rule nor lose an event.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    OperationalError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import resolve_topic

from domain.aggregate import RecordedAggregate
from domain.catalogue import Catalogue, catalogues, replikasi_level
from domain.enums import ReplicationStatus
from domain.errors import AggregateNotFound, InvalidInput, VersionConflict
from domain.evaluation import EvaluationInput
from domain.innovation import Innovation
from domain.published import EventRecord
from domain.replication import Replication
from service.chain import CanonicalParts
from service.recorder import Adoption, RegistryRow
from service.records import DirectRecords
from service.repository import PublishingRepository, copy_aggregate
from service.transcoder import DateAsISO, ModificationLogAsSegment, StoreTranscoder

log = logging.getLogger(__name__)

A = TypeVar("A", bound=RecordedAggregate)

SAVE_ATTEMPTS = 20
RETRY_BACKOFF_SECONDS = 0.002  # doubled on every retry, with full jitter, so that writers stop colliding
RETRY_BACKOFF_MAX_SECONDS = 0.1
TURN_STRIPES = 1024
REMEMBERED_FACTS = 100_000
SNAPSHOT_INTERVAL = 50
RECORDS_PER_SCAN = 1000


class StoreContention(Exception):
    """A command could not be stored after several attempts because the record kept moving."""


@dataclass(frozen=True)
class Outcome:
    """An aggregate after a command, and the global position of the last event stored for it. The aggregate is
    the one now in the repository's cache: read it, never change it."""

    aggregate: Any
    position: int


@dataclass(frozen=True)
class Decision:
    aggregate: Any
    expected_versions: dict[UUID, int]


class InnovationNetwork(Application):
    """PUJA INDAH's record of innovations and their replications."""

    name = "InnovationNetwork"
    snapshotting_intervals = {Innovation: SNAPSHOT_INTERVAL, Replication: SNAPSHOT_INTERVAL}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns = [threading.RLock() for _ in range(TURN_STRIPES)]
        self._regions: dict[UUID, str] = {}
        self._parties: dict[UUID, tuple[str, str]] = {}
        self._deciding = threading.local()
        self._known_position = 0  # the highest position this process has seen stored
        self._direct = DirectRecords.for_mapper(self.mapper)
        recorder: Any = self.recorder
        recorder.describe = self.canonical_parts
        linked = recorder.link_unchained()
        if linked:
            log.warning("linked %d events stored before the hash chain existed", linked)

    def canonical_parts(self, stored: StoredEvent) -> CanonicalParts:
        """How the recorder reads a stored event for the hash chain: decoded as recorded, as the export shows
        it.

        An event being stored is in its class's current shape, where the record read straight from the stored
        JSON (service/records.py) is the record of the event decoded as recorded (nothing to upcast: both are
        the library's record, tests/test_records.py and tests/test_chain_parts.py); any event that the direct
        reader leaves to the library is decoded here."""
        if self._direct is not None:
            record = self._direct.record_of(
                Notification(
                    id=0,
                    originator_id=stored.originator_id,
                    originator_version=stored.originator_version,
                    topic=stored.topic,
                    state=stored.state,
                )
            )
            if record is not None:
                return CanonicalParts.of(record)
        return CanonicalParts.of(EventRecord.of(self.recorded_event(stored), 0))

    def record_of(self, notification: Notification, as_recorded: bool = False) -> EventRecord:
        """A stored event in its public shape, with its links of the chain: in the current shape of its class
        (upcast, what projections and the stream use), or `as_recorded` (what the chain covers and the export
        shows, so that an event class changing shape never breaks the chain).

        Events in their class's current shape go straight from the stored JSON to the record
        (service/records.py), which gives the same record as decoding them into event objects."""
        if not as_recorded and self._direct is not None:
            record = self._direct.record_of(notification)
            if record is not None:
                return record
        event = (
            self.recorded_event(notification) if as_recorded else self.mapper.to_domain_event(notification)
        )
        return EventRecord.of(
            event,
            notification.id,
            getattr(notification, "hash", None),
            getattr(notification, "prev_hash", None),
        )

    def records_after(self, after: int, limit: int) -> list[EventRecord]:
        """Stored events after a global position, in position order, in their public shape (`record_of`)."""
        recorder: Any = self.recorder
        direct = self._direct
        if direct is not None and hasattr(recorder, "select_rows"):
            # The rows as stored (SQLite): no notification and no UUID object per event, unless an event needs
            # the library's path.
            records = []
            for row in recorder.select_rows(after, limit):
                record = direct.record_of_row(row)
                records.append(
                    record if record is not None else self.record_of(recorder.notification_of(row))
                )
            return records
        notifications = recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        return [self.record_of(n) for n in notifications]

    def recorded_event(self, stored: StoredEvent) -> Any:
        """A stored event decoded exactly as it was recorded: decrypted and decompressed like the library's
        mapper does, but never upcast to a later `class_version`."""
        mapper = self.mapper
        state = stored.state
        if mapper.cipher:
            state = mapper.cipher.decrypt(state)
        if mapper.compressor:
            state = mapper.compressor.decompress(state)
        values: dict[str, Any] = mapper.transcoder.decode(state)
        values.pop("class_version", None)
        values["originator_id"] = UUID(str(stored.originator_id))
        values["originator_version"] = stored.originator_version
        cls = resolve_topic(stored.topic)
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", values)
        return event

    def construct_repository(self) -> PublishingRepository:
        library = super().construct_repository()  # for the settings as the library reads them
        maxsize = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return PublishingRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(maxsize) if maxsize else None,
            fastforward=library.fastforward,
            fastforward_skipping=library.fastforward_skipping,
            deepcopy_from_cache=library.deepcopy_from_cache,
        )

    def construct_transcoder(self) -> Transcoder:
        transcoder = StoreTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(ModificationLogAsSegment())

    # --- innovations --------------------------------------------------------------------------

    def register_innovation(self, **fields: Any) -> Outcome:
        innovation = Innovation.register(**fields)
        return self._store(Decision(innovation, {}))

    def advance_innovation_stage(
        self, innovation_id: UUID, stage: str, effective_on: date, if_version: int | None = None
    ) -> Outcome:
        return self._act_on_innovation(
            innovation_id, if_version, lambda i: i.advance_stage(stage, effective_on)
        )

    def revise_innovation(
        self,
        innovation_id: UUID,
        changes: dict[str, Any],
        reason: str,
        if_version: int | None = None,
    ) -> Outcome:
        return self._act_on_innovation(innovation_id, if_version, lambda i: i.revise(changes, reason))

    def evaluate_innovation(
        self,
        innovation_id: UUID,
        evaluation: EvaluationInput,
        catalogue_version: str | None = None,
        if_version: int | None = None,
    ) -> Outcome:
        catalogue = self.catalogue_for(evaluation.year, catalogue_version)

        def decide() -> Decision:
            innovation = self.innovation(innovation_id)
            check_version(innovation, if_version)
            level = self.replikasi_level(innovation_id, innovation.region, evaluation.evaluated_on)
            innovation.evaluate(evaluation, catalogue, level)
            return Decision(innovation, {})

        return self._decide_and_store(decide, innovation_id)

    def retire_innovation(
        self, innovation_id: UUID, reason: str, effective_on: date, if_version: int | None = None
    ) -> Outcome:
        return self._act_on_innovation(innovation_id, if_version, lambda i: i.retire(reason, effective_on))

    # --- replications -------------------------------------------------------------------------

    def propose_replication(
        self,
        *,
        innovation_id: UUID,
        adopting_region: str,
        rationale: str,
        proposed_on: date,
        source_region: str | None = None,
        facilitator: str | None = None,
    ) -> Outcome:
        def decide() -> Decision:
            innovation = self.innovation_for_proposal(innovation_id)
            source = source_region or innovation.region
            # Only the rows that the proposal looks at: the source region's and the adopting region's.
            registry = self.registry_of(innovation_id, adopting_regions=(source, adopting_region))
            source_row = next(
                (
                    row
                    for row in registry
                    if row.adopting_region == source and row.status == ReplicationStatus.PENERAPAN
                ),
                None,
            )
            # Decide on the source replication as read here, at the version the save guards: the registry
            # row may already be stale (e.g. discontinued since), and that must not slip past the guard.
            source_replication = self.replication(source_row.replication_id) if source_row else None
            source_practice = source_replication.as_source() if source_replication else None
            open_replication = next(
                (
                    row.replication_id
                    for row in registry
                    if row.adopting_region == adopting_region and ReplicationStatus(row.status).is_open
                ),
                None,
            )
            replication = Replication.propose(
                innovation=innovation,
                adopting_region=adopting_region,
                source_region=source_region,
                source_practice=source_practice,
                open_replication_id=open_replication,
                facilitator=facilitator,
                rationale=rationale,
                proposed_on=proposed_on,
            )
            expected = {innovation.id: innovation.version}
            if source_replication is not None:
                expected[source_replication.id] = source_replication.version
            return Decision(replication, expected)

        return self._decide_and_store(decide, innovation_id)

    def sign_agreement(
        self,
        replication_id: UUID,
        *,
        document: str,
        document_number: str,
        signed_on: date,
        document_url: str | None = None,
        if_version: int | None = None,
    ) -> Outcome:
        return self._act_on_replication(
            replication_id,
            if_version,
            lambda r: r.sign_agreement(document, document_number, signed_on, document_url),
        )

    def reject_replication(
        self, replication_id: UUID, *, reason: str, rejected_on: date, if_version: int | None = None
    ) -> Outcome:
        return self._act_on_replication(replication_id, if_version, lambda r: r.reject(reason, rejected_on))

    def record_modification(
        self, replication_id: UUID, *, if_version: int | None = None, **fields: Any
    ) -> Outcome:
        return self._act_on_replication(replication_id, if_version, lambda r: r.record_modification(**fields))

    def advance_adoption(
        self,
        replication_id: UUID,
        *,
        stage: str,
        effective_on: date,
        legal_basis: str | None = None,
        evidence_urls: list[str] | None = None,
        if_version: int | None = None,
    ) -> Outcome:
        return self._act_on_replication(
            replication_id,
            if_version,
            lambda r: r.advance_adoption(stage, effective_on, legal_basis, evidence_urls),
        )

    def evaluate_replication(
        self,
        replication_id: UUID,
        evaluation: EvaluationInput,
        catalogue_version: str | None = None,
        if_version: int | None = None,
    ) -> Outcome:
        catalogue = self.catalogue_for(evaluation.year, catalogue_version)

        def decide() -> Decision:
            replication = self.replication(replication_id)
            check_version(replication, if_version)
            level = self.replikasi_level(
                replication.innovation_id, replication.adopting_region, evaluation.evaluated_on
            )
            replication.evaluate(evaluation, catalogue, level)
            return Decision(replication, {})

        return self._decide_and_store(decide, replication_id)

    def discontinue_replication(
        self,
        replication_id: UUID,
        *,
        reason: str,
        effective_on: date,
        if_version: int | None = None,
    ) -> Outcome:
        return self._act_on_replication(
            replication_id, if_version, lambda r: r.discontinue(reason, effective_on)
        )

    # --- reading the record -------------------------------------------------------------------

    def innovation(self, innovation_id: UUID, version: int | None = None) -> Innovation:
        return self._get(Innovation, "innovation", innovation_id, version)

    def replication(self, replication_id: UUID, version: int | None = None) -> Replication:
        return self._get(Replication, "replication", replication_id, version)

    def region_of(self, innovation_id: UUID) -> str:
        """An innovation's region (it never changes, so it is remembered)."""
        region = self._regions.get(innovation_id)
        if region is None:
            region = self.innovation(innovation_id).region
            self._remember(self._regions, innovation_id, region)
        return region

    def parties_of(self, replication_id: UUID) -> tuple[str, str]:
        """A replication's source and adopting regions (they never change, so they are remembered)."""
        parties = self._parties.get(replication_id)
        if parties is None:
            replication = self.replication(replication_id)
            parties = (replication.source_region, replication.adopting_region)
            self._remember(self._parties, replication_id, parties)
        return parties

    @staticmethod
    def _remember(memory: dict[UUID, Any], key: UUID, value: Any) -> None:
        if len(memory) >= REMEMBERED_FACTS:
            memory.clear()
        memory[key] = value

    def innovation_for_proposal(self, innovation_id: UUID) -> Innovation:
        try:
            return self.innovation(innovation_id)
        except AggregateNotFound:
            raise InvalidInput.field("innovation_id", f"No innovation with id {innovation_id}.") from None

    def registry_of(
        self, innovation_id: UUID, adopting_regions: Sequence[str] | None = None
    ) -> list[RegistryRow]:
        """The replications of an innovation in the registry: all, or those of some adopting regions."""
        rows: list[RegistryRow] = self.recorder.registry_of(  # type: ignore[attr-defined]
            innovation_id, adopting_regions
        )
        return rows

    def replikasi_level(self, innovation_id: UUID, source_region: str, as_of: date) -> int:
        """index.md: distinct regions that replicated the practice up to penerapan, as of a date. Only the
        registry rows of the source region that reached penerapan are read."""
        adoptions: list[Adoption] = self.recorder.adoptions_of(  # type: ignore[attr-defined]
            innovation_id, source_region
        )
        adopters = {
            row.adopting_region
            for row in adoptions
            if row.penerapan_on <= as_of
            and (row.status != ReplicationStatus.DIHENTIKAN or (row.closed_on or as_of) > as_of)
        }
        return replikasi_level(len(adopters))

    @staticmethod
    def catalogue_for(year: int, version: str | None) -> Catalogue:
        if version is not None:
            catalogue = catalogues().get(version)
            if catalogue is None:
                raise InvalidInput.field("catalogue", f"Unknown catalogue '{version}'.")
            return catalogue
        found = catalogues().for_year(year)
        if found is None:
            raise InvalidInput.field("year", f"No indicator catalogue covers {year}.")
        return found

    def head_position(self) -> int:
        head = self.recorder.max_notification_id() or 0
        self._known_position = max(self._known_position, head)
        return head

    def known_position(self) -> int:
        """A position at or below the head, without a query once one is known: the highest this process has
        stored or read. Whatever a command stores from now on lies above it."""
        return self._known_position or self.head_position()

    def stored_outcome(
        self, request_id: str, actor: str, after: int, aggregate_id: UUID | None = None
    ) -> Outcome | None:
        """What a request stored, when it stored anything after position `after`: its aggregate at the version
        the request left it and the position of its last event. For answering a retry of a request that died
        after its command was stored but before it answered (app/idempotency.py). A command's events are one
        aggregate's, stored together in one transaction; they are told by the request id, the actor and, when
        the request named it, the aggregate (a client may send the same X-Request-ID twice)."""
        wanted = None if aggregate_id is None else str(aggregate_id)
        last: EventRecord | None = None  # the request's last event so far
        while True:
            records = self.records_after(after, RECORDS_PER_SCAN)
            for record in records:
                if (
                    record.request_id == request_id
                    and record.actor == actor
                    and (wanted is None or record.aggregate_id == wanted)
                ):
                    last = record
                elif last is not None:
                    return self._outcome_at(last)  # its events are contiguous: the first other one ends them
            if len(records) < RECORDS_PER_SCAN:
                return None if last is None else self._outcome_at(last)
            after = records[-1].position

    def _outcome_at(self, record: EventRecord) -> Outcome:
        aggregate: Any = self.repository.get(UUID(record.aggregate_id), version=record.version)
        return Outcome(aggregate, record.position)

    # --- get, decide, save --------------------------------------------------------------------

    def _get(self, cls: type[A], kind: str, aggregate_id: UUID, version: int | None) -> A:
        repository: Any = self.repository
        try:
            if version is None and getattr(self._deciding, "optimistic", False) and repository.cache:
                # Deciding on the cached state without reading what was stored since: see
                # `_decide_and_store_in_turn`.
                if repository.is_cached(aggregate_id):
                    self._deciding.trusted_cache = True
                aggregate: Any = copy_aggregate(repository.latest(aggregate_id, read=False))
            else:
                aggregate = repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            raise AggregateNotFound(kind, aggregate_id) from None
        if not isinstance(aggregate, cls):
            raise AggregateNotFound(kind, aggregate_id)
        return aggregate

    def _act_on_innovation(
        self, innovation_id: UUID, if_version: int | None, act: Callable[[Innovation], None]
    ) -> Outcome:
        def decide() -> Decision:
            innovation = self.innovation(innovation_id)
            check_version(innovation, if_version)
            act(innovation)
            return Decision(innovation, {})

        return self._decide_and_store(decide, innovation_id)

    def _act_on_replication(
        self, replication_id: UUID, if_version: int | None, act: Callable[[Replication], None]
    ) -> Outcome:
        def decide() -> Decision:
            replication = self.replication(replication_id)
            check_version(replication, if_version)
            act(replication)
            return Decision(replication, {})

        return self._decide_and_store(decide, replication_id)

    def _decide_and_store(self, decide: Callable[[], Decision], key: UUID) -> Outcome:
        """Decide and save; on a guard that found the record moved, read and decide again. Commands of this
        process on the same aggregate (or, for proposals and retirement, the same innovation) take turns, so
        that they do not make each other retry; other processes are kept honest by the guards."""
        with self._turns[key.int % len(self._turns)]:
            return self._decide_and_store_in_turn(decide)

    def _decide_and_store_in_turn(self, decide: Callable[[], Decision]) -> Outcome:
        """The first decision is taken on the aggregates as cached, without reading the events stored since
        (by another process): if any of them has moved, the save's guards refuse it (its next version is taken,
        or an expected version is not met), and a refusal by the domain may come from the stale state too, so
        either is decided again on the aggregates read afresh, at once. The cache is never changed by a decision:
        the decision works on copies, and the decided aggregate is published only once its events are stored."""
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            optimistic = attempt == 1
            decision, trusted_cache = self._decide(decide, optimistic)
            try:
                return self._store(decision)
            except (IntegrityError, OperationalError) as error:
                if trusted_cache:
                    log.debug("decision on the cached state refused, deciding afresh: %s", error)
                    continue
                log.info("command retried after a concurrent change (attempt %d): %s", attempt, error)
                if attempt < SAVE_ATTEMPTS:
                    time.sleep(
                        random.uniform(0, min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_SECONDS * 2**attempt))
                    )
        raise StoreContention("The record kept changing; the command was not stored.")

    def _decide(self, decide: Callable[[], Decision], optimistic: bool) -> tuple[Decision, bool]:
        """A decision, and whether it was taken on a cached state that was not read afresh."""
        if not optimistic:
            return decide(), False
        deciding = self._deciding
        deciding.optimistic, deciding.trusted_cache = True, False
        try:
            return decide(), deciding.trusted_cache
        except Exception:
            if not deciding.trusted_cache:
                raise
        finally:
            deciding.optimistic = False
        return decide(), False

    def _store(self, decision: Decision) -> Outcome:
        aggregate = decision.aggregate
        # The library's `save()` for one aggregate (eventsourcing 9.5.6, pinned), without its runtime protocol
        # checks of what it is given.
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        processing.events.extend(aggregate.collect_events())
        processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs.update(
            expected_versions=decision.expected_versions, registry=list(registry_rows(aggregate))
        )
        recordings = self._record(processing)
        try:
            self._take_snapshots(processing)
        except Exception:
            # The command's events are stored: a failed snapshot must not make the command be decided and
            # stored a second time. Snapshots only shorten reads; the next interval takes one again.
            log.exception("snapshot not taken after a stored command")
        self._notify(recordings)
        repository: Any = self.repository
        if repository.cache:
            repository.publish(aggregate)
        position = recordings[-1].notification.id
        self._known_position = max(self._known_position, position)
        return Outcome(aggregate, position)


def check_version(aggregate: RecordedAggregate, if_version: int | None) -> None:
    if if_version is not None and aggregate.version != if_version:
        raise VersionConflict(if_version, aggregate.version)


def registry_rows(aggregate: Any) -> Iterable[RegistryRow]:
    if isinstance(aggregate, Replication):
        closed = aggregate.rejection or aggregate.discontinuation or {}
        yield RegistryRow(
            replication_id=aggregate.id,
            innovation_id=aggregate.innovation_id,
            source_region=aggregate.source_region,
            adopting_region=aggregate.adopting_region,
            status=aggregate.status,
            generation=aggregate.generation,
            penerapan_on=aggregate.penerapan_on,
            closed_on=closed.get("rejected_on") or closed.get("effective_on"),
        )


def read_records(network: InnovationNetwork, after: int, limit: int) -> list[EventRecord]:
    """Stored events after a global position, in position order, in their public shape."""
    return network.records_after(after, limit)
