"""CPU per delivered update against updates per socket write: the gateway's flush path
beside bare uvloop writes of the same bytes: `python -m bench.write_floor`.

Why: a flush writes each dirty connection once, so the CPU per delivered update is
about (one write + the per-update work) / (updates per write), and how many updates a
write carries is set by how long a connection's updates are coalesced: at 20 updates/s
per connection, a 50 ms p99 leaves about one update per write, while 10-50 per write
means a window of 0.5-2.5 s. This measures both ends on this machine, in one run:
- floor: N real loopback TCP connections (a child process drains them), served by
  uvloop transports; each round, one `transport.write` per connection of k SSE quote
  chunks already built (what a connection's write carries when k updates coalesced);
- ours: the same sockets behind the gateway's `Hub` and `TransportConnection`: each
  round, k updates per connection are applied through `Hub.apply` (fan-out, conflating
  outbox) and one `Hub.flush` writes them.
CPU is this process's user+system time (the drain's is not counted) over R rounds,
divided by the updates delivered; k in 1, 2, 5, 10, 20, 50. `ratio` = floor / ours at
k = 1 (the latency-bound case). Quick: WRITE_FLOOR_CONNECTIONS=200 WRITE_FLOOR_ROUNDS=20.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import time
from typing import Any

import uvloop

from bench.common import versions, write_result
from tickwire.events import wire
from tickwire.gateway.connection import Interest, TransportConnection
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.updates import QUOTE, Parsed

CONNECTIONS = int(os.environ.get("WRITE_FLOOR_CONNECTIONS", 1000))
ROUNDS = int(os.environ.get("WRITE_FLOOR_ROUNDS", 60))
PER_WRITE = (1, 2, 5, 10, 20, 50)
SYMBOLS = 50  # each connection watches all of them: k distinct symbols per round


def drain(port: int, count: int) -> None:
    """The child: open `count` connections and read whatever comes until they close."""
    sel = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    open_ = count
    while open_:
        for key, _ in sel.select():
            try:
                data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                open_ -= 1
    os._exit(0)


def state(symbol: str, version: int) -> bytes:
    """A quote as the processor publishes it (the fields of a traded, quoted symbol)."""
    return wire.ENCODER.encode(
        wire.TickerState(
            symbol=symbol, version=version, last=101.25, last_size=100.0, open=100.0,
            high=101.5, low=99.75, prev_close=99.5, change=1.75, change_pct=1.7588,
            volume=1_234_500, trades=4_321, vwap=100.8812, bid=101.24, bid_size=300.0,
            ask=101.26, ask_size=500.0, spread=0.02, mid=101.25,
            source=wire.SourceOffsets(0, version, version), received_ns=time.time_ns(),
        )
    )  # fmt: skip


async def measure() -> dict[str, Any]:
    transports: list[Any] = []  # uvloop's TCPTransport (not an asyncio.Transport subclass)
    all_in = asyncio.Event()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(transport)
            if len(transports) == CONNECTIONS:
                all_in.set()

    server = await asyncio.get_running_loop().create_server(Accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = os.fork()
    if child == 0:
        drain(port, CONNECTIONS)
    await all_in.wait()
    symbols = [f"S{i:03d}" for i in range(SYMBOLS)]
    hub = Hub([Slot("u", 0, QUOTE)], tag=1, buffer_capacity=1000)
    conns = [
        TransportConnection(t, 1 << 30, None, ip="b", subject=None)  # no slow-client cut
        for t in transports
    ]
    interest = Interest(frozenset(symbols), bar_intervals=frozenset())
    for conn in conns:
        hub.register(conn, interest, [])
    hub.flush()
    offset = 0  # records applied to the hub so far
    ours: dict[str, float] = {}
    floor: dict[str, float] = {}
    chunk_bytes = 0
    for k in PER_WRITE:
        # the floor: the chunks the hub frames for k updates, one write per connection
        framer = Hub([Slot("u", 0, QUOTE)], tag=1, buffer_capacity=k)
        for i in range(k):
            framer.apply(0, i, Parsed(QUOTE, symbols[i], symbols[i], "", i + 1, 0),
                         state(symbols[i], i + 1))  # fmt: skip
        chunks = [u.chunk for u in framer.buffers[0].since(0)]
        chunk_bytes = sum(map(len, chunks)) // k
        payload = b"".join(chunks)
        start = time.process_time()
        for _ in range(ROUNDS):
            for t in transports:
                t.write(payload)
            await asyncio.sleep(0.002)
        floor[str(k)] = (time.process_time() - start) / (ROUNDS * CONNECTIONS * k) * 1e6
        # ours: k updates applied per round (fanned out to every connection), one flush
        feed = []
        for _ in range(ROUNDS):
            for i in range(k):
                offset += 1
                feed.append((Parsed(QUOTE, symbols[i], symbols[i], "", offset, 0),
                             state(symbols[i], offset)))  # fmt: skip
        records = iter(feed)
        start = time.process_time()
        for _ in range(ROUNDS):
            for _ in range(k):
                parsed, value = next(records)
                hub.apply(0, parsed.version - 1, parsed, value)
            hub.flush()
            await asyncio.sleep(0.002)
        ours[str(k)] = (time.process_time() - start) / (ROUNDS * CONNECTIONS * k) * 1e6
        print(f"[write_floor] k={k}: floor {floor[str(k)]:.2f} us, ours {ours[str(k)]:.2f} us")
    for t in transports:
        t.close()
    server.close()
    await asyncio.sleep(0.1)
    os.waitpid(child, 0)
    return {"ours": ours, "floor": floor, "chunk_bytes": chunk_bytes}


def main() -> None:
    got = uvloop.run(measure())
    ours, floor = got["ours"], got["floor"]
    round_ = {k: round(v, 3) for k, v in ours.items()}
    write_result(
        "write_floor",
        ours={
            "name": "gateway flush path (Hub.apply + Hub.flush over TransportConnection)",
            "cpu_us_per_update_by_updates_per_write": round_,
            "conditions": {
                "connections": CONNECTIONS, "rounds": ROUNDS, "symbols_per_connection":
                SYMBOLS, "sse_chunk_bytes": got["chunk_bytes"],
            },
        },
        peer={
            "name": "bare uvloop transport.write of the same chunks",
            "cpu_us_per_update_by_updates_per_write": {k: round(v, 3) for k, v in floor.items()},
        },
        ratio=floor["1"] / ours["1"],
        ratio_meaning="bare write CPU per update / the gateway's, at 1 update per write",
        versions_=versions("uvloop", "msgspec"),
        extra={
            "note": "CPU per delivered update = (write + per-update work) / updates per "
            "write; at 20 updates/s per connection a 50 ms p99 leaves ~1 update per write",
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
