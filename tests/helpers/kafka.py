"""Plain helpers for tests that read and write real Kafka topics."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Write (key, value, headers) records in order with an idempotent producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send(topic, key=key, value=value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str,
    topic: str,
    expected: int | None = None,
    timeout: float = 30.0,
    idle: float = 1.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning without a group: stop once `expected` records
    arrived (then wait `idle` more seconds to catch extras), or when `timeout` passes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        parts: set[int] | None = None
        while parts is None and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or None
                if parts is None:
                    await asyncio.sleep(0.2)
        if not parts:
            return []
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        out: list[ConsumerRecord[bytes, bytes]] = []
        settle_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                out.extend(recs)
            if expected is not None and len(out) >= expected:
                settle_until = settle_until or time.monotonic() + idle
                if time.monotonic() >= settle_until:
                    break
        return out
    finally:
        await consumer.stop()
