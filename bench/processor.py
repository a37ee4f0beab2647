"""Processor throughput: tickwire's processor against the same aggregation written as a
Quix Streams application, same broker, same store, same pre-filled input.

    python -m bench.processor [--events 1000000] [--symbols 500]

Both read a ticks.raw topic pre-filled with --events events (2/3 trades, 1/3 quotes)
over --symbols symbols, keep per-symbol state and 1s/1m bars, write `quotes` and
`bars` to MongoDB (FerretDB here) and republish to ticker.updates / ticker.bars. Each
runs alone, as one process, from the first offset until its consumer group has
committed the last one; events/s = events / that wall time. Kafka and FerretDB come
from TICKWIRE_KAFKA_BOOTSTRAP / TICKWIRE_MONGODB_URL, else a private stack is started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from pymongo import AsyncMongoClient

from bench.common import CpuMeter, versions, write_result
from tickwire.events import headers as h
from tickwire.events import types
from tickwire.events.wire import ENCODER, QuoteData, TradeData
from tickwire.kafka.batches import BatchPublisher, OutgoingRecord
from tickwire.kafka.clients import make_producer
from tickwire.kafka.topics import ensure_topics

PARTITIONS = 6
START_US = 1_795_789_800_000_000  # 2026-11-27T14:30:00Z


def tape(events: int, symbols: int, step_us: int, seed: int = 1) -> list[OutgoingRecord]:
    """A deterministic tape in the ingest format (CloudEvents binary mode)."""
    import datetime as dt

    rng = random.Random(seed)
    names = [f"SYM{i:04d}" for i in range(symbols)]
    prices = [20.0 + (i % 300) for i in range(symbols)]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    out: list[OutgoingRecord] = []
    for n in range(events):
        i = rng.randrange(symbols)
        name = names[i]
        moment = epoch + dt.timedelta(microseconds=START_US + n * step_us)
        price = prices[i] = round(prices[i] * (1 + rng.uniform(-0.001, 0.001)), 4)
        if n % 3:
            value = ENCODER.encode(
                TradeData(symbol=name, price=price, size=float(1 + n % 97), time=moment)
            )
            kind = types.TRADE
        else:
            value = ENCODER.encode(
                QuoteData(
                    symbol=name,
                    bid=price - 0.01,
                    bid_size=100.0,
                    ask=price + 0.01,
                    ask_size=200.0,
                    time=moment,
                )
            )
            kind = types.QUOTE
        headers = [
            (h.CE_SPECVERSION, b"1.0"),
            (h.CE_ID, f"b{n}".encode()),
            (h.CE_SOURCE, b"/bench"),
            (h.CE_TYPE, kind.encode()),
            (h.CE_SUBJECT, name.encode()),
            (h.CE_TIME, ENCODER.encode(moment)[1:-1]),
            (h.CONTENT_TYPE, b"application/json"),
            (h.RECEIVED_NS, str(time.time_ns()).encode()),
        ]
        out.append(OutgoingRecord("", name.encode(), value, headers))
    return out


async def prefill(bootstrap: str, topic: str, records: list[OutgoingRecord]) -> None:
    """Write the tape with the batch API (not timed)."""
    producer = make_producer(bootstrap, "bench-prefill", linger_ms=20)
    await producer.start()
    try:
        publisher = BatchPublisher(producer)
        for i in range(0, len(records), 50_000):
            await publisher.publish(r._replace(topic=topic) for r in records[i : i + 50_000])
    finally:
        await producer.stop()


async def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the group's committed offsets on the topic (0 before the first commit)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        return 0  # a new cluster creates __consumer_offsets on first use: not yet
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def run_until_committed(
    name: str, argv: list[str], env: dict[str, str], bootstrap: str, group: str, topic: str,
    total: int, log: Path, limit_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Start a consumer process; time it from start until every offset is committed."""
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
        meter = CpuMeter(proc.pid)
        meter.start()
        done = 0
        try:
            while time.monotonic() - started < limit_s:
                await asyncio.sleep(0.5)
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early, see {log}")
                done = await committed_total(bootstrap, group, topic)
                if done >= total:
                    break
            elapsed = time.monotonic() - started
            cpu = meter.stop()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if done < total:
        raise RuntimeError(f"{name} committed only {done}/{total} within {limit_s}s")
    print(
        f"[bench] {name}: {total} events in {elapsed:.1f}s = {total / elapsed:,.0f}/s, "
        f"cpu {cpu:.1f}s",
        flush=True,
    )
    return {
        "events": total,
        "seconds": round(elapsed, 2),
        "events_per_second": round(total / elapsed, 1),
        "cpu_seconds": round(cpu, 2),
        "events_per_cpu_second": round(total / cpu, 1) if cpu else None,
    }


async def counts(mongodb_url: str, db: str) -> dict[str, int]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url)
    try:
        return {
            "quotes": await client[db].quotes.count_documents({}),
            "bars": await client[db].bars.count_documents({}),
        }
    finally:
        await client.close()


