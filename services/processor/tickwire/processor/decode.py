"""Turn a ticks.raw record (CloudEvents binary mode) into a validated trade or quote.

The kind comes from the record's `ce_type` header and is validated by the same
registry entry ingest validates with (`tickwire.events.kinds`), so every event ingest
accepts decodes here and nothing ingest would refuse does. Anything that cannot be
used raises PoisonMessageError saying why; the consumer dead-letters it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tickwire.core.errors import PoisonMessageError
from tickwire.events import headers as h
from tickwire.events.kinds import BY_TYPE_HEADER
from tickwire.events.parsing import MalformedInput
from tickwire.events.rules import RuleError
from tickwire.events.wire import QuoteData, TradeData

#: tw_received_ns must fit a signed 64-bit integer (ns since the epoch until 2262)
_MAX_RECEIVED_NS = (1 << 63) - 1


def decode(key: bytes | None, value: bytes | None, headers: Any) -> TradeData | QuoteData:
    """The record's event, validated; PoisonMessageError says what is wrong with it."""
    raw_type = h.find(headers, h.CE_TYPE)
    if value is None:
        raise PoisonMessageError("record has no value")
    kind = BY_TYPE_HEADER.get(raw_type) if raw_type is not None else None
    if kind is None:
        raise PoisonMessageError(f"unknown or missing ce_type {raw_type!r}")
    event: TradeData | QuoteData
    try:
        event = kind.decode(value)
    except (msgspec.DecodeError, MalformedInput) as exc:
        raise PoisonMessageError(f"undecodable value: {exc}") from exc
    except RuleError as exc:
        raise PoisonMessageError(f"{exc.field}: {exc.message}") from exc
    if key is None or key != event.symbol.encode():
        raise PoisonMessageError(f"key {key!r} does not match symbol {event.symbol!r}")
    return event


def received_ns(headers: Any) -> int | None:
    """The ingest receive time (tw_received_ns), or None when absent or malformed."""
    raw = h.find(headers, h.RECEIVED_NS)
    if raw is None or not (0 < len(raw) <= 19) or not raw.isdigit():
        return None
    value = int(raw)
    return value if value <= _MAX_RECEIVED_NS else None
