"""The HTTP API (api.md): a Flask application factory with one blueprint per resource.

Flask and the resources are imported by `create_app` only: the other commands of `puja` (the relay, the
consumers, migrations) import this package too, and start without them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.logs import configure_logging
from app.runtime import Runtime
from app.settings import Settings
from domain import regions

if TYPE_CHECKING:
    from flask import Flask


def _warm_up() -> None:
    """What the first requests of a process would otherwise build while others wait on them: the region index
    (read from the reference data once per process) and marshmallow's URL pattern (compiled once)."""
    from marshmallow import validate

    regions.all_regions()
    validate.URL()("https://example.org")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    from flask import Flask
    from flask_smorest import Api

    from app import http, schemas
    from app.resources import audit, index, innovations, ops, reference, replications

    settings = settings or (runtime.settings if runtime else Settings.from_env())
    configure_logging(settings.log_level)
    app = Flask("puja")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="PUJA INDAH replication tracker",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Event-sourced record of how proven regional innovations are replicated "
                "between pemda (PUJA INDAH). Errors are RFC 9457 problem documents.",
            },
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}, {}],
        },
    )
    api = Api(app)
    # `replication_metrics` of GET /api/v1/index/regions/{code} (projections/diffusion.py)
    api.spec.components.schema("ReplicationMetrics", schema=schemas.ReplicationMetricsSchema)
    for blueprint in (innovations.blp, replications.blp, audit.blp, index.blp, reference.blp, ops.blp):
        api.register_blueprint(blueprint)
    http.install(app)
    _warm_up()
    rt = runtime or Runtime.open(settings)
    app.extensions["puja"] = rt
    rt.start()
    logging.getLogger("app").info("service ready", extra={"data_dir": str(settings.data_dir)})
    return app
