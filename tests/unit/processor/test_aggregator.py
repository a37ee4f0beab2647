"""The aggregation: session fields, VWAP, quotes, bars, grace, late events, poison,
coalescing and the offset guard — with exact expected numbers."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from tests.helpers.processor_tape import START, batches, consumed, quote, random_tape, trade
from tickwire.events.wire import TickerState
from tickwire.processor.aggregator import Aggregator, BatchOutcome
from tickwire.processor.bars import Interval, from_us
from tickwire.processor.state import SymbolState

S = dt.timedelta(seconds=1)
MS = dt.timedelta(milliseconds=1)


def make(grace_ms: int = 2000, **refs: float) -> Aggregator:
    return Aggregator([Interval.parse("1s"), Interval.parse("1m")], grace_ms * 1000, refs)


def run(agg: Aggregator, tape: list, size: int = 10_000) -> list[BatchOutcome]:
    return [agg.apply(b) for b in batches(consumed(tape), size)]


def test_trades_give_session_fields_vwap_and_change() -> None:
    agg = make()
    (out,) = run(
        agg,
        [
            trade("AAPL", 100.0, 10, START),
            trade("AAPL", 102.0, 30, START + 100 * MS),
            trade("AAPL", 99.0, 60, START + 200 * MS),
        ],
    )
    (state,) = out.updates
    assert state.version == 3
    assert (state.last, state.last_size, state.last_time) == (99.0, 60, START + 200 * MS)
    assert (state.open, state.high, state.low) == (100.0, 102.0, 99.0)
    assert state.volume == 100
    assert state.trades == 3
    assert state.vwap == pytest.approx((1000 + 3060 + 5940) / 100)  # 100.0
    assert state.change == -1.0
    assert state.change_pct == pytest.approx(-1.0)
    assert state.source is not None
    assert (state.source.partition, state.source.first, state.source.last) == (0, 0, 2)
    assert state.received_ns == 1


def test_reference_price_setting_is_the_change_base() -> None:
    agg = make(AAPL=95.0)
    (out,) = run(agg, [trade("AAPL", 100.0, 1, START)])
    assert out.updates[0].prev_close == 95.0
    assert out.updates[0].change == 5.0
    assert out.updates[0].change_pct == pytest.approx(100 * 5 / 95)


def test_quotes_give_spread_and_mid() -> None:
    agg = make()
    (out,) = run(agg, [quote("MSFT", 10.0, 10.5, START, bid_size=300, ask_size=400)])
    state = out.updates[0]
    assert (state.bid, state.ask, state.bid_size, state.ask_size) == (10.0, 10.5, 300, 400)
    assert state.spread == 0.5
    assert state.mid == 10.25
    assert state.last is None
    assert state.trades == 0


def test_the_next_exchange_session_starts_a_new_session_with_previous_close() -> None:
    agg = make()
    friday = dt.datetime(2026, 11, 27, 17, 59, 59, tzinfo=dt.UTC)  # early close 18:00 UTC
    (out,) = run(
        agg,
        [
            trade("X", 10.0, 5, friday),
            trade("X", 12.0, 5, friday + 0.5 * S),  # the close: last regular trade
            trade("X", 13.0, 1, friday + 60 * S),  # post-market: not the close
            trade("X", 11.0, 2, dt.datetime(2026, 11, 30, 14, 31, tzinfo=dt.UTC)),
        ],
    )
    state = out.updates[0]
    assert state.prev_close == 12.0
    assert (state.open, state.high, state.low, state.volume, state.trades) == (
        11.0,
        11.0,
        11.0,
        2,
        1,
    )
    assert state.change == -1.0


def test_one_update_per_symbol_per_batch() -> None:
    agg = make()
    tape = [trade("AAPL", 100 + i % 7, 1, START + i * MS) for i in range(500)]
    tape += [trade("MSFT", 50.0, 1, START + i * MS) for i in range(3)]
    (out,) = run(agg, tape)
    assert [(u.symbol, u.version) for u in out.updates] == [("AAPL", 500), ("MSFT", 3)]
    assert len(out.states) == 2


def test_bars_close_after_end_plus_grace() -> None:
    agg = make(grace_ms=500)
    t0 = START  # 14:30:00 exactly
    first = run(
        agg,
        [
            trade("A", 10.0, 1, t0 + 100 * MS),
            trade("A", 12.0, 3, t0 + 400 * MS),
            trade("A", 9.0, 2, t0 + 900 * MS),
            trade("A", 11.0, 4, t0 + 1200 * MS),  # next bar; watermark 1.2 s < 1.5 s
        ],
    )[0]
    assert first.closed == []
    assert [(c.interval.name, c.bar.start_us) for c in first.forming] == [
        ("1s", first.forming[0].bar.start_us),
        ("1s", first.forming[1].bar.start_us),
        ("1m", first.forming[2].bar.start_us),
    ]
    second = agg.apply(
        batches(consumed([trade("A", 13.0, 1, t0 + 1500 * MS)], first_offset=4), 10)[0]
    )
    (closed,) = second.closed
    bar = closed.bar.to_wire("A", closed.interval, final=True)
    assert (bar.interval, bar.start, bar.end) == ("1s", t0, t0 + S)
    assert (bar.open, bar.high, bar.low, bar.close) == (10.0, 12.0, 9.0, 9.0)
    assert bar.volume == 6
    assert bar.trades == 3
    assert bar.vwap == pytest.approx((10 + 36 + 18) / 6)
    assert bar.version == 2 * 3 + 1  # three trades, final
    assert bar.final is True


def test_trade_within_grace_joins_its_earlier_bar() -> None:
    agg = make(grace_ms=2000)
    (out,) = run(
        agg,
        [
            trade("A", 10.0, 1, START + 500 * MS),
            trade("A", 11.0, 1, START + 2500 * MS),  # watermark 2.5 s < 1 s + 2 s
            trade("A", 12.0, 5, START + 700 * MS),  # still accepted into [0 s, 1 s)
        ],
    )
    assert out.late == []
    bars_1s = {c.bar.start_us: c.bar for c in out.forming if c.interval.name == "1s"}
    first = bars_1s[min(bars_1s)]
    assert (first.open, first.close, first.high, first.volume, first.trades) == (
        10.0,
        12.0,
        12.0,
        6,
        2,
    )
    assert out.updates[0].last == 11.0  # the latest trade in event time, not the last to arrive
    assert out.updates[0].volume == 7  # but the late one counts
    assert out.updates[0].time == START + 2500 * MS  # time is the watermark


def test_late_trade_goes_aside_and_changes_nothing() -> None:
    agg = make(grace_ms=1000)
    tape = [
        trade("A", 10.0, 1, START + 100 * MS),
        trade("A", 11.0, 1, START + 2100 * MS),  # closes [0 s, 1 s)
        trade("A", 99.0, 7, START + 500 * MS),  # falls in the closed bar: late
    ]
    (out,) = run(agg, tape)
    assert [r.offset for r in out.late] == [2]
    state = out.updates[0]
    assert (state.version, state.last, state.volume, state.trades) == (2, 11.0, 2, 2)
    assert [(c.interval.name, c.bar.close, c.bar.volume) for c in out.closed] == [("1s", 10.0, 1)]
    assert agg.states["A"].offset == 2  # handled: a replay will not route it again


@pytest.mark.parametrize(
    ("value", "kind", "error"),
    [
        (b"{not json", "io.tickwire.trade.v1", "undecodable"),
        (
            b'{"symbol":"A","price":-1,"size":1,"time":"2026-11-27T14:30:00Z"}',
            "io.tickwire.trade.v1",
            "price",
        ),
        (
            b'{"symbol":"A","price":1,"size":0,"time":"2026-11-27T14:30:00Z"}',
            "io.tickwire.trade.v1",
            "size",
        ),
        (
            b'{"symbol":"A","price":1,"size":1,"time":"2026-11-27T14:30:00"}',
            "io.tickwire.trade.v1",
            "timezone",
        ),
        (
            b'{"symbol":"B","price":1,"size":1,"time":"2026-11-27T14:30:00Z"}',
            "io.tickwire.trade.v1",
            "key",
        ),
        (
            b'{"symbol":"A","bid":2,"bid_size":1,"ask":1,"ask_size":1,"time":"2026-11-27T14:30:00Z"}',
            "io.tickwire.quote.v1",
            "above ask",
        ),
        (
            b'{"symbol":"A","price":1,"size":1,"time":"2026-11-27T14:30:00Z"}',
            "io.tickwire.nope",
            "ce_type",
        ),
    ],
)
def test_poison_records_are_dead_lettered_and_the_batch_goes_on(
    value: bytes, kind: str, error: str
) -> None:
    agg = make()
    good = trade("A", 10.0, 1, START)
    bad = (b"A", value, [("ce_type", kind.encode())])
    (out,) = run(agg, [bad, good])
    ((record, exc),) = out.dead
    assert record.offset == 0
    assert error in str(exc)
    assert [(u.symbol, u.version) for u in out.updates] == [("A", 1)]
    assert out.commit  # the poison record's offset is committed with the rest


def test_replay_at_or_below_the_stored_offset_changes_nothing() -> None:
    tape = random_tape(symbols=5, events=400, seed=3)
    records = consumed(tape, partitions=2)
    agg = make()
    for batch in batches(records[:250], 50):
        agg.apply(batch)
    saved = {s: st.to_doc(st.to_wire(st.offset)) for s, st in agg.states.items()}
    restored = make()
    restored.load(SymbolState.from_doc(doc) for doc in saved.values())
    out = restored.apply(batches(records[:250], 1000)[0])
    assert out.skipped == 250
    assert out.updates == []
    assert out.closed == []


def _final(agg: Aggregator) -> dict[str, dict[str, object]]:
    return {
        s: {**st.to_doc(st.to_wire(st.offset)), "source": None}
        for s, st in sorted(agg.states.items())
    }


@pytest.mark.parametrize(("size", "crash_at"), [(1, 37), (13, 120), (97, 400), (5000, 999)])
def test_any_batching_and_restart_point_gives_the_same_result(size: int, crash_at: int) -> None:
    """A restart from MongoDB's documents at any point, with the committed offset
    anywhere before it, ends in exactly the state of an uninterrupted run, and every
    version is emitted with the same content both times."""
    records = consumed(
        random_tape(symbols=8, events=1200, seed=11, step_ms=40, late_every=53), partitions=3
    )
    straight = make()
    straight_updates: dict[tuple[str, int], TickerState] = {}
    for batch in batches(records, 10_000):
        for u in straight.apply(batch).updates:
            straight_updates[(u.symbol, u.version)] = u

    crashed = make()
    seen: dict[tuple[str, int], TickerState] = {}
    for batch in batches(records[:crash_at], size):
        for u in crashed.apply(batch).updates:
            seen[(u.symbol, u.version)] = u
    docs = [st.to_doc(st.to_wire(st.offset)) for st in crashed.states.values()]
    resumed = make()
    resumed.load(SymbolState.from_doc(msgspec.json.decode(msgspec.json.encode(d))) for d in docs)
    replay_from = max(0, crash_at - 2 * size - 5)  # the last commit lagged behind
    for batch in batches(records[replay_from:], size):
        for u in resumed.apply(batch).updates:
            seen[(u.symbol, u.version)] = u
    assert _final(resumed) == _final(straight)
    for key, update in seen.items():
        if key in straight_updates:
            a, b = (
                msgspec.structs.replace(update, source=None),
                msgspec.structs.replace(straight_updates[key], source=None),
            )
            assert a == b


def test_times_survive_the_document_round_trip_exactly() -> None:
    agg = make()
    t = dt.datetime(2026, 11, 27, 14, 30, 1, 123457, tzinfo=dt.UTC)
    run(agg, [trade("A", 10.0, 1, t)])
    doc = agg.states["A"].to_doc(agg.states["A"].to_wire(0))
    back = SymbolState.from_doc(doc)
    assert back.time == t
    assert back.day.last_time == t
    assert from_us(back.forming["1s"][min(back.forming["1s"])].start_us) == t.replace(microsecond=0)
