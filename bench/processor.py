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
import contextlib
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

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient

from bench.common import CpuMeter, versions, write_result
from tickwire.events import headers as h
from tickwire.events import types
from tickwire.events.wire import ENCODER, STATE_DECODER, QuoteData, TradeData
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


async def input_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """The last offset of every partition of the pre-filled input."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: end - 1 for tp, end in ends.items() if end > 0}


async def published_at(
    bootstrap: str, updates: str, ends: dict[int, int]
) -> tuple[float, int, float]:
    """When (monotonic clock) the first updates arrived and how many input records they
    covered, and when ticker.updates first
    covered the last input record of every partition: the updates' `source` says which
    input offsets each one covers, so this is when the hot path (consume, aggregate,
    publish) was done with the whole input, whatever MongoDB and the commits behind it
    still had to do."""
    consumer = AIOKafkaConsumer(
        updates, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        metadata_max_age_ms=1000,
    )  # fmt: skip
    await consumer.start()
    reached: dict[int, int] = {}
    first: tuple[float, int] | None = None
    try:
        while any(reached.get(p, -1) < last for p, last in ends.items()):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    source = STATE_DECODER.decode(record.value).source
                    if source is not None and source.last > reached.get(source.partition, -1):
                        reached[source.partition] = source.last
            if first is None and reached:
                first = time.monotonic(), sum(last + 1 for last in reached.values())
        done = time.monotonic()
        return (*(first or (done, 0)), done)
    finally:
        await consumer.stop()


async def run_until_committed(
    name: str, argvs: list[list[str]], env: dict[str, str], bootstrap: str, group: str,
    topic: str, total: int, log: Path, limit_s: float, profile: Path | None = None,
    updates: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Start consumer processes (one group); time them from start until every offset is
    committed (and, given its updates topic, until everything was published). With
    `profile`, py-spy samples the first process meanwhile."""
    ends = await input_ends(bootstrap, topic) if updates is not None else {}
    with log.open("wb") as out:
        started = time.monotonic()
        procs = [subprocess.Popen(argv, env=env, stdout=out, stderr=out) for argv in argvs]
        published = (
            asyncio.create_task(published_at(bootstrap, updates, ends))
            if updates is not None
            else None
        )
        meter = CpuMeter(*(proc.pid for proc in procs))
        meter.start()
        spy = _start_py_spy(procs[0].pid, profile) if profile is not None else None
        done = 0
        timeline: list[tuple[float, int]] = []  # (seconds since start, committed)
        try:
            while time.monotonic() - started < limit_s:
                await asyncio.sleep(0.5)
                if any(proc.poll() is not None for proc in procs):
                    raise RuntimeError(f"{name} exited early, see {log}")
                done = await committed_total(bootstrap, group, topic)
                timeline.append((time.monotonic() - started, done))
                if done >= total:
                    break
            elapsed = time.monotonic() - started
            cpu = meter.stop()
            publish_s = steady_s = None
            steady_events = 0
            if published is not None:
                with contextlib.suppress(TimeoutError):
                    first, covered, last = await asyncio.wait_for(published, 30)
                    publish_s, steady_s = last - started, last - first
                    steady_events = total - covered
        finally:
            if published is not None:
                published.cancel()
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(timeout=30)
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    published_figures = (
        {
            "published_seconds": round(publish_s, 2),
            "published_events_per_second": round(total / publish_s, 1),
            # from the first updates out to the last (start-up and the first batch left
            # out, events and time alike)
            "published_sustained_events_per_second": (
                round(steady_events / steady_s, 1) if steady_s else None
            ),
        }
        if publish_s
        else {}
    )
    if done < total:
        print(f"[bench] {name} committed only {done}/{total} within {limit_s}s", flush=True)
        return {
            **published_figures,
            "events": total,
            "processes": len(argvs),
            "completed": False,
            "committed": done,
            "seconds": round(elapsed, 2),
            "events_per_second": round(done / elapsed, 1),
            "cpu_seconds": round(cpu, 2),
            "sustained_events_per_second": sustained(timeline, total),
        }
    print(
        f"[bench] {name}: {total} events committed in {elapsed:.1f}s = "
        f"{total / elapsed:,.0f}/s, cpu {cpu:.1f}s"
        + (
            f"; all published after {publish_s:.1f}s = {total / publish_s:,.0f}/s "
            f"({steady_events / steady_s:,.0f}/s after the first batch)"
            if publish_s and steady_s
            else ""
        ),
        flush=True,
    )
    return {
        "events": total,
        "processes": len(argvs),
        "completed": True,
        "seconds": round(elapsed, 2),
        "events_per_second": round(total / elapsed, 1),
        "cpu_seconds": round(cpu, 2),
        "events_per_cpu_second": round(total / cpu, 1) if cpu else None,
        "sustained_events_per_second": sustained(timeline, total),
        **published_figures,
    }


