"""Kafka records for ticks.raw: the CloudEvents Kafka binding in binary mode.

key      the symbol (UTF-8)
value    msgspec JSON of wire.TradeData / wire.QuoteData (time in UTC, RFC 3339)
headers  ce_specversion, ce_id, ce_source, ce_type, ce_subject, ce_time,
         content-type, tw_received_ns, and traceparent when the request had one
"""

from __future__ import annotations

from collections.abc import Sequence

from tickwire.events import headers as h
from tickwire.events import types, wire
from tickwire.ingest.events import Event
from tickwire.ingest.ids import ulids
from tickwire.ingest.publisher import Record

# header tuples that are the same for every record, built once
_SPECVERSION = (h.CE_SPECVERSION, types.SPECVERSION.encode())
_CONTENT_TYPE = (h.CONTENT_TYPE, b"application/json")
_TYPES = {t: (h.CE_TYPE, t.encode()) for t in (types.TRADE, types.QUOTE)}
_encode = wire.ENCODER.encode


def build_records(
    events: Sequence[Event],
    *,
    default_source: str,
    received_ns: int,
    traceparent: str | None,
) -> tuple[list[Record], list[str]]:
    """One record per event, and each event's id (assigning ULIDs where missing)."""
    missing = sum(1 for e in events if e.id is None)
    fresh = iter(ulids(missing)) if missing else iter(())
    received = (h.RECEIVED_NS, str(received_ns).encode())
    source_default = (h.CE_SOURCE, default_source.encode())
    trace = (h.TRACEPARENT, traceparent.encode()) if traceparent else None
    records: list[Record] = []
    ids: list[str] = []
    for event in events:
        data = event.data
        event_id = event.id if event.id is not None else next(fresh)
        symbol = data.symbol.encode()
        headers = [
            _SPECVERSION,
            (h.CE_ID, event_id.encode()),
            (h.CE_SOURCE, event.source.encode()) if event.source else source_default,
            _TYPES[event.type],
            (h.CE_SUBJECT, symbol),
            (h.CE_TIME, _encode(data.time)[1:-1]),
            _CONTENT_TYPE,
            received,
        ]
        if trace is not None:
            headers.append(trace)
        records.append((symbol, _encode(data), headers))
        ids.append(event_id)
    return records, ids
