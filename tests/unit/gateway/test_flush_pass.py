"""One flush pass: every dirty connection gets one write carrying all of its queued
updates, and the pass's writes, updates and length are published (README, "Fan-out and
slow clients": events_sent_total / socket_writes_total is the coalescing per write)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.helpers.transports import Cycle, FakeTransport
from tickwire.events import wire
from tickwire.gateway.connection import Interest, TransportConnection
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.updates import QUOTE, Parsed


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def quote(hub: Hub, offset: int, symbol: str) -> None:
    value = wire.ENCODER.encode(wire.TickerState(symbol=symbol, version=offset + 1, last=1.0))
    hub.apply(0, offset, Parsed(QUOTE, symbol, symbol, "", offset + 1, 0), value)


async def test_a_pass_writes_each_dirty_connection_once_with_all_its_updates() -> None:
    hub = Hub([Slot("u", 0, QUOTE)], tag=1, buffer_capacity=100)
    sockets = [FakeTransport() for _ in range(3)]
    conns = [TransportConnection(t, 1 << 20, Cycle(), ip="i", subject=None) for t in sockets]
    hub.register(conns[0], Interest(frozenset({"A", "B", "C"}), bar_intervals=frozenset()), [])
    hub.register(conns[1], Interest(frozenset({"A"}), bar_intervals=frozenset()), [])
    hub.register(conns[2], Interest(frozenset({"Z"}), bar_intervals=frozenset()), [])
    hub.flush()  # registration made them dirty: nothing queued, nothing written
    assert [t.written for t in sockets] == [[], [], []]
    writes, events = (
        sample("tickwire_gateway_socket_writes_total"),
        sample("tickwire_gateway_events_sent_total"),
    )
    passes = sample("tickwire_gateway_flush_pass_seconds_count")

    for offset, symbol in enumerate("ABCA"):  # A twice: the second replaces the first
        quote(hub, offset, symbol)
    hub.flush()

    first, second, third = (t.written for t in sockets)
    assert len(first) == 1
    assert len(second) == 1
    assert third == []
    assert [b'"symbol":"%s"' % s in first[0] for s in (b"B", b"C", b"A")] == [True] * 3
    assert (
        first[0].index(b'"symbol":"B"')
        < first[0].index(b'"symbol":"C"')
        < first[0].index(b'"symbol":"A"')
    )
    assert first[0].count(b"event: quote") == 3  # A's older state was conflated away
    assert second[0].count(b"event: quote") == 1
    assert b'"version":4' in second[0]
    assert sample("tickwire_gateway_socket_writes_total") == writes + 2
    assert sample("tickwire_gateway_events_sent_total") == events + 4
    assert sample("tickwire_gateway_flush_pass_seconds_count") == passes + 1
    assert hub.flush_s >= 0.0
