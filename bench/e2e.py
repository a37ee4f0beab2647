"""End-to-end latency: from ingest accepting an event to the gateway writing it to an
SSE client, against the floor of two plain aiokafka produce->consume hops, in one run.

Ours: ingest, processor and gateway run as separate processes on private topics; a
sender posts NDJSON batches to ingest at a fixed rate; an SSE client subscribed to every
symbol timestamps each update on arrival and subtracts the `received_ns` the update
carries (ingest's receive time of the newest event in it).
Floor: a producer writes the same number of records at the same rate to topic A; a
relay consumes A and produces to B; a consumer reads B and subtracts the timestamp
the first producer put in each record. Both are bounded in count and time.

ratio = floor p99 / tickwire p99 (at most 1; closer to 1 means less overhead above
what two bare Kafka hops cost).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import percentile, versions, write_result
from tickwire.devstack import procs
from tickwire.devstack.paths import default_stack_dir
from tickwire.devstack.run import ServiceSpec, start_service, wait_ready
from tickwire.devstack.stack import Stack

RATE = float(os.environ.get("E2E_RATE", 500))  # events per second
DURATION = float(os.environ.get("E2E_SECONDS", 20))
SYMBOLS = [f"S{i:03d}" for i in range(50)]
BATCH_EVERY = 0.02  # seconds between ingest batches


def _events(count: int, seq: int) -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat()
    lines = []
    for i in range(count):
        symbol = SYMBOLS[(seq + i) % len(SYMBOLS)]
        lines.append(
            orjson.dumps(
                {"type": "trade", "symbol": symbol, "price": 100 + (i % 7), "size": 10, "time": now}
            )
        )
    return b"\n".join(lines)


async def _sse_reader(
    url: str, samples: list[float], ready: asyncio.Event, stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as resp:
        resp.raise_for_status()
        ready.set()
        event = ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "quote":
                received = orjson.loads(line[5:]).get("received_ns")
                if received:
                    samples.append((time.time_ns() - received) / 1e6)
            if stop.is_set():
                return


async def _post_loop(ingest: str, duration: float) -> int:
    per_batch = max(1, round(RATE * BATCH_EVERY))
    sent = 0
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.monotonic() + duration
        seq = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            resp = await client.post(
                f"{ingest}/v1/events:batch",
                content=_events(per_batch, seq),
                headers={"content-type": "application/x-ndjson"},
            )
            if resp.status_code in (200, 202, 207):
                sent += per_batch
            seq += per_batch
            await asyncio.sleep(max(0.0, BATCH_EVERY - (time.monotonic() - started)))
    return sent


async def measure_tickwire(bootstrap: str, mongo: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "TICKWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKWIRE_MONGODB_URL": mongo,
        "TICKWIRE_MONGODB_DB": f"e2e_{tag}",
        "TICKWIRE_TOPIC_RAW": f"e2e-{tag}.raw",
        "TICKWIRE_TOPIC_UPDATES": f"e2e-{tag}.updates",
        "TICKWIRE_TOPIC_BARS": f"e2e-{tag}.bars",
        "TICKWIRE_TOPIC_LATE": f"e2e-{tag}.late",
        "TICKWIRE_TOPIC_DLQ": f"e2e-{tag}.dlq",
        "TICKWIRE_LOG_LEVEL": "WARNING",
    }
    specs = [
        ServiceSpec("ingest", procs.free_port(), {"TICKWIRE_INGEST_AUTH": "off"}),
        ServiceSpec("processor", procs.free_port(), {}),
        ServiceSpec("gateway", procs.free_port(), {"TICKWIRE_GATEWAY_AUTH": "off"}),
    ]
    run_dir = Path(tempfile.mkdtemp(prefix="tw-e2e-"))
    pid_files = [start_service(s, env, run_dir) for s in specs]
    try:
        for spec, pid in zip(specs, pid_files, strict=True):
            wait_ready(spec, pid, run_dir / f"{spec.name}.log")
        ingest = f"http://127.0.0.1:{specs[0].port}"
        stream = f"http://127.0.0.1:{specs[2].port}/v1/stream?symbols={','.join(SYMBOLS)}"
        samples: list[float] = []
        ready, stop = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(_sse_reader(stream, samples, ready, stop))
        await asyncio.wait_for(ready.wait(), 30)
        await _post_loop(ingest, 3)  # warm-up: topics, caches, JIT-free but connections warm
        samples.clear()
        sent = await _post_loop(ingest, DURATION)
        await asyncio.sleep(2)
        stop.set()
        if reader.done():
            reader.result()  # surfaces a reader failure instead of reporting no samples
        reader.cancel()
        return {
            "events_sent": sent,
            "updates_received": len(samples),
            "p50_ms": round(percentile(samples, 50), 2),
            "p99_ms": round(percentile(samples, 99), 2),
            "max_ms": round(max(samples, default=0), 2),
            "note": "the processor coalesces one update per symbol per poll batch, so "
            "updates_received <= events_sent by design",
        }
    finally:
        for pid in pid_files:
            procs.stop(pid)


async def measure_floor(bootstrap: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic_a, topic_b = f"floor-{tag}.a", f"floor-{tag}.b"
    from tickwire.kafka.topics import ensure_topics

    await ensure_topics(bootstrap, [topic_a, topic_b], partitions=6, replication=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    relay_out = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    relay_in = AIOKafkaConsumer(
        topic_a, bootstrap_servers=bootstrap, group_id=f"r-{tag}", auto_offset_reset="earliest"
    )
    sink = AIOKafkaConsumer(
        topic_b, bootstrap_servers=bootstrap, group_id=f"s-{tag}", auto_offset_reset="earliest"
    )
    for c in (producer, relay_out, relay_in, sink):
        await c.start()
    samples: list[float] = []

    async def relay() -> None:
        while True:
            batch = await relay_in.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    await relay_out.send(topic_b, key=r.key, value=r.value)
            await relay_out.flush()

    async def drain() -> None:
        while True:
            batch = await sink.getmany(timeout_ms=100)
            now = time.time_ns()
            for records in batch.values():
                samples.extend((now - int(r.value)) / 1e6 for r in records)  # type: ignore[arg-type]

    tasks = [asyncio.create_task(relay()), asyncio.create_task(drain())]
    try:
        await asyncio.sleep(2)
        per_batch = max(1, round(RATE * BATCH_EVERY))
        deadline = time.monotonic() + DURATION
        sent = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            for i in range(per_batch):
                await producer.send(
                    topic_a,
                    key=SYMBOLS[i % len(SYMBOLS)].encode(),
                    value=str(time.time_ns()).encode(),
                )
            sent += per_batch
            await asyncio.sleep(max(0.0, BATCH_EVERY - (time.monotonic() - started)))
        await producer.flush()
        await asyncio.sleep(2)
    finally:
        for t in tasks:
            t.cancel()
        for c in (producer, relay_out, relay_in, sink):
            await c.stop()
    return {
        "records_sent": sent,
        "records_received": len(samples),
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples, default=0), 2),
    }


def main() -> None:
    stack = Stack(default_stack_dir())
    info = stack.up()
    ours = asyncio.run(measure_tickwire(info.bootstrap_servers, info.mongodb_url))
    floor = asyncio.run(measure_floor(info.bootstrap_servers))
    ours.update({"rate_events_per_s": RATE, "seconds": DURATION})
    floor.update(
        {
            "name": "two plain aiokafka produce->consume hops (acks=all, linger 0)",
            "rate_events_per_s": RATE,
            "seconds": DURATION,
        }
    )
    ratio = floor["p99_ms"] / ours["p99_ms"] if ours["p99_ms"] else 0.0
    path = write_result(
        "e2e",
        ours=ours,
        peer=floor,
        ratio=ratio,
        ratio_meaning="floor p99 / tickwire p99 for ingest accept -> SSE write; at most 1, "
        "closer to 1 means less overhead over two bare Kafka hops",
        versions_=versions("aiokafka", "fastapi", "uvicorn", "msgspec", "pymongo"),
        extra={"p50_ratio": round(floor["p50_ms"] / ours["p50_ms"], 3) if ours["p50_ms"] else 0.0},
    )
    print(path.read_text())
    sys.exit(0)


if __name__ == "__main__":
    main()
