"""The query API's read-through caches: one in this process, one in Redis shared by
every gateway replica.

Bars: an answer of `/v1/bars` is stored under a key holding the Kafka offset of the
last *final* bar record of that symbol and interval this gateway has read
(`AppliedFinals`, fed by the reader). Closed bars are what MongoDB serves, and a
closed bar changes only through a final record (a close, or a revision after a late
event), so every such record the gateway applies moves the stamp, and with it the key:
the entries computed before it are never read again (invalidation without a Redis
write). Replicas that have read the same records compute the same key and share the
entry. Because the processor persists behind its publishes, MongoDB may not yet hold a
final bar the gateway has applied: an answer is stored only when it holds every applied
final bar of its window (of the `KEPT` newest per stream) at least at the applied
version, so a cached answer is never older than what the gateway has applied. Nothing
is cached before the hub has caught up with Kafka.

The same keys serve a bounded least-recently-used map in this process
(`LocalAnswers`, TICKWIRE_GATEWAY_CACHE_LOCAL_MIB), looked at first: with or without
Redis, a repeated query is answered from memory until a final bar moves its key, and
the keys nobody asks any more are the first to go. Redis is asked on a local miss
(and fills the local map when it hits); an answer read from MongoDB goes to both when
it covers what was applied.

Quotes: once the hub has caught up, quotes come from its memory (no store, no Redis).
Before that MongoDB answers, read through the cache: an entry carries its version and is
used only when at least as new as what this gateway holds for the symbol.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Sequence

from tickwire.events import wire
from tickwire.gateway.hub import Hub
from tickwire.gateway.settings import GatewaySettings
from tickwire.gateway.updates import Parsed
from tickwire.redis import metrics
from tickwire.redis.cache import ReadThroughCache
from tickwire.redis.link import RedisLink

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
#: Final bars remembered per (symbol, interval) for the coverage check.
KEPT = 64


def _us(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _US


class AppliedFinals:
    """Per `symbol|interval`: the offset of the last final bar record read, and the
    newest version of each of the KEPT latest final bars by start."""

    def __init__(self) -> None:
        self.stamps: dict[str, int] = {}
        self.finals: dict[str, dict[int, int]] = {}

    def applied(self, parsed: Parsed, offset: int) -> None:
        """The reader's hook: a final bar record was read at `offset`."""
        stream = parsed.stream
        self.stamps[stream] = offset
        starts = self.finals.get(stream)
        if starts is None:
            starts = self.finals[stream] = {}
        if parsed.version > starts.get(parsed.start_us, -1):
            starts[parsed.start_us] = parsed.version
            if len(starts) > KEPT:
                del starts[min(starts)]

    def covers(
        self,
        stream: str,
        start: dt.datetime | None,
        end: dt.datetime | None,
        count: int,
        bars: Sequence[wire.Bar],
    ) -> bool:
        """Whether an answer holds every applied final bar it should: those in
        [start, end), and within the answer's span when it was cut at `count`."""
        starts = self.finals.get(stream)
        if not starts:
            return True
        lo = _us(start) if start is not None else None
        hi = _us(end) if end is not None else None
        if len(bars) >= count and bars:
            if start is not None:
                last = _us(bars[-1].start)
                hi = last + 1 if hi is None else min(hi, last + 1)
            else:
                first = _us(bars[0].start)
                lo = first if lo is None else max(lo, first)
        got = {_us(bar.start): bar.version for bar in bars}
        return all(
            got.get(start_us, -1) >= version
            for start_us, version in starts.items()
            if (lo is None or start_us >= lo) and (hi is None or start_us < hi)
        )


class LocalAnswers:
    """Answers under versioned keys in this process, at most `budget` bytes of them;
    the least recently used leave first. Keys name what they were computed from (see
    the module docstring), so an entry never needs invalidating, only evicting."""

    def __init__(self, name: str, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.hits = metrics.CACHE.labels(name, "hit")
        self.misses = metrics.CACHE.labels(name, "miss")

    def get(self, key: str) -> bytes | None:
        """The answer stored under key (now the most recently used), or None."""
        value = self.entries.get(key)
        if value is None:
            if self.budget:
                self.misses.inc()
            return None
        self.entries.move_to_end(key)
        self.hits.inc()
        return value

    def put(self, key: str, value: bytes) -> None:
        """Keep an answer, evicting the least recently used until it fits; an answer
        larger than the whole budget is not kept."""
        cost = len(key) + len(value)
        if cost > self.budget:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= len(key) + len(old)
        while self.entries and self.size + cost > self.budget:
            gone_key, gone = self.entries.popitem(last=False)
            self.size -= len(gone_key) + len(gone)
        self.entries[key] = value
        self.size += cost


class QueryCache:
    """The bars and quotes caches and what they are keyed by."""

    def __init__(self, link: RedisLink, settings: GatewaySettings) -> None:
        self.finals = AppliedFinals()
        self.local_bars = LocalAnswers("bars_local", int(settings.gateway_cache_local_mib * 2**20))
        self.bars = ReadThroughCache(link, "bars", settings.gateway_cache_bars_ttl_s)
        self.quotes = ReadThroughCache(link, "quotes", settings.gateway_cache_quotes_ttl_s)

    def bars_key(
        self,
        hub: Hub | None,
        symbol: str,
        interval: str,
        start: dt.datetime | None,
        end: dt.datetime | None,
        count: int,
    ) -> str | None:
        """The key of this bars query at what the gateway has applied; None when the
        hub has not caught up or no cache is on (then the store answers and nothing is
        stored)."""
        if (
            hub is None
            or not hub.ready.is_set()
            or not (self.bars.usable or self.local_bars.budget)
        ):
            self.bars.bypasses.inc()
            return None
        stamp = self.finals.stamps.get(f"{symbol}|{interval}", -1)
        window = f"{_us(start) if start else ''}:{_us(end) if end else ''}:{count}"
        return f"{symbol}|{interval}|{stamp}|{window}"

    async def cached_bars(self, key: str) -> bytes | None:
        """The answer under key: from this process, else from Redis (then kept here)."""
        value = self.local_bars.get(key)
        if value is None and self.bars.link.configured:
            value = await self.bars.get(key)
            if value is not None:
                self.local_bars.put(key, value)
        return value

    async def store_bars(self, key: str, body: bytes) -> None:
        """Keep an answer that covers what was applied, here and in Redis."""
        self.local_bars.put(key, body)
        await self.bars.put(key, body)

    async def cached_quotes(self, hub: Hub | None, symbols: list[str]) -> dict[str, bytes]:
        """The cached state (published JSON) of those symbols whose entry is at least
        as new as what this gateway holds."""
        out: dict[str, bytes] = {}
        if not self.quotes.usable:
            self.quotes.bypasses.inc(len(symbols))
            return out
        for symbol, entry in zip(symbols, await self.quotes.get_many(symbols), strict=True):
            if entry is None:
                continue
            version, _, value = entry.partition(b" ")
            held = hub.quotes.get(symbol) if hub is not None else None
            if held is None or int(version) >= held[0]:
                out[symbol] = value
            else:
                self.quotes.stale.inc()
        return out

    async def store_quotes(self, states: Sequence[wire.TickerState]) -> None:
        """Store quotes read from MongoDB, each with its version."""
        if self.quotes.usable and states:
            await self.quotes.put_many(
                {s.symbol: b"%d %s" % (s.version, wire.ENCODER.encode(s)) for s in states}
            )
