"""Admission: the burst at once, then one slot per 1/rate in arrival order, queued up to
the bound and refused past it with a Retry-After of when the line will have moved; and
the drain's farewell frames with their jittered retry."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from tests.helpers.transports import Cycle, FakeTransport
from tickwire.gateway.admission import Admission
from tickwire.gateway.connection import Interest, TransportConnection, WebSocketConnection
from tickwire.gateway.drain import WS_SERVICE_RESTART, Drain, farewell
from tickwire.gateway.errors import OverloadedError
from tickwire.gateway.hub import Hub, Slot


def test_burst_then_one_slot_per_interval_then_refused_past_the_queue() -> None:
    gate = Admission(rate=2, burst=3, queue=2)
    assert [gate.reserve(10.0) for _ in range(3)] == [0, 0, 0]  # the burst
    assert gate.reserve(10.0) == pytest.approx(0.5)  # then one slot every 0.5 s, in line
    gate.waiting = 1
    assert gate.reserve(10.0) == pytest.approx(1.0)
    gate.waiting = 2
    with pytest.raises(OverloadedError) as refused:
        gate.reserve(10.0)
    assert refused.value.status == 503
    assert refused.value.headers() == {"Retry-After": "2"}  # 1.5 s, rounded up
    gate.waiting = 0
    assert gate.reserve(20.0) == 0  # the bucket refilled meanwhile


def test_rate_zero_admits_everything() -> None:
    gate = Admission(rate=0, burst=1, queue=0)
    assert all(gate.reserve(1.0) == 0 for _ in range(10_000))


async def test_queued_requests_wait_and_the_queue_empties() -> None:
    gate = Admission(rate=200, burst=1, queue=5)
    await gate.admit()
    waiters = [asyncio.ensure_future(gate.admit()) for _ in range(5)]
    await asyncio.sleep(0)
    assert gate.waiting == 5
    with pytest.raises(OverloadedError):
        await gate.admit()
    await asyncio.gather(*waiters)
    assert gate.waiting == 0


async def test_drain_ends_every_stream_with_a_jittered_retry_and_reconnect() -> None:
    hub = Hub([Slot("u", 0, "quote")], tag=1, buffer_capacity=10)
    socks = [FakeTransport() for _ in range(8)]
    for sock in socks:
        conn = TransportConnection(sock, 1024, Cycle(), ip="i", subject=None)
        hub.register(conn, Interest(frozenset({"A"})), [])

    async def sender(frames: list[bytes]) -> None:
        return

    ws = WebSocketConnection(sender, "websocket", ip="i", subject=None)
    hub.register(ws, Interest(frozenset({"A"})), [])
    drain = Drain(drain_s=0.01, retry_ms=2000, rng=random.Random(7))
    await drain.run(lambda: [hub])
    assert drain.draining
    assert hub.connections == set()
    retries = []
    for sock in socks:
        assert sock.closed
        body = sock.written[-1]
        assert body.endswith(b"\r\n0\r\n\r\n")  # the body ends properly
        retry = int(body.split(b"retry: ")[1].split(b"\n")[0])
        data = orjson.loads(body.split(b"event: reconnect\ndata: ")[1].split(b"\n")[0])
        assert data == {"reason": "shutdown", "retry_ms": retry}
        assert 2000 <= retry <= 4000
        retries.append(retry)
    assert len(set(retries)) > 1  # spread, not one instant for all
    assert ws.close_code == WS_SERVICE_RESTART
    assert orjson.loads(ws.backlog[0])["event"] == "reconnect"


def test_a_websocket_farewell_is_the_reconnect_event_alone() -> None:
    async def sender(frames: list[bytes]) -> None:
        return

    async def build() -> bytes:
        return farewell(WebSocketConnection(sender, "websocket", ip="i", subject=None), 2500)

    event = orjson.loads(asyncio.run(build()))
    assert event == {"event": "reconnect", "data": {"reason": "shutdown", "retry_ms": 2500}}


async def test_a_drain_lets_the_waiters_go_at_once() -> None:
    gate = Admission(rate=0.001, burst=1, queue=5)  # the next slot in ~17 minutes
    await gate.admit()
    waiter = asyncio.ensure_future(gate.admit())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    gate.closed.set()
    await asyncio.wait_for(waiter, 5)
    assert gate.waiting == 0
