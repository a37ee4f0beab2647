"""One symbol's running state: the ticker fields, the forming bars and the guard offset.

The per-symbol `version` is the number of ticks.raw events applied to the symbol so
far. It only grows, and because a replay skips every record at or below the stored
`offset` and re-applies the rest in partition order, a replay reaches the same version
for the same event as the first run did.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tickwire.events.wire import QuoteData, SourceOffsets, TickerState, TradeData
from tickwire.mongo.documents import decode_quote, encode_quote
from tickwire.processor.bars import FormingBar

_NOT_SET = -1


class SymbolState:
    """Mutable per-symbol state; the hot path updates attributes in place."""

    __slots__ = (
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "first_offset",
        "forming",
        "high",
        "last",
        "last_size",
        "last_time",
        "low",
        "notional",
        "offset",
        "open",
        "partition",
        "prev_close",
        "received_ns",
        "session_day",
        "symbol",
        "time",
        "time_us",
        "trades",
        "version",
        "volume",
    )

    def __init__(self, symbol: str, partition: int, prev_close: float | None = None) -> None:
        self.symbol = symbol
        self.partition = partition
        self.offset = _NOT_SET  # newest ticks.raw offset handled for this symbol
        self.first_offset = _NOT_SET  # first offset applied since the last emitted update
        self.version = 0
        self.time: dt.datetime | None = None
        self.time_us = _NOT_SET  # the symbol's watermark: newest event time seen
        self.last: float | None = None
        self.last_size: float | None = None
        self.last_time: dt.datetime | None = None
        self.open: float | None = None
        self.high: float | None = None
        self.low: float | None = None
        self.prev_close = prev_close
        self.volume = 0.0
        self.notional = 0.0
        self.trades = 0
        self.session_day = _NOT_SET  # UTC day number (days since the epoch) of the session
        self.bid: float | None = None
        self.bid_size: float | None = None
        self.ask: float | None = None
        self.ask_size: float | None = None
        self.received_ns: int | None = None
        # forming bars per interval name, keyed by bar start (several may be open
        # at once while the grace period lets earlier events in)
        self.forming: dict[str, dict[int, FormingBar]] = {}

    def apply_trade(self, trade: TradeData, day: int) -> None:
        """Apply a trade to the session fields (bars are handled by the aggregator)."""
        price = trade.price
        if day > self.session_day:
            if self.session_day != _NOT_SET and self.last is not None:
                self.prev_close = self.last
            self.session_day = day
            self.open = self.high = self.low = price
            self.volume = 0.0
            self.notional = 0.0
            self.trades = 0
        else:
            if self.high is None or price > self.high:
                self.high = price
            if self.low is None or price < self.low:
                self.low = price
        self.last = price
        self.last_size = trade.size
        self.last_time = trade.time
        self.volume += trade.size
        self.notional += price * trade.size
        self.trades += 1

    def apply_quote(self, quote: QuoteData) -> None:
        """Apply a top-of-book quote."""
        self.bid = quote.bid
        self.bid_size = quote.bid_size
        self.ask = quote.ask
        self.ask_size = quote.ask_size

    def to_wire(self, first_offset: int) -> TickerState:
        """The whole current state as published on ticker.updates."""
        reference = self.prev_close if self.prev_close is not None else self.open
        change = change_pct = None
        if self.last is not None and reference is not None:
            change = self.last - reference
            change_pct = change / reference * 100.0 if reference else None
        spread = mid = None
        if self.bid is not None and self.ask is not None:
            spread = self.ask - self.bid
            mid = (self.ask + self.bid) / 2.0
        return TickerState(
            symbol=self.symbol,
            version=self.version,
            time=self.time,
            last=self.last,
            last_size=self.last_size,
            last_time=self.last_time,
            open=self.open,
            high=self.high,
            low=self.low,
            prev_close=self.prev_close,
            change=change,
            change_pct=change_pct,
            volume=self.volume,
            trades=self.trades,
            vwap=self.notional / self.volume if self.volume else None,
            bid=self.bid,
            bid_size=self.bid_size,
            ask=self.ask,
            ask_size=self.ask_size,
            spread=spread,
            mid=mid,
            source=SourceOffsets(self.partition, first_offset, self.offset),
            received_ns=self.received_ns,
        )

    def to_doc(self, wire: TickerState) -> dict[str, Any]:
        """The `quotes` document: the published state plus what a restart needs."""
        return encode_quote(
            wire,
            {
                "partition": self.partition,
                "offset": self.offset,
                "notional": self.notional,
                "session_day": self.session_day,
                "watermark_us": self.time_us,
                "forming": {
                    name: [bar.to_doc() for bar in bars.values()]
                    for name, bars in self.forming.items()
                },
            },
        )

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SymbolState:
        """A state back from its `quotes` document."""
        wire = decode_quote(doc)
        state = cls(wire.symbol, int(doc["partition"]), wire.prev_close)
        state.offset = int(doc["offset"])
        state.version = wire.version
        state.time = wire.time
        state.time_us = int(doc["watermark_us"])
        state.last, state.last_size, state.last_time = wire.last, wire.last_size, wire.last_time
        state.open, state.high, state.low = wire.open, wire.high, wire.low
        state.volume, state.trades = wire.volume, wire.trades
        state.notional = float(doc["notional"])
        state.session_day = int(doc["session_day"])
        state.bid, state.bid_size = wire.bid, wire.bid_size
        state.ask, state.ask_size = wire.ask, wire.ask_size
        state.received_ns = wire.received_ns
        state.forming = {
            name: {int(b["start_us"]): FormingBar.from_doc(b) for b in bars}
            for name, bars in doc.get("forming", {}).items()
        }
        return state
