"""Trade corrections and cancels: the trades a symbol remembers, and the session tally
they are folded into.

A correction (`io.tickwire.correction.v1`) gives a remembered trade a new price and
size; a cancel (`io.tickwire.cancel.v1`) removes it. The trade is found by
(`ce_source` of the correction, `ref_id`): the id the trade was posted with, from the
same source (CloudEvents ids are unique per source). The trade keeps its event time.

**The window.** Per symbol the processor remembers its applied trades in arrival order,
and forgets them oldest applied first once more than `size` newer trades were applied
or once their event time is more than `horizon` before the symbol's watermark (it stops
at the first trade still young). A forgotten trade cannot be corrected. A correction is
applied only when its trade is remembered *and* every bar holding it (each interval)
still has all its trades remembered (a bar is recomputed from them); otherwise it is
rejected: dead-lettered (`ticks.dlq`) with the reason, changing nothing.

What is recomputed, from the trades after the correction: the bars holding the trade
(a new revision each: version 2 * revision + final, republished, closed bars as final
again), and, when the trade belongs to the symbol's current session, the session
tally (open, high, low, last, volume, VWAP, trade count; the regular-session open,
high, low and close). The tally is exact, not patched: it is the fold of the forgotten
trades of the session (kept as `frozen`, updated as trades are forgotten) followed by
the remembered ones, in arrival order, which is the very fold the live path does.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import msgspec

from tickwire.processor.bars import EPOCH, FormingBar

_PACK = msgspec.msgpack.Encoder()
_UNPACK = msgspec.msgpack.Decoder(list[tuple[int, int, float, float, int | None, int, bool]])
#: Default number of trades remembered per symbol for corrections.
DEFAULT_TRADES = 256


def stored_bytes(data: bytes | str) -> bytes:
    """A stored binary value: bytes from BSON, base64 text from a JSON copy."""
    return base64.b64decode(data) if isinstance(data, str) else bytes(data)


class LoggedTrade(NamedTuple):
    """A remembered trade: what recomputing its session and bars needs."""

    key: int  # id_key(ce_source, ce_id)
    time_us: int
    price: float
    size: float
    received_ns: int | None
    day: int  # its session's day number
    regular: bool  # within the regular hours of its session


class TradeLog:
    """One symbol's remembered trades, oldest applied first, by key too."""

    __slots__ = ("by_key", "entries")

    def __init__(self, entries: Iterable[LoggedTrade] = ()) -> None:
        self.entries: deque[LoggedTrade] = deque(entries)
        self.by_key: dict[int, LoggedTrade] = {e.key: e for e in self.entries}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[LoggedTrade]:
        return iter(self.entries)

    def append(self, trade: LoggedTrade) -> None:
        """Remember an applied trade."""
        self.entries.append(trade)
        self.by_key[trade.key] = trade

    def forget(self, floor_us: int, size: int, forgotten: Callable[[LoggedTrade], None]) -> None:
        """Forget, oldest applied first, while more than `size` are held or the oldest is
        older than floor_us; `forgotten` is told of each."""
        entries = self.entries
        while entries and (len(entries) > size or entries[0].time_us < floor_us):
            trade = entries.popleft()
            del self.by_key[trade.key]
            forgotten(trade)

    def replace(self, old: LoggedTrade, new: LoggedTrade | None) -> None:
        """Correct (new) or cancel (None) a remembered trade, keeping its place."""
        entries = self.entries
        at = entries.index(old)
        del self.by_key[old.key]
        if new is None:
            del entries[at]
        else:
            entries[at] = new
            self.by_key[new.key] = new

    def packed(self) -> bytes:
        """The log as stored (MessagePack: one binary, not an array of documents)."""
        return _PACK.encode(list(self.entries))

    @classmethod
    def unpacked(cls, data: bytes | str | None) -> TradeLog:
        """A log back from packed() (base64 text too, as a JSON copy of it holds)."""
        if not data:
            return cls()
        return cls(LoggedTrade(*entry) for entry in _UNPACK.decode(stored_bytes(data)))


