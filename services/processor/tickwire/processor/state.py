"""One symbol's running state: the ticker fields, the forming bars, the guard offset and
the window of event ids already applied.

The per-symbol `version` is the number of ticks.raw events applied to the symbol so
far (a duplicate id, a late trade or a superseded quote is not applied). It only grows,
and because a replay skips every record at or below the stored `offset` and re-applies
the rest in partition order (with the id window saved alongside), a replay reaches the
same version for the same event as the first run did.

State follows event time: `last*` is the trade with the latest event time (equal times:
the later arrival), session `open` the one with the earliest, bid/ask the quote with
the latest event time. A trade arriving out of order still adds to volume, VWAP and
trade count, and to the bars it falls in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tickwire.events.wire import QuoteData, SourceOffsets, TickerState, TradeData
from tickwire.mongo.documents import decode_quote, encode_quote
from tickwire.processor.bars import FormingBar
from tickwire.processor.dedup import IdWindow

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
        "last_us",
        "low",
        "notional",
        "offset",
        "open",
        "open_us",
        "partition",
        "prev_close",
        "quote_us",
        "received_ns",
        "seen",
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
        self.last_us = _NOT_SET  # event time of `last`
        self.open: float | None = None
        self.open_us = _NOT_SET  # event time of the session's `open`
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
        self.quote_us = _NOT_SET  # event time of the quote bid/ask come from
        self.seen = IdWindow()  # ids already applied (see tickwire.processor.dedup)
        self.received_ns: int | None = None
        # forming bars per interval name, keyed by bar start (several may be open
        # at once while the grace period lets earlier events in)
        self.forming: dict[str, dict[int, FormingBar]] = {}

    def apply_trade(self, trade: TradeData, time_us: int, day: int) -> None:
        """Apply a trade to the session fields, in event time (bars are the aggregator's).

        A trade of a later UTC day starts a new session (the last price becomes
        `prev_close`); one of an earlier day than the session (late, but within the
        bars' grace across midnight) leaves the session alone.
        """
        price = trade.price
        if day > self.session_day:
            if self.session_day != _NOT_SET and self.last is not None:
                self.prev_close = self.last
            self.session_day = day
            self.open = self.high = self.low = price
            self.open_us = time_us
            self.volume = 0.0
            self.notional = 0.0
            self.trades = 0
        elif day < self.session_day:
            return
        else:
            if self.high is None or price > self.high:
                self.high = price
            if self.low is None or price < self.low:
                self.low = price
            if time_us < self.open_us:
                self.open, self.open_us = price, time_us
        if time_us >= self.last_us:
            self.last = price
            self.last_size = trade.size
            self.last_time = trade.time
            self.last_us = time_us
        self.volume += trade.size
        self.notional += price * trade.size
        self.trades += 1

    def apply_quote(self, quote: QuoteData, time_us: int) -> None:
        """Apply a top-of-book quote (the caller checked it is not older than bid/ask)."""
        self.bid = quote.bid
        self.bid_size = quote.bid_size
        self.ask = quote.ask
        self.ask_size = quote.ask_size
        self.quote_us = time_us

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
                "last_us": self.last_us,
                "open_us": self.open_us,
                "quote_us": self.quote_us,
                "seen_ids": self.seen.packed(),
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
        state.last_us = int(doc.get("last_us", _NOT_SET))
        state.open_us = int(doc.get("open_us", _NOT_SET))
        state.quote_us = int(doc.get("quote_us", _NOT_SET))
        state.seen = IdWindow.unpacked(doc.get("seen_ids", b""))
        state.forming = {
            name: {int(b["start_us"]): FormingBar.from_doc(b) for b in bars}
            for name, bars in doc.get("forming", {}).items()
        }
        return state
