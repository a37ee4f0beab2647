"""Build ticks.raw tapes for processor tests, in exactly the ingest format: CloudEvents
binary mode, key = symbol, value = msgspec JSON of TradeData/QuoteData, headers
ce_* + content-type + tw_received_ns."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from aiokafka.structs import ConsumerRecord, TopicPartition

from tickwire.events import headers as h
from tickwire.events import types
from tickwire.events.wire import ENCODER, QuoteData, TradeData
from tickwire.kafka.batches import BatchPublisher, OutgoingRecord
from tickwire.kafka.clients import make_producer

RawRecord = tuple[bytes | None, bytes, list[tuple[str, bytes]]]
START = dt.datetime(2026, 11, 27, 14, 30, 0, tzinfo=dt.UTC)


def raw_headers(
    kind: str, symbol: str, time: dt.datetime, received_ns: int
) -> list[tuple[str, bytes]]:
    """The headers ingest puts on a ticks.raw record."""
    return [
        (h.CE_SPECVERSION, types.SPECVERSION.encode()),
        (h.CE_ID, uuid.uuid4().hex.encode()),
        (h.CE_SOURCE, b"/tests/tape"),
        (h.CE_TYPE, kind.encode()),
        (h.CE_SUBJECT, symbol.encode()),
        (h.CE_TIME, ENCODER.encode(time)[1:-1]),
        (h.CONTENT_TYPE, b"application/json"),
        (h.RECEIVED_NS, str(received_ns).encode()),
    ]


def trade(
    symbol: str, price: float, size: float, time: dt.datetime, received_ns: int = 1
) -> RawRecord:
    """A ticks.raw trade record."""
    value = ENCODER.encode(TradeData(symbol=symbol, price=price, size=size, time=time))
    return symbol.encode(), value, raw_headers(types.TRADE, symbol, time, received_ns)


def quote(
    symbol: str,
    bid: float,
    ask: float,
    time: dt.datetime,
    received_ns: int = 1,
    bid_size: float = 100.0,
    ask_size: float = 200.0,
) -> RawRecord:
    """A ticks.raw quote record."""
    value = ENCODER.encode(
        QuoteData(symbol=symbol, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size, time=time)
    )
    return symbol.encode(), value, raw_headers(types.QUOTE, symbol, time, received_ns)


def random_tape(
    symbols: int,
    events: int,
    *,
    seed: int = 7,
    step_ms: int = 3,
    late_every: int = 0,
    poison_every: int = 0,
) -> list[RawRecord]:
    """A reproducible tape: trades (2/3) and quotes (1/3) over `symbols` symbols, event
    time advancing `step_ms` per event; every `late_every`-th event is a trade far in
    the past (late), every `poison_every`-th is a broken record."""
    rng = random.Random(seed)
    names = [f"S{i:03d}" for i in range(symbols)]
    prices = {name: 50.0 + 10 * i for i, name in enumerate(names)}
    out: list[RawRecord] = []
    now = START
    for n in range(1, events + 1):
        now = now + dt.timedelta(milliseconds=step_ms)
        name = rng.choice(names)
        received = 1_700_000_000_000_000_000 + n
        if poison_every and n % poison_every == 0:
            out.append(
                (
                    name.encode(),
                    b'{"symbol": "' + name.encode() + b'", "price": -1',
                    raw_headers(types.TRADE, name, now, received),
                )
            )
            continue
        if late_every and n % late_every == 0:
            out.append(trade(name, prices[name], 5.0, now - dt.timedelta(minutes=10), received))
            continue
        price = prices[name] = round(max(1.0, prices[name] * (1 + rng.uniform(-0.002, 0.002))), 4)
        if rng.random() < 2 / 3:
            out.append(trade(name, price, float(rng.randint(1, 500)), now, received))
        else:
            out.append(quote(name, round(price - 0.01, 4), round(price + 0.01, 4), now, received))
    return out


def consumed(
    tape: list[RawRecord], *, topic: str = "ticks.raw", partitions: int = 1, first_offset: int = 0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The tape as a consumer would see it: each symbol on one partition (by a simple
    hash), offsets counting up per partition from first_offset, in tape order."""
    offsets: dict[int, int] = {}
    out: list[ConsumerRecord[bytes, bytes]] = []
    for key, value, headers in tape:
        partition = sum(key or b"") % partitions
        offset = offsets.get(partition, first_offset)
        offsets[partition] = offset + 1
        out.append(
            ConsumerRecord(
                topic=topic,
                partition=partition,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key or b""),
                serialized_value_size=len(value),
                headers=tuple(headers),
            )
        )
    return out


def batches(
    records: list[ConsumerRecord[bytes, bytes]], size: int
) -> list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]:
    """Cut consumed records into getmany()-shaped batches of about `size` records."""
    out: list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]] = []
    for i in range(0, len(records), size):
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for r in records[i : i + size]:
            batch.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        out.append(batch)
    return out


async def produce_tape(
    bootstrap: str, topic: str, tape: list[RawRecord], chunk: int = 5000
) -> None:
    """Write the tape in order (per partition) through the batch API, acks awaited."""
    producer = make_producer(bootstrap, "tests-tape")
    await producer.start()
    try:
        publisher = BatchPublisher(producer)
        for i in range(0, len(tape), chunk):
            await publisher.publish(
                OutgoingRecord(topic, key, value, headers)
                for key, value, headers in tape[i : i + chunk]
            )
    finally:
        await producer.stop()
