"""The update feeder: ticker.updates records at a fixed rate across the benchmark's
symbols, in exactly the format the processor publishes (value = TickerState JSON,
key = symbol, ce_* and tw_* headers, per-symbol versions that only grow).

Producing goes through aiokafka's batch API (one `create_batch()` + `send_batch()` per
partition per tick), which costs a few microseconds of client CPU per record instead of
the ~20 µs of a per-record `send()`, so the feeder stays far from being the limit.
`received_ns` is stamped when a tick's batches are built, so measured latency spans
the Kafka hop and the server under test, the same for both servers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from tickwire.events import headers as h
from tickwire.events.wire import ENCODER, TickerState

TICK_S = 0.01
CE_TYPE = b"io.tickwire.ticker.update.v1"


def symbols(count: int = 500) -> list[str]:
    """count distinct three-letter symbols: AAA, AAB, ..."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26] for i in range(count)]


def subscription(all_symbols: Sequence[str], client: int, per_client: int) -> list[str]:
    """Client i's watchlist; the same formula as subscription() in bench/loadgen."""
    stride = max(1, len(all_symbols) // per_client)
    n = len(all_symbols)
    return [all_symbols[(client + j * stride) % n] for j in range(min(per_client, n))]


def subscribers(all_symbols: Sequence[str], clients: int, per_client: int) -> Counter[str]:
    """How many of the clients subscribe to each symbol."""
    counts: Counter[str] = Counter()
    for i in range(clients):
        counts.update(subscription(all_symbols, i, per_client))
    return counts


@dataclass
class FeedStats:
    """What a feed produced: per-symbol counts, wall time, and the feeder's own CPU."""

    produced: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu_s: float = 0.0
    late_ticks: int = 0

    @property
    def total(self) -> int:
        return sum(self.produced.values())


class Feeder:
    """Produces TickerState updates for a fixed symbol list to one topic."""

    def __init__(self, bootstrap: str, topic: str, all_symbols: Sequence[str]) -> None:
        self.topic = topic
        self.symbols = list(all_symbols)
        self.versions = dict.fromkeys(self.symbols, 0)
        self.prices = {s: 50.0 + (i % 400) for i, s in enumerate(self.symbols)}
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="tickwire-bench-feeder",
            acks=1,
            linger_ms=0,
            max_batch_size=1 << 20,
        )
        self.partition_of: dict[str, int] = {}
        self._next = 0

    async def start(self) -> None:
        await self.producer.start()
        parts = sorted(await self.producer.partitions_for(self.topic))
        choose = DefaultPartitioner()
        self.partition_of = {s: choose(s.encode(), parts, parts) for s in self.symbols}

    async def stop(self) -> None:
        await self.producer.stop()

    def _record(self, symbol: str, now_ns: int) -> tuple[bytes, list[tuple[str, bytes]]]:
        self.versions[symbol] += 1
        version = self.versions[symbol]
        price = self.prices[symbol] = round(
            self.prices[symbol] * (1 + ((version % 7) - 3) / 1e4), 4
        )
        when = datetime.fromtimestamp(now_ns / 1e9, UTC)
        state = TickerState(
            symbol=symbol,
            version=version,
            time=when,
            last=price,
            last_size=100.0,
            last_time=when,
            open=50.0,
            high=max(price, 50.0),
            low=min(price, 50.0),
            prev_close=50.0,
            change=round(price - 50.0, 4),
            change_pct=round((price - 50.0) / 50.0 * 100, 4),
            volume=100.0 * version,
            trades=version,
            bid=round(price - 0.01, 4),
            bid_size=300.0,
            ask=round(price + 0.01, 4),
            ask_size=200.0,
            spread=0.02,
            mid=price,
            received_ns=now_ns,
        )
        headers = [
            (h.CE_SPECVERSION, b"1.0"),
            (h.CE_ID, uuid.uuid4().hex.encode()),
            (h.CE_SOURCE, b"/tickwire/bench"),
            (h.CE_TYPE, CE_TYPE),
            (h.CE_SUBJECT, symbol.encode()),
            (h.CONTENT_TYPE, b"application/json"),
            (h.VERSION, str(version).encode()),
            (h.RECEIVED_NS, str(now_ns).encode()),
        ]
        return ENCODER.encode(state), headers

    async def send(self, chosen: Sequence[str]) -> None:
        """Produce one update for each chosen symbol, one batch per partition."""
        now_ns = time.time_ns()
        batches: dict[int, Any] = {}
        for symbol in chosen:
            partition = self.partition_of[symbol]
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self.producer.create_batch()
            value, headers = self._record(symbol, now_ns)
            batch.append(key=symbol.encode(), value=value, timestamp=None, headers=headers)
        futures = [
            await self.producer.send_batch(batch, self.topic, partition=p)
            for p, batch in batches.items()
        ]
        await asyncio.gather(*futures)

    def _take(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            out.append(self.symbols[self._next])
            self._next = (self._next + 1) % len(self.symbols)
        return out

    async def seed(self) -> None:
        """One update per symbol, so every symbol has a last value before clients come."""
        await self.send(self.symbols)

    async def run(self, rate: float, seconds: float) -> FeedStats:
        """Feed `rate` updates per second, round-robin over the symbols, for `seconds`."""
        stats = FeedStats()
        cpu0, start = time.process_time(), time.monotonic()
        owed = 0.0
        ticks = round(seconds / TICK_S)
        for tick in range(ticks):
            owed += rate * TICK_S
            chosen = self._take(int(owed))
            owed -= len(chosen)
            if chosen:
                await self.send(chosen)
                stats.produced.update(chosen)
            delay = start + (tick + 1) * TICK_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                stats.late_ticks += 1
        stats.seconds = time.monotonic() - start
        stats.cpu_s = time.process_time() - cpu0
        return stats

    async def flood(self, count: int, per_batch: int = 500) -> FeedStats:
        """Produce count updates as fast as possible (how fast can the feeder go?)."""
        stats = FeedStats()
        cpu0, start = time.process_time(), time.monotonic()
        while stats.total < count:
            chosen = self._take(min(per_batch, count - stats.total))
            await self.send(chosen)
            stats.produced.update(chosen)
        stats.seconds = time.monotonic() - start
        stats.cpu_s = time.process_time() - cpu0
        return stats
