"""Record values on tickwire's topics, as msgspec Structs (fast to encode and decode).
The event kinds (`TradeData`, `QuoteData`, `CorrectionData`, `CancelData`, `StatusData`)
are registered in `kinds.py`.

    ticks.raw       key=symbol  value=one of the event kinds (by header ce_type)
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
from typing import Literal

import msgspec

from tickwire.events.rules import (
    EventId,
    Price,
    QuoteSize,
    Reason,
    Time,
    TradeId,
    TradeSize,
    Venue,
)
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


class CorrectionData(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A trade correction: the trade whose event id (ce_id, from the same ce_source) is
    `ref_id` traded `size` at `price` instead; its event time stays the trade's."""

    symbol: Symbol
    time: Time
    ref_id: EventId
    price: Price
    size: TradeSize


class CancelData(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A trade cancel: the trade whose event id (ce_id, same ce_source) is `ref_id` did
    not happen."""

    symbol: Symbol
    time: Time
    ref_id: EventId


class StatusData(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A trading status change: the symbol is halted, or trading again, from `time`."""

    symbol: Symbol
    time: Time
    state: Literal["halted", "trading"]
    reason: Reason | None = None


class SourceOffsets(msgspec.Struct, array_like=True):
    """The ticks.raw records an update covers: partition and inclusive offset range.

    The range belongs to one publication, not to the version: after a crash the replay
    is coalesced up to the log end, so the same version may be published again covering
    a wider range. Every other field of a version is the same each time it is published.
    """

    partition: int
    first: int
    last: int


class SessionInfo(msgspec.Struct, kw_only=True):
    """The symbol's exchange session at its newest event time (nulls are explicit):
    open/high/low of the regular session so far, prev_close the previous session's
    close, change and change_pct of `last` against it."""

    exchange: str
    date: str  # the session's date, YYYY-MM-DD
    phase: Literal["pre", "regular", "post", "closed"]
    open: float | None = None
    high: float | None = None
    low: float | None = None
    prev_close: float | None = None
    change: float | None = None
    change_pct: float | None = None


class StatusInfo(msgspec.Struct, kw_only=True):
    """The symbol's trading status: `state` since `since` (event time), and why."""

    state: Literal["trading", "halted"]
    reason: str | None
    since: datetime


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
    corrections: int = 0  # corrections and cancels applied in the session
    session: SessionInfo | None = None
    status: StatusInfo | None = None


class Bar(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event-time OHLCV bar; `final` is false for a forming bar. `version` is
    2 * revision + (1 if final), compared per (symbol, interval, start), where revision
    counts the trades, corrections and cancels applied to the bar: it grows with each
    while the bar forms, the final bar beats every forming state, and a corrected bar
    (republished, final again) beats the bar it corrects."""

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
CORRECTION_DECODER = msgspec.json.Decoder(CorrectionData)
CANCEL_DECODER = msgspec.json.Decoder(CancelData)
STATUS_DECODER = msgspec.json.Decoder(StatusData)
STATE_DECODER = msgspec.json.Decoder(TickerState)
BAR_DECODER = msgspec.json.Decoder(Bar)
ENCODER = msgspec.json.Encoder()
