"""The consumer loop: poll ticks.raw, aggregate, publish; MongoDB and the commit behind.

Per batch (a getmany(), topped up with what is already fetched within the latency
budget `batch_max_ms`):
  1. the aggregator applies the records (skipping any at or below a symbol's stored
     offset) and coalesces the effects per symbol;
  2. updates, closed bars, late events and dead letters are produced with the batch
     API and their acks awaited: this is the whole hot path;
  3. the batch's documents and next offsets go to the Persister (persist.py), which
     writes them behind the loop, coalesced with later batches, and commits the offsets
     only once MongoDB holds what they cover.
A crash anywhere replays from the last commit: MongoDB ends the same (idempotent
writes, offset guard) and the re-emitted updates carry the same versions. A failing
dependency pauses the step that needs it (backoff with jitter, readiness false,
`tickwire_processor_paused`): with MongoDB down, updates keep flowing while the
unwritten closed bars stay under `persist_max_pending_bars`, and nothing is committed.

In-flight markers: before publishing past the offset its marker covers, a partition's
marker in MongoDB is moved `inflight_headroom` records ahead (written in the background
when half of it is used up, so the hot path seldom waits for it). A successor taking
a partition over holds its replay back until it passes min(marker, log end), and
publishes that replay as one coalesced batch, so no symbol's version goes backwards on
ticker.updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition
from pymongo.errors import PyMongoError

from tickwire.core.backoff import Backoff
from tickwire.core.errors import PoisonMessageError
from tickwire.kafka.batches import BatchPublisher, OutgoingRecord
from tickwire.kafka.clients import make_consumer, make_producer
from tickwire.kafka.security import KafkaSecurity
from tickwire.kafka.topics import ensure_service_topics
from tickwire.observability import tracing
from tickwire.processor import metrics as m
from tickwire.processor.aggregator import Aggregator, BatchOutcome, Record
from tickwire.processor.outputs import batch_records
from tickwire.processor.persist import Persister
from tickwire.processor.settings import ProcessorSettings
from tickwire.processor.state import SymbolState
from tickwire.processor.store import Documents, StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRIABLE = (KafkaError, PyMongoError, OSError, TimeoutError)
KAFKA, MONGODB = "kafka", "mongodb"
_MAX_REPLAY_POLLS = 200


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ProcessorLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.loop.on_assigned(assigned)


class ProcessorLoop:
    """The supervised Runnable that owns the Kafka clients and drives the aggregator."""

    def __init__(self, settings: ProcessorSettings, store: StateStore) -> None:
        self.settings = settings
        self.store = store
        self.security = KafkaSecurity.from_settings(settings)  # refused here if unusable
        self.aggregator = Aggregator.from_settings(settings)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.publisher: BatchPublisher | None = None
        self._producer_broken = False
        self._owned: set[TopicPartition] = set()
        self._lock = asyncio.Lock()
        self._failing: set[str] = set()
        self._lag_reported = 0.0
        # partitions taken over after a crash: last offset of the batch that was being
        # published then; the replay is held back (accumulated) until it gets there
        self._hold: dict[TopicPartition, int] = {}
        # partitions assigned whose state could not be restored yet: paused (nothing of
        # them is processed or committed) and retried with backoff from the loop
        self._unrestored: set[TopicPartition] = set()
        self._restore_backoff = Backoff(base=0.2, cap=settings.retry_cap_seconds)
        self._restore_due = 0.0
        self._faulted_batches = 0
        # symbols looked up in MongoDB and not found (bounded: keys of poison records)
        self._absent: set[str] = set()
        self.persister: Persister | None = None
        # per owned partition: the last input offset the stored in-flight marker covers
        self._marked: dict[int, int] = {}
        self._marking: asyncio.Task[None] | None = None
        self._traced_topics = (settings.topic_updates, settings.topic_bars)

    # -- readiness ---------------------------------------------------------------
    async def kafka_ready(self) -> bool:
        """Kafka clients started, the last Kafka call succeeded and the group
        coordinator is known (aiokafka forgets it while the broker is unreachable)."""
        if self.consumer is None or KAFKA in self._failing:
            return False
        coordinator = getattr(self.consumer, "_coordinator", None)
        return coordinator is None or coordinator.coordinator_id is not None

    async def mongodb_ready(self) -> bool:
        """The last MongoDB call succeeded."""
        return MONGODB not in self._failing

    async def partitions_ready(self) -> bool:
        """Every assigned partition had its state restored (none is paused for it)."""
        return not self._unrestored

    # -- life --------------------------------------------------------------------
    async def run(self) -> None:
        """Start the clients (waiting out outages), then process until cancelled."""
        s = self.settings
        try:
            await self._retry(KAFKA, self._ensure_topics)
            await self._retry(MONGODB, self.store.ensure_indexes)
            await self._retry(KAFKA, self._start_producer)
            self.persister = Persister(
                self._write_documents,
                self._commit,
                max_pending_bars=s.persist_max_pending_bars,
                interval_s=s.persist_interval_ms / 1000,
            )
            self.persister.start()
            consumer = await self._retry(KAFKA, self._start_consumer)
            self.consumer = consumer
            log.info("processor consuming %s as %s", s.topic_raw, s.instance_id or "dynamic")
            while True:
                if self._unrestored:
                    await self._retry_restore(consumer)
                batch = await self._poll(consumer)
                if batch and self._hold:
                    batch = await self._complete_replay(consumer, batch)
                if batch:
                    async with self._lock:
                        await self.process(batch)
                await self._report_lag()
        finally:
            if self._marking is not None:
                self._marking.cancel()
            if self.persister is not None:
                await self.persister.close(flush_seconds=10)
            await self._stop_clients()

    async def _ensure_topics(self) -> None:
        s = self.settings
        await ensure_service_topics(
            s,
            [s.topic_raw, s.topic_updates, s.topic_bars, s.topic_late, s.topic_dlq],
            self.security,
        )

    async def _start_producer(self) -> None:
        producer = make_producer(
            self.settings.kafka_bootstrap,
            f"{self.settings.kafka_client_id}-processor",
            security=self.security,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producer, self.publisher = producer, BatchPublisher(producer)
        self._producer_broken = False

    async def _start_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        consumer = make_consumer(
            s.kafka_bootstrap,
            f"{s.kafka_client_id}-processor",
            group_id=s.group_id,
            security=self.security,
            group_instance_id=s.instance_id,
            session_timeout_ms=s.session_timeout_ms,
            max_partition_fetch_bytes=4 << 20,
            metadata_max_age_ms=s.metadata_max_age_ms,
        )
        try:
            await consumer.start()
            consumer.subscribe([s.topic_raw], listener=_Listener(self))
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _stop_clients(self) -> None:
        for client in (self.consumer, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10)

    # -- rebalances ----------------------------------------------------------------
    async def on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Wait for the batch in flight (it commits), then forget those partitions.

        Never raises: aiokafka would log and swallow it, and the loop would go on with
        states of partitions it no longer owns."""
        try:
            async with self._lock:
                # what was published of them is written and committed before they go
                await self._flush()
                gone = {tp for tp in revoked if tp.topic == self.settings.topic_raw}
                self._owned -= gone
                self._unrestored -= gone
                m.UNRESTORED.set(len(self._unrestored))
                for tp in gone:
                    self._hold.pop(tp, None)
                    self._marked.pop(tp.partition, None)
                self.aggregator.drop_partitions(tp.partition for tp in gone)
                for tp in gone:
                    with contextlib.suppress(KeyError):
                        m.LAG.remove(str(tp.partition))
                m.REBALANCES.labels("revoked").inc()
        except Exception:
            m.REBALANCE_FAILURES.labels("revoked").inc()
            log.exception("handling the revocation of %s failed", revoked)

    async def on_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Reload the states of newly owned partitions from MongoDB before any record.

        A partition whose restore fails is paused (nothing of it is fetched, processed
        or committed), counted in `tickwire_processor_rebalance_failures_total`, makes
        /readyz false, and is retried with backoff by the loop: never left running
        without its state, which would restart its symbols' versions."""
        async with self._lock:
            new = {tp for tp in assigned if tp.topic == self.settings.topic_raw} - self._owned
            m.REBALANCES.labels("assigned").inc()
            # a symbol absent from MongoDB then may exist now (partitions were added and
            # another instance wrote it): look it up again when it shows up
            self._absent.clear()
            if not new:
                return
            try:
                await self._restore(new)
            except Exception as exc:
                self._defer_restore(new, exc)

    async def _restore(self, partitions: set[TopicPartition]) -> None:
        """Load the stored states and in-flight markers of partitions, then own them."""
        numbers = [tp.partition for tp in partitions]
        states = await self.store.load(numbers)
        inflight = await self.store.load_inflight(self.settings.topic_raw, numbers)
        # a marker covers offsets ahead; what exists of the log is all that can have
        # been published under it
        ends = await self.consumer.end_offsets(list(partitions)) if self.consumer else {}
        self.aggregator.load(states)
        for tp in partitions:
            if tp.partition in inflight:
                self._hold[tp] = min(inflight[tp.partition], ends.get(tp, 1 << 62) - 1)
        self._owned |= partitions
        log.info("assigned partitions %s (%d symbols restored)", sorted(numbers), len(states))

    def _defer_restore(self, partitions: set[TopicPartition], exc: BaseException) -> None:
        m.REBALANCE_FAILURES.labels("assigned").inc()
        if isinstance(exc, RETRIABLE):
            m.DEPENDENCY_FAILURES.labels(MONGODB).inc()
        log.error(
            "restoring partitions %s failed, paused until it succeeds: %r",
            sorted(tp.partition for tp in partitions),
            exc,
        )
        if self.consumer is not None:
            with contextlib.suppress(IllegalStateError):
                self.consumer.pause(*partitions)
        self._unrestored |= partitions
        m.UNRESTORED.set(len(self._unrestored))
        self._restore_due = time.monotonic() + self._restore_backoff.next_delay()

    async def _retry_restore(self, consumer: AIOKafkaConsumer) -> None:
        """Retry the restore of paused partitions once their backoff is over."""
        if time.monotonic() < self._restore_due:
            return
        async with self._lock:
            pending = self._unrestored & consumer.assignment()
            self._unrestored = set(pending)
            if pending:
                try:
                    await self._restore(pending)
                except Exception as exc:
                    self._unrestored -= pending
                    self._defer_restore(pending, exc)
                    return
                self._unrestored.clear()
                self._restore_backoff.reset()
                # nothing of them was processed: records fetched meanwhile were rewound
                consumer.resume(*pending)
            m.UNRESTORED.set(len(self._unrestored))

    async def _poll(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Record]]:
        """One processing batch: a getmany(), topped up with records already fetched
        (waiting batch_wait_ms for more, by default not at all) within the latency budget
        batch_max_ms, up to batch_max_records. When the flow is light a batch goes out
        as soon as its records are there; under pressure the fetcher's backlog makes
        batches grow, and the per-batch costs are shared by more events."""
        s = self.settings
        first = await consumer.getmany(timeout_ms=s.poll_timeout_ms, max_records=s.max_poll_records)
        merged = {tp: list(records) for tp, records in first.items()}
        total = sum(len(r) for r in merged.values())
        deadline = time.monotonic() + s.batch_max_ms / 1000
        while total and total < s.batch_max_records and time.monotonic() < deadline:
            more = await consumer.getmany(
                timeout_ms=s.batch_wait_ms, max_records=s.max_poll_records
            )
            if not more:
                break
            total += _merge(merged, more)
        return merged

    async def _complete_replay(
        self, consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[Record]]
    ) -> dict[TopicPartition, list[Record]]:
        """Keep polling until every held partition's replay reached the offset its
        crashed predecessor had published up to; return everything as one batch."""
        merged = {tp: list(records) for tp, records in batch.items()}
        for _ in range(_MAX_REPLAY_POLLS):
            for tp, last in list(self._hold.items()):
                # position: the next offset to fetch, so everything below it is in hand
                # (or was committed before the crash, when the batch had finished)
                if tp not in self._owned or await _position(consumer, tp) > last:
                    del self._hold[tp]
            if not self._hold:
                return merged
            more = await consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_poll_records
            )
            _merge(merged, more)
        log.warning("replay did not reach the in-flight offsets %s; going on", self._hold)
        self._hold.clear()
        return merged

    # -- one batch -------------------------------------------------------------------
    async def process(self, batch: Mapping[TopicPartition, Sequence[Record]]) -> None:
        """Aggregate and publish one batch, then hand it to the Persister (module doc)."""
        # a partition still held was assigned while this batch was being fetched (its
        # restore ran meanwhile): its records wait for the next poll, which holds them
        owned = {
            tp: records
            for tp, records in batch.items()
            if tp in self._owned and tp not in self._hold
        }
        await self._rewind_unprocessed(batch, owned)
        await self._follow_moved_symbols(owned)
        started = time.perf_counter()
        try:
            outcome, records, docs = self._compute(self.aggregator, owned)
        except Exception as exc:  # a record the code cannot take: never a crash loop
            outcome, records, docs = await self._isolate(owned, exc)
        tracing.carry(owned.values(), records, self._traced_topics)
        m.PROCESS_SECONDS.observe(time.perf_counter() - started)
        if records:
            await self._mark_ahead({tp.partition: rs[-1].offset for tp, rs in owned.items() if rs})
            started = time.perf_counter()
            await self._retry(KAFKA, lambda: self._publish(records))
            m.PUBLISH_SECONDS.observe(time.perf_counter() - started)
            self._fault_point("after_publish")
        if docs or outcome.commit:
            assert self.persister is not None
            await self.persister.submit(docs, outcome.commit)
        m.BATCH_RECORDS.observe(sum(len(r) for r in owned.values()))
        m.EVENTS.labels("trade").inc(outcome.trades)
        m.EVENTS.labels("quote").inc(outcome.quotes)
        m.EVENTS.labels("replayed").inc(outcome.skipped)
        m.EVENTS.labels("late").inc(len(outcome.late))
        m.EVENTS.labels("poison").inc(len(outcome.dead))
        m.EVENTS.labels("duplicate").inc(outcome.duplicates)
        m.EVENTS.labels("correction").inc(len(outcome.corrections))  # and cancels
        m.EVENTS.labels("status").inc(outcome.statuses)
        m.LATE.inc(len(outcome.late))
        m.DEAD_LETTERS.inc(len(outcome.dead))
        m.PUBLISHED.labels("update").inc(len(outcome.updates))
        m.PUBLISHED.labels("bar").inc(len(outcome.closed))

    async def _write_documents(self, docs: Documents) -> None:
        """The Persister's write: retried while MongoDB is away (the loop goes on)."""
        started = time.perf_counter()
        upserts = await self._retry(MONGODB, lambda: self.store.write(docs))
        m.MONGO_SECONDS.observe(time.perf_counter() - started)
        m.MONGO_WRITES.inc(upserts)
        self._fault_point("after_store")

    async def _flush(self) -> None:
        """Wait until every batch handed to the Persister is written and committed."""
        if self.persister is not None:
            await self.persister.flush()

    async def _mark_ahead(self, last_offsets: dict[int, int]) -> None:
        """Make sure the stored in-flight markers cover the batch about to be published
        (waiting for MongoDB only when one does not), and move a marker further ahead
        in the background once half its headroom is used."""
        headroom = self.settings.inflight_headroom
        if any(last > self._marked.get(p, -1) for p, last in last_offsets.items()):
            if self._marking is not None:
                await asyncio.shield(self._marking)
            needed = {
                p: last + headroom
                for p, last in last_offsets.items()
                if last > self._marked.get(p, -1)
            }
            if needed:
                await self._write_marks(needed)
        soon = {
            p: last + headroom
            for p, last in last_offsets.items()
            if last > self._marked.get(p, -1) - headroom // 2
        }
        if soon and (self._marking is None or self._marking.done()):
            self._marking = asyncio.create_task(self._write_marks(soon))

    async def _write_marks(self, marks: dict[int, int]) -> None:
        """Store in-flight markers (one writer at a time, so a marker only moves ahead)."""
        topic = self.settings.topic_raw
        await self._retry(MONGODB, lambda: self.store.mark_inflight(topic, marks))
        for partition, last in marks.items():
            self._marked[partition] = max(last, self._marked.get(partition, -1))

    def _compute(
        self, aggregator: Aggregator, batch: Mapping[TopicPartition, Sequence[Record]]
    ) -> tuple[BatchOutcome, list[OutgoingRecord], Documents]:
        """Apply a batch and encode everything it publishes and stores (no I/O)."""
        return self._encode(aggregator.apply(batch))

    def _encode(
        self, outcome: BatchOutcome
    ) -> tuple[BatchOutcome, list[OutgoingRecord], Documents]:
        """A batch's outcome with the records it publishes and the documents it stores."""
        s = self.settings
        records = batch_records(
            outcome,
            updates_topic=s.topic_updates,
            bars_topic=s.topic_bars,
            late_topic=s.topic_late,
            dlq_topic=s.topic_dlq,
            forming_bars=s.publish_forming_bars,
        )
        return outcome, records, self.store.documents(outcome)

    async def _isolate(
        self, batch: Mapping[TopicPartition, Sequence[Record]], error: Exception
    ) -> tuple[BatchOutcome, list[OutgoingRecord], Documents]:
        """Find the records that make the batch fail and dead-letter them; process the rest.

        The failed attempt changed states half-way, so they are reloaded from MongoDB
        once every earlier batch is written (that is the state before this one).
        Then the records are tried one by one on a copy, the failing ones set
        aside and dead-lettered with the error, and the rest applied as one batch (the
        result does not depend on batch boundaries). Slower, but only ever run for
        records the decoder let through and the code could not handle."""
        log.error("a batch failed to process (%r); isolating the records that cause it", error)
        partitions = {tp.partition for tp in batch}
        await self._flush()
        self.aggregator.drop_partitions(partitions)
        self.aggregator.load(await self._retry(MONGODB, lambda: self.store.load(partitions)))
        await self._follow_moved_symbols(batch)
        kept, unprocessable = await self._set_aside_unprocessable(
            [(tp, record) for tp, records in batch.items() for record in records]
        )
        outcome = self.aggregator.apply(_group(kept))
        outcome.dead.extend(
            (record, PoisonMessageError(f"unprocessable: {type(exc).__name__}: {exc}"))
            for record, exc in unprocessable
        )
        for tp, records in batch.items():
            if records:
                outcome.commit[tp] = records[-1].offset + 1
        m.UNPROCESSABLE.inc(len(unprocessable))
        return self._encode(outcome)

    async def _set_aside_unprocessable(
        self, records: list[tuple[TopicPartition, Record]]
    ) -> tuple[list[tuple[TopicPartition, Record]], list[tuple[Record, Exception]]]:
        """Try the records one by one, in order, on a copy of the aggregator; return the
        ones that go through and the ones that fail (with why). After a failure the copy
        is rebuilt from the records kept so far. Yields to the event loop as it goes, so
        heartbeats keep the group membership."""
        trial = copy.deepcopy(self.aggregator)
        kept: list[tuple[TopicPartition, Record]] = []
        failed: list[tuple[Record, Exception]] = []
        for n, (tp, record) in enumerate(records):
            if n % 100 == 0:
                await asyncio.sleep(0)
            try:
                self._compute(trial, {tp: [record]})
            except Exception as exc:
                failed.append((record, exc))
                trial = copy.deepcopy(self.aggregator)
                trial.apply(_group(kept))
            else:
                kept.append((tp, record))
        return kept, failed

    def _fault_point(self, point: str) -> None:
        """Test seam (TICKWIRE_FAULT_POINT): at the named point of the Nth batch that
        reaches it, the process sends itself SIGKILL (a crash) or SIGSTOP (a stall)."""
        s = self.settings
        if s.fault_point != point:
            return
        self._faulted_batches += 1
        if self._faulted_batches == s.fault_batch:
            log.warning("test fault: SIG%s at %s of batch %d", s.fault_signal, point, s.fault_batch)
            os.kill(os.getpid(), signal.SIGKILL if s.fault_signal == "KILL" else signal.SIGSTOP)

    async def _follow_moved_symbols(self, batch: Mapping[TopicPartition, Sequence[Record]]) -> None:
        """Give a symbol that arrives on another partition than its state its history.

        After partitions were added to ticks.raw a symbol's events land on another
        partition. Its state (and version) is carried over: from memory, else from its
        quotes document wherever it was stored. The last applied offset belongs to the
        old partition, so it starts over for the new one (a replay of the new partition
        is still skipped by the offset guard once the state was written with it)."""
        states = self.aggregator.states
        unknown: dict[str, int] = {}
        for tp, records in batch.items():
            for key in {r.key for r in records}:
                if key is None:
                    continue
                symbol = key.decode(errors="replace")
                state = states.get(symbol)
                if state is None:
                    if symbol not in self._absent:
                        unknown[symbol] = tp.partition
                elif state.partition != tp.partition:
                    _move(state, tp.partition)
        if not unknown:
            return
        found = await self._retry(MONGODB, lambda: self.store.load_symbols(unknown))
        for state in found:
            if state.partition != unknown[state.symbol]:
                _move(state, unknown[state.symbol])
        self.aggregator.load(found)
        if len(self._absent) > 100_000:
            self._absent.clear()
        self._absent.update(set(unknown) - {state.symbol for state in found})

    async def _rewind_unprocessed(
        self,
        batch: Mapping[TopicPartition, Sequence[Record]],
        processed: Mapping[TopicPartition, Sequence[Record]],
    ) -> None:
        """Records of an assigned partition that is not (yet) restored, or whose replay
        is held, are not processed; seek back so they are fetched again, not skipped."""
        consumer = self.consumer
        if consumer is None:
            return
        for tp, records in batch.items():
            if records and tp not in processed and tp in consumer.assignment():
                consumer.seek(tp, records[0].offset)

    async def _publish(self, records: list[OutgoingRecord]) -> None:
        if self._producer_broken or self.publisher is None:
            if self.producer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.producer.stop(), 10)
            await self._start_producer()
        assert self.publisher is not None
        try:
            await self.publisher.publish(records)
        except BaseException:
            # an idempotent producer that failed may keep failing; start a fresh one
            self._producer_broken = True
            raise

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        try:
            await self._retry(KAFKA, lambda: consumer.commit(offsets))
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved on; their new owner replays from the last commit and
            # the offset guard in MongoDB makes that replay change nothing
            m.COMMIT_FAILURES.inc()
            log.warning("offset commit refused: %s", exc)

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if self.consumer is None or now - self._lag_reported < 1.0:
            return
        self._lag_reported = now
        for tp in list(self._owned):
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(IllegalStateError, KafkaError):
                position = await self.consumer.position(tp)
                m.LAG.labels(str(tp.partition)).set(max(0, highwater - position))

    async def _retry(self, dependency: str, call: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(base=0.1, cap=self.settings.retry_cap_seconds)
        while True:
            try:
                result = await call()
            except (CommitFailedError, IllegalStateError):
                raise
            except RETRIABLE as exc:
                if dependency not in self._failing:
                    log.warning("%s unavailable, pausing: %r", dependency, exc)
                self._failing.add(dependency)
                m.PAUSED.labels(dependency).set(1)
                m.DEPENDENCY_FAILURES.labels(dependency).inc()
                await asyncio.sleep(backoff.next_delay())
            else:
                if dependency in self._failing:
                    self._failing.discard(dependency)
                    m.PAUSED.labels(dependency).set(0)
                    log.info("%s is back, resuming", dependency)
                return result


def _merge(
    into: dict[TopicPartition, list[Record]], more: Mapping[TopicPartition, Sequence[Record]]
) -> int:
    """Append records to a batch, keeping each partition's offsets strictly growing
    (a rebalance in between may deliver some again); return how many were added."""
    added = 0
    for tp, records in more.items():
        have = into.setdefault(tp, [])
        after = have[-1].offset if have else -1
        fresh = [r for r in records if r.offset > after]
        have.extend(fresh)
        added += len(fresh)
    return added


def _group(
    records: Sequence[tuple[TopicPartition, Record]],
) -> dict[TopicPartition, list[Record]]:
    batch: dict[TopicPartition, list[Record]] = {}
    for tp, record in records:
        batch.setdefault(tp, []).append(record)
    return batch


def _move(state: SymbolState, partition: int) -> None:
    log.info("symbol %s moved from partition %d to %d", state.symbol, state.partition, partition)
    state.partition = partition
    state.offset = -1


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    try:
        return int(await consumer.position(tp))
    except (IllegalStateError, KafkaError):
        return -1
