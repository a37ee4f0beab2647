"""ticks.raw records of the market kinds (corrections, cancels, trading status) in the
ingest format, beside the trades and quotes of `processor_tape`."""

from __future__ import annotations

import datetime as dt

from tests.helpers.processor_tape import RawRecord, raw_headers
from tickwire.events import types
from tickwire.events.wire import ENCODER, CancelData, CorrectionData, StatusData


def correction(
    symbol: str,
    ref_id: str,
    price: float,
    size: float,
    time: dt.datetime,
    event_id: str | None = None,
    received_ns: int = 1,
) -> RawRecord:
    """A correction of the trade posted with id `ref_id` (same source as the tape's)."""
    value = ENCODER.encode(
        CorrectionData(symbol=symbol, time=time, ref_id=ref_id, price=price, size=size)
    )
    headers = raw_headers(types.CORRECTION, symbol, time, received_ns, event_id)
    return symbol.encode(), value, headers


def cancel(
    symbol: str,
    ref_id: str,
    time: dt.datetime,
    event_id: str | None = None,
    received_ns: int = 1,
) -> RawRecord:
    """A cancel of the trade posted with id `ref_id`."""
    value = ENCODER.encode(CancelData(symbol=symbol, time=time, ref_id=ref_id))
    return symbol.encode(), value, raw_headers(types.CANCEL, symbol, time, received_ns, event_id)


def status(
    symbol: str,
    state: str,
    time: dt.datetime,
    reason: str | None = None,
    event_id: str | None = None,
    received_ns: int = 1,
) -> RawRecord:
    """A trading status change."""
    value = ENCODER.encode(StatusData(symbol=symbol, time=time, state=state, reason=reason))  # type: ignore[arg-type]
    return symbol.encode(), value, raw_headers(types.STATUS, symbol, time, received_ns, event_id)
