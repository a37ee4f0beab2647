"""Gateway market semantics: replay from a time, and delayed subscribers' memory:
`python -m bench.gateway_market` (quick: BENCH_MARKET_QUICK=1).

1. Replay throughput. A fresh ticker.updates topic (6 partitions) is filled with an
   hour of updates (default 100/s over 500 symbols, 360k records) stamped across the
   past hour (record timestamps and event times), then a gateway started on it serves
   `since=<an hour ago>`: for every symbol (`symbols=*`) and for 20 of them. Figures:
   updates delivered per second from the request to the `replayed` hand-over, records
   read per second, gateway CPU per delivered update, and its RSS before and after.
   Three trials each, medians. The peer is the broker itself: one plain aiokafka
   consumer reading the same partitions from the same offsets to their end in this
   process (`ratio`: our replay's records per second / that consumer's).
2. Delayed subscribers' memory. A gateway with JWT auth and a live feed (50 updates/s,
   event time = now); 1,000 SSE subscribers with a 60 s delayed entitlement (20 of 500
   symbols each) are connected and held for the hold time while the feed runs (so the
   delayed feed holds a minute of records); then 1,000 real-time subscribers beside
   them. Figures: gateway RSS growth per delayed subscriber and per real-time one.
Writes the `market` section of bench/results/gateway.json (the Centrifugo comparison
beside it is left as it is).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench import common
from bench.gateway import (
    REPO,
    Infra,
    Server,
    export_gateway,
    fresh_topics,
    infrastructure,
    launch,
    raise_file_limit,
    rss_bytes,
)
from tickwire.devstack.procs import free_port
from tickwire.events import wire

QUICK = os.environ.get("BENCH_MARKET_QUICK") == "1"
SYMBOLS = [f"S{i:03d}" for i in range(500)]
KEY = "bench-market-secret-key-long-enough-for-hs256-signatures"
RESULTS = REPO / "bench" / "results" / "gateway.json"


def state(symbol: str, version: int, when: dt.datetime) -> bytes:
    last = 100 + (version % 1000) / 100
    return wire.ENCODER.encode(
        wire.TickerState(
            symbol=symbol, version=version, time=when, last=last, last_size=10,
            bid=last - 0.01, ask=last + 0.01, volume=10.0 * version, trades=version,
            received_ns=int(when.timestamp() * 1e9),
        )
    )  # fmt: skip


async def fill(bootstrap: str, topic: str, rate: float, seconds: float) -> tuple[int, float]:
    """`rate * seconds` updates, round-robin over SYMBOLS, stamped over the past
    `seconds` (record timestamp = event time); the number written and the first stamp."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    try:
        count = int(rate * seconds)
        start = time.time() - seconds
        pending = []
        for i in range(count):
            at = start + i / rate
            symbol = SYMBOLS[i % len(SYMBOLS)]
            when = dt.datetime.fromtimestamp(at, dt.UTC)
            value = state(symbol, i // len(SYMBOLS) + 1, when)
            pending.append(
                await producer.send(topic, value, key=symbol.encode(), timestamp_ms=int(at * 1000))
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return count, start
    finally:
        await producer.stop()


def start_gateway(infra: Infra, updates: str, bars: str, workdir: Path, **env: str) -> Server:
    """The committed gateway (exported to workdir/src) on these topics."""
    port = free_port()
    src = workdir / "src"
    full = {
        **os.environ,
        "PYTHONPATH": f"{src / 'services' / 'gateway'}{os.pathsep}{src / 'libs'}",
        "TICKWIRE_HOST": "127.0.0.1",
        "TICKWIRE_PORT": str(port),
        "TICKWIRE_KAFKA_BOOTSTRAP": infra.bootstrap,
        "TICKWIRE_MONGODB_URL": infra.mongodb_url,
        "TICKWIRE_MONGODB_DB": f"bench_gwm_{uuid.uuid4().hex[:8]}",
        "TICKWIRE_TOPIC_UPDATES": updates,
        "TICKWIRE_TOPIC_BARS": bars,
        "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_IP": "20000",
        "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_SUBJECT": "20000",
        "TICKWIRE_LOG_LEVEL": "WARNING",
        **env,
    }
    return launch(
        "tickwire", [sys.executable, "-m", "tickwire.gateway"], full, port, "/readyz", workdir
    )


async def open_stream(
    addr: str, path: str, token: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 SSE request (cheap enough for thousands in one process)."""
    host, port = addr.split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


async def read_until(reader: asyncio.StreamReader, marker: bytes, count: bytes) -> int:
    """Read until marker is seen; the number of `count` occurrences before it."""
    seen, tail = 0, b""
    keep = len(marker) - 1  # too short to hold the marker whole
    while True:
        chunk = await reader.read(1 << 18)
        if not chunk:
            raise RuntimeError("stream ended before " + marker.decode())
        data = tail + chunk
        if marker in data:
            return seen + data[: data.index(marker)].count(count)
        seen += data.count(count) - tail.count(count)  # the tail's were counted
        tail = data[len(data) - keep :]


async def replay_once(server: Server, path: str) -> dict[str, Any]:
    proc = psutil.Process(server.proc.pid)
    rss_before = rss_bytes(server.proc.pid)
    cpu = proc.cpu_times()
    started = time.perf_counter()
    reader, writer = await open_stream(server.addr, path)
    try:
        delivered = await read_until(reader, b"event: replayed\n", b"event: quote\n")
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    after = proc.cpu_times()
    used = (after.user - cpu.user) + (after.system - cpu.system)
    return {
        "delivered": delivered,
        "seconds": round(seconds, 3),
        "updates_per_s": round(delivered / seconds),
        "cpu_us_per_update": round(used / delivered * 1e6, 2) if delivered else None,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_bytes(server.proc.pid) / 2**20, 1),
    }


async def consumer_floor(bootstrap: str, topic: str, since_ms: int) -> dict[str, Any]:
    """One plain aiokafka consumer reading every partition from since to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(6)]  # fresh_topics makes 6
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            hit = found.get(tp)
            consumer.seek(tp, hit.offset if hit else ends[tp])
        total = sum(ends[tp] - (found[tp].offset if found.get(tp) else ends[tp]) for tp in tps)
        started = time.perf_counter()
        read = 0
        while read < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            read += sum(len(r) for r in batch.values())
        seconds = time.perf_counter() - started
        return {
            "records": read,
            "seconds": round(seconds, 3),
            "records_per_s": round(read / seconds),
        }
    finally:
        await consumer.stop()


async def replay_bench(infra: Infra, workdir: Path) -> dict[str, Any]:
    rate, seconds = (50.0, 600.0) if QUICK else (100.0, 3600.0)
    trials = 1 if QUICK else 3
    async with fresh_topics(infra.bootstrap) as (updates, bars):
        written, first = await fill(infra.bootstrap, updates, rate, seconds)
        since = dt.datetime.fromtimestamp(int(first) - 1, dt.UTC)
        iso = since.isoformat(timespec="seconds").replace("+00:00", "Z")
        server = start_gateway(
            infra, updates, bars, workdir,
            TICKWIRE_GATEWAY_AUTH="off",
            TICKWIRE_GATEWAY_REPLAY_MAX_RECORDS=str(written + 1000),
            TICKWIRE_GATEWAY_RESUME_TIMEOUT_S="300",
        )  # fmt: skip
        try:
            runs: dict[str, list[dict[str, Any]]] = {"all_symbols": [], "20_symbols": []}
            few = ",".join(SYMBOLS[:20])
            for _ in range(trials):
                runs["all_symbols"].append(
                    await replay_once(server, f"/v1/stream?symbols=*&bars=none&since={iso}")
                )
                runs["20_symbols"].append(
                    await replay_once(server, f"/v1/stream?symbols={few}&bars=none&since={iso}")
                )
        finally:
            server.stop()
        floors = [
            await consumer_floor(infra.bootstrap, updates, int(since.timestamp() * 1000))
            for _ in range(trials)
        ]
    median = {
        name: {
            key: statistics.median(r[key] for r in rs)
            for key in ("updates_per_s", "seconds", "cpu_us_per_update", "rss_after_mb")
            if all(r[key] is not None for r in rs)
        }
        for name, rs in runs.items()
    }
    floor = statistics.median(f["records_per_s"] for f in floors)
    records_per_s = written / median["all_symbols"]["seconds"]
    return {
        "records_in_topic": written,
        "history": f"{seconds:g} s at {rate:g} updates/s over {len(SYMBOLS)} symbols",
        "runs": runs,
        "median": median,
        "records_read_per_s_all_symbols": round(records_per_s),
        "peer": {"name": "plain aiokafka consumer, same partitions and offsets", "runs": floors},
        "ratio": round(records_per_s / floor, 3),
        "ratio_meaning": "gateway replay from an hour back (symbols=*, request to `replayed`) "
        "records per second / a plain aiokafka consumer reading the same records (below 1: "
        "the gateway's parse, filter and write cost on top of the read)",
    }


async def feed_live(bootstrap: str, topic: str, rate: float, stop: asyncio.Event) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            at = time.time()
            symbol = SYMBOLS[sent % len(SYMBOLS)]
            value = state(symbol, sent // len(SYMBOLS) + 1, dt.datetime.fromtimestamp(at, dt.UTC))
            await producer.send(topic, value, key=symbol.encode())
            sent += 1
            await asyncio.sleep(max(0.0, at + 1 / rate - time.time()))
        await producer.flush()
        return sent
    finally:
        await producer.stop()


def token(subject: str, **claims: object) -> str:
    payload = {"sub": subject, "aud": "tickwire-gateway", "iss": "tickwire",
               "exp": int(time.time()) + 3600, "symbols": ["*"], **claims}  # fmt: skip
    return jwt.encode(payload, KEY, algorithm="HS256")


async def connect_many(server: Server, count: int, jwt_token: str, first: bytes) -> list[Any]:
    """count subscribers of 20 symbols each (every symbol watched equally), each once
    it has read `first`."""
    streams = []
    for i in range(count):
        mine = ",".join(SYMBOLS[(i * 20 + k) % len(SYMBOLS)] for k in range(20))
        reader, writer = await open_stream(
            server.addr, f"/v1/stream?symbols={mine}&bars=none", jwt_token
        )
        streams.append((reader, writer))
    for reader, _ in streams:
        await read_until(reader, first, b"\x00")
    return streams


async def drain(streams: list[Any], stop: asyncio.Event) -> None:
    async def one(reader: asyncio.StreamReader) -> None:
        while not stop.is_set() and await reader.read(1 << 16):
            pass

    await asyncio.gather(*(one(r) for r, _ in streams), return_exceptions=True)


async def delayed_bench(infra: Infra, workdir: Path) -> dict[str, Any]:
    count = 200 if QUICK else 1000
    hold_s = 20.0 if QUICK else 75.0
    delay_s = 60
    async with fresh_topics(infra.bootstrap) as (updates, bars):
        server = start_gateway(
            infra, updates, bars, workdir,
            TICKWIRE_GATEWAY_AUTH="jwt", TICKWIRE_GATEWAY_JWT_KEY=KEY,
        )  # fmt: skip
        stop = asyncio.Event()
        feeder = asyncio.create_task(feed_live(infra.bootstrap, updates, 50.0, stop))
        streams: list[Any] = []
        drainers: list[asyncio.Task[None]] = []
        try:
            late, now = token("late", delay={"*": delay_s}), token("now")
            # the delayed feed starts with its first subscriber
            streams += await connect_many(server, 1, late, b"event: delayed\n")
            streams += await connect_many(server, 1, now, b"retry:")
            await asyncio.sleep(2)
            base = rss_bytes(server.proc.pid)
            delayed = await connect_many(server, count, late, b"event: delayed\n")
            drainers.append(asyncio.create_task(drain(delayed, stop)))
            await asyncio.sleep(hold_s)  # a delay's worth of records held by the feed
            with_delayed = rss_bytes(server.proc.pid)
            realtime = await connect_many(server, count, now, b"retry:")
            drainers.append(asyncio.create_task(drain(realtime, stop)))
            await asyncio.sleep(hold_s / 3)
            with_both = rss_bytes(server.proc.pid)
            streams += delayed + realtime
        finally:
            stop.set()
            for _, writer in streams:
                writer.close()
            for task in drainers:
                task.cancel()
            sent = await feeder
            server.stop()
    per_delayed = (with_delayed - base) / count
    per_realtime = (with_both - with_delayed) / count
    return {
        "subscribers": count,
        "delay_s": delay_s,
        "held_s": hold_s,
        "feed": f"50 updates/s over {len(SYMBOLS)} symbols, event time = now ({sent} sent)",
        "rss_base_mb": round(base / 2**20, 1),
        "rss_with_delayed_mb": round(with_delayed / 2**20, 1),
        "rss_with_delayed_and_realtime_mb": round(with_both / 2**20, 1),
        "kib_per_delayed_subscriber": round(per_delayed / 1024, 1),
        "kib_per_realtime_subscriber": round(per_realtime / 1024, 1),
    }


async def bench(infra: Infra) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-gwm-") as tmp:
        workdir = Path(tmp)
        commit = export_gateway("HEAD", workdir / "src")
        print(f"[bench] tickwire gateway from commit {commit}", flush=True)
        replay = await replay_bench(infra, workdir)
        print(f"[bench] replay: {replay['median']}", flush=True)
        delayed = await delayed_bench(infra, workdir)
        print(f"[bench] delayed: {delayed}", flush=True)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine(),
        "commit": commit,
        "quick": QUICK,
        "replay": replay,
        "delayed_subscribers": delayed,
    }


def main(argv: Sequence[str] | None = None) -> None:
    raise_file_limit()
    with infrastructure(os.environ.get("BENCH_STACK", "private")) as infra:
        market = asyncio.run(bench(infra))
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "gateway"}
    doc["market"] = market
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(market, indent=2))


if __name__ == "__main__":
    main()
