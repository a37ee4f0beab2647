"""The janitor's sweep: heartbeats only idle connections, cuts stalled ones and those
the server is closing, counts subscriptions."""

from __future__ import annotations

import socket
import struct

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
    idle.buffered, busy.buffered, stalled.buffered = 500, 700, 90_000
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
    # what waits in the process, over the connections still open (the cut one is gone)
    assert REGISTRY.get_sample_value("tickwire_gateway_write_buffer_max_bytes") == 700
    assert REGISTRY.get_sample_value("tickwire_gateway_write_buffer_bytes") == 1200


async def test_a_connection_cut_as_slow_is_reset_not_drained() -> None:
    """Linger 0 before the abort: the kernel drops its send buffer and sends a reset
    instead of trickling megabytes to a client that does not read."""
    server, client = socket.socketpair()
    try:
        conn = TransportConnection(FakeTransport(server), 1024, Cycle(), ip="i", subject=None)  # type: ignore[arg-type]
        conn.cut("slow")
        linger = server.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
        assert struct.unpack("ii", linger) == (1, 0)
    finally:
        server.close()
        client.close()


async def test_a_stream_socket_gets_the_capped_send_buffer() -> None:
    server, client = socket.socketpair()
    try:
        TransportConnection(
            FakeTransport(server), 1024, Cycle(), send_buffer=64 * 1024, ip="i", subject=None
        )  # type: ignore[arg-type]
        # Linux doubles the value asked for (bookkeeping overhead)
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 64 * 1024
    finally:
        server.close()
        client.close()
