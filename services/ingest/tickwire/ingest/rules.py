"""The validation rules for posted events, stated once and used by both models: the
msgspec structs of the hot path (`events.py`) and the pydantic models that document
the API (`models.py`). A unit test checks that the two agree on generated inputs.

Field rules:
    symbol      SYMBOL_PATTERN: 1-24 chars, upper-case letters and digits first, then
                also `.`, `-`, `/`, `_` (e.g. `AAPL`, `BRK.B`, `BTC-USD`, `EUR/USD`)
    price, bid, ask          finite and > 0
    size, bid_size, ask_size finite and >= 0
    time        RFC 3339 with a time zone; at most `max_future_skew` ahead of now
    id          the producer's idempotency key: 1-128 visible ASCII characters
    source      CloudEvents source (URI reference): 1-256 visible ASCII characters
    venue       1-32 of letters, digits, `.`, `-`, `_`
    trade_id    1-64 visible ASCII characters
Cross-field rules (`check_*` below): bid <= ask; a CloudEvent's `subject`, when given,
is the data's symbol.
"""

from __future__ import annotations

import datetime as dt

SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._/-]{0,23}$"
ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
SOURCE_PATTERN = r"^[\x21-\x7e]{1,256}$"
VENUE_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
TRADE_ID_PATTERN = r"^[\x21-\x7e]{1,64}$"
TRACEPARENT_PATTERN = r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"

#: Largest price or size accepted: beyond it a number is an error, not a market event.
MAX_NUMBER = 1e15

DEFAULT_MAX_FUTURE_SKEW = dt.timedelta(seconds=5)


class RuleError(ValueError):
    """A cross-field rule failed; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def to_utc(time: dt.datetime) -> dt.datetime:
    """The time in UTC; a time that cannot be (e.g. year 1 at +01:00) is refused."""
    if time.tzinfo is dt.UTC:
        return time
    try:
        return time.astimezone(dt.UTC)
    except OverflowError:
        raise RuleError("time", "is out of range in UTC") from None


def check_time(time: dt.datetime, now: dt.datetime, max_future_skew: dt.timedelta) -> None:
    """An event may not be stamped further in the future than the allowed clock skew."""
    if time - now > max_future_skew:
        raise RuleError("time", f"is more than {max_future_skew.total_seconds():g}s in the future")


def check_quote(bid: float, ask: float) -> None:
    """A quote's bid may not be above its ask (a locked book, bid == ask, is allowed)."""
    if bid > ask:
        raise RuleError("bid", "bid is above ask")


def check_subject(subject: str | None, symbol: str) -> None:
    """A CloudEvent's subject, when given, must name the data's symbol."""
    if subject is not None and subject != symbol:
        raise RuleError("subject", "subject differs from data.symbol")
