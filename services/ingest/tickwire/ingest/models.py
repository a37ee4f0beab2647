"""The API's models as pydantic v2: what `/docs` and the OpenAPI document show, with
examples. The hot path decodes with the msgspec structs of `events.py`; both carry the
rules of `rules.py`, and a unit test checks they accept and refuse the same inputs.
Validate with `context={"now": ..., "max_future_skew": ...}` to apply the time rule
against a given clock (default: now, 5 s).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from tickwire.events import types
from tickwire.ingest import rules

Symbol = Annotated[
    str, Field(pattern=rules.SYMBOL_PATTERN, description="ticker symbol", examples=["AAPL"])
]
EventId = Annotated[
    str, Field(pattern=rules.ID_PATTERN, description="the producer's idempotency key")
]
Source = Annotated[str, Field(pattern=rules.SOURCE_PATTERN, description="CloudEvents source")]
Venue = Annotated[str, Field(pattern=rules.VENUE_PATTERN, description="trading venue (MIC)")]
TradeId = Annotated[str, Field(pattern=rules.TRADE_ID_PATTERN, description="venue trade id")]
Price = Annotated[float, Field(gt=0, le=rules.MAX_NUMBER, allow_inf_nan=False)]
Size = Annotated[float, Field(ge=0, le=rules.MAX_NUMBER, allow_inf_nan=False)]

_STRICT = ConfigDict(strict=True, extra="forbid")
_TIME = "2026-03-02T14:30:00.125Z"


def _check_time(time: dt.datetime, info: ValidationInfo) -> None:
    context: dict[str, Any] = info.context or {}
    now = context.get("now") or dt.datetime.now(dt.UTC)
    skew = context.get("max_future_skew", rules.DEFAULT_MAX_FUTURE_SKEW)
    rules.check_time(rules.to_utc(time), now, skew)


class TradeData(BaseModel):
    """A trade: `symbol` traded `size` at `price` at `time`."""

    model_config = _STRICT

    symbol: Symbol
    price: Price
    size: Size
    time: AwareDatetime
    venue: Venue | None = None
    trade_id: TradeId | None = None


class QuoteData(BaseModel):
    """A top-of-book quote; `bid` may not be above `ask`."""

    model_config = _STRICT

    symbol: Symbol
    bid: Price
    bid_size: Size
    ask: Price
    ask_size: Size
    time: AwareDatetime


class Trade(TradeData):
    """A trade posted as plain JSON."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "trade",
                    "id": "feed-a-000042",
                    "symbol": "AAPL",
                    "price": 227.31,
                    "size": 100,
                    "time": _TIME,
                    "venue": "XNAS",
                }
            ]
        },
    )

    type: Literal["trade"]
    id: EventId | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Self:
        _check_time(self.time, info)
        return self


class Quote(QuoteData):
    """A quote posted as plain JSON."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "quote",
                    "symbol": "AAPL",
                    "bid": 227.30,
                    "bid_size": 300,
                    "ask": 227.32,
                    "ask_size": 200,
                    "time": _TIME,
                }
            ]
        },
    )

    type: Literal["quote"]
    id: EventId | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Self:
        _check_time(self.time, info)
        rules.check_quote(self.bid, self.ask)
        return self


class _CloudEnvelope(BaseModel):
    # Unknown attributes are CloudEvents extensions: allowed and ignored.
    model_config = ConfigDict(strict=True, extra="ignore")

    specversion: Literal["1.0"]
    id: EventId
    source: Source
    subject: Symbol | None = None
    time: AwareDatetime | None = None
    datacontenttype: Literal["application/json"] | None = None


class CloudTrade(_CloudEnvelope):
    """A trade as a structured-mode CloudEvent."""

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "feed-a-000042",
                    "source": "/feeds/a",
                    "type": types.TRADE,
                    "subject": "AAPL",
                    "datacontenttype": "application/json",
                    "data": {"symbol": "AAPL", "price": 227.31, "size": 100, "time": _TIME},
                }
            ]
        },
    )

    type: Literal["io.tickwire.trade.v1"]
    data: TradeData

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Self:
        rules.check_subject(self.subject, self.data.symbol)
        _check_time(self.data.time, info)
        return self


class CloudQuote(_CloudEnvelope):
    """A quote as a structured-mode CloudEvent."""

    type: Literal["io.tickwire.quote.v1"]
    data: QuoteData

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Self:
        rules.check_subject(self.subject, self.data.symbol)
        _check_time(self.data.time, info)
        rules.check_quote(self.data.bid, self.data.ask)
        return self


PlainEvent = Annotated[Trade | Quote, Field(discriminator="type")]
CloudEvent = Annotated[CloudTrade | CloudQuote, Field(discriminator="type")]

# The Literal types above spell these out; keep them in step with tickwire.events.types.
assert types.TRADE == "io.tickwire.trade.v1"
assert types.QUOTE == "io.tickwire.quote.v1"


# -- responses ---------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One problem: where (a field path such as `price` or `data.bid`) and why."""

    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    """An error response, in the style of Kafka REST Proxy v3."""

    error_code: int
    message: str
    errors: list[ErrorDetail] = []


class Accepted(BaseModel):
    """One event, acknowledged by Kafka: its id and where it was stored."""

    id: str
    topic_name: str
    partition_id: int
    offset: int


class EntryResult(BaseModel):
    """The outcome of one entry of a batch, in request order. `status` is 202 when Kafka
    acknowledged it (then `id`, `partition_id`, `offset` are set), else the HTTP status
    it would have had alone (400, 403, 422, 503) with `error`."""

    index: int
    status: int
    id: str | None = None
    partition_id: int | None = None
    offset: int | None = None
    error: ErrorDetail | None = None


class BatchResult(BaseModel):
    """The outcome of a batch: counts and one result per entry, in request order."""

    topic_name: str
    accepted: int
    rejected: int
    results: list[EntryResult]
