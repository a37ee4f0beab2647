"""How fast one node takes new streams: a token bucket with a bounded queue.

A reconnect storm (a node drained, a network blip) brings thousands of resumes at once;
each costs a handshake, an auth check and a replay. Every new SSE stream and WebSocket
handshake, resumes included, takes a token: `GATEWAY_ADMISSION_RATE` per second, up to
`GATEWAY_ADMISSION_BURST` at once. Without one it waits in line (FIFO: each waiter is
given the next free slot when it arrives) — queued, not refused — until
`GATEWAY_ADMISSION_QUEUE` are waiting; past that it is refused with 503 and a
`Retry-After` of when the line will have moved. A drain lets every waiter go at once
(to be refused: the node is stopping). The waiting is each request's own
coroutine sleeping until its slot (no task, no timer besides); the bucket is GCRA's
one number, the time the bucket would be full again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from tickwire.gateway import metrics
from tickwire.gateway.errors import OverloadedError


class Admission:
    """The node's admission gate (see the module docstring); rate 0 admits everything."""

    def __init__(
        self,
        rate: float,
        burst: int,
        queue: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1 / rate if rate > 0 else 0.0
        self.tolerance = (max(1, burst) - 1) * self.interval
        self.queue = queue
        self.clock = clock
        self.full_at = 0.0  # GCRA's theoretical arrival time
        self.waiting = 0
        self.closed = asyncio.Event()  # set by the drain: waiters go at once

    def reserve(self, now: float) -> float:
        """Take the next slot: seconds to wait for it (0: at once); OverloadedError
        when `queue` requests already wait."""
        if not self.interval:
            return 0.0
        start = max(self.full_at, now)
        wait = start - now - self.tolerance
        if wait > 0 and self.waiting >= self.queue:
            raise OverloadedError(
                f"too many streams are starting on this node ({self.waiting} waiting): retry later",
                wait,
            )
        self.full_at = start + self.interval
        return max(0.0, wait)

    async def admit(self) -> None:
        """Return once this request may start its stream (see `reserve`)."""
        try:
            wait = self.reserve(self.clock())
        except OverloadedError:
            metrics.ADMISSIONS.labels("refused").inc()
            raise
        if not wait:
            metrics.ADMISSIONS.labels("immediate").inc()
            return
        metrics.ADMISSIONS.labels("queued").inc()
        self.waiting += 1
        metrics.ADMISSION_QUEUE.set(self.waiting)
        try:
            with contextlib.suppress(TimeoutError):  # the usual way out: its slot came
                await asyncio.wait_for(self.closed.wait(), wait)
        finally:
            self.waiting -= 1
            metrics.ADMISSION_QUEUE.set(self.waiting)