def sustained(timeline: list[tuple[float, int]], total: int) -> float | None:
    """The committed rate between 10% and 90% of the input (start-up and the last
    flush left out); None when commits came in too few steps to tell."""
    low = next(((t, n) for t, n in timeline if n >= total * 0.1), None)
    high = next(((t, n) for t, n in timeline if n >= total * 0.9), None)
    if low is None or high is None or high[0] <= low[0]:
        return None
    return round((high[1] - low[1]) / (high[0] - low[0]), 1)


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found is None:
        beside = Path(sys.executable).with_name("py-spy")
        found = str(beside) if beside.exists() else None
    return found


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    binary = _py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


#: Where the processor's CPU goes: a sample belongs to the first part (in this order)
#: that any frame of its stack names (substrings of py-spy's "function (path:line)")
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("startup (imports)", ("<frozen importlib._bootstrap",)),
    ("msgspec decode + event rules", ("events/parsing.py", "events/kinds.py", "events/rules.py")),
    ("dedup (id digest, window, its stored form)", ("processor/dedup.py",)),
    ("record headers (decode.py)", ("processor/decode.py",)),
    ("documents for MongoDB (encode)", ("to_doc (", "documents (", "mongo/documents.py", "bson/")),
    ("outputs encode (records)", ("processor/outputs.py", "to_wire (")),
    ("apply (state, bars)", ("processor/aggregator.py", "processor/state.py", "processor/bars.py")),
    ("publish (batch API, producer)", ("kafka/batches.py", "aiokafka/producer")),
    ("fetch + record decoding (aiokafka)", ("aiokafka/consumer", "aiokafka/record")),
    ("MongoDB writes (pymongo, store, persist)",
     ("pymongo/", "processor/store.py", "processor/persist.py")),
    ("consumer loop (consumer.py)", ("processor/consumer.py",)),
    ("Kafka network, event loop, other", ("",)),
]  # fmt: skip


