"""Market semantics of the processor (services/processor/README.md, "Sessions",
"Corrections and cancels", "Trading status"), one documented rule per test, with
exact numbers worked out by hand from the rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from tests.helpers.market_tape import cancel, correction, status
from tests.helpers.processor_tape import batches, consumed, quote, trade
from tickwire.processor.aggregator import Aggregator, BatchOutcome
from tickwire.processor.bars import Interval
from tickwire.processor.sessions import Sessions
from tickwire.processor.state import SymbolState

S = dt.timedelta(seconds=1)
UTC = dt.UTC
# Friday 2026-11-27 is an early close on XNYS (13:00 New York = 18:00 UTC)
FRI_OPEN = dt.datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
FRI_CLOSE = dt.datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
MON_OPEN = dt.datetime(2026, 11, 30, 14, 30, tzinfo=UTC)


def make(**kwargs: Any) -> Aggregator:
    return Aggregator([Interval.parse("1s"), Interval.parse("1m")], 2_000_000, **kwargs)


def run(agg: Aggregator, tape: list[Any], size: int = 10_000) -> list[BatchOutcome]:
    return [agg.apply(b) for b in batches(consumed(tape), size)]


def restarted(agg: Aggregator, **kwargs: Any) -> Aggregator:
    docs = [st.to_doc(st.to_wire(st.offset)) for st in agg.states.values()]
    fresh = make(**kwargs)
    fresh.load(SymbolState.from_doc(msgspec.json.decode(msgspec.json.encode(d))) for d in docs)
    return fresh


# -- sessions ------------------------------------------------------------------------
def test_session_phase_follows_the_exchange_calendar() -> None:
    cal = Sessions().default
    phases = []
    for moment in (
        FRI_OPEN - 2 * S,  # 09:29:58 New York: pre-market
        FRI_OPEN,
        FRI_CLOSE - S,
        FRI_CLOSE,  # early close: post-market from 13:00
        FRI_CLOSE + dt.timedelta(hours=4),  # 17:00 New York: closed
        dt.datetime(2026, 11, 28, 15, tzinfo=UTC),  # Saturday: Friday's session, closed
        dt.datetime(2026, 11, 30, 9, tzinfo=UTC),  # Monday 04:00 New York: pre-market
    ):
        us = (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)
        session = cal.session(us)
        phases.append((session.date, session.phase(us)))
    assert phases == [
        ("2026-11-27", "pre"),
        ("2026-11-27", "regular"),
        ("2026-11-27", "regular"),
        ("2026-11-27", "post"),
        ("2026-11-27", "closed"),
        ("2026-11-27", "closed"),
        ("2026-11-30", "pre"),
    ]


def test_the_session_rolls_over_at_the_next_pre_market_with_the_previous_close() -> None:
    agg = make()
    outs = run(
        agg,
        [
            trade("A", 10.0, 1, FRI_OPEN + S),
            trade("A", 12.0, 1, FRI_CLOSE - S),  # Friday's close
            trade("A", 15.0, 1, FRI_CLOSE + 60 * S),  # post-market: not the close
            quote("A", 9.0, 9.5, dt.datetime(2026, 11, 30, 9, 0, 1, tzinfo=UTC)),
            trade("A", 11.0, 2, dt.datetime(2026, 11, 30, 10, tzinfo=UTC)),  # pre-market
            trade("A", 13.0, 3, MON_OPEN + S),
        ],
        size=1,
    )
    fri_post, mon_pre_quote, mon_pre, mon = (o.updates[0] for o in outs[2:])
    assert fri_post.session is not None
    assert fri_post.session.phase == "post"
    assert (fri_post.session.open, fri_post.session.high, fri_post.session.low) == (10, 12, 10)
    assert (fri_post.high, fri_post.volume) == (15.0, 3)  # the day counts extended hours
    assert mon_pre_quote.session is not None
    assert (mon_pre_quote.session.date, mon_pre_quote.session.phase) == ("2026-11-30", "pre")
    assert (mon_pre_quote.prev_close, mon_pre_quote.session.open) == (12.0, None)
    assert (mon_pre_quote.volume, mon_pre_quote.last) == (0, None)
    assert mon_pre.session is not None
    assert mon_pre.session.open is None
    assert mon.session is not None
    assert (mon.session.open, mon.session.prev_close, mon.session.change) == (13.0, 12.0, 1.0)
    assert mon.session.change_pct == 1.0 / 12.0 * 100.0
    assert (mon.open, mon.volume, mon.change) == (11.0, 5, 1.0)


def test_a_holiday_belongs_to_the_trading_day_before_it() -> None:
    # Friday 2026-07-03: Independence Day observed, XNYS closed
    thursday = dt.datetime(2026, 7, 2, 19, 59, tzinfo=UTC)
    agg = make()
    outs = run(
        agg,
        [
            trade("A", 20.0, 1, thursday),
            trade("A", 21.0, 1, dt.datetime(2026, 7, 3, 15, tzinfo=UTC)),  # holiday
            trade("A", 22.0, 1, dt.datetime(2026, 7, 6, 13, 31, tzinfo=UTC)),  # Monday
        ],
        size=1,
    )
    holiday, monday = outs[1].updates[0], outs[2].updates[0]
    assert holiday.session is not None
    assert (holiday.session.date, holiday.session.phase) == ("2026-07-02", "closed")
    assert holiday.prev_close is None
    assert monday.session is not None
    assert (monday.session.date, monday.prev_close, monday.session.open) == (
        "2026-07-06",
        20.0,
        22.0,
    )


def test_rollover_survives_a_restart_in_between() -> None:
    agg = make()
    run(agg, [trade("A", 10.0, 1, FRI_OPEN + S)])
    again = restarted(agg)
    (out,) = again.apply(
        batches(consumed([trade("A", 11.0, 1, MON_OPEN)], first_offset=1), 10)[0]
    ).updates
    assert out.session is not None
    assert (out.prev_close, out.session.date, out.open) == (10.0, "2026-11-30", 11.0)


# -- trading status ------------------------------------------------------------------
def test_a_halt_and_its_resumption_are_carried_to_the_state() -> None:
    agg = make()
    outs = run(
        agg,
        [
            status("A", "halted", FRI_OPEN + 5 * S, "LULD pause", event_id="s1"),
            status("A", "trading", FRI_OPEN + 305 * S, None, event_id="s2"),
            status("A", "halted", FRI_OPEN + 100 * S, "too old", event_id="s3"),
        ],
        size=1,
    )
    halted, resumed = outs[0].updates[0], outs[1].updates[0]
    assert halted.status is not None
    assert (halted.status.state, halted.status.reason) == ("halted", "LULD pause")
    assert halted.status.since == FRI_OPEN + 5 * S
    assert resumed.status is not None
    assert resumed.status.state == "trading"
    assert (resumed.status.reason, resumed.version) == (None, 2)
    assert len(outs[2].late) == 1
    assert outs[2].updates == []


# -- corrections and cancels ---------------------------------------------------------
def _tape() -> list[Any]:
    t = FRI_OPEN + 10 * S
    return [
        trade("A", 10.0, 100, t, event_id="t1"),
        trade("A", 12.0, 50, t + 0.25 * S, event_id="t2"),  # the 1s bar's and day's high
        trade("A", 11.0, 10, t + 1.5 * S, event_id="t3"),
    ]


def test_a_correction_recomputes_the_bars_and_the_session() -> None:
    agg = make()
    t = FRI_OPEN + 10 * S
    (out,) = run(agg, [*_tape(), correction("A", "t2", 10.5, 20, t + 1.6 * S, event_id="c1")])
    (state,) = out.updates
    # trades now: 10 x 100, 10.5 x 20, 11 x 10
    assert (state.high, state.low, state.volume, state.trades) == (11.0, 10.0, 130, 3)
    assert state.vwap == (1000 + 210 + 110) / 130
    assert state.corrections == 1
    assert state.version == 4
    forming = {(c.interval.name, c.bar.start_us): c.bar for c in out.forming}
    first_second = forming[("1s", (t - dt.datetime(1970, 1, 1, tzinfo=UTC)) // S * 1_000_000)]
    assert (first_second.high, first_second.close, first_second.volume) == (10.5, 10.5, 120)
    assert first_second.version(final=False) == 2 * 3  # two trades + one correction
    (record,) = out.corrections
    assert (record.kind, record.ref_id, record.before, record.after) == (
        "correction",
        "t2",
        (12.0, 50),
        (10.5, 20),
    )


def test_a_correction_of_a_closed_bar_republishes_it_final_with_a_higher_version() -> None:
    agg = make()
    t = FRI_OPEN + 10 * S
    first = run(agg, [*_tape(), trade("A", 11.0, 1, t + 4 * S, event_id="t4")])[0]
    closed = [(c.interval.name, c.bar.version(final=True)) for c in first.closed]
    assert closed == [("1s", 2 * 2 + 1), ("1s", 2 * 1 + 1)]  # t1+t2, then t3
    (out,) = run_more(agg, [cancel("A", "t1", t + 4.5 * S, event_id="x1")], first_offset=4)
    (bar,) = [c for c in out.closed if c.interval.name == "1s"]
    assert (bar.bar.open, bar.bar.low, bar.bar.volume, bar.bar.trades) == (12.0, 12.0, 50, 1)
    assert bar.bar.version(final=True) == 2 * 3 + 1
    (state,) = out.updates
    assert (state.open, state.low, state.volume, state.trades) == (12.0, 11.0, 61, 3)


def run_more(agg: Aggregator, tape: list[Any], first_offset: int) -> list[BatchOutcome]:
    return [agg.apply(b) for b in batches(consumed(tape, first_offset=first_offset), 10_000)]


def test_garbage_corrections_are_dead_lettered_and_change_nothing() -> None:
    agg = make()
    t = FRI_OPEN + 10 * S
    outs = run(
        agg,
        [
            *_tape(),
            trade("B", 50.0, 1, t, event_id="b1"),
            correction("A", "nope", 1.0, 1, t + 2 * S),  # unknown trade
            correction("A", "b1", 1.0, 1, t + 2 * S),  # another symbol's trade
            cancel("A", "t3", t + 2 * S, event_id="k1"),
            cancel("A", "t3", t + 2 * S),  # already cancelled
        ],
        size=1,
    )
    reasons = [str(exc) for o in outs for _, exc in o.dead]
    assert len(reasons) == 3
    assert all("not among the trades this symbol remembers" in r for r in reasons)
    assert [o.updates[0].version for o in outs[5:] if o.updates] == [4]  # only the cancel


def test_a_trade_past_the_window_cannot_be_corrected() -> None:
    agg = make(correction_trades=2)
    t = FRI_OPEN + 10 * S
    outs = run(
        agg,
        [
            *_tape(),
            correction("A", "t1", 9.0, 1, t + 2 * S),
            correction("A", "t2", 9.0, 1, t + 2 * S),
        ],
        size=1,
    )
    assert "not among the trades" in str(outs[3].dead[0][1])  # t1 forgotten: 2 newer
    # t2 is remembered but its 1m bar lost t1: the bar cannot be recomputed
    assert "past the correction window" in str(outs[4].dead[0][1])


def test_a_replayed_correction_is_a_duplicate() -> None:
    agg = make()
    t = FRI_OPEN + 10 * S
    fix = correction("A", "t2", 10.5, 20, t + 1.6 * S, event_id="c1")
    run(agg, [*_tape(), fix])
    again = restarted(agg)
    (out,) = run_more(again, [fix], first_offset=4)
    assert out.duplicates == 1
    assert out.updates == []


# -- daily bars: the session's regular hours -----------------------------------------
def test_the_daily_bar_is_the_sessions_regular_hours_and_a_correction_republishes_it() -> None:
    agg = Aggregator([Interval.parse("1m"), Interval.parse("1d")], 2_000_000)
    outs = run(
        agg,
        [
            trade("A", 9.0, 1, FRI_OPEN - 60 * S, event_id="pre"),  # pre-market: not in it
            trade("A", 10.0, 2, FRI_OPEN + S, event_id="d1"),
            trade("A", 12.0, 1, FRI_CLOSE - S, event_id="d2"),
            trade("A", 11.0, 1, FRI_CLOSE + 3 * S, event_id="post"),  # closes it
            correction("A", "d2", 11.5, 1, FRI_CLOSE + 4 * S, event_id="c"),
        ],
        size=1,
    )
    (daily,) = [c for c in outs[3].closed if c.interval.name == "1d"]
    bar = daily.bar.to_wire("A", daily.interval, final=True)
    assert (bar.start, bar.end) == (FRI_OPEN, FRI_CLOSE)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades) == (
        10.0,
        12.0,
        10.0,
        12.0,
        3,
        2,
    )
    assert bar.version == 2 * 2 + 1
    (again,) = [c for c in outs[4].closed if c.interval.name == "1d"]
    fixed = again.bar.to_wire("A", again.interval, final=True)
    assert (fixed.high, fixed.close, fixed.version) == (11.5, 11.5, 2 * 3 + 1)


def test_corrections_after_a_restart_give_what_they_give_without_one() -> None:
    t = FRI_OPEN + 10 * S
    tape = [*_tape(), trade("A", 11.0, 1, t + 4 * S, event_id="t4")]
    fixes = [
        cancel("A", "t1", t + 4.5 * S, event_id="x1"),  # its 1s bar is closed
        correction("A", "t4", 12.25, 3, t + 4.6 * S, event_id="c4"),  # forming
    ]

    def wires(out: BatchOutcome) -> list[Any]:
        bars = [c.bar.to_wire(c.symbol, c.interval, final=True) for c in out.closed]
        forming = [c.bar.to_wire(c.symbol, c.interval, final=False) for c in out.forming]
        return [msgspec.structs.replace(out.updates[0], source=None), bars, forming]

    straight = make()
    run(straight, tape)
    (want,) = run_more(straight, fixes, first_offset=len(tape))
    kept = make()
    run(kept, tape)
    (got,) = run_more(restarted(kept), fixes, first_offset=len(tape))
    assert wires(got) == wires(want)
    assert [c.interval.name for c in want.closed] == ["1s"]
