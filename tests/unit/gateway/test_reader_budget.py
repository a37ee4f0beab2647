"""The reader's latency budget: a large fetch is handed to the flush loop in pieces,
one budget of applying apart, and a small one is applied whole; when the last flush
pass took longer than the budget, the reader applies for that long before handing over
(README, "Fan-out and slow clients"). The clock is a counter, so nothing here depends
on wall time."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord, TopicPartition

from tickwire.events import wire
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.reader import KafkaReader
from tickwire.gateway.updates import QUOTE

TP = TopicPartition("u", 0)


def records(count: int) -> list[ConsumerRecord[bytes, bytes]]:
    out = []
    for offset in range(count):
        value = wire.ENCODER.encode(wire.TickerState(symbol="AAPL", version=offset + 1, last=1.0))
        out.append(
            ConsumerRecord("u", 0, offset, 0, 0, b"AAPL", value, None, len(b"AAPL"), len(value), [])
        )
    return out


class Clock:
    """Advances by one millisecond each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


async def _run(count: int, last_pass_s: float = 0.0) -> tuple[KafkaReader, list[int]]:
    hub = Hub([Slot("u", 0, QUOTE)], tag=1, buffer_capacity=100_000)
    hub.flush_s = last_pass_s
    hub.dirty.add(object())  # type: ignore[arg-type]  # something to write: wakes count
    reader = KafkaReader(hub, consumer=None, quotes=None, budget_s=0.005, clock=Clock())  # type: ignore[arg-type]
    seen: list[int] = []  # the hub's position each time the flush loop got to run

    async def flush_loop() -> None:
        while True:
            await hub.wake.wait()
            hub.wake.clear()
            seen.append(hub.positions[0])

    task = asyncio.create_task(flush_loop())
    await asyncio.sleep(0)
    await reader.apply_fetch({TP: records(count)})
    task.cancel()
    return reader, seen


async def test_a_large_fetch_is_written_in_pieces_one_budget_apart() -> None:
    reader, seen = await _run(10_000)
    slice_ = KafkaReader.SLICE
    # 1 ms per clock read, budget 5 ms: the flush loop runs after every 5th slice
    assert reader.yields == 10_000 // (5 * slice_)
    assert seen == [5 * slice_ * (i + 1) for i in range(reader.yields)]
    assert reader.hub.positions[0] == 10_000
    assert reader.hub.versions["AAPL"] == 10_000


async def test_a_small_fetch_is_applied_whole() -> None:
    reader, seen = await _run(KafkaReader.SLICE)
    assert reader.yields == 0
    assert seen == []
    assert reader.hub.positions[0] == KafkaReader.SLICE


async def test_a_long_flush_pass_stretches_the_budget() -> None:
    # the last pass took 20 ms to write (a write per dirty connection, whatever was
    # applied before it): the reader applies for 20 ms, not 5, between two passes, or
    # records would arrive faster than they are applied and queue in Kafka
    reader, seen = await _run(10_000, last_pass_s=0.020)
    slice_ = KafkaReader.SLICE
    assert reader.yields == 10_000 // (20 * slice_)
    assert seen == [20 * slice_ * (i + 1) for i in range(reader.yields)]
    assert reader.hub.positions[0] == 10_000


async def test_a_short_flush_pass_leaves_the_budget() -> None:
    reader, _ = await _run(10_000, last_pass_s=0.001)
    assert reader.yields == 10_000 // (5 * KafkaReader.SLICE)
