"""Kafka records for ticks.raw: the CloudEvents Kafka binding in binary mode, built the
same way by every service that publishes posted events (ingest from HTTP, the bridge
from RabbitMQ), so the processor cannot tell where an event came from.

key      the symbol (UTF-8); the partition is `partitioner.partition_for(key)`
value    msgspec JSON of the kind's data (`wire.py`; time in UTC, RFC 3339)
headers  ce_specversion, ce_id, ce_source, ce_type, ce_subject, ce_time,
         content-type, tw_received_ns, and traceparent when the producer sent one
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tickwire.events import headers as h
from tickwire.events import wire
from tickwire.events.ids import ulids
from tickwire.events.kinds import BY_TYPE, EventData

#: One ticks.raw record: key, value, headers.
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]

_TYPES = {t: t.encode() for t in BY_TYPE}
_encode = wire.ENCODER.encode


class ValidEvent(Protocol):
    """A valid, normalized event: its CloudEvents type (a key of `kinds.BY_TYPE`), the
    producer's id and source when it gave them, and its data (time in UTC)."""

    @property
    def type(self) -> str: ...

    @property
    def id(self) -> str | None: ...

    @property
    def source(self) -> str | None: ...

    @property
    def data(self) -> EventData: ...


def build_records(
    events: Sequence[ValidEvent],
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
