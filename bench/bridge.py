"""The bridge against a bare aio-pika consumer: `python -m bench.bridge`.

In one run, on one RabbitMQ node (the stack's when it was started `--with rabbitmq`,
else one of our own in a temporary directory) and the local stack's Kafka (or
TICKWIRE_KAFKA_BOOTSTRAP):
  1. two durable queues are filled with the same BRIDGE_MESSAGES persistent messages
     (plain JSON trades over 500 symbols, ~110 bytes, as a feed would publish them);
  2. bare: an aio-pika consumer with the bridge's prefetch drains one queue, taking
     what has arrived as a batch (as the bridge does) and acking it with one
     `basic.ack multiple`: the AMQP ceiling of this client on this broker, no work
     per message;
  3. ours: the bridge (its real consumer loop, in this process) drains the other queue
     to a fresh 6-partition ticks.raw: decode and validate each message, build the
     records, publish each batch and wait for Kafka's acks (acks=all, idempotent),
     then ack; the run ends when every message was published and acked, checked
     against the topic's end offsets.
ratio = ours messages/s / bare messages/s (target >= 0.5). Both sides run in this one
process, back to back; CPU seconds are this process's (the broker's are not counted).

Quick mode: BRIDGE_MESSAGES=10000.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from bench import common
from tickwire.bridge.consumer import Bridge
from tickwire.bridge.settings import Binding, BridgeSettings
from tickwire.devstack.extras import shared_or_own
from tickwire.devstack.paths import default_stack_dir
from tickwire.devstack.rabbitmq import RabbitServer
from tickwire.devstack.stack import Stack
from tickwire.kafka.batches import BatchPublisher
from tickwire.kafka.clients import make_producer
from tickwire.kafka.topics import ensure_topics

MESSAGES = int(os.environ.get("BRIDGE_MESSAGES", "100000"))
PREFETCH = 1000
BATCH_MAX = 500
PARTITIONS = 6
SYMBOLS = [f"S{i:03d}" for i in range(500)]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def _rabbit() -> Iterator[RabbitServer]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-rabbitmq-") as tmp,
        shared_or_own("rabbitmq", Path(tmp)) as server,
    ):
        assert isinstance(server, RabbitServer)
        yield server


def _kafka() -> str:
    found = os.environ.get("TICKWIRE_KAFKA_BOOTSTRAP")
    if found:
        return found
    # the default stack, started if it is not up (returns at once when it is)
    return Stack(default_stack_dir()).up().bootstrap_servers


def _bodies(count: int) -> list[bytes]:
    start = time.time() - 3600
    return [
        json.dumps(
            {
                "type": "trade",
                "id": f"b-{i}",
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "price": 100 + (i % 1000) / 100,
                "size": 1 + i % 9,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i / 1000)) + "Z",
            }
        ).encode()
        for i in range(count)
    ]


async def _fill(url: str, queues: list[str], bodies: list[bytes]) -> None:
    """Both queues get every body, persistent, confirmed (pipelined 1,000 at a time)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for queue in queues:
            await channel.declare_queue(queue, durable=True)
        exchange = channel.default_exchange
        for queue in queues:
            for start in range(0, len(bodies), 1000):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                body,
                                content_type="application/json",
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=queue,
                        )
                        for body in bodies[start : start + 1000]
                    )
                )
    finally:
        await connection.close()


