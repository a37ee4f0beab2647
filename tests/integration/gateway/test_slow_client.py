"""A client that never reads is cut; the others get every update meanwhile."""

from __future__ import annotations

import asyncio
import socket

from prometheus_client import REGISTRY

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


def cut_slow() -> float:
    return REGISTRY.get_sample_value("tickwire_gateway_disconnected_total", {"reason": "slow"}) or 0


async def open_silent_client(url: str, path: str) -> socket.socket:
    """A stream request from a socket with a tiny receive buffer that is never read."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


async def closed_by_server(sock: socket.socket) -> bool:
    """Drain what the kernel holds; True once the server has closed or reset."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


async def test_a_client_that_never_reads_is_cut_while_others_keep_up(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 3)
    symbols = [f"P{i:03d}" for i in range(300)]
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in symbols])
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_write_high_water=16 * 1024,
        gateway_slow_client_timeout_s=1.0,
    )
    async with g.running_gateway(settings) as url:
        before = cut_slow()
        silent = await open_silent_client(url, "/v1/stream?symbols=*&bars=none")
        try:
            async with g.sse_client(url, "/v1/stream?symbols=*&bars=none") as fast:
                await fast.wait_for(len(symbols))
                final = 0
                for version in range(2, 40):
                    await produce(
                        kafka_bootstrap,
                        topics.updates,
                        [g.update_record(s, version, pad=3000) for s in symbols],
                    )
                    final = version
                    if cut_slow() > before:
                        break
                for _ in range(400):
                    if cut_slow() > before:
                        break
                    await asyncio.sleep(0.05)
                assert cut_slow() == before + 1
                # the reader kept up all along: it ends at every symbol's last version
                for _ in range(600):
                    latest = {s: v for _, s, v in fast.quotes()}
                    if all(latest[s] == final for s in symbols):
                        break
                    await asyncio.sleep(0.05)
                assert all(latest[s] == final for s in symbols)
                versions: dict[str, list[int]] = {}
                for _, s, v in fast.quotes():
                    versions.setdefault(s, []).append(v)
                assert all(v == sorted(set(v)) for v in versions.values())
            assert await closed_by_server(silent)
        finally:
            silent.close()


async def open_silent_websocket(url: str, symbols: str) -> socket.socket:
    """A WebSocket handshake and subscription from a socket that then never reads."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    request = (
        f"GET /v1/ws?symbols={symbols}&bars=none HTTP/1.1\r\nHost: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


async def test_a_websocket_client_that_never_reads_is_cut(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    symbols = [f"W{i:03d}" for i in range(200)]
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in symbols])
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_slow_client_timeout_s=1.0,
    )
    async with g.running_gateway(settings) as url:
        before = cut_slow()
        silent = await open_silent_websocket(url, "*")
        try:
            for version in range(2, 60):
                await produce(
                    kafka_bootstrap,
                    topics.updates,
                    [g.update_record(s, version, pad=3000) for s in symbols],
                )
                if cut_slow() > before:
                    break
            for _ in range(400):
                if cut_slow() > before:
                    break
                await asyncio.sleep(0.05)
            assert cut_slow() == before + 1
            assert await closed_by_server(silent)
        finally:
            silent.close()
