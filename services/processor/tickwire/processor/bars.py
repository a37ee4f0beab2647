"""Event-time OHLCV bars: interval names, window arithmetic and the forming-bar accumulator.

Times are integer microseconds since the epoch inside the hot path (exact, cheap to
compare); they become datetimes only at the edges (wire, MongoDB).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from tickwire.events.wire import Bar
from tickwire.processor.errors import ConfigurationError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_INTERVAL = re.compile(r"^([1-9][0-9]*)([smhd])$")


def to_us(moment: dt.datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch (exact)."""
    return (moment - EPOCH) // MICROSECOND


def from_us(micros: int) -> dt.datetime:
    """Integer microseconds since the epoch as a UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=micros)


def interval_us(name: str) -> int:
    """The length of an interval named like "1s", "5m", "1h" or "1d", in microseconds."""
    match = _INTERVAL.match(name)
    if match is None:
        raise ConfigurationError(f"bad bar interval {name!r}: use e.g. 1s, 5m, 1h, 1d")
    return int(match.group(1)) * _UNITS_US[match.group(2)]


#: The interval whose bars follow the exchange session instead of the epoch's grid.
SESSION_INTERVAL = "1d"


@dataclass(frozen=True, slots=True)
class Interval:
    """A configured bar interval: its name and its length in microseconds. `session`:
    its bars are the exchange session's regular hours, [open, close), not a grid slot
    (`1d`; tickwire.processor.sessions)."""

    name: str
    length_us: int
    session: bool = False

    @classmethod
    def parse(cls, name: str) -> Interval:
        """An Interval from its name."""
        return cls(name, interval_us(name), name == SESSION_INTERVAL)


class FormingBar:
    """One bar being built from trades (mutable; lives in a symbol's state).

    Open and close follow event time, not arrival: open is the price of the trade with
    the earliest event time, close the one with the latest (on equal times the trade
    that arrived later wins the close and the one that arrived first keeps the open).
    `revision` counts the trades, corrections and cancels applied to it (without
    corrections it equals `trades`): its version on ticker.bars is
    2 * revision + (1 if final else 0), compared per (symbol, interval, start).
    `complete` is false once one of its trades is no longer remembered for corrections
    (tickwire.processor.corrections): such a bar cannot be corrected any more.
    """

    __slots__ = (
        "close",
        "close_us",
        "complete",
        "end_us",
        "high",
        "low",
        "notional",
        "open",
        "open_us",
        "received_ns",
        "revision",
        "start_us",
        "trades",
        "volume",
    )

    def __init__(self, start_us: int, price: float, time_us: int | None = None) -> None:
        self.start_us = start_us
        self.open = self.high = self.low = self.close = price
        self.open_us = self.close_us = start_us if time_us is None else time_us
        self.volume = 0.0
        self.notional = 0.0
        self.trades = 0
        self.revision = 0
        self.complete = True
        self.end_us: int | None = None  # set when the bar does not end at start + length
        self.received_ns: int | None = None

    def add(self, price: float, size: float, time_us: int, received_ns: int | None) -> None:
        """Add one trade (already known to fall in this bar's window)."""
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        if time_us < self.open_us:
            self.open, self.open_us = price, time_us
        if time_us >= self.close_us:
            self.close, self.close_us = price, time_us
        self.volume += size
        self.notional += price * size
        self.trades += 1
        self.revision += 1
        if received_ns is not None:
            self.received_ns = received_ns

    def version(self, *, final: bool) -> int:
        """The bar's version on ticker.bars: 2 * revision (+1 once final)."""
        return 2 * self.revision + (1 if final else 0)

    def to_wire(self, symbol: str, interval: Interval, *, final: bool) -> Bar:
        """The bar as it travels on ticker.bars."""
        return Bar(
            symbol=symbol,
            interval=interval.name,
            start=from_us(self.start_us),
            end=from_us(self.start_us + interval.length_us if self.end_us is None else self.end_us),
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            vwap=self.notional / self.volume if self.volume else self.close,
            trades=self.trades,
            final=final,
            version=self.version(final=final),
            received_ns=self.received_ns,
        )

    def to_doc(self) -> dict[str, Any]:
        """Everything needed to resume this bar after a restart."""
        return {
            "start_us": self.start_us,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "notional": self.notional,
            "trades": self.trades,
            "open_us": self.open_us,
            "close_us": self.close_us,
            "received_ns": self.received_ns,
            "revision": self.revision,
            "complete": self.complete,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> FormingBar:
        """A bar back from to_doc()."""
        bar = cls(int(doc["start_us"]), float(doc["open"]))
        bar.high = float(doc["high"])
        bar.low = float(doc["low"])
        bar.close = float(doc["close"])
        bar.volume = float(doc["volume"])
        bar.notional = float(doc["notional"])
        bar.trades = int(doc["trades"])
        bar.revision = int(doc.get("revision", bar.trades))
        bar.complete = bool(doc.get("complete", True))
        bar.open_us = int(doc.get("open_us", bar.start_us))
        bar.close_us = int(doc.get("close_us", bar.start_us))
        received = doc.get("received_ns")
        bar.received_ns = int(received) if received is not None else None
        return bar
