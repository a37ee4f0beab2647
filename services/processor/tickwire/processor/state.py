"""One symbol's running state: the ticker fields, the session, the trading status, the
forming bars, the guard offset, the window of event ids already applied and the trades
remembered for corrections.

The per-symbol `version` is the number of ticks.raw events applied to the symbol so
far (a duplicate id, a late trade, a superseded quote or a rejected correction is not
applied). It only grows, and because a replay skips every record at or below the
stored `offset` and re-applies the rest in partition order (with the id window and the
trade log saved alongside), a replay reaches the same version for the same event as
the first run did.

State follows event time: `last*` is the trade with the latest event time (equal times:
the later arrival), session `open` the one with the earliest, bid/ask the quote with
the latest event time. A trade arriving out of order still adds to volume, VWAP and
trade count, and to the bars it falls in. The session is the exchange session the
watermark is in (tickwire.processor.sessions); `prev_close` is the close (latest
regular-hours trade) of the last session that had one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from tickwire.events.wire import (
    QuoteData,
    SessionInfo,
    SourceOffsets,
    StatusData,
    StatusInfo,
    TickerState,
    TradeData,
)
from tickwire.mongo.documents import decode_quote, encode_quote
from tickwire.processor.bars import FormingBar
from tickwire.processor.corrections import SessionTally, TradeLog, recount_bar, stored_bytes
from tickwire.processor.dedup import IdWindow
from tickwire.processor.sessions import Session

_NOT_SET = -1
_PACK = msgspec.msgpack.Encoder()
# correctable closed bars as stored: (interval, start µs, length µs, revision,
# received_ns, [open, high, low, close] only for a bar left without trades)
_UNPACK_BARS = msgspec.msgpack.Decoder(
    list[tuple[str, int, int, int, int | None, list[float] | None]]
)


def _change(last: float | None, reference: float | None) -> tuple[float | None, float | None]:
    """Change and change % of `last` against a reference price (None: unknown)."""
    if last is None or reference is None:
        return None, None
    change = last - reference
    return change, change / reference * 100.0 if reference else None


class SymbolState:
    """Mutable per-symbol state; the hot path updates attributes in place."""

    __slots__ = (
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "closed",
        "corrections",
        "daily_closed",
        "daily_received",
        "daily_revision",
        "day",
        "exchange",
        "first_offset",
        "forming",
        "frozen",
        "log",
        "offset",
        "partition",
        "prev_close",
        "quote_us",
        "received_ns",
        "seen",
        "session",
        "session_day",
        "status",
        "status_us",
        "symbol",
        "time",
        "time_us",
        "version",
    )

    def __init__(
        self,
        symbol: str,
        partition: int,
        prev_close: float | None = None,
        exchange: str = "XNYS",
    ) -> None:
        self.symbol = symbol
        self.partition = partition
        self.exchange = exchange
        self.offset = _NOT_SET  # newest ticks.raw offset handled for this symbol
        self.first_offset = _NOT_SET  # first offset applied since the last emitted update
        self.version = 0
        self.time: dt.datetime | None = None
        self.time_us = _NOT_SET  # the symbol's watermark: newest event time seen
        self.day = SessionTally()  # the current session's trades
        self.frozen = SessionTally()  # ... those of them no longer remembered
        self.prev_close = prev_close
        self.session_day = _NOT_SET  # day number of the session's date
        self.session: Session | None = None  # the session the watermark is in
        self.corrections = 0  # corrections and cancels applied in the session
        # the session's daily bar (regular hours, from `day`): revision, closed yet
        self.daily_revision = 0
        self.daily_closed = False
        self.daily_received: int | None = None
        self.bid: float | None = None
        self.bid_size: float | None = None
        self.ask: float | None = None
        self.ask_size: float | None = None
        self.quote_us = _NOT_SET  # event time of the quote bid/ask come from
        self.status: StatusInfo | None = None
        self.status_us = _NOT_SET  # event time of the status
        self.seen = IdWindow()  # ids already applied (see tickwire.processor.dedup)
        self.log = TradeLog()  # trades remembered for corrections
        self.received_ns: int | None = None
        # forming bars per interval name, keyed by bar start (several may be open
        # at once while the grace period lets earlier events in)
        self.forming: dict[str, dict[int, FormingBar]] = {}
        # closed bars that can still be corrected (all their trades remembered)
        self.closed: dict[tuple[str, int], FormingBar] = {}

    def roll_over(self, session: Session) -> None:
        """Enter a later session: the close of the one ending (its latest regular trade),
        if it had one, becomes `prev_close`; the session's fields start again."""
        if self.session_day != _NOT_SET and self.day.reg_close is not None:
            self.prev_close = self.day.reg_close
        self.session = session
        self.session_day = session.day
        self.day.reset()
        self.frozen.reset()
        self.corrections = 0
        self.daily_revision = 0
        self.daily_closed = False
        self.daily_received = None

    def apply_trade(self, trade: TradeData, time_us: int, day: int, regular: bool) -> None:
        """Apply a trade of session `day` to the session fields (bars are the
        aggregator's); a trade of an earlier session (late, within the bars' grace
        across the boundary) leaves the session alone."""
        if day == self.session_day:
            self.day.add(trade.price, trade.size, time_us, trade.time, regular)

    def apply_quote(self, quote: QuoteData, time_us: int) -> None:
        """Apply a top-of-book quote (the caller checked it is not older than bid/ask)."""
        self.bid = quote.bid
        self.bid_size = quote.bid_size
        self.ask = quote.ask
        self.ask_size = quote.ask_size
        self.quote_us = time_us

    def apply_status(self, status: StatusData, time_us: int) -> None:
        """Apply a trading status (the caller checked it is not older than the held one)."""
        self.status = StatusInfo(state=status.state, reason=status.reason, since=status.time)
        self.status_us = time_us

    def recount_session(self) -> None:
        """The session fields again, from the forgotten trades' tally and the remembered
        trades of the session (after a correction or a cancel)."""
        day = self.day
        day.copy_from(self.frozen)
        session_day = self.session_day
        for trade in self.log:
            if trade.day == session_day:
                day.add_logged(trade)

    def daily_bar(self) -> FormingBar | None:
        """The session's daily bar (its regular hours), None without regular trades."""
        day, session = self.day, self.session
        if session is None or day.reg_open is None:
            return None
        bar = FormingBar(session.open, day.reg_open, day.reg_open_us)
        bar.end_us = session.close
        bar.high, bar.low = day.reg_high, day.reg_low  # type: ignore[assignment]
        bar.close, bar.close_us = day.reg_close, day.reg_close_us  # type: ignore[assignment]
        bar.volume, bar.notional, bar.trades = day.reg_volume, day.reg_notional, day.reg_trades
        bar.revision = self.daily_revision
        bar.received_ns = self.daily_received
        return bar

    def to_wire(self, first_offset: int) -> TickerState:
        """The whole current state as published on ticker.updates."""
        day = self.day
        last, prev_close = day.last, self.prev_close
        change, change_pct = _change(last, prev_close if prev_close is not None else day.open)
        spread = mid = None
        if self.bid is not None and self.ask is not None:
            spread = self.ask - self.bid
            mid = (self.ask + self.bid) / 2.0
        session = None
        if self.session is not None:
            s_change, s_pct = _change(last, prev_close)
            session = SessionInfo(
                exchange=self.exchange,
                date=self.session.date,
                phase=self.session.phase(self.time_us),
                open=day.reg_open,
                high=day.reg_high,
                low=day.reg_low,
                prev_close=prev_close,
                change=s_change,
                change_pct=s_pct,
            )
        return TickerState(
            symbol=self.symbol,
            version=self.version,
            time=self.time,
            last=last,
            last_size=day.last_size,
            last_time=day.last_time,
            open=day.open,
            high=day.high,
            low=day.low,
            prev_close=prev_close,
            change=change,
            change_pct=change_pct,
            volume=day.volume,
            trades=day.trades,
            vwap=day.notional / day.volume if day.volume else None,
            bid=self.bid,
            bid_size=self.bid_size,
            ask=self.ask,
            ask_size=self.ask_size,
            spread=spread,
            mid=mid,
            source=SourceOffsets(self.partition, first_offset, self.offset),
            received_ns=self.received_ns,
            corrections=self.corrections,
            session=session,
            status=self.status,
        )

    def to_doc(self, wire: TickerState) -> dict[str, Any]:
        """The `quotes` document: the published state plus what a restart needs."""
        return encode_quote(
            wire,
            {
                "partition": self.partition,
                "offset": self.offset,
                "notional": self.day.notional,
                "session_day": self.session_day,
                "watermark_us": self.time_us,
                "last_us": self.day.last_us,
                "open_us": self.day.open_us,
                "quote_us": self.quote_us,
                "status_us": self.status_us,
                "daily": [self.daily_revision, self.daily_closed, self.daily_received],
                "tally": self.day.to_doc(),
                "frozen": self.frozen.to_doc(),
                "seen_ids": self.seen.packed(),
                "trade_log": self.log.packed(),
                "correctable": self._packed_correctable(),
                "forming": {
                    name: [bar.to_doc() for bar in bars.values()]
                    for name, bars in self.forming.items()
                },
            },
        )

    def _packed_correctable(self) -> bytes:
        """The correctable closed bars, compactly: each holds every one of its trades in
        the trade log, so it is rebuilt from them (only what the fold cannot say is
        kept: revision, receive time, and the prices of a bar left without trades)."""
        rows = []
        for (name, start), bar in self.closed.items():
            length = (bar.end_us or 0) - start  # set on correctable bars, see aggregator
            prices = None if bar.trades else [bar.open, bar.high, bar.low, bar.close]
            rows.append((name, start, length, bar.revision, bar.received_ns, prices))
        return _PACK.encode(rows)

    def _unpacked_correctable(self, data: bytes | str | None) -> dict[tuple[str, int], FormingBar]:
        closed: dict[tuple[str, int], FormingBar] = {}
        for name, start, length, revision, received, prices in _UNPACK_BARS.decode(
            stored_bytes(data or b"\x90")
        ):
            bar = FormingBar(start, 0.0)
            if prices is not None:
                bar.open, bar.high, bar.low, bar.close = prices
            end = start + length
            recount_bar(bar, (t for t in self.log if start <= t.time_us < end), received)
            bar.revision, bar.received_ns, bar.end_us = revision, received, end
            closed[(name, start)] = bar
        return closed

    @classmethod
    def from_doc(
        cls, doc: dict[str, Any], session: Session | None = None, exchange: str = "XNYS"
    ) -> SymbolState:
        """A state back from its `quotes` document (`session`: the one its watermark is
        in, from the calendar)."""
        wire = decode_quote(doc)
        state = cls(wire.symbol, int(doc["partition"]), wire.prev_close, exchange)
        state.offset = int(doc["offset"])
        state.version = wire.version
        state.time = wire.time
        state.time_us = int(doc["watermark_us"])
        if "tally" in doc:
            state.day = SessionTally.from_doc(doc["tally"])
        else:  # written before sessions came from calendars
            day = state.day
            day.last, day.last_size, day.last_time = wire.last, wire.last_size, wire.last_time
            day.open, day.high, day.low = wire.open, wire.high, wire.low
            day.volume, day.trades = wire.volume, wire.trades
            day.notional = float(doc["notional"])
            day.last_us = int(doc.get("last_us", _NOT_SET))
            day.open_us = int(doc.get("open_us", _NOT_SET))
        state.frozen = SessionTally.from_doc(doc.get("frozen"))
        state.session_day = int(doc["session_day"])
        state.session = session
        state.corrections = wire.corrections
        state.bid, state.bid_size = wire.bid, wire.bid_size
        state.ask, state.ask_size = wire.ask, wire.ask_size
        state.received_ns = wire.received_ns
        state.quote_us = int(doc.get("quote_us", _NOT_SET))
        state.status = wire.status
        if state.status is not None and state.status.since.tzinfo is None:
            state.status.since = state.status.since.replace(tzinfo=dt.UTC)
        state.status_us = int(doc.get("status_us", _NOT_SET))
        revision, closed, received = doc.get("daily", (0, False, None))
        state.daily_revision, state.daily_closed = int(revision), bool(closed)
        state.daily_received = None if received is None else int(received)
        state.seen = IdWindow.unpacked(doc.get("seen_ids", b""))
        state.log = TradeLog.unpacked(doc.get("trade_log"))
        state.closed = state._unpacked_correctable(doc.get("correctable"))
        state.forming = {
            name: {int(b["start_us"]): FormingBar.from_doc(b) for b in bars}
            for name, bars in doc.get("forming", {}).items()
        }
        return state
