"""The query API on a store holding history: p50/p99 of `GET /v1/bars` (1m, 120 bars)
and `GET /v1/quotes?symbols=` (50 symbols) at 50 requests in flight.

    python -m bench.query            (QUERY_QUICK=1 for a smoke run)

The store holds, for QUERY_SYMBOLS (500) symbols, one day of 1m bars and the last
QUERY_FINE_HOURS (1, the processor's default fine-bar retention) of that day's 1s bars,
plus one quotes document each, loaded in bulk through the documents codec (bucket
documents inserted directly; a whole day of 1s bars, 43.2M bars, is what the retention
deletes and is not loaded). One gateway process serves the requests (real Kafka and
the embedded store: TICKWIRE_KAFKA_BOOTSTRAP / TICKWIRE_MONGODB_URL, else the default
stack). The peer is the same two reads made straight on the store with PyMongo (no
HTTP, no JSON): ratio = the peer's p99 / the gateway's p99 for the bars query.
Target: the gateway's p99 <= 50 ms for both.

The gateway is driven by wrk (bench/wrk.py: C, closed loop, 50 connections = 50 in
flight, QUERY_SECONDS per run) after a check that the paths it asks answer 120 bars
and 50 quotes; the store-direct peer stays an in-process PyMongo client (REQUESTS
calls), since it has no HTTP to drive.

Bars are timed twice: a cold pass (one query per symbol, 50 in flight, every answer
read from the store: a cold gateway's first paint), then wrk over the same queries,
answered by the gateway's in-process cache (`TICKWIRE_GATEWAY_CACHE_LOCAL_MIB`) until
a final bar moves a key. The `cache` column, same run: a second gateway process with
the Redis read-through cache alone (its in-process cache off; a redis-server started
for the run in its directory, tickwire.devstack.redis), after its own cold pass; its
hits and misses are read from its /metrics, so the MongoDB reads it saved are counted,
not assumed, and it is also timed one request at a time (the service time, without
the queueing of 50 in flight).
Quotes are not in that column: once a gateway has caught up with Kafka they come from
its memory, with or without Redis. QUERY_CACHE=0 leaves it out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench import wrk
from bench.common import percentile, versions, write_result
from tickwire.devstack import procs
from tickwire.devstack.paths import default_stack_dir
from tickwire.devstack.redis import RedisServer
from tickwire.devstack.redis import binary as redis_binary
from tickwire.devstack.run import ServiceSpec, start_service, wait_ready
from tickwire.devstack.stack import Stack
from tickwire.events.wire import Bar, TickerState
from tickwire.kafka.topics import ensure_topics
from tickwire.mongo import documents
from tickwire.mongo.history import history

QUICK = os.environ.get("QUERY_QUICK") == "1"
SYMBOLS = int(os.environ.get("QUERY_SYMBOLS", 50 if QUICK else 500))
FINE_HOURS = float(os.environ.get("QUERY_FINE_HOURS", 0.1 if QUICK else 1))
REQUESTS = int(os.environ.get("QUERY_REQUESTS", 500 if QUICK else 3000))
CONCURRENCY = int(os.environ.get("QUERY_CONCURRENCY", 50))
CACHE = os.environ.get("QUERY_CACHE", "1") != "0"
#: length of each timed wrk run through the gateway
SECONDS = float(os.environ.get("QUERY_SECONDS", 3 if QUICK else 10))
DAY = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
INSERT_BATCH = 100


def _bar(symbol: str, interval: str, start: dt.datetime, step: dt.timedelta, n: int) -> Bar:
    price = 100.0 + (n % 500) / 100
    return Bar(
        symbol=symbol, interval=interval, start=start, end=start + step, open=price,
        high=price + 0.05, low=price - 0.05, close=price + 0.01, volume=100.0 + n % 7,
        vwap=price, trades=3 + n % 5, version=2 * (3 + n % 5) + 1, received_ns=n,
    )  # fmt: skip


def _buckets(
    symbol: str, interval: str, step: dt.timedelta, first: dt.datetime, count: int
) -> list[dict[str, Any]]:
    """`count` bars from `first`, as the bucket documents they fill."""
    return documents.bucket_documents(
        _bar(symbol, interval, first + n * step, step, n) for n in range(count)
    )


async def load(db: Any, names: list[str]) -> dict[str, Any]:
    """History for every symbol, in bulk; returns what was loaded."""
    started = time.monotonic()
    minute, second = dt.timedelta(minutes=1), dt.timedelta(seconds=1)
    fine = int(FINE_HOURS * 3600)
    fine_from = DAY + dt.timedelta(days=1) - fine * second
    batch: list[dict[str, Any]] = []
    buckets = 0
    pending: list[Awaitable[Any]] = []

    async def flush() -> None:
        nonlocal batch
        pending.append(db.bars.insert_many(batch, ordered=False))
        batch = []
        if len(pending) >= 4:  # a few inserts in flight: the store's cores stay busy
            await asyncio.gather(*pending)
            pending.clear()

    for name in names:
        for doc in (
            *_buckets(name, "1m", minute, DAY, 1440),
            *_buckets(name, "1s", second, fine_from, fine),
        ):
            batch.append(doc)
            buckets += 1
            if len(batch) >= INSERT_BATCH:
                await flush()
    if batch:
        await flush()
    await asyncio.gather(*pending)
    quotes = [
        documents.encode_quote(
            TickerState(symbol=name, version=1, time=DAY, last=100.0, last_size=1.0),
            {"partition": 0, "offset": 0},
        )
        for name in names
    ]
    await db.quotes.insert_many(quotes)
    return {
        "symbols": len(names),
        "bars_1m": len(names) * 1440,
        "bars_1s": len(names) * fine,
        "bars_1s_hours": FINE_HOURS,
        "bucket_documents": buckets,
        "load_s": round(time.monotonic() - started, 1),
    }


async def timed(
    call: Callable[[int], Awaitable[None]],
    concurrency: int = CONCURRENCY,
    requests: int = REQUESTS,
    warm_up: bool = True,
) -> dict[str, Any]:
    """p50/p99 of `requests` calls, `concurrency` in flight (after a warm-up)."""
    gate = asyncio.Semaphore(concurrency)
    samples: list[float] = []

    async def one(i: int, keep: bool) -> None:
        async with gate:
            started = time.perf_counter()
            await call(i)
            if keep:
                samples.append((time.perf_counter() - started) * 1000)

    if warm_up:
        await asyncio.gather(*(one(i, False) for i in range(concurrency * 2)))
    started = time.perf_counter()
    await asyncio.gather(*(one(i, True) for i in range(requests)))
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2),
        "requests": len(samples),
        "requests_per_s": round(len(samples) / elapsed, 1),
    }


def _fifty(names: list[str], i: int) -> list[str]:
    return [names[(i * 13 + k * 7) % len(names)] for k in range(min(50, len(names)))]


def _bar_paths(names: list[str]) -> list[str]:
    return [f"/v1/bars/{name}?interval=1m&limit=120" for name in names]


def _quote_paths(names: list[str]) -> list[str]:
    return [f"/v1/quotes?symbols={','.join(_fifty(names, i))}" for i in range(len(names))]


async def check_answers(url: str, names: list[str]) -> None:
    """Every path the timed runs ask answers what it should (wrk only counts statuses)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for path in _bar_paths(names)[:20]:
            resp = await http.get(path)
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["bars"]) == 120, path
        for path in _quote_paths(names)[:20]:
            resp = await http.get(path)
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["quotes"]) == min(50, len(names)), path


