"""`GET /v1/stream`: Server-Sent Events as a raw ASGI endpoint.

    /v1/stream?symbols=AAPL,MSFT     these symbols
    /v1/stream?symbols=*             every symbol
    /v1/stream?prefix=AA             symbols starting with AA (comma-separate several)
    &bars=1m|none                    bar intervals to receive (default 1m)
    &max_rate=2                      at most 2 events per second per symbol (conflated)
    &last_event_id=<cursor>          resume, for clients that cannot set Last-Event-ID
    &since=2026-12-01T14:30:00Z      replay each symbol's updates from that time, then
                                     live (a `replayed` event at the hand-over); a
                                     cursor (Last-Event-ID) wins over it on reconnects

A subject with a delayed entitlement (the token's `delay` claim) is served by that
delay's shared feed (tickwire.gateway.delay); one stream has one delay, announced
first by a `delayed` event (`{"delay_s": 900}`, no id).

The response headers go out through ASGI; body chunks are written to the socket's
transport directly when the server exposes it (uvicorn, HTTP/1.1), which lets one flush
cycle write many connections without a coroutine switch each, and shows the kernel
buffer so slow clients are detected. Otherwise a per-connection writer task is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from tickwire.gateway import cursor, delay, metrics, replay, sse
from tickwire.gateway.connection import (
    Connection,
    Interest,
    QueuedConnection,
    TransportConnection,
)
from tickwire.gateway.errors import GatewayError
from tickwire.gateway.expiry import Deadline
from tickwire.gateway.resume import ReplayGate
from tickwire.gateway.runtime import runtime_of
from tickwire.gateway.subscribe import (
    flag_from,
    interest_from,
    max_rate_from,
    split,
    within_limits,
)

log = logging.getLogger(__name__)

RAW_SEND = "tickwire.raw_send"
#: What a request holds before it knows its runtime: no slot
NO_CLAIM = ReplayGate(0).claim()

_QUERY = [
    ("symbols", "AAPL,MSFT, or * for every symbol"),
    ("prefix", "symbols starting with these (comma-separated)"),
    ("bars", "bar intervals (default 1m; none for no bars)"),
    ("max_rate", "at most this many events per second per symbol (conflated)"),
    ("last_event_id", "resume after this event id (the Last-Event-ID header wins)"),
    ("since", "RFC 3339 time with an offset: replay from it, then live"),
    ("delta", "1: quotes after the first as field-level `delta` events (README, Deltas)"),
]
_REFUSALS = {
    "400": "bad subscription, cursor or since; a replay over the budget; mixed delays",
    "401": "no or invalid token",
    "403": "symbols the token does not allow",
    "410": "since is older than Kafka retention (the message names the earliest time)",
    "429": "connection limits",
    "503": "not caught up with Kafka, a delayed feed still starting, limits down, the "
    "admission queue full or the node draining (the last three with Retry-After)",
}
#: The OpenAPI entry of this raw ASGI endpoint (the events: docs/asyncapi.yaml).
OPENAPI_PATH = {
    "get": {
        "summary": "Live updates over Server-Sent Events (events in docs/asyncapi.yaml)",
        "operationId": "stream",
        "parameters": [
            {"name": n, "in": "query", "required": False, "description": d,
             "schema": {"type": "string"}}
            for n, d in _QUERY
        ]
        + [{"name": "Last-Event-ID", "in": "header", "required": False,
            "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            **{
                status: {
                    "description": text,
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["error"],
                        "properties": {"error": {"type": "string"},
                                       "code": {"type": "string"}},
                    }}},
                }
                for status, text in _REFUSALS.items()
            },
        },
    }
}  # fmt: skip
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store, no-transform"),
    (b"x-accel-buffering", b"no"),  # nginx and friends: do not buffer
]


def server_transport(scope: Scope) -> tuple[Any, Any]:
    """The socket transport behind uvicorn's `send` and its request cycle, or Nones."""
    if scope.get("http_version") != "1.1":
        return None, None
    cycle = getattr(scope.get(RAW_SEND), "__self__", None)
    transport = getattr(cycle, "transport", None)
    needed = ("write", "writelines", "get_write_buffer_size", "abort", "is_closing")
    if transport is None or not all(hasattr(transport, n) for n in needed):
        return None, None
    return transport, cycle


