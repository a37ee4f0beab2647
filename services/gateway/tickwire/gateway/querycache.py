"""The query API's read-through cache in Redis, shared by every gateway replica.

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

Quotes: once the hub has caught up, quotes come from its memory (no store, no Redis).
Before that MongoDB answers, read through the cache: an entry carries its version and is
used only when at least as new as what this gateway holds for the symbol.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tickwire.events import wire
from tickwire.gateway.hub import Hub
from tickwire.gateway.settings import GatewaySettings
from tickwire.gateway.updates import Parsed
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


class QueryCache:
    """The bars and quotes caches and what they are keyed by."""

    def __init__(self, link: RedisLink, settings: GatewaySettings) -> None:
        self.finals = AppliedFinals()
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
        hub has not caught up (then the store answers and nothing is stored)."""
        if hub is None or not hub.ready.is_set() or not self.bars.usable:
            self.bars.bypasses.inc()
            return None
        stamp = self.finals.stamps.get(f"{symbol}|{interval}", -1)
        window = f"{_us(start) if start else ''}:{_us(end) if end else ''}:{count}"
        return f"{symbol}|{interval}|{stamp}|{window}"

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
