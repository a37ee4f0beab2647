"""End-to-end latency: from ingest accepting an event to the gateway writing its effect to
an SSE client, at several rates with a fleet of subscribers, against the floor of two
plain aiokafka produce->consume hops at the same rates, in one run.

Design (docs/benchmarks.md, e2e, says the same for readers of the figures):

- tickwire: ingest, processor and gateway run as separate processes on private topics
  of the stack's broker (`TICKWIRE_STACK_DIR`). A sender posts NDJSON trade batches to
  ingest, one request per 10 ms tick carrying exactly the events due by then
  (`rate x elapsed - sent`, so a late tick catches up instead of lowering the rate; at
  most 4 requests in flight). Events go round-robin over E2E_SYMBOLS symbols.
- Subscribers: the Go load generator (bench/loadgen) opens E2E_CLIENTS SSE connections:
  E2E_ALL_CLIENTS of them subscribe to every symbol (`symbols=*`, a trading desk's
  full board), the others to a watchlist of E2E_PER_CLIENT symbols spread evenly over
  the list (each symbol watched by about the same number of clients), all with the
  default 1m bars. A fresh fleet connects for each rate.
- Latency: every `quote` and `bar` event every subscriber receives is one sample:
  arrival time in the load generator minus the `received_ns` the event carries
  (ingest's receive time of the newest event it covers; same machine, same clock).
  Only events stamped after the warm-up count. A conflated update (the processor
  coalesces per batch, the gateway per flush under load) is sampled once, at its
  newest event: that is the latency of the freshest state a client sees.
- Stages: a side consumer reads the raw and updates topics and gives, per record, the
  time from `received_ns` to (a) the raw record readable by a consumer (ingest +
  hop 1), (b) the update's CreateTime (set by the processor's producer when it
  publishes: ingest + hop 1 + processor) and (c) the update readable (+ hop 2). The
  gateway's share is the end-to-end figure minus (c).
- cores: CPU of each service (and of the floor's relay and sink) over the window.
- Floor: a producer writes to topic A at the same rate, the same number of records of
  the same sizes as ingest's raw records (hop 1) and the processor's updates (hop 2),
  keyed by the same symbols over the same partition count, acks=all, idempotent,
  linger 0, like tickwire's producers; a relay consumes A and produces to B; a sink
  consumes B and takes `now - the first producer's timestamp` for every record.

ratio = floor p99 / tickwire p99 per rate (at most ~1; target at 5k events/s: >= 0.33,
tickwire p99 <= 3x the floor's). Also reported: the highest rate whose tickwire p99 is
under 100 ms. Env: E2E_RATES (default 1000,5000,20000), E2E_SECONDS (15 per rate),
E2E_WARMUP_S (4), E2E_CLIENTS (1000), E2E_ALL_CLIENTS (10), E2E_PER_CLIENT (10),
E2E_SYMBOLS (500), E2E_GATEWAY_FLUSH_MS (gateway default when unset);
E2E_QUICK=1 for a smoke run (1000,5000 at 5 s, 200 clients).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from bench.common import CpuMeter, percentile, versions, write_result
from bench.gateway import raise_file_limit
from bench.loadgen import LoadGen, build
from bench.loadgen.feeder import symbols as make_symbols
from tickwire.devstack import procs
from tickwire.devstack.paths import default_stack_dir
from tickwire.devstack.run import ServiceSpec, start_service, wait_ready
from tickwire.devstack.stack import Stack
from tickwire.events import headers as h
from tickwire.kafka.topics import ensure_topics

QUICK = os.environ.get("E2E_QUICK") == "1"
RATES = [
    int(r)
    for r in os.environ.get("E2E_RATES", "1000,5000" if QUICK else "1000,5000,20000").split(",")
]
SECONDS = float(os.environ.get("E2E_SECONDS", 5 if QUICK else 15))
WARMUP_S = float(os.environ.get("E2E_WARMUP_S", 2 if QUICK else 4))
CLIENTS = int(os.environ.get("E2E_CLIENTS", 200 if QUICK else 1000))
ALL_CLIENTS = int(os.environ.get("E2E_ALL_CLIENTS", 10))
PER_CLIENT = int(os.environ.get("E2E_PER_CLIENT", 10))
SYMBOLS = make_symbols(int(os.environ.get("E2E_SYMBOLS", 500)))
GATEWAY_FLUSH_MS = os.environ.get("E2E_GATEWAY_FLUSH_MS")
PARTITIONS = 6
PARTITIONER = DefaultPartitioner()
TICK_S = 0.01
IN_FLIGHT = 4
MAX_REQUEST = 2000  # events per request at most (a late tick is split)
TARGET_RATE = 5000
P99_LIMIT_MS = 100.0
PLOT = Path(__file__).parents[1] / "docs" / "img" / "e2e-latency.png"


def summary(samples: list[float]) -> dict[str, float]:
    """p50/p99/p999/max of samples in ms, rounded."""
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "p999_ms": round(percentile(samples, 99.9), 2),
        "max_ms": round(max(samples, default=0.0), 2),
    }


def kept_up(rate: float, sender: dict[str, float]) -> bool:
    """Whether the sender held the rate (within 3%): if not, the figures are of a
    saturated machine, not of the rate asked for."""
    return sender["achieved_per_s"] >= 0.97 * rate


# -- the sender


def _trade(symbol: str, i: int, now: str) -> bytes:
    return b'{"type":"trade","symbol":"%s","price":%d.%02d,"size":%d,"time":"%s"}' % (
        symbol.encode(),
        100 + i % 7,
        i % 100,
        10 + i % 5 * 10,
        now.encode(),
    )


async def send_at_rate(
    rate: float, seconds: float, post: Callable[[bytes, int], Any], *, bodies: bool = True
) -> dict[str, float]:
    """Hand post() NDJSON bodies totalling `rate` events per second for `seconds`: each
    tick sends exactly what is due, so a late tick catches up rather than lowers the
    rate; at most IN_FLIGHT requests wait at once."""
    sem = asyncio.Semaphore(IN_FLIGHT)
    tasks: set[asyncio.Task[Any]] = set()
    started = time.monotonic()
    sent = late = 0
    seq = 0

    async def one(body: bytes, count: int) -> None:
        try:
            await post(body, count)
        finally:
            sem.release()

    tick = 0
    while (elapsed := time.monotonic() - started) < seconds:
        behind = int(rate * elapsed) - sent
        while behind > 0:  # requests of at most MAX_REQUEST events (ingest refuses > 10k)
            due = min(behind, MAX_REQUEST)
            behind -= due
            if sem.locked():
                late += 1
            await sem.acquire()
            body = b""
            if bodies:  # the floor makes its own records
                now = dt.datetime.now(dt.UTC).isoformat()
                n = len(SYMBOLS)
                body = b"\n".join(_trade(SYMBOLS[(seq + i) % n], seq + i, now) for i in range(due))
            seq += due
            sent += due
            task = asyncio.create_task(one(body, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        tick += 1
        await asyncio.sleep(max(0.0, started + tick * TICK_S - time.monotonic()))
    await asyncio.gather(*tasks)
    wall = time.monotonic() - started
    return {
        "sent": sent,
        "seconds": round(wall, 2),
        "achieved_per_s": round(sent / wall, 1),
        "late_ticks": late,
    }


# -- tickwire


class StageMeter:
    """Side consumer of the raw and updates topics: per-stage latency from received_ns."""

    def __init__(self, bootstrap: str, raw: str, updates: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.topics = (raw, updates)
        self.since_ns = 1 << 62
        self.raw_read: list[float] = []
        self.published: list[float] = []
        self.update_read: list[float] = []
        self.bytes = {raw: [0, 0], updates: [0, 0]}  # topic: [records, bytes]

    def sizes(self) -> dict[str, int]:
        """Mean bytes (key + value + headers) of a raw and of an updates record."""
        out = {}
        for name, (count, total) in zip(("raw", "updates"), self.bytes.values(), strict=True):
            out[name] = total // count if count else 200
        return out

    async def start(self) -> None:
        await self.consumer.start()
        tps: list[TopicPartition] = []
        for _ in range(50):
            await self.consumer._client.force_metadata_update()
            tps = [
                TopicPartition(topic, p)
                for topic in self.topics
                for p in self.consumer.partitions_for_topic(topic) or ()
            ]
            if len(tps) == 2 * PARTITIONS:
                break
            await asyncio.sleep(0.2)
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)

    def window(self, since_ns: int) -> None:
        self.since_ns = since_ns
        self.raw_read, self.published, self.update_read = [], [], []

    async def run(self) -> None:
        raw = self.topics[0]
        key = h.RECEIVED_NS
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            now = time.time_ns()
            for tp, records in batch.items():
                sized = self.bytes[tp.topic]
                for r in records:
                    sized[0] += 1
                    sized[1] += (
                        len(r.key or b"")
                        + len(r.value or b"")
                        + sum(len(k) + len(v) for k, v in r.headers)
                    )
                    received = next((int(v) for k, v in r.headers if k == key), 0)
                    if received < self.since_ns:
                        continue
                    if tp.topic == raw:
                        self.raw_read.append((now - received) / 1e6)
                    else:
                        self.published.append(r.timestamp - received / 1e6)
                        self.update_read.append((now - received) / 1e6)

    def report(self) -> dict[str, Any]:
        return {
            "raw_readable": {"records": len(self.raw_read), **summary(self.raw_read)},
            "update_published": {"records": len(self.published), **summary(self.published)},
            "update_readable": {"records": len(self.update_read), **summary(self.update_read)},
        }


async def measure_tickwire(
    bootstrap: str, mongo: str, run_dir: Path
) -> tuple[dict[str, Any], dict[str, int]]:
    """Latency per rate, and the mean record sizes seen (for the floor)."""
    tag = uuid.uuid4().hex[:8]
    raw, updates = f"e2e-{tag}.raw", f"e2e-{tag}.updates"
    env = {
        **os.environ,
        "TICKWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKWIRE_MONGODB_URL": mongo,
        "TICKWIRE_MONGODB_DB": f"e2e_{tag}",
        "TICKWIRE_TOPIC_RAW": raw,
        "TICKWIRE_TOPIC_UPDATES": updates,
        "TICKWIRE_TOPIC_BARS": f"e2e-{tag}.bars",
        "TICKWIRE_TOPIC_LATE": f"e2e-{tag}.late",
        "TICKWIRE_TOPIC_DLQ": f"e2e-{tag}.dlq",
        "TICKWIRE_TOPIC_PARTITIONS": str(PARTITIONS),
        "TICKWIRE_GROUP_ID": f"e2e-{tag}",  # never in a group with another run's processor
        "TICKWIRE_LOG_LEVEL": "WARNING",
    }
    gateway_env = {
        "TICKWIRE_GATEWAY_AUTH": "off",
        "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_IP": str(CLIENTS + 100),
        "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_SUBJECT": str(CLIENTS + 100),
    }
    if GATEWAY_FLUSH_MS is not None:
        gateway_env["TICKWIRE_GATEWAY_FLUSH_MS"] = GATEWAY_FLUSH_MS
    specs = [
        ServiceSpec("ingest", procs.free_port(), {"TICKWIRE_INGEST_AUTH": "off"}),
        ServiceSpec("processor", procs.free_port(), {}),
        ServiceSpec("gateway", procs.free_port(), gateway_env),
    ]
    pid_files = [start_service(s, env, run_dir) for s in specs]
    binary = build()
    symbols_file = run_dir / "symbols.txt"
    symbols_file.write_text("\n".join(SYMBOLS) + "\n")
    results: dict[str, Any] = {}
    try:
        for spec, pid in zip(specs, pid_files, strict=True):
            wait_ready(spec, pid, run_dir / f"{spec.name}.log")
        ingest = f"http://127.0.0.1:{specs[0].port}/v1/events:batch"
        gateway_addr = f"127.0.0.1:{specs[2].port}"
        refused: Counter[int] = Counter()  # status -> events not accepted
        async with httpx.AsyncClient(timeout=30) as client:

            async def post(body: bytes, count: int) -> None:
                resp = await client.post(
                    ingest, content=body, headers={"content-type": "application/x-ndjson"}
                )
                if resp.status_code != 202:
                    refused[resp.status_code] += count

            # every symbol known to the gateway before any fleet connects
            await send_at_rate(len(SYMBOLS) * 2, 1.0, post)
            stages = StageMeter(bootstrap, raw, updates)
            await stages.start()
            meter = asyncio.create_task(stages.run())
            try:
                for rate in RATES:
                    meters = {
                        spec.name: CpuMeter(procs.read_pid(pid) or 0)
                        for spec, pid in zip(specs, pid_files, strict=True)
                    }
                    results[str(rate)] = await _one_rate(
                        rate, post, stages, binary, gateway_addr, symbols_file, run_dir, meters
                    )
                    results[str(rate)]["sender"]["refused"] = {
                        str(k): v for k, v in refused.items()
                    }
                    results[str(rate)]["kept_up"] &= not refused  # refused: not the rate
                    refused.clear()
                    print(f"tickwire {rate}/s: {results[str(rate)]['latency']}", flush=True)
            finally:
                meter.cancel()
                await stages.consumer.stop()
    finally:
        for pid in pid_files:
            procs.stop(pid)
    return results, stages.sizes()


async def _one_rate(
    rate: int,
    post: Callable[[bytes, int], Any],
    stages: StageMeter,
    binary: Path,
    gateway_addr: str,
    symbols_file: Path,
    run_dir: Path,
    meters: dict[str, CpuMeter],
) -> dict[str, Any]:
    fleet = await LoadGen.start(
        binary,
        target="tickwire",
        addr=gateway_addr,
        clients=CLIENTS,
        per_client=PER_CLIENT,
        symbols_file=symbols_file,
        stderr=run_dir / "loadgen.log",
        everything=ALL_CLIENTS,
    )
    try:
        connected = await fleet.connected()
        await send_at_rate(rate, WARMUP_S, post)
        since = time.time_ns()
        await fleet.reset(since)
        stages.window(since)
        load_start = os.getloadavg()[0]
        for meter in meters.values():
            meter.start()
        sender = await send_at_rate(rate, SECONDS, post)
        cores = {name: round(m.stop() / SECONDS, 2) for name, m in meters.items()}
        await asyncio.sleep(2.0)  # the last events' effects reach the fleet
        report = await fleet.report()
    finally:
        await fleet.close()
    latency = report["latency_ms"]
    return {
        "latency": {
            "samples": report["delivered"],
            "p50_ms": round(latency["p50"], 2),
            "p99_ms": round(latency["p99"], 2),
            "p999_ms": round(latency["p999"], 2),
            "max_ms": round(latency["max"], 2),
        },
        "sender": sender,
        "subscribers": {
            "clients": CLIENTS,
            "connected": connected["connected"],
            "errors": report["errors"],
            "streams_ended": report["streams_ended"],
            "deliveries_per_s": round(report["delivered"] / SECONDS),
            "loadgen_cores": round(report["cpu_s_window"] / max(report["window_s"], 1e-9), 2),
        },
        "stages": stages.report(),
        "cores": cores,
        "loadavg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "kept_up": kept_up(rate, sender),
    }


# -- the floor


def _stamped(size: int) -> bytes:
    stamp = b"%020d" % time.time_ns()
    return stamp + b"x" * max(0, size - len(stamp))


async def _send_batched(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes, bytes]]
) -> None:
    """Produce records through the batch API, one batch per partition (by the default
    partitioner), as ingest's and the processor's publishers do."""
    partitions = sorted(await producer.partitions_for(topic))
    batches: dict[int, Any] = {}
    for key, value in records:
        partition = PARTITIONER(key, partitions, partitions)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await producer.send_batch(batch, topic, partition=partition)
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    for partition, batch in batches.items():
        await producer.send_batch(batch, topic, partition=partition)


def _floor_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer of every partition of topic from its start, no group (no rebalance)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    return consumer


def _relay_process(bootstrap: str, topic_a: str, topic_b: str, pad: int, stop: Any) -> None:
    """Hop 2 of the floor, in its own process (as the processor is): A -> B."""

    async def run() -> None:
        source = _floor_consumer(bootstrap, topic_a)
        out = AIOKafkaProducer(**_producer_options(bootstrap))
        await source.start()
        await source.seek_to_beginning()
        await out.start()
        padding = b"x" * pad
        try:
            while not stop.is_set():
                batch = await source.getmany(timeout_ms=100, max_records=20_000)
                records = [(r.key, r.value + padding) for rs in batch.values() for r in rs]
                if records:
                    await _send_batched(out, topic_b, records)
        finally:
            await out.stop()
            await source.stop()

    asyncio.run(run())


def _sink_process(bootstrap: str, topic_b: str, since: Any, stop: Any, conn: Any) -> None:
    """The floor's reader, in its own process (as the gateway is): latency per record
    stamped at or after `since`, sent back through conn once stopped."""

    async def run() -> list[float]:
        sink = _floor_consumer(bootstrap, topic_b)
        await sink.start()
        await sink.seek_to_beginning()
        samples: list[float] = []
        try:
            while not stop.is_set():
                batch = await sink.getmany(timeout_ms=100, max_records=20_000)
                now = time.time_ns()
                first = since.value
                for records in batch.values():
                    for r in records:
                        stamp = int(r.value[:20])
                        if stamp >= first:
                            samples.append((now - stamp) / 1e6)
        finally:
            await sink.stop()
        return samples

    conn.send(asyncio.run(run()))
    conn.close()


def _producer_options(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
    }


async def measure_floor(bootstrap: str, rate: int, sizes: dict[str, int]) -> dict[str, Any]:
    """Two plain hops at `rate`: producer (here) -> A -> relay -> B -> sink, the relay
    and the sink each in a process of its own, as tickwire's services are."""
    tag = uuid.uuid4().hex[:8]
    topic_a, topic_b = f"floor-{tag}.a", f"floor-{tag}.b"
    await ensure_topics(bootstrap, [topic_a, topic_b], partitions=PARTITIONS, replication=1)
    hop1, hop2 = sizes["raw"], sizes["updates"]
    ctx = multiprocessing.get_context("spawn")
    stop, since = ctx.Event(), ctx.Value("q", 1 << 62)
    mine, theirs = ctx.Pipe(duplex=False)
    relay = ctx.Process(
        target=_relay_process, args=(bootstrap, topic_a, topic_b, max(0, hop2 - hop1), stop)
    )
    sink = ctx.Process(target=_sink_process, args=(bootstrap, topic_b, since, stop, theirs))
    relay.start()
    sink.start()
    producer = AIOKafkaProducer(**_producer_options(bootstrap))
    await producer.start()
    keys = [s.encode() for s in SYMBOLS]
    sent = [0]

    async def post(body: bytes, count: int) -> None:
        del body
        first = sent[0]
        sent[0] += count
        records = [(keys[(first + i) % len(keys)], _stamped(hop1)) for i in range(count)]
        await _send_batched(producer, topic_a, records)

    try:
        await send_at_rate(rate, WARMUP_S, post, bodies=False)
        since.value = time.time_ns()
        load_start = os.getloadavg()[0]
        meters = {"relay": CpuMeter(relay.pid or 0), "sink": CpuMeter(sink.pid or 0)}
        for meter in meters.values():
            meter.start()
        sender = await send_at_rate(rate, SECONDS, post, bodies=False)
        cores = {name: round(m.stop() / SECONDS, 2) for name, m in meters.items()}
        await producer.flush()
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await producer.stop()
    samples: list[float] = await asyncio.to_thread(mine.recv)
    for proc in (relay, sink):
        proc.join(30)
    result = {
        "latency": {"samples": len(samples), **summary(samples)},
        "sender": sender,
        "record_bytes": {"hop1": hop1, "hop2": hop2},
        "cores": cores,
        "loadavg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "kept_up": kept_up(rate, sender) and len(samples) >= 0.99 * sender["sent"],
    }
    print(f"floor {rate}/s: {result['latency']}", flush=True)
    return result