class StreamEndpoint:
    """The ASGI app behind /v1/stream."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        claim = NO_CLAIM  # a Kafka replay's slot, held to its hand-over
        try:
            runtime = runtime_of(scope)
            claim = runtime.replays.claim()
            settings = runtime.settings
            query = request.query_params
            interest = interest_from(
                split(query.get("symbols")),
                split(query.get("prefix")),
                split(query.get("bars")) if "bars" in query else None,
                max_symbols=settings.gateway_max_symbols,
            )
            within_limits(Interest(bar_intervals=frozenset()), interest, settings)
            max_rate = max_rate_from(query.get("max_rate"))
            delta = flag_from(query.get("delta"), "delta")
            principal = runtime.auth.authenticate(request.headers, request.cookies)
            principal.check(interest)
            text = request.headers.get("last-event-id") or query.get("last_event_id")
            position = cursor.decode(text) if text else None
            since = replay.parse_since(query["since"]) if "since" in query else None
            delay_s = principal.delay_of(interest)
            await runtime.admit()  # new streams and resumes, at the node's pace
            hub, resumer = await runtime.hub_for(delay_s)
            plan = None
            if since is not None and position is None:
                claim.take()  # until the hand-over
                plan = await replay.plan(
                    hub, resumer, interest, since, settings.gateway_replay_max_records
                )
                position = (hub.tag, plan.positions)
            resumer.reserve(claim, interest, position)  # busy: 503 before the stream
            ip = request.client.host if request.client else "unknown"
            await runtime.limits.acquire(ip, principal.subject)
        except GatewayError as exc:
            claim.release()
            metrics.REFUSED.labels(str(exc.status)).inc()
            response = JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())
            await response(scope, receive, send)
            return

        transport, cycle = server_transport(scope)
        conn: Connection
        if transport is not None:
            conn = TransportConnection(
                transport,
                settings.gateway_write_high_water,
                cycle=cycle,
                send_buffer=settings.gateway_send_buffer_bytes,
                ip=ip,
                subject=principal.subject,
                max_rate=max_rate,
                max_pending_bars=settings.gateway_max_pending_bars,
                delta=delta,
            )
        else:

            async def send_frames(frames: list[bytes]) -> None:
                body = b"".join(frames)
                await send({"type": "http.response.body", "body": body, "more_body": True})

            conn = QueuedConnection(
                send_frames,
                "sse",
                ip=ip,
                subject=principal.subject,
                max_rate=max_rate,
                max_pending_bars=settings.gateway_max_pending_bars,
                delta=delta,
            )
        conn.deadline = Deadline.of(principal.expires_at, settings.gateway_token_expiry_notice_s)
        metrics.CONNECTIONS.labels("sse").inc()
        writer: asyncio.Task[None] | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            conn.backlog.append(sse.retry(settings.gateway_retry_ms))
            if isinstance(conn, QueuedConnection):
                writer = asyncio.create_task(conn.run_writer(lambda: hub.tally))
            if delay_s:
                conn.backlog.append(delay.notice(delay_s))
            tail = replay.tail(hub, conn, plan)
            outcome = await resumer.subscribe(conn, interest, position, tail, claim)
            claim.release()
            if plan is not None:
                metrics.REPLAYS.labels(outcome).inc()
            await self._until_closed(receive, conn)
        finally:
            claim.release()
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            hub.unregister(conn)
            await runtime.limits.release(ip, principal.subject)
            metrics.CONNECTIONS.labels("sse").dec()
            if not conn.closed:
                conn.cut("client")
            with contextlib.suppress(OSError, RuntimeError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _until_closed(receive: Receive, conn: Connection) -> None:
        """Wait until the client goes away or the server cuts the connection."""

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        if isinstance(conn, TransportConnection):
            await client_gone()  # a cut closes the transport, which ends receive()
            return
        waiter = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({waiter, conn.done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
