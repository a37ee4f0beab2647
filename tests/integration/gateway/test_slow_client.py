"""A client that never reads is cut; one that trickles is conflated, never cut; what
either holds in the gateway stays under the documented bound (high water plus one flush,
read from the gateway's own gauge); the others get every update meanwhile."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from prometheus_client import REGISTRY

from bench.slow_clients import Trickler, closed_by_server, open_silent, stream_request
from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


def cut_slow() -> float:
    return REGISTRY.get_sample_value("tickwire_gateway_disconnected_total", {"reason": "slow"}) or 0


def buffered_max() -> float:
    return REGISTRY.get_sample_value("tickwire_gateway_write_buffer_max_bytes") or 0


async def open_silent_client(url: str, path: str) -> socket.socket:
    """A stream request from a socket with a tiny receive buffer that is never read."""
    return await open_silent(url, stream_request(url, path))


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
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    return await open_silent(
        url, stream_request(url, f"/v1/ws?symbols={symbols}&bars=none", upgrade)
    )


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


@dataclass
class Latest:
    """Each symbol's versions as the reader received them, read incrementally."""

    client: g.SseClient
    versions: dict[str, list[int]] = field(default_factory=dict)
    read: int = 0

    async def until_all(self, symbols: list[str], version: int) -> None:
        """Wait until the reader holds `version` of every symbol (a marker: each
        symbol's records stay in order, so everything before it has arrived too)."""
        while True:
            for e in self.client.events[self.read :]:
                if e.event in ("snapshot", "quote"):
                    data = e.json()
                    self.versions.setdefault(data["symbol"], []).append(data["version"])
            self.read = len(self.client.events)
            if all((self.versions.get(s) or [0])[-1] >= version for s in symbols):
                return
            await self.client.wait_for(self.read + 1)


async def test_a_silent_and_a_trickling_client_stay_bounded_and_the_reader_misses_nothing(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 3)
    symbols = [f"M{i:03d}" for i in range(100)]
    pad = 2000
    high_water = 16 * 1024
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in symbols])
    # the documented bound on what one SSE connection queues in the process: high water
    # plus one flush, which holds at most its backlog (the snapshot) and one update per key
    frame = max(len(g.update_record(s, 999, pad=pad)[1]) for s in symbols) + 256
    bound = high_water + 2 * len(symbols) * frame
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_write_high_water=high_water,
        gateway_slow_client_timeout_s=5.0,
    )
    path = "/v1/stream?symbols=*&bars=none"
    async with g.running_gateway(settings) as url:
        before = cut_slow()
        silent = await open_silent_client(url, path)
        trickler = Trickler(
            await open_silent_client(url, path), bytes_per_read=4096, interval_s=0.01
        )
        stop = asyncio.Event()
        trickling = asyncio.create_task(trickler.run(stop))
        try:
            async with g.sse_client(url, path) as fast:
                latest = Latest(fast)
                await latest.until_all(symbols, 1)
                peak = 0.0
                final = 1
                while cut_slow() == before:
                    final += 1
                    await produce(
                        kafka_bootstrap,
                        topics.updates,
                        [g.update_record(s, final, pad=pad) for s in symbols],
                    )
                    await latest.until_all(symbols, final)  # the batch reached the reader
                    sample = buffered_max()
                    assert sample <= bound, (sample, bound)
                    peak = max(peak, sample)
                    assert final < 2000, "the silent client was never cut"  # failure guard
                assert cut_slow() == before + 1  # the silent one only
                assert peak > high_water  # the premise: a connection was held at the bound
                assert latest.versions == {s: list(range(1, final + 1)) for s in symbols}
            assert await closed_by_server(silent)
            # the trickler catches up on the newest state of every symbol (marker) ...
            got = trickler.reader.versions
            while not all((got.get(s) or [0])[-1] == final for s in symbols):
                assert not trickling.done(), "the trickling client was cut"
                await asyncio.sleep(0.05)
            assert not trickler.closed_by_server
            # ... in order, having skipped what conflation replaced
            assert all(v == sorted(set(v)) for v in got.values())
            assert sum(map(len, got.values())) < len(symbols) * final
        finally:
            stop.set()
            await trickling
            silent.close()
            trickler.sock.close()
