"""The Kafka records one batch publishes: state updates, closed bars, late events and
dead letters, each with its CloudEvents headers (binary mode)."""

from __future__ import annotations

from tickwire.events import headers as h
from tickwire.events import types
from tickwire.events.wire import ENCODER, TickerState
from tickwire.kafka.batches import OutgoingRecord
from tickwire.kafka.deadletter import dead_letter_headers
from tickwire.processor.aggregator import BarChange, BatchOutcome

_SOURCE = types.PROCESSOR_SOURCE.encode()
_UPDATE = types.TICKER_UPDATE.encode()
_BAR = types.BAR.encode()


def _rfc3339(wire_time: object) -> bytes:
    return ENCODER.encode(wire_time)[1:-1]


def _headers(
    event_id: bytes, kind: bytes, symbol: bytes, time: object, version: bytes, received: int | None
) -> list[tuple[str, bytes]]:
    headers = h.cloudevent(
        id_=event_id, source=_SOURCE, type_=kind, subject=symbol, time=_rfc3339(time)
    )
    headers.append((h.VERSION, version))
    if received is not None:
        headers.append((h.RECEIVED_NS, str(received).encode()))
    return headers


def update_record(topic: str, state: TickerState) -> OutgoingRecord:
    """A ticker.updates record: the symbol's whole state, id `<symbol>:<version>`."""
    symbol = state.symbol.encode()
    version = str(state.version).encode()
    headers = _headers(
        symbol + b":" + version, _UPDATE, symbol, state.time, version, state.received_ns
    )
    return OutgoingRecord(topic, symbol, ENCODER.encode(state), headers)


def bar_record(topic: str, change: BarChange, *, final: bool) -> OutgoingRecord:
    """A ticker.bars record, id `<symbol>:<interval>:<start>` (+ `:<version>` if forming)."""
    bar = change.bar.to_wire(change.symbol, change.interval, final=final)
    symbol = bar.symbol.encode()
    version = str(bar.version).encode()
    event_id = b":".join((symbol, bar.interval.encode(), _rfc3339(bar.start)))
    if not final:
        event_id += b":" + version
    headers = _headers(event_id, _BAR, symbol, bar.end, version, bar.received_ns)
    return OutgoingRecord(topic, symbol, ENCODER.encode(bar), headers)


def batch_records(
    outcome: BatchOutcome,
    *,
    updates_topic: str,
    bars_topic: str,
    late_topic: str,
    dlq_topic: str,
    forming_bars: bool = False,
) -> list[OutgoingRecord]:
    """Everything the batch publishes, in a stable order."""
    records = [update_record(updates_topic, state) for state in outcome.updates]
    records.extend(bar_record(bars_topic, change, final=True) for change in outcome.closed)
    if forming_bars:
        records.extend(bar_record(bars_topic, change, final=False) for change in outcome.forming)
    records.extend(
        OutgoingRecord(late_topic, r.key, r.value, list(r.headers or ())) for r in outcome.late
    )
    records.extend(
        OutgoingRecord(dlq_topic, r.key, r.value, dead_letter_headers(r, exc))
        for r, exc in outcome.dead
    )
    return records
