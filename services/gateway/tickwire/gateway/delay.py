"""Delayed entitlements: a subject whose token carries a `delay` (tickwire.gateway.auth)
gets its updates exactly that late, from the same topics (no second feed).

One `DelayedFeed` per distinct delay D serves every subscriber of that delay: its own
hub (last-value cache, recent buffers, fan-out, cursors in the same topics) fed by its
own reader of ticker.updates and ticker.bars, which hands a record to the hub only once
the record's event time is D old. A delayed subscriber costs what a real-time one costs
(its conflating outbox); what waits for release is held once per feed, never per client.

Event time (what "D old" is measured from): a quote's `time` (the newest event applied;
its ingest `received_ns` when absent, else the moment it is read); a bar's `end`, or the
ingest receive time of its newest trade when that is earlier (a forming bar holds no
trade after it). Records are released in partition order: a record waits for those
before it, so nothing is ever released early, and the feed's cursor (the position of
the first unreleased record) is a cursor like any other: resumable here, on another
instance, or by a real-time stream. Memory is bounded: while a partition's oldest
fetched record waits, that partition is paused, so the feed holds at most one fetch per
partition. Snapshots come from the feed's own cache: the newest state released, never
fresher. At start the feed reads from `offsets_for_times(now - D)` minus one buffer's
worth of records, like the real-time reader's cold start.

Feeds start on the first subscriber of their delay and live until shutdown, at most
`GATEWAY_MAX_DELAYS` of them (beyond: 503).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from tickwire.gateway import metrics
from tickwire.gateway.errors import GatewayError, NotReadyError
from tickwire.gateway.hub import FlushLoop, Hub, Janitor, Slot
from tickwire.gateway.reader import KafkaReader
from tickwire.gateway.resume import Resumer
from tickwire.gateway.settings import GatewaySettings
from tickwire.gateway.updates import BAR
from tickwire.kafka.clients import make_consumer
from tickwire.kafka.security import PLAINTEXT, KafkaSecurity


class _QuoteTime(msgspec.Struct):
    time: dt.datetime | None = None
    received_ns: int | None = None


class _BarTime(msgspec.Struct):
    end: dt.datetime | None = None
    received_ns: int | None = None


_QUOTE_TIME = msgspec.json.Decoder(_QuoteTime)
_BAR_TIME = msgspec.json.Decoder(_BarTime)


def event_time(kind: str, value: bytes | None, now: float) -> float:
    """A record's event time in epoch seconds, by the rule in the module docstring
    (`now` for a record that tells none: it is then held the full delay from now)."""
    try:
        if kind == BAR:
            bar = _BAR_TIME.decode(value or b"")
            times = [bar.end.timestamp()] if bar.end is not None and bar.end.tzinfo else []
            if bar.received_ns:
                times.append(bar.received_ns / 1e9)
            return min(times) if times else now
        quote = _QUOTE_TIME.decode(value or b"")
        if quote.time is not None and quote.time.tzinfo is not None:
            return quote.time.timestamp()
        return quote.received_ns / 1e9 if quote.received_ns else now
    except (msgspec.MsgspecError, ValueError, OverflowError):
        return 0.0  # unreadable: released at once, and the hub skips it


def notice(delay_s: float) -> bytes:
    """The SSE `delayed` event opening a delayed stream: `{"delay_s": D}`. It has no id,
    so the browser's Last-Event-ID stays the last update's (SSE keeps the previous id
    for an event without one)."""
    return b'event: delayed\ndata: {"delay_s":%s}\n\n' % format(delay_s, "g").encode()


_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def bars_before(
    delay_s: float, interval: str, end: dt.datetime | None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """The `to` of a bars query for a subject with this delay: no bar that ends less
    than the delay ago (its trades would be fresher), so starts before now - delay -
    the interval. Real time (0): `end` as asked."""
    if not delay_s:
        return end
    length = int(interval[:-1]) * _UNIT_S[interval[-1]]
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=delay_s + length)
    return cutoff if end is None or cutoff < end else end


class DelayedReader(KafkaReader):
    """Runnable: reads every partition and applies each record to the hub once its
    event time is `delay_s` old (see the module docstring)."""

    #: longest wait in one fetch (also the longest a newly due record waits)
    POLL_MS = 100

    def __init__(
        self,
        hub: Hub,
        consumer: AIOKafkaConsumer,
        delay_s: float,
        budget_s: float = 0.005,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(hub, consumer, None, budget_s)
        self.delay_s = delay_s
        self.wall = wall
        self.held: dict[TopicPartition, deque[tuple[float, Any]]] = {tp: deque() for tp in self.tps}
        self.held_gauge = metrics.DELAYED_HELD.labels(f"{delay_s:g}")

    async def start_positions(self) -> dict[TopicPartition, int]:
        """Seek every partition one buffer's worth before the records D old."""
        consumer = self.consumer
        ends: dict[TopicPartition, int] = await consumer.end_offsets(self.tps)
        begins: dict[TopicPartition, int] = await consumer.beginning_offsets(self.tps)
        cutoff_ms = max(0, int((self.wall() - self.delay_s) * 1000))
        found = await consumer.offsets_for_times(dict.fromkeys(self.tps, cutoff_ms))
        consumer.assign(self.tps)
        for slot, tp in enumerate(self.tps):
            hit = found.get(tp)
            at = hit.offset if hit is not None else ends[tp]
            start = max(begins[tp], at - self.hub.buffers[slot].capacity)
            consumer.seek(tp, start)
            self.hub.set_position(slot, start)
            self.hub.buffers[slot].start = start
        return ends

    async def run(self) -> None:
        hub, consumer = self.hub, self.consumer
        ends = await self.start_positions()
        warming = {tp for tp, end in ends.items() if hub.positions[self.slot_index[tp]] < end}
        if not warming:
            hub.warmed_up()
        while True:
            batch = await consumer.getmany(timeout_ms=self._wait_ms(), max_records=10_000)
            for tp, records in batch.items():
                now = self.wall()
                kind = hub.slots[self.slot_index[tp]].kind
                self.held[tp].extend(
                    (event_time(kind, r.value, now) + self.delay_s, r) for r in records
                )
            await self.release(self.wall())
            if warming:
                for tp in list(warming):
                    # warm once every record that is due was applied
                    if self.held[tp] or await consumer.position(tp) >= ends[tp]:
                        warming.discard(tp)
                if not warming:
                    hub.warmed_up()
            hub.after_batch()

    def _wait_ms(self) -> int:
        heads = [q[0][0] for q in self.held.values() if q]
        if not heads:
            return self.POLL_MS
        return max(0, min(self.POLL_MS, int((min(heads) - self.wall()) * 1000) + 1))

    async def release(self, now: float) -> None:
        """Apply every held record that is due, in partition order; pause partitions
        whose oldest record still waits, resume the others."""
        due: dict[TopicPartition, list[Any]] = {}
        paused: list[TopicPartition] = []
        for tp, queue in self.held.items():
            while queue and queue[0][0] <= now:
                due.setdefault(tp, []).append(queue.popleft()[1])
            if queue:
                paused.append(tp)
        self.held_gauge.set(sum(map(len, self.held.values())))
        if due:
            await self.apply_fetch(due)
        self.consumer.pause(*paused)
        self.consumer.resume(*(tp for tp in self.tps if not self.held[tp]))


