"""Reading ticker.updates and ticker.bars: every partition, no consumer group.

Cold start, and why no update is lost or repeated:
1. The last-value cache is seeded from MongoDB `quotes` first. The processor publishes
   a state to Kafka before it writes it to MongoDB, so every state read here is
   already in Kafka below the end offsets read next.
2. The end offsets E of every partition are read.
3. Reading starts at max(log start, E - buffer capacity) per partition: those records
   refill the recent buffer (so a cursor another instance issued resumes here from
   memory) and bring the cache up to at least E, whatever MongoDB lagged.
4. Only when every partition has reached E is the hub ready; streams wait for that.
Versions decide between the two sources: the cache keeps the newest per symbol, while
the buffer and the drop rule follow Kafka alone, so every record read is buffered once.

Latency budget: the records of one Kafka fetch are applied in slices, and once
applying has taken longer than the budget (`GATEWAY_FLUSH_MS`, at least 1 ms) the flush
loop is woken and given the event loop before the next slice. Under light load a fetch
is a few records, applied at once and written as one batch; under pressure a fetch of
thousands of records is written in pieces one budget apart, so no record waits behind
the fan-out of the whole fetch. Flushing between two records is as safe as between two
fetches: each record is applied to the hub in one synchronous step. The budget
stretches to the last flush pass's length (`Hub.flush_s`): a pass costs a write per
dirty connection however many records came before it, so a reader held to less than a
pass would fall behind the topic at heavy fan-out (records queueing in Kafka, latency
growing without bound) instead of letting each pass carry more.

A record that cannot be forwarded (a tombstone, a value that is not the documented
struct, a key that is not its symbol, numbers that do not fit) is skipped: counted in
`dropped_total{reason="unreadable"}`, logged, and the position (hence every cursor)
moves past it. The gateway only reads, so it has no dead-letter topic of its own; the
record stays in the topic for whoever wrote it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pymongo.errors import PyMongoError

from tickwire.core.backoff import Backoff
from tickwire.events import wire
from tickwire.events.headers import TRACEPARENT
from tickwire.gateway import metrics
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.updates import PARSE_ERRORS, QUOTE, Parsed, parse
from tickwire.mongo import documents
from tickwire.observability import tracing

log = logging.getLogger(__name__)


def state_from_document(doc: dict[str, Any]) -> wire.TickerState | None:
    """A `quotes` document as a TickerState (bookkeeping fields ignored), or None."""
    try:
        return documents.decode_quote(doc)
    except documents.DocumentError:
        try:
            return documents.decode_quote({k: v for k, v in doc.items() if k != "source"})
        except documents.DocumentError:
            return None


async def discover_slots(consumer: AIOKafkaConsumer, updates: str, bars: str) -> list[Slot]:
    """The slots (topic partitions, updates first) in cursor order."""
    slots: list[Slot] = []
    for topic, kind in ((updates, QUOTE), (bars, "bar")):
        partitions: set[int] | None = None
        for _ in range(50):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.2)
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")
        slots.extend(Slot(topic, p, kind) for p in sorted(partitions))
    return slots


class KafkaReader:
    """Runnable: cold start, then feed every record to the hub, forever."""

    #: records applied between two looks at the clock
    SLICE = 64

    def __init__(
        self,
        hub: Hub,
        consumer: AIOKafkaConsumer,
        quotes: Any,
        budget_s: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.budget_s = max(budget_s, 0.001)
        self.clock = clock
        self.yields = 0  # times a fetch was handed to the flush loop before its end
        self.consumer = consumer
        self.quotes = quotes  # the MongoDB `quotes` collection
        self.tps = [TopicPartition(s.topic, s.partition) for s in hub.slots]
        self.slot_index = {tp: i for i, tp in enumerate(self.tps)}
        #: called with each final bar record read (the query cache's invalidation)
        self.on_final: Callable[[Parsed, int], None] | None = None

    async def seed_from_mongo(self) -> int:
        """Fill the cache from MongoDB `quotes`; the number of symbols loaded."""
        loaded = 0
        async for doc in self.quotes.find({}):
            state = state_from_document(doc)
            if state is not None:
                self.hub.seed_quote(state.symbol, state.version, wire.ENCODER.encode(state))
                loaded += 1
        return loaded

    async def start_positions(self) -> dict[TopicPartition, int]:
        """Seek every partition to its refill start; the end offsets to reach."""
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.tps)
        begins: dict[TopicPartition, int] = await self.consumer.beginning_offsets(self.tps)
        self.consumer.assign(self.tps)
        for slot, tp in enumerate(self.tps):
            start = max(begins[tp], ends[tp] - self.hub.buffers[slot].capacity)
            self.consumer.seek(tp, start)
            self.hub.set_position(slot, start)
            self.hub.buffers[slot].start = start
        return ends

    async def run(self) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        while True:  # MongoDB down at start: not ready (readyz says so) until it answers
            try:
                loaded = await self.seed_from_mongo()
                break
            except PyMongoError as exc:
                log.warning("cannot load quotes from MongoDB (%s); retrying", exc)
                await asyncio.sleep(backoff.next_delay())
        ends = await self.start_positions()  # after the seed: see the module docstring
        log.info("seeded %d quotes from MongoDB; catching up to %s", loaded, ends)
        waiting = {tp for tp, end in ends.items() if self.hub.positions[self.slot_index[tp]] < end}
        if not waiting:
            self.hub.warmed_up()
        next_lag = 0.0
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            await self.apply_fetch(batch)
            if waiting:
                for tp in list(waiting):
                    position = await self.consumer.position(tp)
                    if position >= ends[tp]:
                        self.hub.set_position(self.slot_index[tp], position)
                        waiting.discard(tp)
                if not waiting:
                    log.info("caught up; serving")
                    self.hub.warmed_up()
                    # what exists now (clients, cache, buffers) lives long: keep it out of
                    # the collector's full passes, which would otherwise stall fan-out
                    gc.collect()
                    gc.freeze()
            self.hub.after_batch()
            if time.monotonic() >= next_lag:
                next_lag = time.monotonic() + 5
                self.publish_lag()

    async def apply_fetch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply one fetch, letting the flush loop write what is applied each time the
        latency budget is spent (see the module docstring)."""
        clock, step = self.clock, self.SLICE
        # at least as long as the last flush pass took to write: a pass costs about a
        # write per dirty connection however many records were applied before it, so
        # applying for less than that would let the records queue in Kafka
        budget = max(self.budget_s, self.hub.flush_s)
        deadline = clock() + budget
        for tp, records in batch.items():
            for start in range(0, len(records), step):
                self.apply(tp, records[start : start + step] if len(records) > step else records)
                if clock() >= deadline:
                    self.yields += 1
                    self.hub.after_batch()
                    await asyncio.sleep(0)
                    deadline = clock() + budget

    def apply(self, tp: TopicPartition, records: list[Any]) -> None:
        """Hand a partition's records to the hub in order."""
        slot = self.slot_index[tp]
        kind = self.hub.slots[slot].kind
        hub = self.hub
        for record in records:
            try:
                parsed = parse(kind, record.key, record.value, record.headers)
            except PARSE_ERRORS as exc:
                metrics.DROPPED.labels("unreadable").inc()
                log.warning("skipped unreadable record %s@%d: %s", tp, record.offset, exc)
                hub.set_position(slot, record.offset + 1)
                continue
            hub.apply(slot, record.offset, parsed, record.value)
            if record.headers and record.headers[-1][0] == TRACEPARENT:
                tracing.hop(record.headers[-1][1], "gateway.fanout", {"topic": tp.topic})
            if parsed.final and self.on_final is not None:
                self.on_final(parsed, record.offset)
        metrics.RECORDS.labels(tp.topic).inc(len(records))

    def publish_lag(self) -> None:
        """High watermark minus position, summed per topic."""
        lag: dict[str, int] = {}
        for slot, tp in enumerate(self.tps):
            high = self.consumer.highwater(tp)
            if high is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - self.hub.positions[slot])
        for topic, value in lag.items():
            metrics.CONSUMER_LAG.labels(topic).set(value)
