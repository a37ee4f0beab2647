"""How late the event loop runs what is ready: `tickwire_event_loop_lag_seconds`.

Every service is one event loop: a long synchronous step (a fan-out, a JSON encode of a
big batch, a collector pass) delays everything else on it, whatever the CPU has left.
A monitor task asks to be woken every `interval_s` and records how much later than
asked it ran: zero on an idle loop, the length of the step in its way otherwise. It
costs one wake-up per interval; `serve` runs it for every service.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram

LAG = Histogram(
    "tickwire_event_loop_lag_seconds",
    "How much later than asked the event loop woke a 100 ms timer",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def lag_of(asked_at: float, interval_s: float, woke_at: float) -> float:
    """The lag of one wake-up: how long after its due time it ran (never negative)."""
    return max(0.0, woke_at - asked_at - interval_s)


async def monitor(interval_s: float = 0.1) -> None:
    """Record the loop's lag forever (run as a task; cancel to stop)."""
    observe, clock = LAG.observe, time.monotonic
    while True:
        asked = clock()
        await asyncio.sleep(interval_s)
        observe(lag_of(asked, interval_s, clock()))
