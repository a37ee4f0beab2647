"""Property: for any tape (reordering within and beyond grace, duplicates, retries) and
any batching, the records the processor publishes, passed through a consumer's
documented drop rule, deliver every final bar and the latest state of every stream.

The drop rule is written here from docs/architecture.md and the processor README ("a
consumer drops a record whose version is at or below the version it holds for the
stream key: the symbol for ticker.updates, (symbol, interval, start) for ticker.bars"),
not imported from the gateway; the expected streams come from the independent
reference model."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.processor_reference import compute
from tests.helpers.processor_tape import START, batches, consumed, quote, retried, trade
from tickwire.events.wire import BAR_DECODER, STATE_DECODER
from tickwire.processor.aggregator import Aggregator
from tickwire.processor.bars import Interval
from tickwire.processor.outputs import batch_records
from tickwire.processor.state import SymbolState

GRACE_MS = 500
INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}
TOPICS = {"updates_topic": "u", "bars_topic": "b", "late_topic": "l", "dlq_topic": "d"}

step = st.tuples(
    st.sampled_from("AB"),
    st.sampled_from(["trade", "trade", "quote", "retry"]),
    st.integers(min_value=-2 * GRACE_MS, max_value=1500),  # ms relative to the newest time
)


def _tape(steps: list[tuple[str, str, int]]) -> list[Any]:
    tape: list[Any] = []
    newest = 0
    for n, (symbol, kind, delta) in enumerate(steps):
        at_ms = max(0, newest + delta)
        newest = max(newest, at_ms)
        at = START + dt.timedelta(milliseconds=at_ms)
        if kind == "retry" and tape:
            tape.append(retried(tape[n * 7 % len(tape)], received_ns=n + 1))
        elif kind == "quote":
            tape.append(quote(symbol, 10.0 + n, 10.5 + n, at, received_ns=n + 1))
        else:
            tape.append(trade(symbol, 10.0 + n % 13, 1.0 + n % 5, at, received_ns=n + 1))
    return tape


def _fields(struct: Any) -> dict[str, Any]:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}


def _restored(agg: Aggregator) -> Aggregator:
    """What a new owner of the partition starts from: the states as MongoDB holds them."""
    docs = [st.to_doc(st.to_wire(st.offset)) for st in agg.states.values()]
    fresh = Aggregator([Interval.parse(n) for n in INTERVALS], GRACE_MS * 1000)
    fresh.load(SymbolState.from_doc(msgspec.json.decode(msgspec.json.encode(d))) for d in docs)
    return fresh


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=60),
    size=st.integers(1, 12),
    crash_after=st.integers(0, 10),
)
def test_the_drop_rule_keeps_every_final_bar_and_the_latest_state(
    steps: list[tuple[str, str, int]], size: int, crash_after: int
) -> None:
    """crash_after=k > 0: the k-th batch is published, then the process dies before its
    MongoDB write; a new owner restores the stored states and replays from there."""
    records = consumed(_tape(steps))
    agg = Aggregator([Interval.parse(n) for n in INTERVALS], GRACE_MS * 1000)
    held: dict[Any, Any] = {}  # stream key -> newest delivered record
    finals_delivered: list[tuple[str, str, dt.datetime]] = []
    cut = batches(records, size)
    stored = _restored(agg)  # what MongoDB holds after the last completed batch
    n, crashed = 0, False
    while n < len(cut):
        for record in batch_records(agg.apply(cut[n]), **TOPICS, forming_bars=True):
            if record.topic == "u":
                value: Any = STATE_DECODER.decode(record.value)
                key: Any = value.symbol
            elif record.topic == "b":
                value = BAR_DECODER.decode(record.value)
                key = (value.symbol, value.interval, value.start)
            else:
                continue
            if key in held and value.version <= held[key].version:
                continue  # the documented drop rule
            held[key] = value
            if record.topic == "b" and value.final:
                finals_delivered.append(key)
        if n + 1 == crash_after and not crashed:
            crashed = True
            agg = stored  # died after publishing, before the write: replay this batch
            continue
        stored = _restored(agg)
        n += 1

    want = compute(records, INTERVALS, dt.timedelta(milliseconds=GRACE_MS))
    for symbol, quote_doc in want.quotes.items():
        got = _fields(held[symbol])
        for name, value in quote_doc.items():
            if name in got and value is not None:
                assert got[name] == value, (symbol, name)
    closed = {k for k, v in want.bars.items() if v["final"]}
    assert sorted(finals_delivered) == sorted(closed)  # every final bar, once
    for bar_key, bar in want.bars.items():
        got = _fields(held[bar_key])
        assert {k: got[k] for k in bar} == bar, bar_key
