"""Logs are JSON lines carrying the request id (operations.md)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # Flask is looked up, not imported: the commands that serve no requests (the relay, the consumers)
            # start without it.
            flask = sys.modules.get("flask")
            record.request_id = None
            if flask is not None and flask.has_request_context():
                record.request_id = flask.g.get("request_id")
        return True


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_puja", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"))
    handler.addFilter(RequestIdFilter())
    handler._puja = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
