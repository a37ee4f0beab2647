"""The validation rules of posted events, stated once. The msgspec schemas of `wire.py`
carry the field rules, the kinds of `kinds.py` the cross-field rules; ingest (at the
door) and the processor (reading ticks.raw) validate with the very same code, so an
event one accepts the other accepts. The pydantic models of `docs.py` document them
for the OpenAPI document and a property test proves they agree.

Field rules:
    symbol      see `symbols.py`: 1-24 of `A-Z 0-9 . - / _`, first a letter or digit
    price, bid, ask          JSON numbers, > 0 and <= MAX_NUMBER
    size                     JSON number, > 0 and <= MAX_NUMBER (a trade moves shares)
    bid_size, ask_size       JSON numbers, >= 0 and <= MAX_NUMBER (an empty side is 0)
    time        RFC 3339 with a time zone, representable in UTC; normalized to UTC
    venue       1-32 of letters, digits, `.`, `-`, `_`
    trade_id    1-64 visible ASCII characters
    ref_id      (correction, cancel) the `id` (ce_id) of the trade corrected: as `id`
    state       (status) "halted" or "trading"
    reason      (status) 1-256 characters, or null
    unknown fields are refused
Cross-field rules: a quote's bid <= ask (a locked book is allowed).
Admission rules (ingest only, against its clock when it receives the event):
    time        at most `max_future_skew` ahead of now (the processor, reading later,
                does not re-apply it)
    id          the producer's idempotency key: 1-128 visible ASCII characters
    source      CloudEvents source (URI reference): 1-256 visible ASCII characters
    subject     a CloudEvent's subject, when given, is the data's symbol
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from tickwire.core.errors import PermanentError
from tickwire.events.symbols import full_match

ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
SOURCE_PATTERN = r"^[\x21-\x7e]{1,256}$"
VENUE_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
TRADE_ID_PATTERN = r"^[\x21-\x7e]{1,64}$"
REASON_MAX_LENGTH = 256
TRACEPARENT_PATTERN = r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"

#: Largest price or size accepted: beyond it a number is an error, not a market event.
MAX_NUMBER = 1e15

DEFAULT_MAX_FUTURE_SKEW = dt.timedelta(seconds=5)

# msgspec field types carrying the rules (float fields refuse NaN/inf through the bounds)
EventId = Annotated[str, msgspec.Meta(pattern=full_match(ID_PATTERN))]
Source = Annotated[str, msgspec.Meta(pattern=full_match(SOURCE_PATTERN))]
Venue = Annotated[str, msgspec.Meta(pattern=full_match(VENUE_PATTERN))]
TradeId = Annotated[str, msgspec.Meta(pattern=full_match(TRADE_ID_PATTERN))]
Price = Annotated[float, msgspec.Meta(gt=0, le=MAX_NUMBER)]
TradeSize = Annotated[float, msgspec.Meta(gt=0, le=MAX_NUMBER)]
QuoteSize = Annotated[float, msgspec.Meta(ge=0, le=MAX_NUMBER)]
Time = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=REASON_MAX_LENGTH)]


class RuleError(PermanentError, ValueError):
    """A rule that the schema cannot express failed; `field` names where. (A ValueError
    too, so that pydantic validators raising it report a validation error.)"""

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
