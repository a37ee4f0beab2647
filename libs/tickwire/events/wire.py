"""Record values on tickwire's topics, as msgspec Structs (fast to encode and decode).
The event kinds (`TradeData`, `QuoteData`) are registered in `kinds.py`.

    ticks.raw       key=symbol  value=TradeData | QuoteData (by header ce_type)
    ticker.updates  key=symbol  value=TickerState  (one symbol's whole current state)
    ticker.bars     key=symbol  value=Bar
    ticks.late      key=symbol  value=the original ticks.raw value, original headers
    ticks.dlq       key=original key  value=original value, headers + tw_error*

Times on the wire are RFC 3339 strings in UTC. Every TickerState and Bar carries a
`version` that only grows within its stream (a TickerState per symbol, a Bar per
symbol, interval and start): consumers drop anything at or below the version they hold
for the stream, which makes at-least-once delivery look exactly-once to clients.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from tickwire.events.rules import Price, QuoteSize, Time, TradeId, TradeSize, Venue
from tickwire.events.symbols import Symbol


class TradeData(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A trade as it is posted and as it travels on ticks.raw; decoding applies the
    field rules of `rules.py` (use `kinds.TRADE.decode` for all of them)."""

    symbol: Symbol
    price: Price
    size: TradeSize
    time: Time
    venue: Venue | None = None
    trade_id: TradeId | None = None


class QuoteData(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A top-of-book quote as it is posted and as it travels on ticks.raw (use
    `kinds.QUOTE.decode` for every rule, bid <= ask included)."""

    symbol: Symbol
    bid: Price
    bid_size: QuoteSize
    ask: Price
    ask_size: QuoteSize
    time: Time


class SourceOffsets(msgspec.Struct, array_like=True):
    """The ticks.raw records an update covers: partition and inclusive offset range.

    The range belongs to one publication, not to the version: after a crash the replay
    is coalesced up to the log end, so the same version may be published again covering
    a wider range. Every other field of a version is the same each time it is published.
    """

    partition: int
    first: int
    last: int


class TickerState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One symbol's current state, published on ticker.updates and stored in `quotes`."""

    symbol: str
    version: int
    time: datetime | None = None  # event time of the newest event applied
    last: float | None = None
    last_size: float | None = None
    last_time: datetime | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    prev_close: float | None = None
    change: float | None = None
    change_pct: float | None = None
    volume: float = 0.0
    trades: int = 0
    vwap: float | None = None
    bid: float | None = None
    bid_size: float | None = None
    ask: float | None = None
    ask_size: float | None = None
    spread: float | None = None
    mid: float | None = None
    source: SourceOffsets | None = None
    received_ns: int | None = None  # ingest receive time of the newest event


class Bar(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event-time OHLCV bar; `final` is false for a forming bar. `version` is
    2 * trades + (1 if final), compared per (symbol, interval, start): it grows with each
    trade while the bar forms, and the final bar beats every forming state."""

    symbol: str
    interval: str  # "1s", "1m", ...
    start: datetime
    end: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int
    final: bool = True
    version: int = 0
    received_ns: int | None = None


TRADE_DECODER = msgspec.json.Decoder(TradeData)
QUOTE_DECODER = msgspec.json.Decoder(QuoteData)
STATE_DECODER = msgspec.json.Decoder(TickerState)
BAR_DECODER = msgspec.json.Decoder(Bar)
ENCODER = msgspec.json.Encoder()
