"""Token deadlines: the notice once, the end at exp, a renewal moving both; and the
janitor's sweep acting on them for SSE (transport) and WebSocket (queued) connections."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client import REGISTRY

from tests.helpers.transports import Cycle, FakeTransport
from tickwire.gateway.connection import Interest, TransportConnection, WebSocketConnection
from tickwire.gateway.expiry import EXPIRED, NOTICE, WS_TOKEN_EXPIRED, Deadline
from tickwire.gateway.hub import Hub, Janitor, Slot


def test_notice_once_then_expired_and_a_renewal_moves_both() -> None:
    deadline = Deadline(exp=1000.0, notice_s=30)
    assert deadline.due(900) is None
    assert deadline.due(970) == NOTICE
    assert deadline.due(980) is None  # told once
    assert deadline.due(1000) == EXPIRED
    deadline.extend(2000.0)
    assert deadline.due(1000) is None
    assert deadline.due(1970) == NOTICE
    assert deadline.due(1999.9) is None
    assert deadline.due(2000) == EXPIRED
    assert orjson.loads(deadline.notice_data()) == {"exp": 2000}


def test_a_token_within_the_notice_window_is_told_at_once_and_none_without_exp() -> None:
    assert Deadline.of(None, 30) is None
    deadline = Deadline.of(1010.0, 30)
    assert deadline is not None
    assert deadline.due(1000) == NOTICE


def expired_count() -> float:
    labels = {"reason": "token_expired"}
    return REGISTRY.get_sample_value("tickwire_gateway_disconnected_total", labels) or 0.0


async def test_sweep_notices_then_ends_an_sse_stream_with_the_final_event() -> None:
    hub = Hub([Slot("u", 0, "quote")], tag=1, buffer_capacity=10)
    janitor = Janitor(hub, heartbeat_s=15, slow_timeout_s=30)
    sock, other = FakeTransport(), FakeTransport()
    conn = TransportConnection(sock, 1024, Cycle(), ip="i", subject="s")
    lasting = TransportConnection(other, 1024, Cycle(), ip="i", subject="t")
    conn.deadline = Deadline(exp=1000.0, notice_s=10)
    lasting.deadline = Deadline(exp=5000.0, notice_s=10)
    for c in (conn, lasting):
        hub.register(c, Interest(frozenset({"A"})), [])
    hub.flush()
    now = conn.last_write
    before = expired_count()

    janitor.sweep(now, wall=995)
    hub.flush()
    assert sock.written[-1].endswith(b'event: token-expiring\ndata: {"exp":1000}\n\n\r\n')
    assert not sock.closed

    janitor.sweep(now, wall=1000)
    final = sock.written[-1]
    assert b"event: error\ndata: " in final
    assert b"id:" not in final
    data = orjson.loads(final.split(b"data: ")[1].split(b"\n")[0])
    assert (data["status"], data["code"]) == (401, "token_expired")
    assert sock.closed
    assert conn.closed
    assert conn.close_reason == "token_expired"
    assert hub.connections == {lasting}
    assert not other.closed
    assert not any(b"token-expiring" in w for w in other.written)
    assert expired_count() == before + 1


async def test_a_websocket_stream_ends_with_the_final_event_then_code_4001() -> None:
    hub = Hub([Slot("u", 0, "quote")], tag=1, buffer_capacity=10)
    janitor = Janitor(hub, heartbeat_s=15, slow_timeout_s=30)
    sent: list[list[bytes]] = []

    async def sender(frames: list[bytes]) -> None:
        sent.append(frames)

    conn = WebSocketConnection(sender, "websocket", ip="i", subject="s")
    conn.deadline = Deadline(exp=1000.0, notice_s=10)
    hub.register(conn, Interest(frozenset({"A"})), [])
    writer = asyncio.create_task(conn.run_writer(lambda: hub.tally))
    janitor.sweep(0, wall=991)
    hub.flush()
    while not sent:
        await asyncio.sleep(0)
    assert orjson.loads(sent[-1][-1]) == {"event": "token-expiring", "data": {"exp": 1000}}
    janitor.sweep(0, wall=1001)
    await asyncio.wait_for(writer, 5)  # the writer ends once the final frame is out
    final = orjson.loads(sent[-1][-1])
    assert final["event"] == "error"
    assert final["data"]["code"] == "token_expired"
    assert conn.closed
    assert conn.close_code == WS_TOKEN_EXPIRED
    assert hub.connections == set()