async def bench(args: argparse.Namespace, bootstrap: str, mongodb_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    raw = f"bench-{tag}.ticks.raw"
    records = tape(args.events, args.symbols, args.step_us)
    topics = {
        side: {k: f"bench-{tag}-{side}.{k}" for k in ("updates", "bars", "late", "dlq")}
        for side in ("ours", "quix")
    }
    await ensure_topics(
        bootstrap,
        [raw] + [t for side in topics.values() for t in side.values()],
        partitions=PARTITIONS,
        replication=1,
    )
    print(
        f"[bench] pre-filling {raw} with {len(records)} events over {args.symbols} symbols",
        flush=True,
    )
    await prefill(bootstrap, raw, records)
    del records
    work = Path(tempfile.mkdtemp(prefix="bench-processor-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TICKWIRE_", "QUIX_BENCH_"))}

    ours_env = {
        **base,
        "TICKWIRE_KAFKA_BOOTSTRAP": bootstrap, "TICKWIRE_MONGODB_URL": mongodb_url,
        "TICKWIRE_MONGODB_DB": f"bench_{tag}_ours", "TICKWIRE_GROUP_ID": f"bench-{tag}-ours",
        "TICKWIRE_TOPIC_RAW": raw, "TICKWIRE_TOPIC_PARTITIONS": str(PARTITIONS),
        "TICKWIRE_PORT": "0", "TICKWIRE_LOG_LEVEL": "WARNING",
        **{f"TICKWIRE_TOPIC_{k.upper()}": v for k, v in topics["ours"].items()},
    }  # fmt: skip
    ours = await run_until_committed(
        "tickwire", [sys.executable, "-m", "tickwire.processor"], ours_env, bootstrap,
        f"bench-{tag}-ours", raw, args.events, work / "ours.log", args.limit,
    )  # fmt: skip
    ours["mongodb"] = await counts(mongodb_url, f"bench_{tag}_ours")

    quix_env = {
        **base,
        "QUIX_BENCH_BOOTSTRAP": bootstrap, "QUIX_BENCH_GROUP": f"bench-{tag}-quix",
        "QUIX_BENCH_TOPIC": raw, "QUIX_BENCH_MONGODB_URL": mongodb_url,
        "QUIX_BENCH_DB": f"bench_{tag}_quix", "QUIX_BENCH_STATE_DIR": str(work / "quix-state"),
        "QUIX_BENCH_UPDATES": topics["quix"]["updates"], "QUIX_BENCH_BARS": topics["quix"]["bars"],
        "QUIX_BENCH_COMMIT_INTERVAL": str(args.quix_commit_interval),
    }  # fmt: skip
    peer = await run_until_committed(
        "quixstreams", [sys.executable, "-m", "bench.quix_app"], quix_env, bootstrap,
        f"bench-{tag}-quix", raw, args.events, work / "quix.log", args.limit,
    )  # fmt: skip
    peer["mongodb"] = await counts(mongodb_url, f"bench_{tag}_quix")
    peer["name"] = "Quix Streams"
    peer["guarantees"] = (
        "Quix defaults: processing_guarantee=at-least-once, RocksDB state with changelog "
        f"topic, checkpoint every {args.quix_commit_interval}s (sink flushed, then offsets "
        "committed)"
    )
    ours["guarantees"] = (
        "effectively once: produce + acks, MongoDB writes (offset-guarded), then commit, per batch"
    )
    ratio = ours["events_per_second"] / peer["events_per_second"]
    print(f"[bench] ratio tickwire/quix = {ratio:.2f}", flush=True)
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url)
    for side in ("ours", "quix"):
        await client.drop_database(f"bench_{tag}_{side}")
    await client.close()
    shutil.rmtree(work, ignore_errors=True)
    write_result(
        "processor",
        ours=ours,
        peer=peer,
        ratio=ratio,
        ratio_meaning="tickwire processor events/s ÷ Quix Streams events/s, ticks.raw to "
        "MongoDB + republish, same input, broker and store; above 1 means tickwire is ahead",
        versions_=versions("aiokafka", "quixstreams", "confluent-kafka", "pymongo", "msgspec"),
        extra={
            "input": {
                "events": args.events,
                "symbols": args.symbols,
                "partitions": PARTITIONS,
                "event_time_step_us": args.step_us,
                "trades_share": "2/3",
            },
            "store_note": "FerretDB v1.24.2 on SQLite: each upsert costs milliseconds and grows "
            "with the collection; both sides write one quotes upsert per touched symbol per "
            "batch/checkpoint and insert each closed bar once, in commands of 20",
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--step-us", type=int, default=100, help="event time between events")
    parser.add_argument("--quix-commit-interval", type=float, default=2.0)
    parser.add_argument("--limit", type=float, default=1800, help="seconds allowed per side")
    args = parser.parse_args()
    bootstrap = os.environ.get("TICKWIRE_KAFKA_BOOTSTRAP")
    mongodb_url = os.environ.get("TICKWIRE_MONGODB_URL")
    if bootstrap and mongodb_url:
        asyncio.run(bench(args, bootstrap, mongodb_url))
        return
    from tickwire.devstack.paths import cache_dir
    from tickwire.devstack.stack import Stack

    stack = Stack(cache_dir() / "stack-bench-processor")
    info = stack.up()
    try:
        asyncio.run(bench(args, info.bootstrap_servers, info.mongodb_url))
    finally:
        stack.down()


if __name__ == "__main__":
    main()