async def cold_pass(url: str, names: list[str]) -> dict[str, Any]:
    """One bars query per symbol, CONCURRENCY in flight: every answer read from the
    store (and kept by the caches), timed as the first paint of a cold gateway."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    paths = _bar_paths(names)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def bars(i: int) -> None:
            resp = await http.get(paths[i])
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["bars"]) == 120

        return await timed(bars, requests=len(paths), warm_up=False)


async def through_gateway(url: str, names: list[str]) -> dict[str, Any]:
    """Quotes (from the hub's memory) and bars at CONCURRENCY in flight; bars after a
    cold pass over every symbol (then from the gateway's own cache, no Redis)."""
    out = {"bars_1m_120_cold_pass": await cold_pass(url, names)}
    out["bars_1m_120"] = wrk.run(url, _bar_paths(names), connections=CONCURRENCY, seconds=SECONDS)
    out["quotes_50"] = wrk.run(url, _quote_paths(names), connections=CONCURRENCY, seconds=SECONDS)
    return out


def _cache_counts(url: str) -> dict[str, float]:
    """The bars cache's hit/miss/bypass counts on a gateway's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts = {"hit": 0.0, "miss": 0.0, "bypass": 0.0}
    for line in text.splitlines():
        if line.startswith('tickwire_cache_requests_total{cache="bars",'):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    return counts


async def through_cache(url: str, names: list[str]) -> dict[str, Any]:
    """The bars query on a gateway with the Redis cache and no local one: a cold pass
    over every symbol fills Redis, then the same timed runs as without it."""
    cold = await cold_pass(url, names)
    before = _cache_counts(url)
    timed_bars = wrk.run(url, _bar_paths(names), connections=CONCURRENCY, seconds=SECONDS)
    one_by_one = wrk.run(url, _bar_paths(names), connections=1, seconds=SECONDS)
    after = _cache_counts(url)
    counted = {k: int(after[k] - before[k]) for k in after}
    asked = sum(counted.values())
    return {
        "bars_1m_120": timed_bars,
        "bars_1m_120_one_by_one": one_by_one,
        "cold_pass": cold,
        "lookups": counted,
        "hit_ratio": round(counted["hit"] / asked, 4) if asked else 0.0,
        "mongo_reads_saved": counted["hit"],
    }


async def straight(db: Any, names: list[str]) -> dict[str, Any]:
    async def bars(i: int) -> None:
        got = await history(db.bars, names[i % len(names)], "1m", None, None, 120)
        assert len(got) == 120

    async def quotes(i: int) -> None:
        wanted = _fifty(names, i)
        found = await asyncio.gather(*(db.quotes.find_one({"_id": s}) for s in wanted))
        assert all(found)

    return {"bars_1m_120": await timed(bars), "quotes_50": await timed(quotes)}


async def run(bootstrap: str, mongodb_url: str, store: str, run_dir: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    db_name = f"query_{tag}"
    names = [f"Q{i:04d}" for i in range(SYMBOLS)]
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongodb_url, tz_aware=True, maxPoolSize=CONCURRENCY
    )
    topics = {
        "TICKWIRE_TOPIC_UPDATES": f"query-{tag}.updates",
        "TICKWIRE_TOPIC_BARS": f"query-{tag}.bars",
    }
    await ensure_topics(bootstrap, list(topics.values()), partitions=1, replication=1)
    db = client[db_name]
    from tickwire.processor.store import StateStore

    await StateStore(db).ensure_indexes()
    loaded = await load(db, names)
    print(f"[query] loaded {loaded}", flush=True)
    spec = ServiceSpec(
        "gateway",
        procs.free_port(),
        {"TICKWIRE_GATEWAY_AUTH": "off", "TICKWIRE_GATEWAY_QUERY_MAX_SYMBOLS": "200"},
    )
    env = {
        **os.environ,
        "TICKWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKWIRE_MONGODB_URL": mongodb_url,
        "TICKWIRE_MONGODB_DB": db_name,
        "TICKWIRE_LOG_LEVEL": "WARNING",
        **topics,
    }
    pid_file = start_service(spec, env, run_dir)
    cached: dict[str, Any] | None = None
    redis = RedisServer(run_dir / "redis")
    try:
        wait_ready(spec, pid_file, run_dir / "gateway.log")
        await check_answers(f"http://127.0.0.1:{spec.port}", names)
        ours = await through_gateway(f"http://127.0.0.1:{spec.port}", names)
        print(f"[query] gateway {ours}", flush=True)
        procs.stop(pid_file)
        if CACHE:
            redis.start()
            cached_spec = ServiceSpec(
                "gateway",
                procs.free_port(),
                {
                    **spec.env,
                    "TICKWIRE_REDIS_URL": redis.url,
                    "TICKWIRE_REDIS_KEY_PREFIX": tag,
                    "TICKWIRE_GATEWAY_CACHE_LOCAL_MIB": "0",
                },
            )
            cache_dir = run_dir / "cached"
            pid_file = start_service(cached_spec, env, cache_dir)
            wait_ready(cached_spec, pid_file, cache_dir / "gateway.log")
            cached = await through_cache(f"http://127.0.0.1:{cached_spec.port}", names)
            print(f"[query] gateway with the Redis cache {cached}", flush=True)
            procs.stop(pid_file)
        peer = await straight(db, names)
        print(f"[query] straight {peer}", flush=True)
    except BaseException:
        for log in sorted(run_dir.rglob("*.log")):  # the run directory goes with the run
            print(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}", flush=True)
        raise
    finally:
        procs.stop(pid_file)
        redis.stop()
        await client.drop_database(db_name)
        await client.close()
    cache_column: dict[str, Any] = {}
    if cached is not None:
        cold = ours["bars_1m_120_cold_pass"]
        cache_column = {
            "cache": {
                "name": "the same gateway with the Redis read-through cache alone (bars; "
                "its in-process cache off)",
                "redis": _redis_version(),
                **cached,
                "p99_cold_over_redis": round(
                    cold["p99_ms"] / max(cached["bars_1m_120"]["p99_ms"], 1e-9), 1
                ),
                "p99_redis_over_local": round(
                    cached["bars_1m_120"]["p99_ms"] / max(ours["bars_1m_120"]["p99_ms"], 1e-9), 1
                ),
            }
        }
    ratio = peer["bars_1m_120"]["p99_ms"] / max(ours["bars_1m_120"]["p99_ms"], 1e-9)
    worst = max(ours["bars_1m_120"]["p99_ms"], ours["quotes_50"]["p99_ms"])
    path = write_result(
        "query",
        ours={"name": "tickwire gateway /v1/bars and /v1/quotes", **ours},
        peer={"name": "the same reads straight on the store (PyMongo, no HTTP)", **peer},
        ratio=ratio,
        ratio_meaning=(
            "store-direct p99 / gateway p99 for the latest 120 1m bars at "
            f"{CONCURRENCY} requests in flight, the gateway after one cold pass over every "
            "symbol (above 1: the gateway's own cache answers faster than the store); the "
            "cold pass itself is ours.bars_1m_120_cold_pass"
        ),
        versions_=versions("pymongo", "fastapi", "uvicorn", "httpx", extra={"wrk": wrk.version()}),
        extra={
            "store": f"FerretDB on {store}",
            "loaded": loaded,
            "concurrency": CONCURRENCY,
            "target_p99_ms": 50,
            "target_met": worst <= 50,
            "quick": QUICK,
            **cache_column,
        },
    )
    print(f"wrote {path}")


def _redis_version() -> str:
    out = subprocess.run(
        [str(redis_binary()), "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.split(" v=", 1)[-1].split(" ", 1)[0]


def main() -> None:
    bootstrap = os.environ.get("TICKWIRE_KAFKA_BOOTSTRAP")
    mongodb_url = os.environ.get("TICKWIRE_MONGODB_URL")
    store = os.environ.get("QUERY_STORE_NAME", "the given MongoDB")
    if not (bootstrap and mongodb_url):
        stack = Stack(default_stack_dir())
        info = stack.up()
        bootstrap, mongodb_url, store = info.bootstrap_servers, info.mongodb_url, info.store
    with tempfile.TemporaryDirectory(prefix="tw-query-") as run_dir:
        asyncio.run(run(bootstrap, mongodb_url, store, Path(run_dir)))


if __name__ == "__main__":
    main()
