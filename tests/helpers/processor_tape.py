"""Build ticks.raw tapes for processor tests, in exactly the ingest format: CloudEvents
binary mode, key = symbol, value = msgspec JSON of TradeData/QuoteData, headers
ce_* + content-type + tw_received_ns; and, in `rich_tape`, everything else a topic can
hold: reordering within grace, exact duplicates, retries, late events, tombstones and
foreign records."""

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

RawRecord = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
START = dt.datetime(2026, 11, 27, 14, 30, 0, tzinfo=dt.UTC)


def raw_headers(
    kind: str,
    symbol: str,
    time: dt.datetime,
    received_ns: int,
    event_id: str | None = None,
    source: bytes = b"/tests/tape",
) -> list[tuple[str, bytes]]:
    """The headers ingest puts on a ticks.raw record (a fresh id unless given)."""
    return [
        (h.CE_SPECVERSION, types.SPECVERSION.encode()),
        (h.CE_ID, (event_id or uuid.uuid4().hex).encode()),
        (h.CE_SOURCE, source),
        (h.CE_TYPE, kind.encode()),
        (h.CE_SUBJECT, symbol.encode()),
        (h.CE_TIME, ENCODER.encode(time)[1:-1]),
        (h.CONTENT_TYPE, b"application/json"),
        (h.RECEIVED_NS, str(received_ns).encode()),
    ]


def trade(
    symbol: str,
    price: float,
    size: float,
    time: dt.datetime,
    received_ns: int = 1,
    event_id: str | None = None,
) -> RawRecord:
    """A ticks.raw trade record."""
    value = ENCODER.encode(TradeData(symbol=symbol, price=price, size=size, time=time))
    return symbol.encode(), value, raw_headers(types.TRADE, symbol, time, received_ns, event_id)


def quote(
    symbol: str,
    bid: float,
    ask: float,
    time: dt.datetime,
    received_ns: int = 1,
    bid_size: float = 100.0,
    ask_size: float = 200.0,
    event_id: str | None = None,
) -> RawRecord:
    """A ticks.raw quote record."""
    value = ENCODER.encode(
        QuoteData(symbol=symbol, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size, time=time)
    )
    return symbol.encode(), value, raw_headers(types.QUOTE, symbol, time, received_ns, event_id)


def retried(record: RawRecord, received_ns: int) -> RawRecord:
    """The same event sent again by its producer (same id and value; ingest stamps a
    new receive time)."""
    key, value, headers = record
    again = [(n, str(received_ns).encode() if n == h.RECEIVED_NS else v) for n, v in headers]
    return key, value, again


def foreign(kind: int, symbol: str, time: dt.datetime, received_ns: int) -> RawRecord:
    """A record that is not a valid ticks.raw event, of one of eight kinds."""
    good = trade(symbol, 10.0, 1.0, time, received_ns)
    key, value, headers = good
    assert value is not None
    if kind == 0:  # not JSON at all
        return key, b"\xff\x00garbage", headers
    if kind == 1:  # an unknown event type
        return (
            key,
            value,
            [(n, b"com.example.other.v1" if n == h.CE_TYPE else v) for n, v in headers],
        )
    if kind == 2:  # no ce_type header
        return key, value, [(n, v) for n, v in headers if n != h.CE_TYPE]
    if kind == 3:  # no ce_id header
        return key, value, [(n, v) for n, v in headers if n != h.CE_ID]
    if kind == 4:  # key is another symbol
        return b"ZZZZ", value, headers
    if kind == 5:  # valid JSON, wrong shape
        return key, b"[1, 2, 3]", headers
    if kind == 6:  # a trade of size 0
        zero = trade(symbol, 10.0, 0.0, time, received_ns)
        return zero[0], zero[1], headers
    return None, value, headers  # no key


def rich_tape(
    symbols: int,
    events: int,
    *,
    seed: int = 7,
    step_ms: int = 3,
    grace_ms: int = 2000,
    reorder_every: int = 0,
    duplicate_every: int = 0,
    retry_every: int = 0,
    late_every: int = 0,
    tombstone_every: int = 0,
    foreign_every: int = 0,
) -> list[RawRecord]:
    """A reproducible tape like random_tape, plus: every `reorder_every`-th event carries
    an event time up to the grace before now (out of order, still in grace); every
    `duplicate_every`-th record is an exact copy of a recent one; every `retry_every`-th
    is a recent event retried (same id, new receive time); every `late_every`-th a trade
    10 minutes old; every `tombstone_every`-th a record with no value; every
    `foreign_every`-th a record that is no valid event (see `foreign`)."""
    rng = random.Random(seed)
    names = [f"S{i:03d}" for i in range(symbols)]
    prices = {name: 50.0 + 10 * i for i, name in enumerate(names)}
    out: list[RawRecord] = []
    recent: list[RawRecord] = []
    now = START
    for n in range(1, events + 1):
        now = now + dt.timedelta(milliseconds=step_ms)
        name = rng.choice(names)
        received = 1_700_000_000_000_000_000 + n
        if duplicate_every and n % duplicate_every == 0 and recent:
            out.append(rng.choice(recent[-50:]))
            continue
        if retry_every and n % retry_every == 0 and recent:
            out.append(retried(rng.choice(recent[-50:]), received))
            continue
        if tombstone_every and n % tombstone_every == 0:
            out.append((name.encode(), None, raw_headers(types.TRADE, name, now, received)))
            continue
        if foreign_every and n % foreign_every == 0:
            out.append(foreign(n // foreign_every % 8, name, now, received))
            continue
        if late_every and n % late_every == 0:
            out.append(trade(name, prices[name], 5.0, now - dt.timedelta(minutes=10), received))
            continue
        at = now
        if reorder_every and n % reorder_every == 0:
            at = now - dt.timedelta(milliseconds=rng.randint(1, max(1, grace_ms - step_ms)))
        price = prices[name] = round(max(1.0, prices[name] * (1 + rng.uniform(-0.002, 0.002))), 4)
        if rng.random() < 2 / 3:
            record = trade(name, price, float(rng.randint(1, 500)), at, received)
        else:
            record = quote(name, round(price - 0.01, 4), round(price + 0.01, 4), at, received)
        out.append(record)
        recent.append(record)
    return out


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
                serialized_value_size=len(value or b""),
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
                OutgoingRecord(topic, key, value, headers)  # type: ignore[arg-type]
                for key, value, headers in tape[i : i + chunk]
            )
    finally:
        await producer.stop()
