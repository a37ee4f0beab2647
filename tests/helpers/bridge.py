"""Helpers for the bridge's tests: a real RabbitMQ node, the bridge in-process or as a
child process, AMQP messages in the three shapes, and reading ticks.raw until markers
arrived (never "wait, then assume nothing more comes")."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from tests.helpers.infra import Topics
from tickwire.bridge.consumer import Bridge
from tickwire.bridge.settings import BridgeSettings
from tickwire.devstack.extras import shared_or_own
from tickwire.devstack.rabbitmq import RabbitServer
from tickwire.kafka.batches import BatchPublisher
from tickwire.kafka.clients import make_producer

TRADE_TYPE = "io.tickwire.trade.v1"
QUOTE_TYPE = "io.tickwire.quote.v1"
Record = ConsumerRecord[bytes, bytes]


@contextlib.contextmanager
def rabbit_node(tmp_dir: Path) -> Iterator[RabbitServer]:
    """The shared stack's RabbitMQ when it was started `--with rabbitmq`, else a node of
    our own in tmp_dir (stopped afterwards). A missing server raises: the test fails."""
    with shared_or_own("rabbitmq", tmp_dir) as server:
        assert isinstance(server, RabbitServer)
        yield server


def settings_for(
    kafka_bootstrap: str, rabbit_url: str, topics: Topics, tag: str, **extra: Any
) -> BridgeSettings:
    """Bridge settings with a queue, exchange and dead-letter exchange private to tag."""
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "rabbitmq_url": rabbit_url,
        "topic_raw": topics.raw,
        "topic_partitions": 3,
        "bridge_bindings": [
            {"queue": f"{tag}.q", "exchange": f"{tag}.x", "routing_keys": ["ticks.#"]}
        ],
        "bridge_dead_letter_exchange": f"{tag}.dlx",
        "bridge_dead_letter_queue": f"{tag}.dead",
        "bridge_retry_max_s": 1.0,
        **extra,
    }
    return BridgeSettings(**values)


def env_for(settings: BridgeSettings, port: int) -> dict[str, str]:
    """The environment of a `python -m tickwire.bridge` child with these settings."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    env.update(
        {
            "TICKWIRE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "TICKWIRE_RABBITMQ_URL": settings.rabbitmq_url.get_secret_value(),
            "TICKWIRE_TOPIC_RAW": settings.topic_raw,
            "TICKWIRE_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "TICKWIRE_BRIDGE_BINDINGS": json.dumps(
                [b.model_dump() for b in settings.bridge_bindings]
            ),
            "TICKWIRE_BRIDGE_DEAD_LETTER_EXCHANGE": settings.bridge_dead_letter_exchange,
            "TICKWIRE_BRIDGE_DEAD_LETTER_QUEUE": settings.bridge_dead_letter_queue,
            "TICKWIRE_BRIDGE_BATCH_MAX": str(settings.bridge_batch_max),
            "TICKWIRE_BRIDGE_RETRY_MAX_S": str(settings.bridge_retry_max_s),
            "TICKWIRE_BRIDGE_PUBLISH_TIMEOUT_S": str(settings.bridge_publish_timeout_s),
            "TICKWIRE_PORT": str(port),
            "TICKWIRE_LOG_LEVEL": "WARNING",
        }
    )
    return env


@contextlib.asynccontextmanager
async def in_process(settings: BridgeSettings) -> AsyncIterator[Bridge]:
    """The bridge's loop as a task in this event loop, with its own producer (ticks.raw
    is created by the test, as the app's lifespan would)."""
    from tickwire.kafka.topics import ensure_topics

    await ensure_topics(
        settings.kafka_bootstrap, [settings.topic_raw], partitions=settings.topic_partitions,
        replication=1,
    )  # fmt: skip
    producer = make_producer(settings.kafka_bootstrap, "test-bridge")
    await producer.start()
    bridge = Bridge(settings, BatchPublisher(producer))
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()


async def wait_consuming(bridge: Bridge, timeout: float = 30.0) -> None:
    """Until the bridge consumes (so the topology is declared)."""
    deadline = time.monotonic() + timeout
    while not bridge.consuming:
        assert time.monotonic() < deadline, "the bridge did not start consuming"
        await asyncio.sleep(0.05)


