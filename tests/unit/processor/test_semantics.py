"""The processor's documented semantics (services/processor/README.md): retries with the
same event id are applied once, state and bars follow event time, and bar versions are
compared per (symbol, interval, start) with the final bar beating every forming state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from tests.helpers.processor_tape import START, batches, consumed, quote, retried, trade
from tickwire.events import headers as h
from tickwire.processor.aggregator import Aggregator, BatchOutcome
from tickwire.processor.bars import Interval
from tickwire.processor.state import SymbolState

MS = dt.timedelta(milliseconds=1)


def make(grace_ms: int = 2000, dedup_size: int = 1000) -> Aggregator:
    return Aggregator(
        [Interval.parse("1s"), Interval.parse("1m")], grace_ms * 1000, dedup_size=dedup_size
    )


def run(agg: Aggregator, tape: list[Any], size: int = 10_000) -> list[BatchOutcome]:
    return [agg.apply(b) for b in batches(consumed(tape), size)]


def restarted(agg: Aggregator, grace_ms: int = 2000) -> Aggregator:
    """A new aggregator holding agg's states as they come back from MongoDB."""
    docs = [st.to_doc(st.to_wire(st.offset)) for st in agg.states.values()]
    fresh = make(grace_ms, agg.dedup_size)
    fresh.load(SymbolState.from_doc(msgspec.json.decode(msgspec.json.encode(d))) for d in docs)
    return fresh


# -- idempotent by event id ----------------------------------------------------------
def test_a_retry_with_the_same_id_is_applied_once() -> None:
    first = trade("A", 10.0, 100, START, received_ns=1)
    tape = [first, trade("A", 11.0, 5, START + 10 * MS), retried(first, received_ns=9)]
    agg = make()
    (out,) = run(agg, tape)
    state = out.updates[0]
    assert (state.version, state.volume, state.trades, state.last) == (2, 105, 2, 11.0)
    assert out.duplicates == 1
    assert (out.late, out.dead) == ([], [])
    assert agg.states["A"].offset == 2  # handled: a replay skips it too


def test_the_id_window_survives_a_restart() -> None:
    first = trade("A", 10.0, 100, START)
    agg = make()
    run(agg, [first])
    again = restarted(agg)
    out = again.apply(batches(consumed([retried(first, 5)], first_offset=1), 10)[0])
    assert out.duplicates == 1
    assert out.updates == []
    assert (again.states["A"].day.volume, again.states["A"].version) == (100, 1)


def test_the_same_id_from_another_source_is_another_event() -> None:
    key, value, headers = trade("A", 10.0, 1, START, event_id="e1")
    other = [(n, b"/elsewhere" if n == h.CE_SOURCE else v) for n, v in headers]
    (out,) = run(make(), [(key, value, headers), (key, value, other)])
    assert (out.duplicates, out.updates[0].trades) == (0, 2)


def test_outside_the_count_window_a_retry_is_applied_again() -> None:
    first = trade("A", 10.0, 100, START)
    tape = [first, *(trade("A", 10.0, 1, START + i * MS) for i in range(1, 4))]
    (out,) = run(make(dedup_size=3), [*tape, retried(first, 7)])
    assert (out.duplicates, out.updates[0].volume) == (0, 203)  # documented limitation


def test_a_record_without_an_id_is_dead_lettered() -> None:
    key, value, headers = trade("A", 10.0, 1, START)
    (out,) = run(make(), [(key, value, [(n, v) for n, v in headers if n != h.CE_ID])])
    assert [str(exc) for _, exc in out.dead] == ["missing ce_id (the event's idempotency key)"]
    assert out.updates == []


# -- event time ------------------------------------------------------------------------
def test_a_late_trade_in_grace_counts_but_does_not_move_last_back() -> None:
    tape = [
        trade("A", 10.0, 1, START + 100 * MS),
        trade("A", 11.0, 2, START + 900 * MS),
        trade("A", 9.0, 4, START + 500 * MS),  # out of order, in grace
    ]
    (out,) = run(make(), tape)
    state = out.updates[0]
    assert (state.last, state.last_size, state.last_time) == (11.0, 2, START + 900 * MS)
    assert (state.volume, state.trades, state.version) == (7, 3, 3)
    assert state.vwap == (10 + 22 + 36) / 7
    assert (state.open, state.high, state.low) == (10.0, 11.0, 9.0)
    assert state.time == START + 900 * MS


def test_bar_open_and_close_follow_event_time() -> None:
    tape = [
        trade("A", 10.0, 1, START + 300 * MS),
        trade("A", 12.0, 1, START + 600 * MS),
        trade("A", 8.0, 1, START + 100 * MS),  # earliest: the open
        trade("A", 9.0, 1, START + 450 * MS),  # neither
        trade("A", 20.0, 1, START + 3500 * MS),  # closes the first 1s bar
    ]
    (out,) = run(make(), tape)
    (closed,) = [c for c in out.closed if c.interval.name == "1s"]
    bar = closed.bar.to_wire("A", closed.interval, final=True)
    assert (bar.open, bar.high, bar.low, bar.close, bar.trades) == (8.0, 12.0, 8.0, 12.0, 4)