# -- results


def plot(rates: Sequence[int], ours: dict[str, Any], floor: dict[str, Any]) -> Path:
    """Latency against rate, tickwire and the floor, p50/p99/p999 (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, runs, style in (("tickwire", ours, "-"), ("2 aiokafka hops", floor, "--")):
        for q, colour in (("p50", "tab:blue"), ("p99", "tab:orange"), ("p999", "tab:red")):
            ys = [runs[str(r)]["latency"][f"{q}_ms"] for r in rates]
            ax.plot(rates, ys, style, marker="o", color=colour, label=f"{name} {q}")
            behind = [(r, y) for r, y in zip(rates, ys, strict=True) if not runs[str(r)]["kept_up"]]
            if behind:  # a side that did not hold the rate: its figure is a saturated box
                ax.plot(*zip(*behind, strict=True), "x", color="black", markersize=9)
    ax.axhline(P99_LIMIT_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(rates), [f"{r // 1000}k" if r >= 1000 else str(r) for r in rates])
    ax.set_xlabel("events/s posted to ingest")
    ax.set_ylabel("ingest accept -> SSE write (ms)")
    ax.set_title(
        f"End to end, {CLIENTS} SSE subscribers ({ALL_CLIENTS} to all symbols); x: fell behind",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)
    plt.close(fig)
    return PLOT


def main() -> None:
    raise_file_limit()
    stack = Stack(default_stack_dir())
    info = stack.up()
    run_dir = Path(tempfile.mkdtemp(prefix="tw-e2e-"))
    ours, sizes = asyncio.run(measure_tickwire(info.bootstrap_servers, info.mongodb_url, run_dir))
    floor = {str(r): asyncio.run(measure_floor(info.bootstrap_servers, r, sizes)) for r in RATES}
    ratios = {
        r: round(floor[r]["latency"]["p99_ms"] / ours[r]["latency"]["p99_ms"], 3)
        if ours[r]["latency"]["p99_ms"]
        else 0.0
        for r in ours
    }
    under = [r for r in RATES if 0 < ours[str(r)]["latency"]["p99_ms"] < P99_LIMIT_MS]
    picture = plot(RATES, ours, floor)
    headline = str(TARGET_RATE) if str(TARGET_RATE) in ratios else str(RATES[0])
    conditions = {
        "clients": CLIENTS,
        "all_symbol_clients": ALL_CLIENTS,
        "symbols_per_client": PER_CLIENT,
        "symbols": len(SYMBOLS),
        "seconds_per_rate": SECONDS,
        "warmup_s": WARMUP_S,
        "partitions": PARTITIONS,
        "gateway_flush_ms": GATEWAY_FLUSH_MS or "default",
    }
    path = write_result(
        "e2e",
        ours={
            "name": "tickwire ingest -> processor -> gateway",
            "conditions": conditions,
            "rates": ours,
        },
        peer={
            "name": "two plain aiokafka produce->consume hops (acks=all, idempotent, linger 0)",
            "rates": floor,
        },
        ratio=ratios[headline],
        ratio_meaning=f"floor p99 / tickwire p99, ingest accept -> SSE write, at {headline} "
        "events/s with the subscriber fleet; target >= 0.33 (tickwire p99 <= 3x floor p99)",
        versions_=versions("aiokafka", "fastapi", "uvicorn", "msgspec", "pymongo"),
        extra={
            "ratios_by_rate": ratios,
            "highest_rate_p99_under_100ms": max(under, default=None),  # None: no rate
            "plot": str(picture.relative_to(Path(__file__).parents[1])),
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
