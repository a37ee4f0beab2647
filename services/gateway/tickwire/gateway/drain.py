"""A graceful stop: the node tells its clients to come back elsewhere, a few at a time.

On SIGTERM (`tickwire.core.serve` hands it to `Drain.run`, then stops the server):
- readiness turns false and new streams are refused with 503 + `Retry-After` (the load
  balancer stops sending clients here; those it still sends go elsewhere);
- the open streams are ended over `GATEWAY_DRAIN_S`, in a random order, a slice each
  tick of one loop (no task per connection): an SSE stream gets a `retry:` of
  `GATEWAY_RETRY_MS` plus a random jitter of up to as much again, then a final
  `reconnect` event (`{"reason": "shutdown", "retry_ms": ...}`, no id) and the end of
  its body; a WebSocket the same `reconnect` event, then close code 1012 (service
  restart). Clients come back spread over the drain period plus their jitter, and any
  node resumes their cursor (no gap, no duplicate);
- then the server stops as usual (a second SIGTERM stops it at once).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence

import orjson

from tickwire.gateway import metrics, sse
from tickwire.gateway.connection import Connection
from tickwire.gateway.hub import Hub

#: WebSocket close code of a drained stream (RFC 6455: service restart).
WS_SERVICE_RESTART = 1012
#: Least time the drain loop sleeps between two slices of streams.
TICK_S = 0.05


def farewell(conn: Connection, retry_ms: int) -> bytes:
    """The last frames of a drained stream: `retry:` (SSE) and the `reconnect` event."""
    data = orjson.dumps({"reason": "shutdown", "retry_ms": retry_ms})
    event = conn.render_notice(b"reconnect", data)
    return event if conn.transport == "websocket" else sse.retry(retry_ms) + event


def jittered(retry_ms: int, rng: random.Random) -> int:
    """A reconnection delay between `retry_ms` and twice that (at least 1 s of spread)."""
    return retry_ms + rng.randint(0, max(retry_ms, 1000))


class Drain:
    """The node's drain (see the module docstring); `draining` is read by readiness and
    by the stream endpoints."""

    def __init__(self, drain_s: float, retry_ms: int, rng: random.Random | None = None) -> None:
        self.drain_s = drain_s
        self.retry_ms = retry_ms
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.draining = False

    async def run(self, hubs: Callable[[], Sequence[Hub]]) -> None:
        """Refuse new streams and end the open ones over the drain period."""
        self.draining = True
        streams = [(hub, conn) for hub in hubs() for conn in hub.connections]
        self.rng.shuffle(streams)
        start = time.monotonic()
        for i, (hub, conn) in enumerate(streams):
            wait = start + self.drain_s * i / len(streams) - time.monotonic()
            if wait >= TICK_S:  # those due sooner go in this slice
                await asyncio.sleep(wait)
            self.end(hub, conn)
        # streams admitted before the drain began and started since go too
        for hub in hubs():
            for conn in list(hub.connections):
                self.end(hub, conn)

    def end(self, hub: Hub, conn: Connection) -> None:
        """End one stream with its farewell."""
        if conn.closed:
            return
        metrics.DISCONNECTED.labels("drain").inc()
        conn.end("drain", farewell(conn, jittered(self.retry_ms, self.rng)), WS_SERVICE_RESTART)
        hub.unregister(conn)