class SessionTally:
    """The session fields a sequence of trades folds into (arrival order; event time
    decides open and last: open is the earliest trade, ties keep the earlier arrival;
    last the latest, ties go to the later arrival). `reg_*` count regular hours only;
    `reg_close` is the latest regular trade: the session's close."""

    __slots__ = (
        "high",
        "last",
        "last_size",
        "last_time",
        "last_us",
        "low",
        "notional",
        "open",
        "open_us",
        "reg_close",
        "reg_close_us",
        "reg_high",
        "reg_low",
        "reg_notional",
        "reg_open",
        "reg_open_us",
        "reg_trades",
        "reg_volume",
        "trades",
        "volume",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No trade yet."""
        self.open: float | None = None
        self.open_us = -1
        self.high: float | None = None
        self.low: float | None = None
        self.last: float | None = None
        self.last_size: float | None = None
        self.last_time: dt.datetime | None = None
        self.last_us = -1
        self.volume = 0.0
        self.notional = 0.0
        self.trades = 0
        self.reg_open: float | None = None
        self.reg_open_us = -1
        self.reg_high: float | None = None
        self.reg_low: float | None = None
        self.reg_close: float | None = None
        self.reg_close_us = -1
        self.reg_volume = 0.0
        self.reg_notional = 0.0
        self.reg_trades = 0

    def copy_from(self, other: SessionTally) -> None:
        """Take every field of another tally."""
        for name in SessionTally.__slots__:
            setattr(self, name, getattr(other, name))

    def add(
        self, price: float, size: float, time_us: int, time: dt.datetime | None, regular: bool
    ) -> None:
        """Fold one trade of the session in (`time`: its event time, None to derive it
        from time_us when needed)."""
        if self.open is None or time_us < self.open_us:
            self.open, self.open_us = price, time_us
        if self.high is None or price > self.high:
            self.high = price
        if self.low is None or price < self.low:
            self.low = price
        if time_us >= self.last_us:
            if time is None:
                time = EPOCH + dt.timedelta(microseconds=time_us)
            self.last, self.last_size, self.last_time, self.last_us = price, size, time, time_us
        self.volume += size
        self.notional += price * size
        self.trades += 1
        if regular:
            if self.reg_open is None or time_us < self.reg_open_us:
                self.reg_open, self.reg_open_us = price, time_us
            if self.reg_high is None or price > self.reg_high:
                self.reg_high = price
            if self.reg_low is None or price < self.reg_low:
                self.reg_low = price
            if time_us >= self.reg_close_us:
                self.reg_close, self.reg_close_us = price, time_us
            self.reg_volume += size
            self.reg_notional += price * size
            self.reg_trades += 1

    def add_logged(self, trade: LoggedTrade) -> None:
        """Fold a remembered trade in."""
        self.add(trade.price, trade.size, trade.time_us, None, trade.regular)

    def to_doc(self) -> dict[str, object]:
        """The tally as stored (`last_time` is `last_us`: BSON dates hold milliseconds)."""
        return {name: getattr(self, name) for name in _STORED}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> SessionTally:
        """A tally back from to_doc()."""
        tally = cls()
        for name in _STORED:
            if doc and name in doc:
                setattr(tally, name, doc[name])
        if tally.last_us >= 0:
            tally.last_time = EPOCH + dt.timedelta(microseconds=tally.last_us)
        return tally


_STORED = tuple(name for name in SessionTally.__slots__ if name != "last_time")


def recount_bar(bar: FormingBar, trades: Iterable[LoggedTrade], received_ns: int | None) -> None:
    """A corrected bar: the fold of its remembered trades (arrival order) as one new
    revision; `received_ns` is the correction's. A bar left without trades keeps its
    prices, with volume and trade count 0."""
    revision = bar.revision + 1
    fresh: FormingBar | None = None
    for trade in trades:
        if fresh is None:
            fresh = FormingBar(bar.start_us, trade.price, trade.time_us)
        fresh.add(trade.price, trade.size, trade.time_us, trade.received_ns)
    if fresh is None:
        bar.volume = bar.notional = 0.0
        bar.trades = 0
    else:
        for name in ("open", "open_us", "high", "low", "close", "close_us", "volume"):
            setattr(bar, name, getattr(fresh, name))
        bar.notional, bar.trades = fresh.notional, fresh.trades
    bar.revision = revision
    if received_ns is not None:
        bar.received_ns = received_ns
