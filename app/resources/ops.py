"""Operations: liveness, readiness, projection status and Prometheus metrics."""

from __future__ import annotations

import math
from typing import Any

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from app.blueprints import Blueprint
from app.http import runtime
from app.problems import problem_response
from app.status import statuses

blp = Blueprint("operations", __name__, description="Health, readiness, projections and metrics.")


def projection_status() -> list[dict[str, Any]]:
    """The projections and the relay; in streaming mode also each consumer group's lag in messages."""
    rt = runtime()
    return statuses(rt, rt.stream_lag())


@blp.route("/healthz", methods=["GET"])
def healthz() -> Any:
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
def readyz() -> Any:
    try:
        found = projection_status()
    except Exception as error:  # the store cannot be read
        return problem_response(503, "not-ready", f"The event store is not reachable: {error}")
    stalled = [p["name"] for p in found if p["status"] == "stalled" and p["required"]]
    if stalled:
        return problem_response(
            503,
            "not-ready",
            f"Stalled (behind and not advancing for over {runtime().settings.stall_seconds:g} s): "
            f"{', '.join(stalled)}.",
            projections=found,
        )
    return {"status": "ready", "projections": found}


@blp.route("/api/v1/projections", methods=["GET"])
def projections() -> Any:
    return {"items": projection_status()}


class ProjectionCollector:
    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = statuses

    def collect(self) -> Any:
        label = ["projection"]
        position = GaugeMetricFamily("puja_projection_position", "Last applied global position", labels=label)
        head = GaugeMetricFamily("puja_projection_head_position", "Head of the event store", labels=label)
        lag = GaugeMetricFamily("puja_projection_lag", "Events not yet applied", labels=label)
        quiet = GaugeMetricFamily(
            "puja_projection_seconds_since_advance",
            "Seconds since the position last moved (NaN: never)",
            labels=label,
        )
        stalled = GaugeMetricFamily(
            "puja_projection_stalled", "1 when behind and not advancing (PUJA_STALL_SECONDS)", labels=label
        )
        group = ["projection", "group"]
        committed = GaugeMetricFamily(
            "puja_consumer_group_committed_offset",
            "Offsets the projection's consumer group committed, summed over the topics' partitions",
            labels=group,
        )
        end = GaugeMetricFamily(
            "puja_consumer_group_end_offset", "End offsets of the topics the group reads", labels=group
        )
        behind = GaugeMetricFamily(
            "puja_consumer_group_lag_messages", "Messages the group has not committed yet", labels=group
        )
        for status in self.statuses:
            name = [status["name"]]
            position.add_metric(name, status["position"])
            head.add_metric(name, status["head_position"])
            lag.add_metric(name, status["lag"])
            since = status["seconds_since_advance"]
            quiet.add_metric(name, math.nan if since is None else since)
            stalled.add_metric(name, 1 if status["status"] == "stalled" else 0)
            stream = status.get("stream")
            if stream and stream["lag_messages"] is not None:
                labels = [status["name"], stream["group"]]
                committed.add_metric(labels, stream["committed_offset"])
                end.add_metric(labels, stream["end_offset"])
                behind.add_metric(labels, stream["lag_messages"])
        yield from (position, head, lag, quiet, stalled, committed, end, behind)


@blp.route("/asyncapi.json", methods=["GET"])
def asyncapi() -> Any:
    from consumers.asyncapi import document

    return document(runtime().settings.kafka_topic_prefix)


@blp.route("/metrics", methods=["GET"])
def metrics() -> Any:
    registry = CollectorRegistry()
    registry.register(ProjectionCollector(projection_status()))  # type: ignore[arg-type]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
