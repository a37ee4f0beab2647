"""The event kinds' data as pydantic models, for the OpenAPI document only (`/docs`).

Validation on every hop uses the msgspec schemas of `wire.py` through `kinds.py`; these
models restate the same rules (from `rules.py` and `symbols.py`) in the form FastAPI
documents, and `tests/unit/events` proves on generated inputs that they accept and
refuse exactly what the schemas do.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tickwire.events import rules
from tickwire.events.symbols import SYMBOL_PATTERN

Symbol = Annotated[
    str, Field(pattern=SYMBOL_PATTERN, description="ticker symbol", examples=["AAPL"])
]
Venue = Annotated[str, Field(pattern=rules.VENUE_PATTERN, description="trading venue (MIC)")]
TradeId = Annotated[str, Field(pattern=rules.TRADE_ID_PATTERN, description="venue trade id")]
Price = Annotated[float, Field(gt=0, le=rules.MAX_NUMBER, allow_inf_nan=False)]
TradeSize = Annotated[
    float, Field(gt=0, le=rules.MAX_NUMBER, allow_inf_nan=False, description="> 0")
]
QuoteSize = Annotated[
    float, Field(ge=0, le=rules.MAX_NUMBER, allow_inf_nan=False, description=">= 0")
]

EventRef = Annotated[
    str,
    Field(pattern=rules.ID_PATTERN, description="the `id` (ce_id) of the trade it refers to"),
]
Reason = Annotated[
    str, Field(min_length=1, max_length=rules.REASON_MAX_LENGTH, description="why, for people")
]

STRICT = ConfigDict(strict=True, extra="forbid")


class TradeData(BaseModel):
    """A trade: `symbol` traded `size` (> 0) at `price` at `time`."""

    model_config = STRICT

    symbol: Symbol
    price: Price
    size: TradeSize
    time: AwareDatetime
    venue: Venue | None = None
    trade_id: TradeId | None = None


class QuoteData(BaseModel):
    """A top-of-book quote; `bid` may not be above `ask`; sizes may be 0."""

    model_config = STRICT

    symbol: Symbol
    bid: Price
    bid_size: QuoteSize
    ask: Price
    ask_size: QuoteSize
    time: AwareDatetime

    @model_validator(mode="after")
    def _bid_not_above_ask(self) -> Self:
        rules.check_quote(self.bid, self.ask)
        return self


class CorrectionData(BaseModel):
    """A trade correction: the trade with event id `ref_id` (from the same `source`)
    traded `size` at `price` instead."""

    model_config = STRICT

    symbol: Symbol
    time: AwareDatetime
    ref_id: EventRef
    price: Price
    size: TradeSize


class CancelData(BaseModel):
    """A trade cancel: the trade with event id `ref_id` (same `source`) did not happen."""

    model_config = STRICT

    symbol: Symbol
    time: AwareDatetime
    ref_id: EventRef


class StatusData(BaseModel):
    """A trading status change: halted, or trading again, from `time`, and why."""

    model_config = STRICT

    symbol: Symbol
    time: AwareDatetime
    state: Literal["halted", "trading"]
    reason: Reason | None = None
