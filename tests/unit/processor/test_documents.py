"""The stored document formats (tickwire.mongo.documents): what the processor writes is
exactly what the gateway reads back, and a document of the wrong shape is an error."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers.processor_tape import START, batches, consumed, quote, trade
from tickwire.events.wire import Bar
from tickwire.mongo.documents import (
    DocumentError,
    bar_id,
    decode_bar,
    decode_quote,
    encode_bar,
    encode_quote,
)
from tickwire.processor.aggregator import Aggregator
from tickwire.processor.bars import Interval
from tickwire.processor.state import SymbolState
from tickwire.processor.store import bar_doc

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
    back = SymbolState.from_doc(doc)  # the processor's view: everything to resume
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


def test_documents_of_the_wrong_shape_are_errors() -> None:
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
