"""Publish many records at once through aiokafka's batch API, and wait for the acks.

`producer.send()` per record costs ~20 µs of client CPU; building one record batch per
partition with `create_batch()` + `send_batch()` costs a tenth of that. The partition
is chosen for each key by `tickwire.events.partitioner` (murmur2, as the Java client
does), so a symbol lands on the same partition as it would through `send()`.
Idempotence still holds: sequence numbers are assigned per batch when it is drained.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from tickwire.core.errors import PermanentError
from tickwire.events.partitioner import partition_for


class OutgoingRecord(NamedTuple):
    """One record to publish: topic, key, value and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class RecordTooLargeError(PermanentError):
    """A single record does not fit in an empty batch (max_batch_size)."""


class BatchPublisher:
    """Groups records by partition into record batches and sends them together."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._by_key: dict[tuple[str, bytes], int] = {}

    async def _partition_for(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self.producer.partitions_for(topic))
            self._partitions[topic] = partitions
        if key is None:
            return random.choice(partitions)  # noqa: S311  # spread, as the Java client does
        cached = self._by_key.get((topic, key))
        if cached is None:
            cached = self._by_key[(topic, key)] = partitions[partition_for(key, len(partitions))]
        return cached

    async def publish(self, records: Iterable[OutgoingRecord]) -> int:
        """Send every record (order kept per partition); return once all are acknowledged.

        Raises whatever the producer raises (e.g. KafkaTimeoutError) if a batch fails;
        the caller may retry the whole set, which can duplicate records but not lose any.
        """
        grouped: dict[tuple[str, int], list[OutgoingRecord]] = {}
        known = self._by_key
        for record in records:
            # a key seen before: its partition without a coroutine per record
            partition = known.get((record.topic, record.key)) if record.key is not None else None
            if partition is None:
                partition = await self._partition_for(record.topic, record.key)
            grouped.setdefault((record.topic, partition), []).append(record)
        pending: list[asyncio.Future[Any]] = []
        count = 0
        for (topic, partition), group in grouped.items():
            batch = self.producer.create_batch()
            for record in group:
                if (
                    batch.append(
                        key=record.key, value=record.value, timestamp=None, headers=record.headers
                    )
                    is None
                ):
                    pending.append(
                        await self.producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = self.producer.create_batch()
                    if (
                        batch.append(
                            key=record.key,
                            value=record.value,
                            timestamp=None,
                            headers=record.headers,
                        )
                        is None
                    ):
                        raise RecordTooLargeError(f"a record for {topic} exceeds max_batch_size")
                count += 1
            pending.append(await self.producer.send_batch(batch, topic, partition=partition))
        if pending:
            await asyncio.gather(*pending)
        return count

    def forget_partitions(self) -> None:
        """Drop the cached partition counts (after a topic was altered)."""
        self._partitions.clear()
        self._by_key.clear()
