"""The stored document formats, defined once: `quotes` and `bars`.

The processor is the only writer and the gateway a reader; both go through this module,
so a change of shape happens here and nowhere else.

`quotes`, one document per symbol (`_id` = symbol): every `TickerState` field as
msgspec builtins (times as RFC 3339 strings: BSON dates would cut microseconds, and a
restored state must be exactly the one that was saved), plus the processor's own
bookkeeping (`partition`, `offset`, `notional`, `session_day`, `watermark_us`,
`forming`, ...), which readers ignore.

`bars`, one document per closed bar (`_id` = `symbol|interval|start_us`): every `Bar`
field, with `start` and `end` as BSON dates (bar bounds are whole seconds, so nothing
is cut and range queries use the index).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from tickwire.events.wire import Bar, TickerState

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_STATE_FIELDS = frozenset(TickerState.__struct_fields__)
_BAR_FIELDS = frozenset(Bar.__struct_fields__)


class DocumentError(ValueError):
    """A stored document that does not have the documented shape."""


def bar_id(symbol: str, interval: str, start_us: int) -> str:
    """The `bars` document id, unique per (symbol, interval, start)."""
    return f"{symbol}|{interval}|{start_us}"


def encode_bar(bar: Bar) -> dict[str, Any]:
    """A `bars` document for a bar (every Bar field; start and end as BSON dates)."""
    start_us = (bar.start - _EPOCH) // _US
    doc: dict[str, Any] = {"_id": bar_id(bar.symbol, bar.interval, start_us)}
    for name in Bar.__struct_fields__:
        doc[name] = getattr(bar, name)
    return doc


def decode_bar(doc: Mapping[str, Any]) -> Bar:
    """A Bar back from its `bars` document; DocumentError when it does not fit."""
    fields = {k: v for k, v in doc.items() if k in _BAR_FIELDS}
    try:
        bar = msgspec.convert(fields, Bar, strict=False)
    except msgspec.ValidationError as exc:
        raise DocumentError(f"bad bars document {doc.get('_id')!r}: {exc}") from exc
    # BSON dates come back naive when the client is not tz_aware: they are UTC
    if bar.start.tzinfo is None:
        bar.start = bar.start.replace(tzinfo=dt.UTC)
    if bar.end.tzinfo is None:
        bar.end = bar.end.replace(tzinfo=dt.UTC)
    return bar


def encode_quote(state: TickerState, bookkeeping: Mapping[str, Any]) -> dict[str, Any]:
    """A `quotes` document: the published state plus the writer's bookkeeping fields."""
    doc: dict[str, Any] = msgspec.to_builtins(state)
    clash = _STATE_FIELDS.intersection(bookkeeping)
    if clash:
        raise DocumentError(f"bookkeeping fields shadow state fields: {sorted(clash)}")
    doc.update(bookkeeping)
    doc["_id"] = state.symbol
    return doc


def decode_quote(doc: Mapping[str, Any]) -> TickerState:
    """The TickerState held by a `quotes` document (bookkeeping ignored);
    DocumentError when it does not fit."""
    fields = {k: v for k, v in doc.items() if k in _STATE_FIELDS}
    try:
        return msgspec.convert(fields, TickerState, strict=False)
    except msgspec.ValidationError as exc:
        raise DocumentError(f"bad quotes document {doc.get('_id')!r}: {exc}") from exc
