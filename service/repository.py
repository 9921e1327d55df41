"""The application's repository: the library's, with a cache whose aggregates are never changed in place.

The library's cache (`AGGREGATE_CACHE_MAXSIZE`, `AGGREGATE_CACHE_FASTFORWARD`) keeps one object per aggregate and
fast-forwards it *in place* with the events stored since (by any process), so a reader copying it may meet it
half-way through an event. Here an aggregate in the cache is published once and never mutated again:

- a read (`get`) fast-forwards a *copy* of the cached aggregate and publishes the copy;
- a command decides on a copy (`latest(..., read=False)` without the fast-forward read; see
  `InnovationNetwork._decide_and_store_in_turn`), and once its events are stored, the decided aggregate is
  published (`publish`);
- a newer state never gives way to an older one (a reader that fast-forwarded before a command of this process
  saved publishes nothing older than what the command published).

Deciding without the fast-forward read is safe because every save is guarded: the aggregate's next version is
unique in the store, and the versions of the other aggregates a decision read are checked in the save's own
transaction (`expected_versions`), so a decision taken on a state that another process has moved past is
refused and taken again on the state read afresh.
"""

from __future__ import annotations

import threading
from copy import deepcopy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProjectorFunction, Repository

from domain.replication import ModificationLog

IMMUTABLE = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        UUID,
        date,
        datetime,
        time,
        timedelta,
        Decimal,
        ModificationLog,
    }
)
"""Types whose values are never changed in place (ModificationLog: recording gives a new log), so a copy of an
aggregate may share them."""


def copy_state(value: Any) -> Any:
    """A deep copy of an aggregate's attribute value: the plain containers an aggregate holds (dict, list,
    tuple) are copied, immutable values shared, anything else left to `copy.deepcopy`. About four times faster
    than `deepcopy`, which would visit every value and keep a memo of them."""
    cls = type(value)
    if cls in IMMUTABLE:
        return value
    if cls is dict:
        return {key: copy_state(item) for key, item in value.items()}
    if cls is list:
        return [copy_state(item) for item in value]
    if cls is tuple:
        return tuple(copy_state(item) for item in value)
    return deepcopy(value)


def copy_aggregate(aggregate: Any) -> Any:
    """A copy of an aggregate to decide on, sharing nothing that a decision could change with the original."""
    copy = object.__new__(type(aggregate))
    copy.__dict__.update({name: copy_state(value) for name, value in vars(aggregate).items()})
    return copy


def project(aggregate: Any, events: Any) -> Any:
    """The library's `project_aggregate`, without its runtime protocol check of every event."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class PublishingRepository(Repository[UUID]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._publishing = threading.Lock()

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: ProjectorFunction[Any, Any] = project,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        if version is not None or self.cache is None or not self.fastforward:
            return super().get(
                aggregate_id,
                version=version,
                projector_func=projector_func,
                fastforward_skipping=fastforward_skipping,
                deepcopy_from_cache=deepcopy_from_cache,
            )
        aggregate = self.latest(aggregate_id, projector_func=projector_func)
        return copy_aggregate(aggregate) if deepcopy_from_cache and self.deepcopy_from_cache else aggregate

    def latest(
        self, aggregate_id: UUID, *, read: bool = True, projector_func: ProjectorFunction[Any, Any] = project
    ) -> Any:
        """The aggregate as published in the cache (to be copied before any change). With `read`, it is first
        brought up to date with the events stored since; without, it is taken as cached, and only an aggregate
        not in the cache is read."""
        assert self.cache is not None
        try:
            cached: Any = self.cache.get(aggregate_id)
        except KeyError:
            aggregate = self._reconstruct_aggregate(aggregate_id, None, projector_func)
            self.publish(aggregate)
            return aggregate
        if not read:
            return cached
        new_events = list(self.event_store.get(originator_id=aggregate_id, gt=cached.version))
        if not new_events:
            return cached
        aggregate = projector_func(copy_aggregate(cached), new_events)
        if aggregate is None:
            raise AggregateNotFoundError(aggregate_id)
        self.publish(aggregate)
        return aggregate

    def is_cached(self, aggregate_id: UUID) -> bool:
        return self.cache is not None and aggregate_id in self.cache.cache

    def publish(self, aggregate: Any) -> None:
        """Put an aggregate in the cache unless a newer state of it is there already. The aggregate must never
        be changed afterwards."""
        if self.cache is None:
            return
        with self._publishing:
            try:
                cached: Any = self.cache.get(aggregate.id)
            except KeyError:
                cached = None
            if cached is None or cached.version < aggregate.version:
                self.cache.put(aggregate.id, aggregate)
