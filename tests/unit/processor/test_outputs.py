"""The records a batch publishes: values and CloudEvents headers."""

from __future__ import annotations

import datetime as dt

from tests.helpers.processor_tape import START, batches, consumed, trade
from tickwire.events.wire import BAR_DECODER, STATE_DECODER
from tickwire.processor.aggregator import Aggregator
from tickwire.processor.bars import Interval
from tickwire.processor.outputs import batch_records

TOPICS = {"updates_topic": "u", "bars_topic": "b", "late_topic": "l", "dlq_topic": "d"}


def test_update_bar_late_and_dead_letter_records() -> None:
    agg = Aggregator([Interval.parse("1s")], 0)
    tape = [
        trade("A", 10.0, 2, START, received_ns=111),
        trade("A", 11.0, 2, START + dt.timedelta(seconds=1), received_ns=222),
        trade("A", 9.0, 1, START + dt.timedelta(milliseconds=10), received_ns=333),  # late
        (b"A", b"junk", [("ce_type", b"io.tickwire.trade.v1")]),
    ]
    out = agg.apply(batches(consumed(tape), 10)[0])
    records = batch_records(out, **TOPICS)
    assert [r.topic for r in records] == ["u", "b", "l", "d"]
    update, bar, late, dead = records
    state = STATE_DECODER.decode(update.value)
    assert (update.key, state.version, state.last, state.received_ns) == (b"A", 2, 11.0, 222)
    assert dict(update.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"A:2",
        "ce_source": b"/tickwire/processor",
        "ce_type": b"io.tickwire.ticker.update.v1",
        "ce_subject": b"A",
        "ce_time": b"2026-11-27T14:30:01Z",
        "content-type": b"application/json",
        "tw_version": b"2",
        "tw_received_ns": b"222",
    }
    closed = BAR_DECODER.decode(bar.value)
    assert (closed.start, closed.close, closed.volume, closed.final, closed.version) == (
        START,
        10.0,
        2,
        True,
        3,  # 2 * one trade + final
    )
    assert dict(bar.headers)["ce_id"] == b"A:1s:2026-11-27T14:30:00Z"
    assert dict(bar.headers)["ce_type"] == b"io.tickwire.bar.v1"
    assert late.value == tape[2][1]
    assert late.headers == tape[2][2]
    headers = dict(dead.headers)
    assert headers["tw_source_offset"] == b"3"
    assert headers["tw_source_partition"] == b"0"
    assert b"undecodable" in headers["tw_error"]
    assert dead.value == b"junk"


def test_forming_bars_are_published_only_when_asked() -> None:
    agg = Aggregator([Interval.parse("1s")], 0)
    out = agg.apply(batches(consumed([trade("A", 10.0, 2, START, received_ns=5)]), 10)[0])
    assert [r.topic for r in batch_records(out, **TOPICS)] == ["u"]
    records = batch_records(out, **TOPICS, forming_bars=True)
    assert [r.topic for r in records] == ["u", "b"]
    forming = BAR_DECODER.decode(records[1].value)
    assert (forming.final, forming.open, forming.volume, forming.version) == (False, 10.0, 2, 2)
    assert dict(records[1].headers)["ce_id"] == b"A:1s:2026-11-27T14:30:00Z:2"
