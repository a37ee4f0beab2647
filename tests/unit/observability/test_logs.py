"""JSON log lines carry service, level and the request's correlation id: the trace id
of its W3C `traceparent`, else its `X-Request-ID`, else an id of its own; and a
traceparent is forwarded by a hop unchanged when no span is recorded."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from tickwire.core.logs import JsonFormatter
from tickwire.observability import tracing
from tickwire.observability.http import REDMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("ingest"))
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("tests.logs").warning("handled %s", "work")
        return {}

    app.add_middleware(REDMiddleware, service="ingest")
    return app


async def _logged(out: io.StringIO, headers: dict[str, str]) -> dict[str, object]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/work", headers=headers)).status_code == 200
    (line,) = out.getvalue().splitlines()
    record: dict[str, object] = json.loads(line)
    return record


async def test_a_request_with_traceparent_logs_its_trace_id(lines: io.StringIO) -> None:
    record = await _logged(lines, {"traceparent": TRACEPARENT, "x-request-id": "r-1"})
    assert record["service"] == "ingest"
    assert record["level"] == "WARNING"
    assert record["logger"] == "tests.logs"
    assert record["message"] == "handled work"
    assert record["correlation_id"] == TRACE_ID
    assert str(record["time"]).endswith("+00:00")


async def test_without_traceparent_the_request_id_then_a_fresh_id(lines: io.StringIO) -> None:
    assert (await _logged(lines, {"x-request-id": "req-42"}))["correlation_id"] == "req-42"
    lines.seek(0)
    lines.truncate()
    fresh = (await _logged(lines, {"x-request-id": "has space"}))["correlation_id"]
    assert isinstance(fresh, str)
    assert len(fresh) == 16
    assert fresh != "has space"


def test_a_hop_without_export_forwards_the_traceparent_unchanged() -> None:
    tracing.configure("test", None)
    assert tracing.hop(TRACEPARENT, "x") == TRACEPARENT.encode()
    assert tracing.trace_id(TRACEPARENT.encode()) == TRACE_ID
    assert tracing.trace_id("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    assert tracing.traced([("ce_id", b"1"), ("traceparent", TRACEPARENT.encode())]) is not None
    assert tracing.traced([("traceparent", TRACEPARENT.encode()), ("ce_id", b"1")]) is None
