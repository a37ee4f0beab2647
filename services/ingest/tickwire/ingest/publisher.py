"""Publishing to ticks.raw through aiokafka's batch API, with the guarantees of the
idempotent acks=all producer.

Records are appended to an open `BatchBuilder` per partition; one drain task per
partition hands full or waiting builders to `producer.send_batch()` one at a time, in
order. aiokafka keeps at most one undrained batch per partition in its accumulator and
(idempotence) one in flight per partition, each stamped with the producer id and the
next sequence number when it is drained, and retries in-flight batches until the
broker acknowledges them: so order per partition holds, retries never duplicate, and
while one batch waits for its ack the next fills up (batching without a linger delay).

The partition is chosen by `tickwire.events.partitioner` (the Java client's murmur2,
shared by every tickwire producer), so a symbol always lands on the same partition
whichever client wrote it.

Each record's result is its batch's base offset plus its position in the batch. A
request waits for the batches holding its records up to a deadline; a batch that every
waiting request has given up on before it was handed to the producer is dropped, not
sent, so a 503 rarely leaves a record behind.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from tickwire.core.errors import BackpressureError, RetriableError
from tickwire.events.partitioner import partition_for
from tickwire.events.records import Record
from tickwire.ingest import metrics


class Published(NamedTuple):
    """Where Kafka stored a record."""

    partition: int
    offset: int


class KafkaUnavailableError(RetriableError):
    """Kafka did not acknowledge in time, or refused the batch."""


class OverloadedError(BackpressureError):
    """Too many events are already waiting for Kafka's ack."""


class _Batch:
    """An open or submitted batch for one partition and the requests waiting on it."""

    __slots__ = ("builder", "count", "future", "partition", "sealed", "waiters")

    def __init__(self, builder: Any, partition: int, future: asyncio.Future[int]) -> None:
        self.builder = builder
        self.partition = partition
        self.count = 0
        self.waiters = 0
        self.sealed = False  # taken by the drain task (or full): append to a new one
        self.future = future  # the base offset, once acknowledged


Handle = tuple[_Batch, int]


class Publisher:
    """Appends records to per-partition batches and reports each record's offset."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, max_inflight_events: int) -> None:
        self.producer = producer
        self.topic = topic
        self.max_inflight_events = max_inflight_events
        self.inflight = 0
        self.partitions = 0
        self._queues: dict[int, collections.deque[_Batch]] = {}
        self._open: dict[int, _Batch] = {}
        self._partition_of: dict[bytes, int] = {}
        self._draining: dict[int, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Learn the topic's partition count (the topic must exist)."""
        found = await self.producer.partitions_for(self.topic)
        self.partitions = len(found)

    async def stop(self) -> None:
        """Wait for the drain tasks to hand over what they hold."""
        if self._draining:
            await asyncio.gather(*self._draining.values(), return_exceptions=True)

    def submit(self, records: Sequence[Record], timestamp_ms: int) -> list[Handle]:
        """Append records to their partitions' batches; raise OverloadedError (adding
        nothing) when they would take the in-flight count past its limit."""
        if self.inflight + len(records) > self.max_inflight_events:
            raise OverloadedError("too many events waiting for Kafka")
        handles: list[Handle] = []
        touched: set[int] = set()
        partition_of = self._partition_of
        open_batches = self._open
        for key, value, headers in records:
            partition = partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = partition_for(key, self.partitions)
                if len(partition_of) > 100_000:
                    partition_of.clear()  # bounded: symbols are few, this is a safety net
            batch = open_batches.get(partition)
            if batch is None or batch.sealed:
                batch = self._new_batch(partition)
            if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                batch.sealed = True  # full: the record starts the next batch
                batch = self._new_batch(partition)
                batch.builder.append(timestamp=None, key=key, value=value, headers=headers)
            handles.append((batch, batch.count))
            batch.count += 1
            touched.add(partition)
        for batch in {id(b): b for b, _ in handles}.values():
            batch.waiters += 1
        self.inflight += len(records)
        metrics.INFLIGHT.set(self.inflight)
        for partition in touched:
            if partition not in self._draining:
                self._draining[partition] = asyncio.create_task(self._drain(partition))
        return handles

    async def wait(self, handles: Sequence[Handle], within_s: float) -> list[Published | None]:
        """Each record's place in Kafka, or None where Kafka did not acknowledge its
        batch within `within_s` seconds (or refused it)."""
        batches = {id(b): b for b, _ in handles}.values()
        futures = {b.future for b in batches}
        await asyncio.wait(futures, timeout=within_s)
        for batch in batches:
            batch.waiters -= 1
        out: list[Published | None] = []
        for batch, index in handles:
            fut = batch.future
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                out.append(Published(batch.partition, fut.result() + index))
            else:
                out.append(None)
        return out

    def _new_batch(self, partition: int) -> _Batch:
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = collections.deque()
        batch = _Batch(
            self.producer.create_batch(), partition, asyncio.get_running_loop().create_future()
        )
        batch.future.add_done_callback(partial(self._settled, batch))
        queue.append(batch)
        self._open[partition] = batch
        return batch

    def _settled(self, batch: _Batch, future: asyncio.Future[int]) -> None:
        self.inflight -= batch.count
        metrics.INFLIGHT.set(self.inflight)
        if not future.cancelled() and future.exception() is not None:
            future.exception()  # retrieved: a refused batch is reported per request

    async def _drain(self, partition: int) -> None:
        queue = self._queues[partition]
        try:
            while queue:
                batch = queue.popleft()
                batch.sealed = True
                batch.builder.close()
                if batch.waiters == 0:
                    batch.future.set_exception(KafkaUnavailableError("abandoned before send"))
                    metrics.BATCHES_DROPPED.inc()
                    continue
                started = time.perf_counter()
                try:
                    sent = await self.producer.send_batch(
                        batch.builder, self.topic, partition=partition
                    )
                except Exception as exc:  # queue wait timed out, producer closed or failed
                    batch.future.set_exception(KafkaUnavailableError(str(exc) or repr(exc)))
                    continue
                metrics.KAFKA_BATCH_RECORDS.observe(batch.count)
                sent.add_done_callback(partial(self._acked, batch, started))
        finally:
            del self._draining[partition]

    @staticmethod
    def _acked(batch: _Batch, started: float, sent: asyncio.Future[Any]) -> None:
        if batch.future.done():
            return
        if sent.cancelled():
            batch.future.set_exception(KafkaUnavailableError("send cancelled"))
        elif (exc := sent.exception()) is not None:
            batch.future.set_exception(KafkaUnavailableError(str(exc) or repr(exc)))
        else:
            metrics.KAFKA_SEND_SECONDS.observe(time.perf_counter() - started)
            batch.future.set_result(sent.result().offset)
