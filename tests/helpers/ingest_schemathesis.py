"""Schemathesis hooks for the ingest API run (loaded with SCHEMATHESIS_HOOKS).

- NDJSON bodies: a generated array is sent one JSON value per line.
- Three rules of the API cannot be written in JSON Schema: a quote's bid may not be above
  its ask, an event's time may not be in the future (nor before what UTC can hold, as
  0001-01-01T00:00:00+03:00 is), and a CloudEvent's subject (when
  given) is its data's symbol. `map_case` keeps *positive* cases within them (swapping
  bid and ask, moving the time to the past, copying the symbol to the subject), so the
  positive-data check tests what the schema promises; negative cases are untouched.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import schemathesis

PAST = "2026-01-02T03:04:05Z"


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    # stdlib json: schemathesis generates integers beyond 64 bits, which orjson refuses
    return "\n".join(json.dumps(item, separators=(",", ":")) for item in items).encode()


def within_rules(event: Any) -> Any:
    """The event with a past time and bid <= ask, where those fields are well formed."""
    if not isinstance(event, dict):
        return event
    fixed = dict(event)
    if isinstance(fixed.get("data"), dict):
        fixed["data"] = within_rules(fixed["data"])
        symbol = fixed["data"].get("symbol")
        if isinstance(fixed.get("subject"), str) and isinstance(symbol, str):
            fixed["subject"] = symbol  # a CloudEvent's subject names its data's symbol
    for name in ("time",):
        value = fixed.get(name)
        if isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                continue  # not a date-time: leave it for the server to refuse
            if moment.tzinfo is None:
                continue
            try:
                in_future = moment.astimezone(dt.UTC) > dt.datetime.now(dt.UTC)
            except OverflowError:  # e.g. year 1 at +03:00: before anything UTC can hold
                in_future = True
            if in_future:
                fixed[name] = PAST
    bid, ask = fixed.get("bid"), fixed.get("ask")
    numbers = (int, float)
    if (
        isinstance(bid, numbers)
        and isinstance(ask, numbers)
        and not isinstance(bid, bool)
        and not isinstance(ask, bool)
        and bid > ask
    ):
        fixed["bid"], fixed["ask"] = ask, bid
    return fixed


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and case.body is not None:
        body = case.body
        case.body = (
            [within_rules(e) for e in body] if isinstance(body, list) else within_rules(body)
        )
    return case