# -- messages ---------------------------------------------------------------------------
def trade(symbol: str, price: float, size: float, time: dt.datetime) -> dict[str, Any]:
    """A trade's data as a producer writes it."""
    return {"symbol": symbol, "price": price, "size": size, "time": time.isoformat()}


def plain(type_name: str, data: dict[str, Any], **envelope: str) -> aio_pika.Message:
    """Ingest's plain JSON body: {"type": name, id?, source?, ...data}."""
    body = {"type": type_name, **envelope, **data}
    return aio_pika.Message(json.dumps(body).encode(), content_type="application/json")


def structured(type_: str, id_: str, source: str, data: dict[str, Any]) -> aio_pika.Message:
    """A structured-mode CloudEvent (application/cloudevents+json)."""
    event = {
        "specversion": "1.0",
        "type": type_,
        "id": id_,
        "source": source,
        "subject": data["symbol"],
        "data": data,
    }
    return aio_pika.Message(json.dumps(event).encode(), content_type="application/cloudevents+json")


def binary(
    type_: str, id_: str, source: str, data: dict[str, Any], prefix: str = "cloudEvents:"
) -> aio_pika.Message:
    """A binary-mode CloudEvent: attributes as application properties, data as body."""
    headers: dict[str, Any] = {
        f"{prefix}specversion": "1.0",
        f"{prefix}type": type_,
        f"{prefix}id": id_,
        f"{prefix}source": source,
        f"{prefix}subject": data["symbol"],
    }
    return aio_pika.Message(
        json.dumps(data).encode(), content_type="application/json", headers=headers
    )


async def publish(
    url: str, exchange: str, routing_key: str, messages: Iterable[aio_pika.Message]
) -> None:
    """Publish persistent messages in order, each confirmed by the broker."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=True)
        for message in messages:
            message.delivery_mode = aio_pika.DeliveryMode.PERSISTENT
            await target.publish(message, routing_key=routing_key)
    finally:
        await connection.close()


async def queue_depth(url: str, queue: str) -> int:
    """Messages ready in a queue (a passive declare)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)
    finally:
        await connection.close()


async def drain_queue(url: str, queue: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Get (and ack) exactly `expected` messages from a queue, then check it is empty."""
    connection = await aio_pika.connect(url)
    out: list[Any] = []
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=True)
        deadline = time.monotonic() + timeout
        while len(out) < expected:
            assert time.monotonic() < deadline, f"only {len(out)} of {expected} in {queue}"
            message = await q.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            out.append(message)
        assert await q.get(fail=False) is None, f"{queue} holds more than {expected}"
        return out
    finally:
        await connection.close()


# -- ticks.raw ----------------------------------------------------------------------------
def header(record: Record, name: str) -> str | None:
    """A record header as text."""
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[Record]], bool], timeout: float = 90.0
) -> list[Record]:
    """Every record of topic from the start, read until done(records read so far)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        parts = None
        while not parts:
            assert time.monotonic() < deadline, f"topic {topic} has no partitions"
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await asyncio.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        out: list[Record] = []
        while not done(out):
            assert time.monotonic() < deadline, f"{topic}: gave up after {len(out)} records"
            batch = await consumer.getmany(timeout_ms=200)
            for part in sorted(batch, key=lambda tp: tp.partition):
                out.extend(batch[part])
        return out
    finally:
        await consumer.stop()


async def read_until_ids(
    bootstrap: str, topic: str, ids: set[str], timeout: float = 90.0
) -> list[Record]:
    """Every record of topic from the start, until records with each of `ids` (the
    markers) have been read from their partitions."""

    def seen_all(records: list[Record]) -> bool:
        return ids <= {header(r, "ce_id") for r in records}

    return await read_until(bootstrap, topic, seen_all, timeout)


async def read_at_least(bootstrap: str, topic: str, count: int) -> list[Record]:
    """Records of topic from the start, once at least `count` have been written."""
    return await read_until(bootstrap, topic, lambda records: len(records) >= count)


def by_symbol(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records grouped by key (the symbol), each group in offset order."""
    groups: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        groups.setdefault(record.key.decode(), []).append(record)
    return groups
