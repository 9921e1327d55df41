"""Operations: liveness, readiness, projection status and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from app.http import runtime
from app.problems import problem_response
from projections.tracking import read_tracked

blp = Blueprint("operations", __name__, description="Health, readiness, projections and metrics.")


def projection_status() -> list[dict[str, Any]]:
    """The in-process projections, and the relay to Kafka once one has run against this store."""
    rt = runtime()
    head = rt.network.head_position()
    statuses: list[dict[str, Any]] = rt.runner.status(head)
    with rt.views.connect() as conn:
        relay = read_tracked(conn, ["relay"]).get("relay")
    if relay is not None:
        lag = max(head - relay.position, 0)
        statuses.append(
            {
                "name": "relay",
                "position": relay.position,
                "head_position": head,
                "lag": lag,
                "last_advanced_at": relay.last_advanced_at.isoformat() if relay.last_advanced_at else None,
                "status": "ok" if lag == 0 else "catching_up",
            }
        )
    return statuses


@blp.route("/healthz", methods=["GET"])
def healthz() -> Any:
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
def readyz() -> Any:
    try:
        statuses = projection_status()
    except Exception as error:  # the store cannot be read
        return problem_response(503, "not-ready", f"The event store is not reachable: {error}")
    stalled = [p["name"] for p in statuses if p["status"] == "stalled"]
    if stalled:
        return problem_response(
            503, "not-ready", f"Projections stalled: {', '.join(stalled)}.", projections=statuses
        )
    return {"status": "ready", "projections": statuses}


@blp.route("/api/v1/projections", methods=["GET"])
def projections() -> Any:
    return {"items": projection_status()}


class ProjectionCollector:
    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = statuses

    def collect(self) -> Any:
        position = GaugeMetricFamily(
            "puja_projection_position", "Last applied global position", labels=["projection"]
        )
        head = GaugeMetricFamily(
            "puja_projection_head_position", "Head of the event store", labels=["projection"]
        )
        lag = GaugeMetricFamily("puja_projection_lag", "Events not yet applied", labels=["projection"])
        for status in self.statuses:
            position.add_metric([status["name"]], status["position"])
            head.add_metric([status["name"]], status["head_position"])
            lag.add_metric([status["name"]], status["lag"])
        yield from (position, head, lag)


@blp.route("/asyncapi.json", methods=["GET"])
def asyncapi() -> Any:
    from consumers.asyncapi import document

    return document(runtime().settings.kafka_topic_prefix)


@blp.route("/metrics", methods=["GET"])
def metrics() -> Any:
    registry = CollectorRegistry()
    registry.register(ProjectionCollector(projection_status()))  # type: ignore[arg-type]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
