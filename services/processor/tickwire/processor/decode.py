"""Turn a ticks.raw record (CloudEvents binary mode) into a validated trade or quote.

Anything that cannot be used raises PoisonMessageError; the consumer dead-letters it.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from tickwire.core.errors import PoisonMessageError
from tickwire.events import headers as h
from tickwire.events import types
from tickwire.events.wire import QUOTE_DECODER, TRADE_DECODER, QuoteData, TradeData

_TRADE = types.TRADE.encode()
_QUOTE = types.QUOTE.encode()
_isfinite = math.isfinite


def decode(key: bytes | None, value: bytes | None, headers: Any) -> TradeData | QuoteData:
    """The record's event, validated; PoisonMessageError says what is wrong with it."""
    kind = h.find(headers, h.CE_TYPE)
    if value is None:
        raise PoisonMessageError("record has no value")
    event: TradeData | QuoteData
    try:
        if kind == _TRADE:
            event = TRADE_DECODER.decode(value)
        elif kind == _QUOTE:
            event = QUOTE_DECODER.decode(value)
        else:
            raise PoisonMessageError(f"unknown or missing ce_type {kind!r}")
    except msgspec.DecodeError as exc:
        raise PoisonMessageError(f"undecodable value: {exc}") from exc
    if event.time.tzinfo is None:
        raise PoisonMessageError("time has no timezone")
    if key is None or key != event.symbol.encode():
        raise PoisonMessageError(f"key {key!r} does not match symbol {event.symbol!r}")
    if type(event) is TradeData:
        if not (_isfinite(event.price) and event.price > 0):
            raise PoisonMessageError(f"price must be positive, got {event.price}")
        if not (_isfinite(event.size) and event.size > 0):
            raise PoisonMessageError(f"size must be positive, got {event.size}")
    else:
        assert type(event) is QuoteData
        if not (_isfinite(event.bid) and _isfinite(event.ask) and event.bid > 0):
            raise PoisonMessageError(f"bid and ask must be positive, got {event.bid}")
        if event.bid > event.ask:
            raise PoisonMessageError(f"bid {event.bid} is above ask {event.ask}")
        if not (event.bid_size >= 0 and event.ask_size >= 0):
            raise PoisonMessageError("quote sizes must not be negative")
    return event


def received_ns(headers: Any) -> int | None:
    """The ingest receive time (tw_received_ns), or None when absent or malformed."""
    raw = h.find(headers, h.RECEIVED_NS)
    return int(raw) if raw is not None and raw.isdigit() else None
