"""`/healthz`, `/readyz`, `/metrics` for any FastAPI app, and RED metrics per route.

Readiness is a set of named checks (async callables returning bool); `/readyz` answers
200 only when all pass, and 503 with the failing names otherwise.

The middleware also gives every request its correlation id for the JSON logs
(`tickwire.core.logs`): the trace id of a valid `traceparent` header, else the
client's `X-Request-ID` (up to 64 visible ASCII characters), else a new random id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickwire.core.logs import CORRELATION_ID
from tickwire.observability.tracing import trace_id

ReadinessCheck = Callable[[], Awaitable[bool]]

HTTP_REQUESTS = Counter(
    "tickwire_http_requests_total",
    "HTTP requests by route, method and status class",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "tickwire_http_request_duration_seconds",
    "HTTP request latency by route",
    ["service", "route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def correlation_id(scope: Scope) -> str:
    """The request's correlation id (see the module docstring)."""
    request_id = None
    for name, value in scope.get("headers", ()):
        if name == b"traceparent":
            found = trace_id(value)
            if found is not None:
                return found
        elif name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
            text = value.decode()
            if text.isprintable() and " " not in text:
                request_id = text
    return request_id or os.urandom(8).hex()


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    """A router with /healthz (process alive), /readyz (all checks) and /metrics."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is serving")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers",
        responses={503: {"description": "a dependency is not ready"}},
    )
    async def readyz() -> JSONResponse:
        failing = [name for name, check in checks.items() if not await check()]
        if failing:
            return JSONResponse({"status": "not ready", "failing": failing}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


class REDMiddleware:
    """Pure-ASGI middleware counting requests and latency per route template.

    Every response is counted, an unhandled exception as the 500 the server answers
    for it. Streaming responses (SSE) are counted when they start, not timed to their end.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        CORRELATION_ID.set(correlation_id(scope))
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            counted = True
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, path, method, f"{status // 100}xx").inc()
            HTTP_DURATION.labels(self.service, path, method).observe(time.perf_counter() - started)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # an unhandled error: the server answers 500 outside this middleware, so it
            # is counted here, or the 5xx alert could never fire
            if not counted:
                count(500)
            raise
