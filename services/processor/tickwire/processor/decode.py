"""Turn a ticks.raw record (CloudEvents binary mode) into a validated event (a trade,
quote, correction, cancel or status).

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
from tickwire.events.kinds import BY_TYPE_HEADER, AnyData
from tickwire.events.parsing import MalformedInput
from tickwire.events.rules import RuleError

#: tw_received_ns must fit a signed 64-bit integer (ns since the epoch until 2262)
_MAX_RECEIVED_NS = (1 << 63) - 1


def decode(key: bytes | None, value: bytes | None, headers: Any) -> AnyData:
    """The record's event, validated; PoisonMessageError says what is wrong with it."""
    return _event(key, value, h.find(headers, h.CE_TYPE))


def read(
    key: bytes | None, value: bytes | None, headers: Any
) -> tuple[AnyData, bytes, bytes | None, int | None]:
    """Everything the aggregator needs from a record, reading its headers once: the
    validated event, its id (ce_id), its source (ce_source) and the ingest receive time
    (tw_received_ns, None when absent or malformed). A repeated header counts by its
    first occurrence, as `decode` and `received_ns` read it. PoisonMessageError when the
    event is unusable or has no id."""
    if headers:
        fields = dict(headers)
        if len(fields) < len(headers):  # a repeated name: the first one counts
            fields = dict(reversed(headers))
    else:
        fields = {}
    event = _event(key, value, fields.get(h.CE_TYPE))
    event_id = fields.get(h.CE_ID)
    if not event_id:
        raise PoisonMessageError("missing ce_id (the event's idempotency key)")
    return event, event_id, fields.get(h.CE_SOURCE), _received(fields.get(h.RECEIVED_NS))


def _event(key: bytes | None, value: bytes | None, raw_type: bytes | None) -> AnyData:
    if value is None:
        raise PoisonMessageError("record has no value")
    kind = BY_TYPE_HEADER.get(raw_type) if raw_type is not None else None
    if kind is None:
        raise PoisonMessageError(f"unknown or missing ce_type {raw_type!r}")
    event: AnyData
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
    return _received(h.find(headers, h.RECEIVED_NS))


def _received(raw: bytes | None) -> int | None:
    if raw is None or not (0 < len(raw) <= 19) or not raw.isdigit():
        return None
    value = int(raw)
    return value if value <= _MAX_RECEIVED_NS else None
