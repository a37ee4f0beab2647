"""A reconnect storm: thousands of resumes at once against one gateway process are all
served from its buffer, exactly (every missed update of the client's symbol, in
order), at the node's admission pace, and its memory stays within the documented bound
per open stream (its own `process_resident_memory_bytes`)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from tests.helpers import gateway as g
from tests.helpers.gateway_process import GatewayProcess, process_env
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce

#: Resumes in the storm, symbols they spread over, updates each client missed.
RESUMES = 2000
SYMBOLS = [f"S{i:02d}" for i in range(20)]
MISSED = 25
#: The documented bound (README, "A storm of resumes stays cheap"): resident memory
#: per open stream, whatever the storm's size.
BYTES_PER_STREAM = 64 * 1024
#: Allowance for what grows once, whatever the count (allocator arenas, caches).
FIXED_BYTES = 32 * 1024 * 1024


async def sample(url: str, name: str, **labels: str) -> float:
    """One sample of a gateway process's /metrics."""
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    wanted = name + (
        "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    )
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


async def resume(
    port: int, symbol: str, cursor: str, streams: contextlib.AsyncExitStack
) -> list[int]:
    """Resume a stream of one symbol from cursor over a plain socket (a client is just a
    socket: the storm is the gateway's load, not the test's); the versions replayed.
    The stream stays open until `streams` closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    streams.callback(writer.close)
    writer.write(
        f"GET /v1/stream?symbols={symbol}&bars=none HTTP/1.1\r\nHost: gateway\r\n"
        f"Last-Event-ID: {cursor}\r\n\r\n".encode()
    )
    data = b""
    while data.count(b"event: quote") < MISSED:
        chunk = await asyncio.wait_for(reader.read(65536), 120)
        assert chunk, data[:200]
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return [
        int(part.split(b'"version":')[1].split(b",")[0]) for part in data.split(b"event: quote")[1:]
    ]


async def test_a_storm_of_resumes_is_served_from_the_buffer_within_the_memory_bound(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, tmp_path: Path
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in SYMBOLS])
    port = g.free_port()
    gateway = GatewayProcess(
        process_env(
            {
                **topics.settings_env(),
                "kafka_bootstrap": kafka_bootstrap,
                "mongodb_url": mongodb_url,
                "mongodb_db": db_name,
                "gateway_auth": "off",
                "gateway_max_connections_per_ip": str(RESUMES + 10),
                "log_level": "WARNING",
            }
        ),
        port,
        tmp_path / "gateway.log",
    )
    try:
        await gateway.start()
        async with g.sse_client(gateway.url, f"/v1/stream?symbols={','.join(SYMBOLS)}") as first:
            await first.wait_for(len(SYMBOLS))  # the snapshots: the cursor is after them
            cursor = first.events[-1].id
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record(s, v) for v in range(2, MISSED + 2) for s in SYMBOLS],
        )
        # the marker: the gateway holds every symbol's last version (so it buffered all)
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            query = f"/v1/quotes?symbols={','.join(SYMBOLS)}"
            while {q["version"] for q in (await http.get(query)).json()["quotes"]} != {MISSED + 1}:
                await asyncio.sleep(0.05)
        before = await sample(gateway.url, "process_resident_memory_bytes")
        buffered = await sample(gateway.url, "tickwire_gateway_resumes_total", outcome="buffer")
        async with contextlib.AsyncExitStack() as streams:
            replays = await asyncio.gather(
                *(resume(port, SYMBOLS[i % len(SYMBOLS)], cursor, streams) for i in range(RESUMES))
            )
            after = await sample(gateway.url, "process_resident_memory_bytes")
            open_streams = await sample(
                gateway.url, "tickwire_gateway_connections", transport="sse"
            )
        assert all(versions == list(range(2, MISSED + 2)) for versions in replays)
        assert open_streams == RESUMES
        served = await sample(gateway.url, "tickwire_gateway_resumes_total", outcome="buffer")
        assert served == buffered + RESUMES
        grown = after - before
        print(f"\n[storm] {RESUMES} resumes: resident memory +{grown / 2**20:.1f} MiB")
        assert grown <= RESUMES * BYTES_PER_STREAM + FIXED_BYTES
    finally:
        gateway.kill()
