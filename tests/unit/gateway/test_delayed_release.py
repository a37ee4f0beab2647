"""A delayed feed's release rule (README, "Delayed entitlements"): a record reaches the
hub only once its event time is the delay old, in partition order (a record waits for
those before it), and a partition whose oldest held record waits is paused. Wall time
is a value the test sets, so nothing here depends on the clock."""

from __future__ import annotations

import datetime as dt

from aiokafka.structs import ConsumerRecord, TopicPartition

from tickwire.events import wire
from tickwire.gateway.delay import DelayedReader, event_time
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.updates import QUOTE

A, B = TopicPartition("u", 0), TopicPartition("u", 1)
DELAY = 10.0


def record(tp: TopicPartition, offset: int, symbol: str, version: int, at: float) -> ConsumerRecord:
    state = wire.TickerState(
        symbol=symbol, version=version, time=dt.datetime.fromtimestamp(at, dt.UTC), last=1.0
    )
    value = wire.ENCODER.encode(state)
    key = symbol.encode()
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, value, None, 4, len(value), [])


class Consumer:
    """What the reader asks of its consumer while releasing: pause and resume."""

    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)


def reader() -> tuple[DelayedReader, Hub, Consumer]:
    hub = Hub([Slot("u", 0, QUOTE), Slot("u", 1, QUOTE)], 1, 100)
    consumer = Consumer()
    return DelayedReader(hub, consumer, DELAY, wall=lambda: 0.0), hub, consumer


def hold(delayed: DelayedReader, *records: ConsumerRecord) -> None:
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        delayed.held[tp].append((event_time(QUOTE, r.value, 0.0) + DELAY, r))


async def test_records_are_released_at_event_time_plus_delay_in_partition_order() -> None:
    delayed, hub, consumer = reader()
    hold(
        delayed,
        record(A, 0, "AAPL", 1, 100.0),
        record(A, 1, "AAPL", 2, 105.0),
        record(A, 2, "MSFT", 1, 103.0),  # earlier than the record before it: waits for it
        record(B, 0, "GOOG", 1, 101.0),
    )
    await delayed.release(109.999)
    assert hub.positions == [0, 0]
    assert consumer.paused == {A, B}
    assert hub.quotes == {}

    await delayed.release(110.0)
    assert hub.positions == [1, 0]
    assert hub.versions == {"AAPL": 1}
    assert consumer.paused == {A, B}

    await delayed.release(111.0)
    assert hub.positions == [1, 1]
    assert consumer.paused == {A}  # B has nothing held: fetch again

    await delayed.release(114.9)
    assert hub.positions == [1, 1]
    await delayed.release(115.0)  # AAPL v2 is due, and MSFT behind it was already
    assert hub.positions == [3, 1]
    assert hub.versions == {"AAPL": 2, "MSFT": 1, "GOOG": 1}
    assert consumer.paused == set()
    assert delayed.held == {A: delayed.held[A], B: delayed.held[B]}
    assert not delayed.held[A]
    assert not delayed.held[B]


def test_the_wait_is_until_the_next_due_record_at_most_one_poll() -> None:
    delayed, _, _ = reader()
    assert delayed._wait_ms() == DelayedReader.POLL_MS
    hold(delayed, record(A, 0, "AAPL", 1, -9.95))  # due at 0.05 s, wall is 0
    assert delayed._wait_ms() == 51
    hold(delayed, record(B, 0, "GOOG", 1, -20.0))  # overdue
    assert delayed._wait_ms() == 0
