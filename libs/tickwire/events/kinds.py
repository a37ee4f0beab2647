"""The registry of event kinds: everything every hop needs to know about one kind of
posted event, in one entry.

    EventKind
      name        plain-JSON `type` and API-key scope name ("trade")
      type        CloudEvents type, the `ce_type` header ("io.tickwire.trade.v1")
      schema      the msgspec Struct of `wire.py`: field rules, wire encoding
      rules       cross-field rules (raise rules.RuleError)
      doc_model   the pydantic model documenting it (OpenAPI), proven equal by a test
      example     an example `data` for the docs
      decode()    bytes -> valid event, time in UTC (MalformedInput, msgspec errors,
                  RuleError); ingest and the processor both validate with it

Ingest derives its request shapes (plain JSON, structured CloudEvents), its scopes
and its docs from `KINDS`; the processor picks the kind by the record's `ce_type`.
Adding an event type: its schema in `wire.py`, its doc model in `docs.py`, its entry
here; then its aggregation in the processor.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from pydantic import BaseModel

from tickwire.events import docs, headers, types
from tickwire.events.parsing import guarded
from tickwire.events.rules import check_quote, to_utc
from tickwire.events.wire import (
    CANCEL_DECODER,
    CORRECTION_DECODER,
    QUOTE_DECODER,
    STATUS_DECODER,
    TRADE_DECODER,
    CancelData,
    CorrectionData,
    QuoteData,
    StatusData,
    TradeData,
)


class EventData(Protocol):
    """What every kind's data has: the symbol (Kafka key, subject) and event time."""

    @property
    def symbol(self) -> str: ...

    @property
    def time(self) -> dt.datetime: ...


D = TypeVar("D", TradeData, QuoteData, CorrectionData, CancelData, StatusData)
#: The data of any registered kind.
AnyData = TradeData | QuoteData | CorrectionData | CancelData | StatusData


@dataclass(frozen=True, eq=False)
class EventKind(Generic[D]):
    """One kind of event and its rules (see the module docstring)."""

    name: str
    type: str
    schema: builtins.type[D]  # `type` is the CloudEvents type here
    decoder: msgspec.json.Decoder[D]
    rules: Callable[[D], None]
    doc_model: builtins.type[BaseModel]
    example: Mapping[str, Any]
    type_header: tuple[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type_header", (headers.CE_TYPE, self.type.encode()))

    def normalize(self, data: D) -> D:
        """Data that passed the schema, checked by the cross-field rules and with its
        time in UTC (raises rules.RuleError)."""
        utc = to_utc(data.time)
        self.rules(data)
        return data if utc is data.time else msgspec.structs.replace(data, time=utc)

    def decode(self, value: bytes) -> D:
        """A JSON value as a valid event (raises parsing.MalformedInput,
        msgspec.DecodeError or rules.RuleError, each saying why)."""
        return self.normalize(guarded(self.decoder.decode, value))


def _trade_rules(data: TradeData) -> None:
    """A trade has no cross-field rule: its schema says it all (size > 0)."""


def _quote_rules(data: QuoteData) -> None:
    check_quote(data.bid, data.ask)


def _no_cross_field_rules(data: CorrectionData | CancelData | StatusData) -> None:
    """Corrections, cancels and status changes: the schema says it all. Whether the
    trade referred to exists is the processor's to decide (it remembers the trades)."""


TRADE: EventKind[TradeData] = EventKind(
    name="trade",
    type=types.TRADE,
    schema=TradeData,
    decoder=TRADE_DECODER,
    rules=_trade_rules,
    doc_model=docs.TradeData,
    example={"symbol": "AAPL", "price": 227.31, "size": 100, "time": "2026-03-02T14:30:00.125Z"},
)
QUOTE: EventKind[QuoteData] = EventKind(
    name="quote",
    type=types.QUOTE,
    schema=QuoteData,
    decoder=QUOTE_DECODER,
    rules=_quote_rules,
    doc_model=docs.QuoteData,
    example={
        "symbol": "AAPL",
        "bid": 227.30,
        "bid_size": 300,
        "ask": 227.32,
        "ask_size": 200,
        "time": "2026-03-02T14:30:00.125Z",
    },
)

CORRECTION: EventKind[CorrectionData] = EventKind(
    name="correction",
    type=types.CORRECTION,
    schema=CorrectionData,
    decoder=CORRECTION_DECODER,
    rules=_no_cross_field_rules,
    doc_model=docs.CorrectionData,
    example={
        "symbol": "AAPL",
        "time": "2026-03-02T14:30:00.125Z",
        "ref_id": "trade-000123",
        "price": 227.21,
        "size": 100,
    },
)
CANCEL: EventKind[CancelData] = EventKind(
    name="cancel",
    type=types.CANCEL,
    schema=CancelData,
    decoder=CANCEL_DECODER,
    rules=_no_cross_field_rules,
    doc_model=docs.CancelData,
    example={"symbol": "AAPL", "time": "2026-03-02T14:30:00.125Z", "ref_id": "trade-000123"},
)
STATUS: EventKind[StatusData] = EventKind(
    name="status",
    type=types.STATUS,
    schema=StatusData,
    decoder=STATUS_DECODER,
    rules=_no_cross_field_rules,
    doc_model=docs.StatusData,
    example={
        "symbol": "AAPL",
        "time": "2026-03-02T14:30:00Z",
        "state": "halted",
        "reason": "LULD pause",
    },
)

AnyKind = (
    EventKind[TradeData]
    | EventKind[QuoteData]
    | EventKind[CorrectionData]
    | EventKind[CancelData]
    | EventKind[StatusData]
)

#: Every kind, in the order the docs list them.
KINDS: tuple[AnyKind, ...] = (TRADE, QUOTE, CORRECTION, CANCEL, STATUS)
BY_TYPE: dict[str, AnyKind] = {k.type: k for k in KINDS}
BY_TYPE_HEADER: dict[bytes, AnyKind] = {k.type.encode(): k for k in KINDS}
BY_NAME: dict[str, AnyKind] = {k.name: k for k in KINDS}
BY_SCHEMA: dict[type, AnyKind] = {k.schema: k for k in KINDS}