def profile_summary(raw: Path) -> dict[str, Any]:
    """Shares of the sampled CPU time per part of the pipeline (see PARTS), and the
    hottest functions by own time, from a py-spy raw (collapsed stacks) file."""
    parts: dict[str, int] = dict.fromkeys((name for name, _ in PARTS), 0)
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1].rsplit(":", 1)[0] + ")"
        own[leaf] = own.get(leaf, 0) + n
        name = next(p for p, marks in PARTS if any(m in f for f in frames for m in marks))
        parts[name] += n
    startup = parts.pop(PARTS[0][0])
    running = total - startup
    if not running:
        return {"samples": 0}
    return {
        "tool": "py-spy record --nonblocking, 200 Hz, on a single-process run of its own",
        "samples": total,
        "startup_share": round(startup / total, 3),
        # of the samples after start-up (the imports' share shrinks with the run length)
        "share_of_cpu": {k: round(v / running, 3) for k, v in parts.items()},
        "top_own_time": {
            k: round(v / total, 3) for k, v in sorted(own.items(), key=lambda kv: -kv[1])[:15]
        },
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


#: ours: one processor process; ours_x2: two in one group (3 partitions each);
#: profile: one more single-process run with py-spy sampling it (kept apart so that
#: the sampler's CPU does not touch the figures); quix: the peer
SIDES = ("ours", "ours_x2", "profile", "quix")


async def bench(args: argparse.Namespace, bootstrap: str, mongodb_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    raw = f"bench-{tag}.ticks.raw"
    sides = [side for side in args.sides.split(",") if side]
    unknown = set(sides) - set(SIDES)
    if unknown or not sides:
        raise SystemExit(f"--sides takes a list of {', '.join(SIDES)}; not {sorted(unknown)}")
    records = tape(args.events, args.symbols, args.step_us)
    topics = {
        side: {k: f"bench-{tag}-{side}.{k}" for k in ("updates", "bars", "late", "dlq")}
        for side in sides
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
    results: dict[str, dict[str, Any]] = {}
    profile: dict[str, Any] = {"samples": 0, "note": "py-spy not installed: no profile"}

    for side in sides:
        if side == "quix":
            continue
        processes = 2 if side == "ours_x2" else 1
        env = {
            **base,
            "TICKWIRE_KAFKA_BOOTSTRAP": bootstrap, "TICKWIRE_MONGODB_URL": mongodb_url,
            "TICKWIRE_MONGODB_DB": f"bench_{tag}_{side}",
            "TICKWIRE_GROUP_ID": f"bench-{tag}-{side}",
            "TICKWIRE_TOPIC_RAW": raw, "TICKWIRE_TOPIC_PARTITIONS": str(PARTITIONS),
            "TICKWIRE_PORT": "0", "TICKWIRE_LOG_LEVEL": "WARNING",
            **{f"TICKWIRE_TOPIC_{k.upper()}": v for k, v in topics[side].items()},
        }  # fmt: skip
        spy = work / "ours.pyspy" if side == "profile" else None
        if spy is not None and _py_spy() is None:
            continue
        results[side] = await run_until_committed(
            f"tickwire x{processes}", [[sys.executable, "-m", "tickwire.processor"]] * processes,
            env, bootstrap, f"bench-{tag}-{side}", raw, args.events, work / f"{side}.log",
            args.limit, profile=spy, updates=topics[side]["updates"],
        )  # fmt: skip
        results[side]["mongodb"] = await counts(mongodb_url, f"bench_{tag}_{side}")
        if spy is not None and spy.exists():
            profile = profile_summary(spy)
            profile["profiled_run"] = results.pop(side)
            if args.keep_profile:
                shutil.copy(spy, args.keep_profile)

    if "quix" in sides:
        quix_env = {
            **base,
            "QUIX_BENCH_BOOTSTRAP": bootstrap, "QUIX_BENCH_GROUP": f"bench-{tag}-quix",
            "QUIX_BENCH_TOPIC": raw, "QUIX_BENCH_MONGODB_URL": mongodb_url,
            "QUIX_BENCH_DB": f"bench_{tag}_quix", "QUIX_BENCH_STATE_DIR": str(work / "quix-state"),
            "QUIX_BENCH_UPDATES": topics["quix"]["updates"],
            "QUIX_BENCH_BARS": topics["quix"]["bars"],
            "QUIX_BENCH_COMMIT_INTERVAL": str(args.quix_commit_interval),
        }  # fmt: skip
        peer = await run_until_committed(
            "quixstreams", [[sys.executable, "-m", "bench.quix_app"]], quix_env, bootstrap,
            f"bench-{tag}-quix", raw, args.events, work / "quix.log", args.limit,
        )  # fmt: skip
        peer["mongodb"] = await counts(mongodb_url, f"bench_{tag}_quix")
        peer["name"] = "Quix Streams"
        peer["guarantees"] = (
            "Quix defaults: processing_guarantee=at-least-once, RocksDB state with changelog "
            f"topic, checkpoint every {args.quix_commit_interval}s (sink flushed: republished "
            "with acks and written to MongoDB, then offsets committed)"
        )
        results["quix"] = peer
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url)
    for side in sides:
        await client.drop_database(f"bench_{tag}_{side}")
    await client.close()
    shutil.rmtree(work, ignore_errors=True)
    report(args, results, profile)


def report(
    args: argparse.Namespace, results: dict[str, dict[str, Any]], profile: dict[str, Any]
) -> None:
    """Print the figures and, for a full run (ours and the peer), write the result."""
    ours, two, peer = results.get("ours"), results.get("ours_x2"), results.get("quix")
    guarantees = (
        "effectively once: publish + acks first; MongoDB writes (offset-guarded, coalesced "
        "per symbol) behind them; offsets committed once both cover them"
    )
    for side in (ours, two):
        if side is not None:
            side["guarantees"] = guarantees
    ratios: dict[str, float] = {}
    if ours and peer:
        ratios["single_process_vs_quix"] = ours["events_per_second"] / peer["events_per_second"]
    if two and peer:
        ratios["two_processes_vs_quix"] = two["events_per_second"] / peer["events_per_second"]
    if ours and two:
        ratios["two_processes_vs_one"] = two["events_per_second"] / ours["events_per_second"]
    for name, value in ratios.items():
        print(f"[bench] {name} = {value:.2f}", flush=True)
    if profile.get("samples"):
        print("[bench] where the single process's CPU goes (start-up left out):", flush=True)
        for part, share in profile["share_of_cpu"].items():
            print(f"[bench]   {share:6.1%}  {part}", flush=True)
    if ours is None or peer is None:
        print("[bench] not a full run (ours and quix): bench/results not written", flush=True)
        return
    if two is not None:
        ours = {**ours, "two_processes": two}
    write_result(
        "processor",
        ours=ours,
        peer=peer,
        ratio=ratios["single_process_vs_quix"],
        ratio_meaning="tickwire processor events/s (one process) ÷ Quix Streams events/s "
        "(one process), ticks.raw to MongoDB + republish, same input, broker and store; "
        "above 1 means tickwire is ahead",
        versions_=versions("aiokafka", "quixstreams", "confluent-kafka", "pymongo", "msgspec"),
        extra={
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "targets": {
                "ratio_vs_quix": 5,
                "events_per_second": 50_000,
                "met": {
                    "ratio_vs_quix": ratios["single_process_vs_quix"] >= 5,
                    "events_per_second_one_process": ours["events_per_second"] >= 50_000,
                    "events_per_second_two_processes": bool(
                        two and two["events_per_second"] >= 50_000
                    ),
                },
            },
            "profile": profile,
            "input": {
                "events": args.events,
                "symbols": args.symbols,
                "partitions": PARTITIONS,
                "event_time_step_us": args.step_us,
                "trades_share": "2/3",
            },
            "store_note": "FerretDB v1.24.2 (the embedded store the stack runs); both sides "
            "write the symbols' latest state and every closed bar to MongoDB, coalesced per "
            "symbol per round (tickwire: per persistence flush, behind the publishes; Quix: "
            "per checkpoint, before its commit)",
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--events", type=int, default=int(env("BENCH_EVENTS", "1000000")))
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument(
        "--sides", default=env("BENCH_SIDES", ",".join(SIDES)),
        help="what to run, of: ours (one process), ours_x2 (two, partition scaling), "
        "profile (one process under py-spy), quix",
    )  # fmt: skip
    parser.add_argument("--keep-profile", type=Path, help="copy py-spy's raw stacks here")
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
