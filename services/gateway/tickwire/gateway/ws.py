"""`/v1/ws`: the same events and cursors over WebSocket, with subscribe/unsubscribe.

Client -> server, JSON text messages:
    {"type": "subscribe", "symbols": ["AAPL"], "prefixes": [], "bars": ["1m"],
     "cursor": "<optional id to resume from>", "delta": true (quotes as deltas),
     "since": "<optional RFC 3339 time to replay from (a cursor wins over it)>"}
    {"type": "unsubscribe", "symbols": ["AAPL"]}
    {"type": "refresh", "token": "<a fresh JWT of the same subject>"}
Server -> client: text messages, each a JSON array of events, at most
GATEWAY_WS_MAX_MESSAGE_BYTES (64 KiB) long: a large backlog comes as several, in order
    {"event": "snapshot"|"quote"|"delta"|"bar"|"reset"|"replayed", "id": "<cursor>",
     "data": {...}}
    {"event": "subscribed", "data": {"symbols": [...], "outcome": ..., "delay_s": 0}}
    {"event": "unsubscribed", "data": {"symbols": [...]}}
    {"event": "error", "data": {"status": 400|401|403|503, "message": "...",
     "code": "too_many_symbols" (where defined), "retry_after": 1 (where known)}}
    {"event": "token-expiring", "data": {"exp": ...}}
    {"event": "refreshed", "data": {"exp": ...}}
Initial subscriptions may also be given in the query string, as for /v1/stream.
Authentication happens at the handshake (header or cookie); refusals close with 1008.
The token's `exp` ends the stream (tickwire.gateway.expiry): `token-expiring` first,
then at `exp` an `error` with code `token_expired` and close code 4001. A `refresh`
before that moves the deadline to the new token's `exp`: same subject, and the new
token must still allow every current subscription; a refused one answers an `error`
with a code (errors.RefreshRefusedError) and changes nothing.
A subject with a delayed entitlement gets every subscription of one connection at one
delay (the first subscription's); a subscription of another delay is refused (400).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from tickwire.gateway import cursor, metrics, replay
from tickwire.gateway.auth import Principal
from tickwire.gateway.browser import origin_allowed
from tickwire.gateway.connection import Interest, WebSocketConnection
from tickwire.gateway.errors import (
    BadRequestError,
    DrainingError,
    ForbiddenError,
    GatewayError,
    OverloadedError,
    RefreshRefusedError,
    UnauthorizedError,
)
from tickwire.gateway.expiry import Deadline
from tickwire.gateway.hub import Hub
from tickwire.gateway.runtime import Runtime, runtime_of
from tickwire.gateway.subscribe import (
    flag_from,
    interest_from,
    max_rate_from,
    split,
    within_limits,
)

router = APIRouter()

#: Longest request accepted (a subscription of GATEWAY_MAX_SYMBOLS symbols fits easily).
#: orjson refuses nesting deeper than 1024 levels, so a parse cannot exhaust the stack.
MAX_MESSAGE_CHARS = 256 * 1024


#: The close reason sent with a close code other than 1000, by why the stream ended.
CLOSE_REASONS = {
    "token_expired": "token expired: refresh before exp",
    "drain": "service restart: reconnect with your cursor",
}


def messages(events: list[bytes], limit: int) -> list[bytes]:
    """Events (JSON objects) as JSON arrays of at most `limit` bytes each, in order: a
    large backlog (snapshots, a replay) goes out as several messages, each a whole JSON
    document, below what common clients accept (browsers' and proxies' defaults are
    around 64 KiB-1 MiB). An event longer than the limit by itself (only a record value
    near the 64 KiB record limit) goes alone."""
    out: list[bytes] = []
    batch: list[bytes] = []
    size = 1  # "["
    for event in events:
        extra = len(event) + 1  # its comma, or the closing "]"
        if batch and size + extra > limit:
            out.append(b"[" + b",".join(batch) + b"]")
            batch, size = [], 1
        batch.append(event)
        size += extra
    if batch:
        out.append(b"[" + b",".join(batch) + b"]")
    return out


def _control(event: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps([{"event": event, "data": data}])


@router.websocket("/v1/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    """Stream events over a WebSocket; see the module docstring for the protocol."""
    try:
        runtime = runtime_of(websocket.scope)
        if not origin_allowed(
            websocket.headers, websocket.url.scheme, runtime.settings.gateway_cors_origins
        ):
            raise ForbiddenError("this page's origin may not open a stream")
        principal = runtime.auth.authenticate(websocket.headers, websocket.cookies)
        max_rate = max_rate_from(websocket.query_params.get("max_rate"))
        delta = flag_from(websocket.query_params.get("delta"), "delta")
        await runtime.admit()
        hub, _ = await runtime.ready_hub()
        ip = websocket.client.host if websocket.client else "unknown"
        await runtime.limits.acquire(ip, principal.subject)
    except (OverloadedError, DrainingError) as exc:  # HTTP 503 + Retry-After, as for SSE
        metrics.REFUSED.labels(str(exc.status)).inc()
        await websocket.send_denial_response(
            JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())
        )
        return
    except GatewayError as exc:
        metrics.REFUSED.labels(str(exc.status)).inc()
        await websocket.close(code=1008, reason=exc.message[:100])
        return
    await websocket.accept()

    limit = runtime.settings.gateway_ws_max_message_bytes

    async def send_frames(frames: list[bytes]) -> None:
        for message in messages(frames, limit):
            await websocket.send_text(message.decode())

    conn = WebSocketConnection(
        send_frames,
        "websocket",
        ip=ip,
        subject=principal.subject,
        max_rate=max_rate,
        max_pending_bars=runtime.settings.gateway_max_pending_bars,
        delta=delta,
    )
    conn.deadline = Deadline.of(
        principal.expires_at, runtime.settings.gateway_token_expiry_notice_s
    )
    metrics.CONNECTIONS.labels("websocket").inc()
    session = _Session(runtime, principal, conn, hub)
    writer = asyncio.create_task(conn.run_writer(lambda: session.hub.tally))
    try:
        query = websocket.query_params
        if "symbols" in query or "prefix" in query:
            try:
                await session.subscribe(
                    {
                        "symbols": split(query.get("symbols")),
                        "prefixes": split(query.get("prefix")),
                        "bars": split(query.get("bars")) if "bars" in query else None,
                        "cursor": query.get("last_event_id"),
                        "since": query.get("since"),
                    }
                )
            except GatewayError as exc:  # answered like a request sent as a message
                session.refuse(exc)
        reader = asyncio.create_task(session.read(websocket))
        await asyncio.wait({reader, writer, conn.done}, return_when=asyncio.FIRST_COMPLETED)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await reader
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await writer
        session.hub.unregister(conn)
        await runtime.limits.release(ip, principal.subject)
        metrics.CONNECTIONS.labels("websocket").dec()
        if not conn.closed:
            conn.cut("client")
        # a client that stopped reading never makes room for the close frame
        with contextlib.suppress(RuntimeError, TimeoutError, WebSocketDisconnect):
            reason = CLOSE_REASONS.get(conn.close_reason, "") if conn.close_code != 1000 else ""
            await asyncio.wait_for(websocket.close(conn.close_code, reason), 1.0)


class _Session:
    """One WebSocket client's subscribe/unsubscribe requests."""

    def __init__(
        self, runtime: Runtime, principal: Principal, conn: WebSocketConnection, hub: Hub
    ) -> None:
        self.runtime = runtime
        self.principal = principal
        self.conn = conn
        self.hub = hub  # the real-time hub, or the delayed feed's once subscribed
        self.delay: float | None = None  # fixed by the first subscription

    async def read(self, websocket: WebSocket) -> None:
        """Handle client messages until it disconnects."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                # backpressure: the next request is read only once the frames queued for
                # the previous ones went out, so a client that sends without reading
                # cannot grow its backlog (it is cut as slow instead)
                await self.conn.drained.wait()
                received = await websocket.receive()
                if received["type"] == "websocket.disconnect":
                    return
                text = received.get("text")
                try:
                    if text is None:
                        raise GatewayError("send requests as JSON text messages, not binary")
                    if len(text) > MAX_MESSAGE_CHARS:
                        raise GatewayError(f"a request is at most {MAX_MESSAGE_CHARS} characters")
                    message = orjson.loads(text)
                    if not isinstance(message, dict):
                        raise GatewayError("a message is a JSON object")
                    kind = message.get("type")
                    if kind == "subscribe":
                        await self.subscribe(message)
                    elif kind == "unsubscribe":
                        self.unsubscribe(message)
                    elif kind == "refresh":
                        self.refresh(message)
                    else:
                        raise GatewayError("type must be subscribe, unsubscribe or refresh")
                except orjson.JSONDecodeError:
                    self.refuse(BadRequestError("not JSON"))
                except GatewayError as exc:
                    self.refuse(exc)

    def refuse(self, exc: GatewayError) -> None:
        """Answer a refused request with an `error` event (its code where there is one)."""
        data: dict[str, Any] = {"status": exc.status, "message": exc.message}
        if exc.code is not None:
            data["code"] = exc.code
        retry_after = exc.headers().get("Retry-After")
        if retry_after is not None:
            data["retry_after"] = int(retry_after)
        self.conn.backlog.append(_control("error", data)[1:-1])
        self._wake()

    def _wake(self) -> None:
        self.conn.drained.clear()
        self.hub.dirty.add(self.conn)
        self.hub.wake.set()

    async def subscribe(self, message: dict[str, Any]) -> None:
        """Add symbols (snapshot, or replay from the message's cursor)."""
        interest = interest_from(
            _strings(message.get("symbols")),
            _strings(message.get("prefixes")),
            _strings(message.get("bars")) if message.get("bars") is not None else None,
            max_symbols=self.runtime.settings.gateway_max_symbols,
        )
        # counted over the connection's subscriptions: checked before anything changes
        within_limits(self.conn.interest, interest, self.runtime.settings)
        self.principal.check(interest)
        if "delta" in message:  # the connection's mode, from its next frames on
            self.conn.set_delta(flag_from(message["delta"], "delta"))
        text = message.get("cursor")
        position = cursor.decode(text) if isinstance(text, str) and text else None
        since_text = message.get("since")
        if since_text is not None and not isinstance(since_text, str):
            raise BadRequestError("since must be an RFC 3339 time string")
        since = replay.parse_since(since_text) if since_text else None
        delay = self.principal.delay_of(interest)
        if self.delay is not None and delay != self.delay:
            raise BadRequestError(
                f"this connection streams with a {self.delay:g} s delay; subscribe to "
                f"symbols of a {delay:g} s delay on another connection"
            )
        hub, resumer = await self.runtime.hub_for(delay)
        with self.runtime.replays.claim() as claim:  # a Kafka replay's, to its hand-over
            plan = None
            if since is not None and position is None:
                claim.take()
                plan = await replay.plan(
                    hub, resumer, interest, since, self.runtime.settings.gateway_replay_max_records
                )
                position = (hub.tag, plan.positions)
            resumer.reserve(claim, interest, position)  # busy: an error, nothing changed
            self.delay, self.hub = delay, hub
            outcome = await resumer.subscribe(
                self.conn, interest, position, replay.tail(hub, self.conn, plan), claim
            )
        if plan is not None:
            metrics.REPLAYS.labels(outcome).inc()
        self.conn.backlog.append(
            _control(
                "subscribed",
                {"symbols": _listed(interest), "outcome": outcome, "delay_s": delay},
            )[1:-1]
        )
        self._wake()

    def refresh(self, message: dict[str, Any]) -> None:
        """Renew the connection's token in place (see the module docstring)."""
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise RefreshRefusedError(400, "bad_refresh", "refresh needs a token string")
        auth = self.runtime.auth
        if not auth.enabled or self.conn.deadline is None:
            raise RefreshRefusedError(400, "auth_off", "auth is off: there is nothing to renew")
        try:
            principal = auth.verify(token)
        except UnauthorizedError as exc:
            raise RefreshRefusedError(401, "invalid_token", exc.message) from None
        if principal.subject != self.principal.subject:
            raise RefreshRefusedError(
                403, "subject_mismatch", "a refresh must be a token of the same subject"
            )
        try:
            principal.check(self.conn.interest)
            delay = principal.delay_of(self.conn.interest)
        except GatewayError as exc:
            raise RefreshRefusedError(
                403,
                "scope_narrowed",
                f"the new token does not cover this connection's subscriptions: {exc.message}",
            ) from None
        if self.delay is not None and delay != self.delay:
            raise RefreshRefusedError(
                403, "scope_narrowed", "the new token's delay differs from this connection's"
            )
        assert principal.expires_at is not None  # verify requires exp
        self.principal = principal
        self.conn.deadline.extend(principal.expires_at)
        deadline = self.conn.deadline
        self.conn.backlog.append(self.conn.render_notice(b"refreshed", deadline.notice_data()))
        self._wake()

    def unsubscribe(self, message: dict[str, Any]) -> None:
        """Stop symbols; unsent updates for them are dropped."""
        symbols = frozenset(_strings(message.get("symbols")))
        self.hub.unregister(self.conn, symbols)
        self.conn.backlog.append(_control("unsubscribed", {"symbols": sorted(symbols)})[1:-1])
        self._wake()


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return split(value)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _listed(interest: Interest) -> list[str]:
    return sorted(interest.symbols) + (["*"] if interest.everything else [])
