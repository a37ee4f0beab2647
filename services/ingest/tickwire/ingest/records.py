"""Kafka records for ticks.raw: the CloudEvents Kafka binding in binary mode.

key      the symbol (UTF-8)
value    msgspec JSON of wire.TradeData / wire.QuoteData (time in UTC, RFC 3339)
headers  ce_specversion, ce_id, ce_source, ce_type, ce_subject, ce_time,
         content-type, tw_received_ns, and traceparent when the request had one
"""

from __future__ import annotations

from collections.abc import Sequence

from tickwire.events import headers as h
from tickwire.events import wire
from tickwire.events.kinds import BY_TYPE
from tickwire.ingest.events import Event
from tickwire.ingest.ids import ulids
from tickwire.ingest.publisher import Record

_TYPES = {t: t.encode() for t in BY_TYPE}
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
    source_default = default_source.encode()
    trace = (h.TRACEPARENT, traceparent.encode()) if traceparent else None
    records: list[Record] = []
    ids: list[str] = []
    for event in events:
        data = event.data
        event_id = event.id if event.id is not None else next(fresh)
        symbol = data.symbol.encode()
        headers = h.cloudevent(
            id_=event_id.encode(),
            source=event.source.encode() if event.source else source_default,
            type_=_TYPES[event.type],
            subject=symbol,
            time=_encode(data.time)[1:-1],
        )
        headers.append(received)
        if trace is not None:
            headers.append(trace)
        records.append((symbol, _encode(data), headers))
        ids.append(event_id)
    return records, ids