class DelayedFeed:
    """Runnable: the hub, reader, flush loop and janitor of one delay."""

    def __init__(
        self,
        delay_s: float,
        slots: Sequence[Slot],
        tag: int,
        settings: GatewaySettings,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.delay_s = delay_s
        self.settings = settings
        self.security = security
        self.hub = Hub(
            slots, tag, settings.gateway_buffer_per_partition, settings.gateway_bar_horizon_s
        )
        self.hub.measure_latency = False  # its lateness is on purpose
        self.client_id = f"{settings.kafka_client_id}-gateway-delay{delay_s:g}"
        self.resumer = Resumer(
            self.hub,
            settings.kafka_bootstrap,
            self.client_id,
            settings.gateway_resume_timeout_s,
            security=security,
        )

    async def run(self) -> None:
        settings = self.settings
        consumer = make_consumer(
            settings.kafka_bootstrap, self.client_id, security=self.security, fetch_max_wait_ms=100
        )
        await consumer.start()
        flush_s = settings.gateway_flush_ms / 1000
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(DelayedReader(self.hub, consumer, self.delay_s, flush_s).run())
                tasks.create_task(FlushLoop(self.hub, flush_s).run())
                janitor = Janitor(
                    self.hub, settings.gateway_heartbeat_s, settings.gateway_slow_client_timeout_s
                )
                janitor.gauges = False  # the real-time janitor publishes them
                tasks.create_task(janitor.run())
        finally:
            await consumer.stop()


class TooManyDelaysError(GatewayError):
    """Every delayed reader this gateway may run is taken by other delays (503)."""

    status = 503
    retriable = True


class DelayedFeeds:
    """Runnable: the feeds of every delay in use, started on first use, supervised."""

    def __init__(
        self,
        settings: GatewaySettings,
        slots: Sequence[Slot],
        tag: int,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.settings = settings
        self.security = security
        self.slots = list(slots)
        self.tag = tag
        self.feeds: dict[float, DelayedFeed] = {}
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            await asyncio.Future()  # until cancelled; a feed's crash ends the group

    async def feed(self, delay_s: float) -> tuple[Hub, Resumer]:
        """The hub and resumer of a delay once its feed is warm; 503 while it is not."""
        feed = self.feeds.get(delay_s)
        if feed is None:
            if len(self.feeds) >= self.settings.gateway_max_delays:
                raise TooManyDelaysError(
                    f"this gateway serves at most {self.settings.gateway_max_delays} "
                    "distinct delays"
                )
            if self._tasks is None:
                raise NotReadyError("the gateway is starting")
            feed = self.feeds[delay_s] = DelayedFeed(
                delay_s, self.slots, self.tag, self.settings, self.security
            )
            self._tasks.create_task(feed.run(), name=f"DelayedFeed-{delay_s:g}")
        if not feed.hub.ready.is_set():
            try:
                await asyncio.wait_for(feed.hub.ready.wait(), self.settings.gateway_ready_wait_s)
            except TimeoutError as exc:
                raise NotReadyError(f"the {delay_s:g} s delayed feed is still starting") from exc
        return feed.hub, feed.resumer

    def hubs(self) -> list[Hub]:
        """The hubs of the feeds started so far."""
        return [feed.hub for feed in self.feeds.values()]
