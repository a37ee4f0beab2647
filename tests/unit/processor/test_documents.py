"""The stored document formats (tickwire.mongo.documents): what the processor writes is
exactly what the gateway reads back, and a document of the wrong shape is an error."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers.processor_tape import START, batches, consumed, quote, trade
from tickwire.events.wire import Bar
from tickwire.mongo.documents import (
    BARS_PER_BUCKET,
    DocumentError,
    bar_id,
    bucket_write,
    decode_bar,
    decode_bucket,
    decode_quote,
    encode_bar,
    encode_quote,
)
from tickwire.processor.aggregator import Aggregator
from tickwire.processor.bars import Interval, to_us
from tickwire.processor.state import SymbolState
from tickwire.processor.store import Documents, StateStore, bar_doc

MS = dt.timedelta(milliseconds=1)


def test_a_quotes_document_gives_back_the_published_state_and_the_processor_state() -> None:
    agg = Aggregator([Interval.parse("1s")], 0)
    tape = [trade("A", 10.0, 2, START + 123 * MS), quote("A", 9.9, 10.1, START + 124 * MS)]
    agg.apply(batches(consumed(tape), 10)[0])
    state = agg.states["A"]
    wire = state.to_wire(0)
    doc = state.to_doc(wire)
    assert doc["_id"] == "A"
    assert decode_quote(doc) == wire  # the gateway's view: bookkeeping ignored
    # the processor's view: everything to resume (the session comes from the calendar)
    back = SymbolState.from_doc(doc, state.session)
    assert back.to_doc(back.to_wire(0)) == doc


def test_a_bars_document_round_trips_and_is_keyed_by_symbol_interval_start() -> None:
    agg = Aggregator([Interval.parse("1s")], 0)
    out = agg.apply(batches(consumed([trade("A", 10.0, 2, START)]), 10)[0])
    (change,) = out.forming
    doc = bar_doc(change, final=False)
    assert doc["_id"] == bar_id("A", "1s", change.bar.start_us) == f"A|1s|{change.bar.start_us}"
    assert isinstance(doc["start"], dt.datetime)
    assert decode_bar(doc) == change.bar.to_wire("A", change.interval, final=False)
    naive = {**doc, "start": START.replace(tzinfo=None), "end": doc["end"].replace(tzinfo=None)}
    assert decode_bar(naive).start == START  # BSON dates read without tz_aware are UTC


def _bar(second: int, close: float = 1.0, interval: str = "1s") -> Bar:
    step = dt.timedelta(seconds=60 if interval == "1m" else 1)
    start = START + second * step
    return Bar(
        symbol="A", interval=interval, start=start, end=start + step, open=1, high=2, low=0.5,
        close=close, volume=3, vwap=1.5, trades=2, version=5, received_ns=7,
    )  # fmt: skip


def _stored(*writes: object) -> dict[str, dict[str, object]]:
    """What MongoDB holds after these bucket writes ($set with upsert), built by hand."""
    held: dict[str, dict[str, object]] = {}
    for write in writes:
        update = write.update()  # type: ignore[attr-defined]
        doc = held.setdefault(write.id, {"_id": write.id, "bars": {}})  # type: ignore[attr-defined]
        for path, value in update["$set"].items():
            if path.startswith("bars."):
                doc["bars"][path[5:]] = value  # type: ignore[index]
            else:
                doc[path] = value
    return held


def test_bars_are_stored_in_buckets_of_their_period_and_read_back_exactly() -> None:
    bars = [_bar(s, close=s) for s in (0, 1, BARS_PER_BUCKET - 1, BARS_PER_BUCKET, 500)]
    held = _stored(*map(bucket_write, bars))
    span_us = BARS_PER_BUCKET * 1_000_000
    assert len(held) == len({to_us(b.start) // span_us for b in bars})
    back = sorted((b for doc in held.values() for b in decode_bucket(doc)), key=lambda b: b.start)
    assert back == bars
    for doc in held.values():
        assert doc["start"] <= min(b.start for b in decode_bucket(doc))
        assert doc["end"] - doc["start"] == dt.timedelta(seconds=BARS_PER_BUCKET)  # type: ignore[operator]
    again = _stored(*map(bucket_write, bars), *map(bucket_write, bars))  # a replay
    assert again == held
    forming = _bar(3)
    forming.final, forming.received_ns = False, None
    write = bucket_write(forming)
    assert decode_bucket(_stored(write)[write.id]) == [forming]


def test_absorb_keeps_every_closed_bar_and_the_latest_quote() -> None:
    def docs(*seconds: int) -> Documents:
        agg = Aggregator([Interval.parse("1s")], 0)
        tape = [trade("A", 10.0 + s, 1, START + s * 1000 * MS) for s in seconds]
        tape.append(trade("A", 9.0, 1, START + (max(seconds) + 5) * 1000 * MS))
        return StateStore.documents(agg.apply(batches(consumed(tape), 1000)[0]))

    early, late = docs(0, 1), docs(0, 1, 2, BARS_PER_BUCKET + 1)
    late_bars = {b.start for w in late.bars.values() for b in decode_bucket(_stored(w)[w.id])}
    early.absorb(late)
    assert [q.raw for q in early.quotes.values()] == [q.raw for q in late.quotes.values()]
    merged = {b.start for w in early.bars.values() for b in decode_bucket(_stored(w)[w.id])}
    assert merged == late_bars
    assert len(merged) == 4
    assert sum(len(w.bars) for w in early.bars.values()) == 4
    # absorbing copied the later batch's writes: changing these leaves that one alone
    before = {k: dict(w.bars) for k, w in late.bars.items()}
    early.absorb(docs(0, 1, 2, 3))
    assert {k: dict(w.bars) for k, w in late.bars.items()} == before


def test_a_bar_off_its_grid_is_an_error() -> None:
    off = _bar(0)
    off.start += MS
    with pytest.raises(DocumentError):
        bucket_write(off)


def test_documents_of_the_wrong_shape_are_errors() -> None:
    with pytest.raises(DocumentError):
        decode_bucket({"_id": "x", "symbol": "A", "interval": "1s", "bars": {"b1": {}}})
    with pytest.raises(DocumentError):
        decode_quote({"_id": "A", "symbol": "A", "version": "many"})
    with pytest.raises(DocumentError):
        decode_bar({"_id": "x", "symbol": "A"})
    bar = Bar(
        symbol="A", interval="1s", start=START, end=START, open=1, high=1, low=1, close=1,
        volume=1, vwap=1, trades=1,
    )  # fmt: skip
    assert decode_bar(encode_bar(bar)) == bar
    with pytest.raises(DocumentError):
        encode_quote(decode_quote({"symbol": "A", "version": 1}), {"version": 2})