async def _bare(url: str, queue: str, count: int) -> dict[str, Any]:
    """Drain `count` messages: batch what has arrived, one multiple ack per batch."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        q = await channel.get_queue(queue, ensure=True)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def deliver(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(message)

        cpu, started = _cpu(), time.perf_counter()
        await q.consume(deliver, no_ack=False)
        done = 0
        while done < count:
            batch = [await inbox.get()]
            while len(batch) < BATCH_MAX and not inbox.empty():
                batch.append(inbox.get_nowait())
            await batch[-1].ack(multiple=True)
            done += len(batch)
        elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    finally:
        await connection.close()
    return _figures(count, elapsed, cpu)


def _published() -> float:
    return REGISTRY.get_sample_value("tickwire_bridge_messages_published_total") or 0.0


async def _ours(url: str, bootstrap: str, queue: str, count: int) -> dict[str, Any]:
    """The bridge's own loop drains `count` messages to a fresh ticks.raw."""
    topic = f"bench-bridge-{uuid.uuid4().hex[:8]}.ticks.raw"
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS, replication=1)
    settings = BridgeSettings(
        kafka_bootstrap=bootstrap,
        rabbitmq_url=url,
        topic_raw=topic,
        bridge_bindings=[Binding(queue=queue, exchange="")],
        bridge_prefetch=PREFETCH,
        bridge_batch_max=BATCH_MAX,
        bridge_declare=True,
        bridge_dead_letter_exchange=f"{queue}.dlx",
        bridge_dead_letter_queue=f"{queue}.dead",
        bridge_max_future_skew_s=5,
    )
    producer = make_producer(bootstrap, "bench-bridge")
    await producer.start()
    try:
        bridge = Bridge(settings, BatchPublisher(producer))
        before = _published()
        cpu, started = _cpu(), time.perf_counter()
        task = asyncio.create_task(bridge.run())
        while _published() - before < count:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        written = await _records_in(bootstrap, topic)
        assert written == count, f"ticks.raw holds {written} records, not {count}"
    finally:
        await producer.stop()
    return {**_figures(count, elapsed, cpu), "records_in_topic": written}


async def _records_in(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(parts)
        return sum(ends.values())
    finally:
        await consumer.stop()


def _figures(count: int, elapsed: float, cpu: float) -> dict[str, Any]:
    return {
        "messages": count,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(count / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_message": round(cpu / count * 1e6, 2),
    }


def _rabbitmq_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


async def _run(bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    queues = [f"bench-{tag}.bare", f"bench-{tag}.ours"]
    with _rabbit() as rabbit:
        print(f"[bench] filling 2 queues with {MESSAGES:,} messages each", flush=True)
        await _fill(rabbit.url, queues, _bodies(MESSAGES))
        print("[bench] bare aio-pika consumer (ack only)", flush=True)
        bare = await _bare(rabbit.url, queues[0], MESSAGES)
        print(f"[bench] bare: {bare}", flush=True)
        print("[bench] bridge -> ticks.raw", flush=True)
        ours = await _ours(rabbit.url, bootstrap, queues[1], MESSAGES)
        print(f"[bench] ours: {ours}", flush=True)
    ratio = ours["messages_per_s"] / bare["messages_per_s"]
    path = common.write_result(
        "bridge",
        ours={"name": "tickwire bridge (RabbitMQ -> ticks.raw, acked after Kafka)", **ours},
        peer={"name": "bare aio-pika consumer, ack only (same prefetch and batching)", **bare},
        ratio=ratio,
        ratio_meaning="bridge messages/s / bare aio-pika consumer messages/s on the same "
        "broker and messages, same run; target >= 0.5",
        versions_=common.versions(
            "aio-pika",
            "aiormq",
            "aiokafka",
            "msgspec",
            extra={"rabbitmq-server": _rabbitmq_version()},
        ),
        extra={
            "conditions": {
                "messages": MESSAGES,
                "prefetch": PREFETCH,
                "batch_max": BATCH_MAX,
                "partitions": PARTITIONS,
                "symbols": len(SYMBOLS),
                "delivery_mode": "persistent, durable classic queues",
            }
        },
    )
    print(f"[bench] ratio {ratio:.2f} (target >= 0.5); wrote {path}", flush=True)


def main() -> None:
    """Entry point: `python -m bench.bridge`."""
    import uvloop

    bootstrap = _kafka()  # before the loop: starting the stack waits with asyncio.run
    uvloop.run(_run(bootstrap))


if __name__ == "__main__":
    main()