def test_equal_event_times_the_later_arrival_closes_and_the_first_opens() -> None:
    tape = [trade("A", p, 1, START + 200 * MS) for p in (10.0, 11.0, 12.0)]
    (out,) = run(make(), tape)
    bar = next(c.bar for c in out.forming if c.interval.name == "1s")
    assert (bar.open, bar.close) == (10.0, 12.0)
    assert out.updates[0].last == 12.0


def test_session_open_is_the_earliest_trade_of_the_day() -> None:
    tape = [trade("A", 10.0, 1, START + 900 * MS), trade("A", 7.0, 1, START + 200 * MS)]
    (out,) = run(make(), tape)
    assert (out.updates[0].open, out.updates[0].last) == (7.0, 10.0)
    assert out.updates[0].change == 3.0


def test_an_older_quote_never_overwrites_a_newer_one() -> None:
    tape = [
        quote("A", 10.0, 10.2, START + 500 * MS),
        quote("A", 9.0, 9.2, START + 300 * MS),  # a retry or out of order: superseded
    ]
    (out,) = run(make(), tape)
    assert (out.updates[0].bid, out.updates[0].ask, out.updates[0].version) == (10.0, 10.2, 1)
    assert [r.offset for r in out.late] == [1]


def test_a_quote_of_the_same_time_replaces_the_held_one() -> None:
    tape = [quote("A", 10.0, 10.2, START), quote("A", 10.1, 10.3, START)]
    (out,) = run(make(), tape)
    assert (out.updates[0].bid, out.updates[0].version) == (10.1, 2)


# -- versions per stream ---------------------------------------------------------------
def test_bar_versions_grow_per_bar_and_the_final_beats_every_forming_state() -> None:
    agg = make(grace_ms=0)
    tape = [trade("A", 10.0, 1, START), trade("A", 11.0, 1, START + 10 * MS)]
    versions = []  # bars are mutable: read each batch's version as it is published
    for batch in batches(consumed(tape), 1):
        out = agg.apply(batch)
        versions += [
            c.bar.to_wire("A", c.interval, final=False).version
            for c in out.forming
            if c.interval.name == "1s"
        ]
    assert versions == [2, 4]
    out = agg.apply(
        batches(consumed([trade("A", 12.0, 1, START + 1000 * MS)], first_offset=2), 10)[0]
    )
    (closed,) = out.closed
    assert closed.bar.to_wire("A", closed.interval, final=True).version == 5
    nxt = next(c for c in out.forming if c.interval.name == "1s")
    assert nxt.bar.to_wire("A", nxt.interval, final=False).version == 2  # its own stream


def test_a_bar_changed_and_closed_in_one_batch_is_published_final_only() -> None:
    tape = [trade("A", 10.0, 1, START), trade("A", 11.0, 1, START + 1000 * MS)]
    (out,) = run(make(grace_ms=0), tape)
    assert [(c.interval.name, c.bar.start_us) for c in out.closed] == [
        ("1s", out.closed[0].bar.start_us)
    ]
    assert all(c.bar is not out.closed[0].bar for c in out.forming)


def test_a_retry_older_than_the_horizon_is_late_and_its_id_forgotten() -> None:
    first = trade("A", 10.0, 100, START)
    agg = make()
    (out,) = run(agg, [first, trade("A", 11.0, 1, START + dt.timedelta(seconds=70))])
    assert len(agg.states["A"].seen) == 1  # the first id fell out of the 62 s horizon
    out = agg.apply(batches(consumed([retried(first, 3)], first_offset=2), 10)[0])
    assert ([r.offset for r in out.late], out.duplicates, out.updates) == ([2], 0, [])
    assert agg.states["A"].day.volume == 101


def test_a_trade_whose_bar_would_end_past_the_calendar_is_dead_lettered() -> None:
    from tickwire.processor.outputs import batch_records

    edge = dt.datetime(9999, 12, 31, 23, 59, 30, tzinfo=dt.UTC)  # its 1m bar ends in 10000
    tape = [trade("A", 10.0, 1, edge), quote("A", 9.0, 9.5, edge), trade("A", 10.0, 1, START)]
    (out,) = run(make(), tape)
    assert [(r.offset, str(e)) for r, e in out.dead] == [
        (0, "time is too close to the calendar's edge for its bars")
    ]
    topics = {"updates_topic": "u", "bars_topic": "b", "late_topic": "l", "dlq_topic": "d"}
    records = batch_records(out, **topics, forming_bars=True)  # nothing overflows
    assert sorted(r.topic for r in records) == ["d", "l", "u"]  # the old trade is late
