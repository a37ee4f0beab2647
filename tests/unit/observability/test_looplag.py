"""The event-loop lag monitor: the rule, and that a blocking step shows as lag."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from tickwire.observability import looplag


def _count() -> float:
    return REGISTRY.get_sample_value("tickwire_event_loop_lag_seconds_count") or 0.0


def _above(seconds: str) -> float:
    total = _count()
    below = REGISTRY.get_sample_value("tickwire_event_loop_lag_seconds_bucket", {"le": seconds})
    return total - (below or 0.0)


def test_lag_is_the_lateness_past_the_due_time() -> None:
    assert looplag.lag_of(10.0, 0.1, 10.1) == 0.0
    assert looplag.lag_of(10.0, 0.1, 10.35) == pytest.approx(0.25)
    assert looplag.lag_of(10.0, 0.1, 10.05) == 0.0  # an early wake-up is no lag


async def test_a_blocking_step_is_recorded_as_lag() -> None:
    before_count, before_slow = _count(), _above("0.1")
    task = asyncio.create_task(looplag.monitor(interval_s=0.01))
    await asyncio.sleep(0)  # the monitor asks for its first wake-up
    time.sleep(0.3)  # a synchronous step holds the loop for 300 ms
    while _count() == before_count:  # wait for the monitor's wake-up after the step
        await asyncio.sleep(0.01)
    task.cancel()
    # the wake-up due 10 ms in ran after the 300 ms step: a lag above 100 ms
    assert _above("0.1") == before_slow + 1
