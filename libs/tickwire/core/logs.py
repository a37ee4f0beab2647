"""Logging set-up: one JSON object per line (or plain text for a terminal).

Every JSON line carries `time` (RFC 3339, UTC), `level`, `service`, `logger`,
`message` and `correlation_id`: the W3C trace id of the request or record being
handled when there is one (`tickwire.observability.tracing` sets it), else an id the
HTTP middleware assigned to the request, else null. An exception adds `exc`. Log
collectors index these fields as they are; nothing has to be parsed out of a message.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

import orjson

#: The id that ties the log lines of one request or record together (see module doc).
CORRELATION_ID: ContextVar[str | None] = ContextVar("tickwire_correlation_id", default=None)

LogFormat = Literal["json", "text"]


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line (fields in the module docstring)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or CORRELATION_ID.get(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(
    level: str = "INFO", service: str = "tickwire", fmt: LogFormat = "json"
) -> None:
    """Configure the root logger for a service process (a later call replaces an
    earlier one); every library logger, uvicorn's included, propagates to it."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s %(message)s")
        )
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.root.level))
