"""The janitor's sweep: heartbeats only idle connections, cuts stalled ones and those
the server is closing, counts subscriptions."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.helpers.transports import Cycle, FakeTransport
from tickwire.gateway.connection import Interest, TransportConnection
from tickwire.gateway.hub import Hub, Janitor, Slot


def value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_sweep() -> None:
    hub = Hub([Slot("u", 0, "quote")], tag=1, buffer_capacity=10)
    janitor = Janitor(hub, heartbeat_s=15, slow_timeout_s=30)
    idle, busy, stalled, closing = (FakeTransport() for _ in range(4))
    cycle = Cycle()
    conns = {
        name: TransportConnection(
            t, 1024, cycle if name == "closing" else Cycle(), ip="i", subject=None
        )
        for name, t in (("idle", idle), ("busy", busy), ("stalled", stalled), ("closing", closing))
    }
    for conn in conns.values():
        hub.register(conn, Interest(frozenset({"A", "B"})), [])
    hub.flush()
    start = conns["idle"].last_write
    conns["idle"].last_write = start - 20
    conns["busy"].last_write = start + 9
    conns["stalled"].stalled_since = start - 31
    cycle.keep_alive = False
    slow, shutdown = (
        value("tickwire_gateway_disconnected_total", {"reason": r}) for r in ("slow", "shutdown")
    )

    janitor.sweep(start + 10)
    hub.flush()

    assert idle.written[-1].endswith(b": hb\n\n\r\n")
    assert not any(b": hb" in w for w in busy.written)
    assert stalled.closed
    assert closing.closed
    assert hub.connections == {conns["idle"], conns["busy"]}
    assert value("tickwire_gateway_disconnected_total", {"reason": "slow"}) == slow + 1
    assert value("tickwire_gateway_disconnected_total", {"reason": "shutdown"}) == shutdown + 1
    assert REGISTRY.get_sample_value("tickwire_gateway_subscriptions") == 4
