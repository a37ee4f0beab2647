"""Whether ingest (at the door) and the processor (reading ticks.raw) accept an event's
data, through their entry points, for the one-contract tests of tests/unit/events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from tickwire.core.errors import PoisonMessageError
from tickwire.events import headers as h
from tickwire.events.kinds import BY_NAME
from tickwire.ingest.events import BodyKind, EntryError, MalformedBody, parse_one
from tickwire.processor.decode import decode

# the future-skew rule is ingest's admission rule against its own clock (documented);
# a clock at the end of time keeps it out of these comparisons
FAR_FUTURE = (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), dt.timedelta(seconds=5))


def ingest_accepts(name: str, data: dict[str, Any]) -> bool:
    """Whether ingest takes `data` posted as a plain JSON event of kind `name`."""
    try:
        parse_one(orjson.dumps({"type": name, **data}), BodyKind.JSON, FAR_FUTURE)
    except (EntryError, MalformedBody):
        return False
    return True


def processor_accepts(name: str, data: dict[str, Any]) -> bool:
    """Whether the processor takes `data` as a ticks.raw record of kind `name`."""
    symbol = data.get("symbol")
    key = symbol.encode() if isinstance(symbol, str) else b"?"
    try:
        decode(key, orjson.dumps(data), [(h.CE_TYPE, BY_NAME[name].type.encode())])
    except PoisonMessageError:
        return False
    return True
