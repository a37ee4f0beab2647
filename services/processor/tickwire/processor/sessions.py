"""Trading sessions from exchange calendars (the `exchange-calendars` package): which
session an event time belongs to, and its phase.

A session is one trading day of an exchange: regular hours [open, close) from the
calendar (early closes included), a pre-market of `pre` before the open and a
post-market of `post` after the close (XNYS: 04:00-09:30 and 16:00-20:00 New York
time by default). The session an event time belongs to is the latest one whose
pre-market has begun, so a session's *window* runs from its pre-market start to the next
session's pre-market start: Friday's session covers the weekend (phase `closed`), and
a holiday belongs to the trading day before it. A symbol's state rolls over when its
watermark (event time) enters the next window: nothing depends on the wall clock, so a
replay rolls over exactly where the first run did.

Sessions are identified by their date's day number (days since 1970-01-01), which only
grows from one session to the next. Event times outside the calendar's range (it covers
about 20 years back and 1 year ahead) fall back to UTC days, phase `closed`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import warnings
from dataclasses import dataclass
from typing import Literal

import exchange_calendars  # type: ignore[import-untyped]

from tickwire.processor.errors import ConfigurationError

DAY_US = 86_400_000_000
_NS_PER_US = 1000
_EPOCH_DATE = dt.date(1970, 1, 1)
Phase = Literal["pre", "regular", "post", "closed"]


@dataclass(frozen=True, slots=True)
class Session:
    """One session of one exchange, times in µs since the epoch."""

    day: int  # the session date's day number
    window_start: int  # pre-market start
    window_end: int  # the next session's pre-market start (exclusive)
    open: int
    close: int
    post_end: int

    @property
    def date(self) -> str:
        """The session's date, YYYY-MM-DD."""
        return (_EPOCH_DATE + dt.timedelta(days=self.day)).isoformat()

    def phase(self, time_us: int) -> Phase:
        """The phase of this session at an event time within its window."""
        if time_us < self.open:
            return "pre" if time_us >= self.window_start and self.open != self.close else "closed"
        if time_us < self.close:
            return "regular"
        return "post" if time_us < self.post_end else "closed"


class ExchangeCalendar:
    """One exchange's sessions as sorted arrays (bisect per lookup, no pandas after
    construction)."""

    def __init__(self, name: str, pre: dt.timedelta, post: dt.timedelta) -> None:
        try:
            with warnings.catch_warnings():  # its own use of pandas, not ours to fix
                warnings.simplefilter("ignore")
                calendar = exchange_calendars.get_calendar(name)
        except exchange_calendars.errors.InvalidCalendarName as exc:
            raise ConfigurationError(f"unknown exchange calendar {name!r}") from exc
        self.name = name
        pre_us, post_us = pre // dt.timedelta(microseconds=1), post // dt.timedelta(microseconds=1)
        self._opens = [int(v) // _NS_PER_US for v in calendar.opens.to_numpy("int64")]
        self._closes = [int(v) // _NS_PER_US for v in calendar.closes.to_numpy("int64")]
        self._days = [int(v) // (DAY_US * _NS_PER_US) for v in calendar.sessions.asi8]
        self._pre = pre_us
        self._post = post_us
        self._starts = [o - pre_us for o in self._opens]

    def session(self, time_us: int) -> Session:
        """The session an event time belongs to (see the module docstring)."""
        starts = self._starts
        i = bisect.bisect_right(starts, time_us) - 1
        if i < 0 or (i == len(starts) - 1 and time_us >= self._closes[i] + self._post):
            return _utc_day(time_us)
        end = starts[i + 1] if i + 1 < len(starts) else self._closes[i] + self._post
        return Session(
            self._days[i],
            starts[i],
            end,
            self._opens[i],
            self._closes[i],
            min(self._closes[i] + self._post, end),
        )


def _utc_day(time_us: int) -> Session:
    """Outside the calendar: the UTC day, always closed."""
    day = time_us // DAY_US
    start = day * DAY_US
    end = start + DAY_US
    return Session(day, start, end, end, end, end)


@functools.cache
def calendar(name: str, pre_s: float, post_s: float) -> ExchangeCalendar:
    """The calendar of an exchange (built once per process: a second or so each)."""
    return ExchangeCalendar(name, dt.timedelta(seconds=pre_s), dt.timedelta(seconds=post_s))


class Sessions:
    """The symbol -> exchange map and the calendars it needs."""

    def __init__(
        self,
        exchanges: dict[str, str] | None = None,
        default: str = "XNYS",
        pre: dt.timedelta = dt.timedelta(hours=5, minutes=30),
        post: dt.timedelta = dt.timedelta(hours=4),
    ) -> None:
        self._exchanges = dict(exchanges or {})
        self._pre_s, self._post_s = pre.total_seconds(), post.total_seconds()
        self.default = calendar(default, self._pre_s, self._post_s)
        for name in set(self._exchanges.values()):
            calendar(name, self._pre_s, self._post_s)  # fail at start-up, not mid-stream

    def for_symbol(self, symbol: str) -> ExchangeCalendar:
        """The calendar of the symbol's exchange."""
        name = self._exchanges.get(symbol)
        if name is None:
            return self.default
        return calendar(name, self._pre_s, self._post_s)
