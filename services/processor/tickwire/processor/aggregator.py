"""The pure heart of the processor: apply one poll batch of ticks.raw records to the
per-symbol states and say what must be written and published. No I/O here.

Bars close in event time against a per-symbol watermark (the newest event time seen
for that symbol, trades and quotes alike): a bar [start, end) closes once the
watermark reaches end + grace. A trade falling in a bar that has already closed is
late: it goes to ticks.late and changes nothing (not the bars, not the session).
The watermark is per symbol because a symbol's events are totally ordered on one
partition: the result does not depend on batch boundaries, partition assignment or
other symbols, so a replay after a crash reproduces it exactly.

Each record is decided in this order: unusable -> ticks.dlq; a trade whose bar closed,
or a quote (status) older than the bid/ask (status) held -> ticks.late; an id already
applied (see tickwire.processor.dedup) -> dropped and counted; a correction or cancel
that cannot be applied (see tickwire.processor.corrections) -> ticks.dlq; otherwise
applied (version + 1). A correction is decided and applied against the state before
its own event time moves the watermark; then, like any event, it moves the watermark,
which may close bars and roll the session over (tickwire.processor.sessions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka.structs import TopicPartition

from tickwire.core.errors import PoisonMessageError
from tickwire.events.wire import (
    CancelData,
    CorrectionData,
    QuoteData,
    StatusData,
    TickerState,
    TradeData,
)
from tickwire.processor.bars import (
    EPOCH,
    MICROSECOND,
    SESSION_INTERVAL,
    FormingBar,
    Interval,
    to_us,
)
from tickwire.processor.corrections import DEFAULT_TRADES, LoggedTrade, recount_bar
from tickwire.processor.decode import read
from tickwire.processor.dedup import DEFAULT_SIZE, id_key
from tickwire.processor.sessions import Sessions
from tickwire.processor.settings import ProcessorSettings
from tickwire.processor.state import SymbolState

DAY_US = 86_400_000_000
# datetime's range in µs since the epoch: a bar's start and end must fall within it
_MIN_US = to_us(dt.datetime.min.replace(tzinfo=dt.UTC))
_MAX_US = to_us(dt.datetime.max.replace(tzinfo=dt.UTC))
_AT_CALENDAR_EDGE = "time is too close to the calendar's edge for its bars"
_KIND_NAME = {CorrectionData: "correction", CancelData: "cancel"}
_new_tuple = tuple.__new__
#: Default correction window: trades younger than this (event time) stay correctable.
DEFAULT_CORRECTION_WINDOW_US = 300_000_000
# aiokafka ships no type information, so a record is Any to mypy
Record: TypeAlias = Any


@dataclass(slots=True)
class CorrectionRecord:
    """An applied correction or cancel, as recorded in the `corrections` collection."""

    symbol: str
    kind: str  # "correction" | "cancel"
    source: str
    id: str
    ref_id: str
    time: dt.datetime
    trade_time_us: int
    before: tuple[float, float]  # the trade's (price, size) before
    after: tuple[float, float] | None  # ... after (None: cancelled)
    version: int  # the symbol's version once applied
    bars: list[tuple[str, int, int]]  # (interval, start µs, new version) recomputed


@dataclass(slots=True)
class BarChange:
    """A bar that closed, or changed while still forming, in this batch."""

    symbol: str
    interval: Interval
    bar: FormingBar


@dataclass(slots=True)
class BatchOutcome:
    """What one batch changed: to publish, to store, to route aside, and to commit."""

    updates: list[TickerState] = field(default_factory=list)
    states: list[SymbolState] = field(default_factory=list)  # every symbol touched
    closed: list[BarChange] = field(default_factory=list)
    forming: list[BarChange] = field(default_factory=list)  # bars changed, still open
    late: list[Record] = field(default_factory=list)
    dead: list[tuple[Record, PoisonMessageError]] = field(default_factory=list)
    commit: dict[TopicPartition, int] = field(default_factory=dict)
    trades: int = 0
    quotes: int = 0
    skipped: int = 0  # replayed records at or below a symbol's stored offset
    duplicates: int = 0  # events whose id the symbol had already applied
    corrections: list[CorrectionRecord] = field(default_factory=list)
    statuses: int = 0  # status events applied


def representable_range(intervals: Iterable[Interval]) -> tuple[int, int]:
    """[low, high): the event times (µs) whose bars, in every interval, start and end
    within datetime's range. A bar of length L holding t starts at t - t % L, which
    grows with t: it is >= the earliest datetime from the first multiple of L at or
    after it, and it ends within range while it starts at or before the latest minus L."""
    low, high = _MIN_US, _MAX_US + 1
    for interval in intervals:
        length = interval.length_us
        low = max(low, -(-_MIN_US // length) * length)
        high = min(high, ((_MAX_US - length) // length + 1) * length)
    return low, high


class Aggregator:
    """Per-symbol states of the partitions this instance owns, and the batch logic."""

    def __init__(
        self,
        intervals: Sequence[Interval],
        grace_us: int,
        reference_prices: Mapping[str, float] | None = None,
        dedup_size: int = DEFAULT_SIZE,
        sessions: Sessions | None = None,
        correction_trades: int = DEFAULT_TRADES,
        correction_window_us: int = DEFAULT_CORRECTION_WINDOW_US,
    ) -> None:
        # grid intervals (bars aligned to the epoch), and the session's daily bar if asked
        self.intervals = tuple(i for i in intervals if not i.session)
        self.daily = next((i for i in intervals if i.session), None)
        self.sessions = sessions if sessions is not None else Sessions()
        self.correction_trades = correction_trades
        self.correction_window_us = correction_window_us
        self.grace_us = grace_us
        self.dedup_size = dedup_size
        # ids of events older than this before the watermark cannot matter (late anyway)
        self.dedup_horizon_us = max((i.length_us for i in intervals), default=0) + grace_us
        # event times whose bars (every interval) start and end within datetime's range:
        # [_time_low, _time_high), one comparison per trade instead of a loop
        self._time_low, self._time_high = representable_range(self.intervals)
        self.reference_prices = dict(reference_prices or {})
        self.states: dict[str, SymbolState] = {}
        self._close_due: dict[str, int] = {}  # symbol -> earliest watermark closing a bar
        self._daily_touched: set[str] = set()  # symbols whose daily bar changed (batch)

    @classmethod
    def from_settings(cls, settings: ProcessorSettings) -> Aggregator:
        """The aggregator the processor's settings describe."""
        return cls(
            [Interval.parse(name) for name in settings.bar_intervals],
            settings.bar_grace_ms * 1000,
            settings.reference_prices,
            dedup_size=settings.dedup_window,
            sessions=Sessions(
                settings.symbol_exchanges,
                settings.default_exchange,
                settings.premarket,
                settings.postmarket,
            ),
            correction_trades=settings.correction_trades,
            correction_window_us=settings.correction_window // dt.timedelta(microseconds=1),
        )

    # -- ownership ---------------------------------------------------------------
    def load(self, states: Iterable[SymbolState]) -> None:
        """Adopt states restored from MongoDB (on partition assignment)."""
        for state in states:
            calendar = self.sessions.for_symbol(state.symbol)
            state.exchange = calendar.name
            if state.time_us >= 0:
                state.session = calendar.session(state.time_us)
            self.states[state.symbol] = state
            self._close_due[state.symbol] = self._earliest_close(state)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the states of partitions this instance no longer owns."""
        gone = set(partitions)
        for symbol in [s for s, st in self.states.items() if st.partition in gone]:
            del self.states[symbol]
            self._close_due.pop(symbol, None)

    # -- the batch ---------------------------------------------------------------
    def apply(self, batch: Mapping[TopicPartition, Sequence[Record]]) -> BatchOutcome:
        """Apply a getmany() batch, in partition order, and report its effects."""
        out = BatchOutcome()
        touched: dict[str, int] = {}  # symbol -> version before this batch
        bars: dict[int, BarChange] = {}  # bars a trade of this batch went into
        self._daily_touched.clear()
        for tp, records in batch.items():
            if not records:
                continue
            self._apply_records(records, out, touched, bars)
            out.commit[tp] = records[-1].offset + 1
        for symbol, before in touched.items():
            state = self.states[symbol]
            out.states.append(state)
            if state.version > before:
                out.updates.append(state.to_wire(state.first_offset))
        order = {interval.name: n for n, interval in enumerate(self.intervals)}
        for change in sorted(
            bars.values(), key=lambda c: (c.symbol, order[c.interval.name], c.bar.start_us)
        ):
            # still forming (a bar that closed in this batch is in out.closed already)
            if (
                self.states[change.symbol].forming[change.interval.name].get(change.bar.start_us)
                is change.bar
            ):
                out.forming.append(change)
        if self.daily is not None:
            for symbol in sorted(self._daily_touched):
                state = self.states[symbol]
                bar = state.daily_bar()
                if bar is not None and not state.daily_closed:
                    out.forming.append(BarChange(symbol, self.daily, bar))
        return out

    def _apply_records(
        self,
        records: Sequence[Record],
        out: BatchOutcome,
        touched: dict[str, int],
        bars: dict[int, BarChange],
    ) -> None:
        """Apply one partition's records in order (the per-record rules are in the module
        docstring). One loop with everything it reads bound once: it runs per event."""
        states = self.states
        close_due = self._close_due
        time_low, time_high = self._time_low, self._time_high
        horizon, window = self.dedup_horizon_us, self.dedup_size
        log_size, log_horizon = self.correction_trades, self.correction_window_us
        dead, late = out.dead, out.late
        trades = quotes = skipped = duplicates = 0
        for record in records:
            offset = record.offset
            try:
                event, event_id, source, received = read(record.key, record.value, record.headers)
            except PoisonMessageError as exc:
                dead.append((record, exc))  # again on a replay: it changed no state
                continue
            time_us = (event.time - EPOCH) // MICROSECOND
            kind = type(event)
            is_trade = kind is TradeData
            if is_trade and not time_low <= time_us < time_high:
                dead.append((record, PoisonMessageError(_AT_CALENDAR_EDGE)))
                continue
            symbol = event.symbol
            state = states.get(symbol)
            if state is None:
                state = self._new_state(symbol, record.partition)
                states[symbol] = state
                close_due[symbol] = -1
            elif offset <= state.offset:  # handled before this state was stored
                skipped += 1
                continue
            if symbol not in touched:
                touched[symbol] = state.version
                state.first_offset = -1
            state.offset = offset
            watermark = state.time_us
            if is_trade:
                if time_us < watermark and (
                    self._is_late(time_us, watermark) or self._daily_late(state, time_us)
                ):
                    late.append(record)
                    continue
            elif kind is QuoteData:
                if time_us < state.quote_us:  # superseded: bid/ask come from a newer quote
                    late.append(record)
                    continue
            elif kind is StatusData and time_us < state.status_us:  # superseded status
                late.append(record)
                continue
            seen = state.seen
            id_ = id_key(source, event_id)
            if id_ in seen.keys:
                duplicates += 1
                continue
            if kind is CorrectionData or kind is CancelData:
                rejected = self._correct(state, event, source, event_id, id_, received, out, bars)  # type: ignore[arg-type]
                if rejected is not None:
                    dead.append((record, PoisonMessageError(rejected)))
                    continue
            if time_us > watermark:
                state.time_us = time_us
                state.time = event.time
                session = state.session
                if (
                    self.daily is not None
                    and session is not None
                    and not state.daily_closed
                    and time_us >= session.close + self.grace_us
                ):
                    self._close_daily(state, out)
                if session is None or time_us >= session.window_end:
                    self._enter_session(state, time_us)
                seen.forget_before(time_us - horizon)
                log = state.log.entries
                if log and log[0].time_us < time_us - log_horizon:
                    self._forget_trades(state)
                due = close_due[symbol]
                if 0 <= due <= time_us:
                    self._close_bars(state, out)
            seen.remember(id_, time_us, window)
            state.version += 1
            if state.first_offset < 0:
                state.first_offset = offset
            if received is not None:
                state.received_ns = received
            if is_trade:
                trades += 1
                self._apply_trade(state, event, id_, time_us, received, bars)  # type: ignore[arg-type]
                if len(state.log.entries) > log_size:
                    self._forget_trades(state)
            elif kind is QuoteData:
                quotes += 1
                state.apply_quote(event, time_us)  # type: ignore[arg-type]
            elif kind is StatusData:
                out.statuses += 1
                state.apply_status(event, time_us)  # type: ignore[arg-type]
        out.trades += trades
        out.quotes += quotes
        out.skipped += skipped
        out.duplicates += duplicates

    def _new_state(self, symbol: str, partition: int) -> SymbolState:
        calendar = self.sessions.for_symbol(symbol)
        return SymbolState(symbol, partition, self.reference_prices.get(symbol), calendar.name)

    def _enter_session(self, state: SymbolState, time_us: int) -> None:
        """The watermark moved past the session's window: roll over (if it is a later
        session) into the one the watermark is in now."""
        session = self.sessions.for_symbol(state.symbol).session(time_us)
        if session.day > state.session_day:
            state.roll_over(session)
        else:
            state.session = session

    def _apply_trade(
        self,
        state: SymbolState,
        trade: TradeData,
        key: int,
        time_us: int,
        received: int | None,
        bars: dict[int, BarChange],
    ) -> None:
        session = state.session
        assert session is not None  # the watermark is at or past this trade
        if time_us < session.window_start:  # late across a session boundary: its own
            session = self.sessions.for_symbol(state.symbol).session(time_us)
        regular = session.open <= time_us < session.close
        state.apply_trade(trade, time_us, session.day, regular)
        if regular and self.daily is not None and session.day == state.session_day:
            state.daily_revision += 1
            if received is not None:
                state.daily_received = received
            self._daily_touched.add(state.symbol)
        self._add_to_bars(state, trade, time_us, received, bars)
        if self.correction_trades:
            # tuple.__new__: half the cost of the NamedTuple's own constructor, per trade
            entry = (key, time_us, trade.price, trade.size, received, session.day, regular)
            state.log.append(_new_tuple(LoggedTrade, entry))

    def _daily_late(self, state: SymbolState, time_us: int) -> bool:
        """Whether a trade older than the watermark falls in a daily bar already closed:
        the session's own (after close + grace), or any earlier session's."""
        session = state.session
        if self.daily is None or session is None:
            return False
        if time_us < session.window_start:
            return True
        return state.daily_closed and session.open <= time_us < session.close

    def _close_daily(self, state: SymbolState, out: BatchOutcome) -> None:
        """The watermark passed the session's close + grace: its daily bar is final."""
        state.daily_closed = True
        bar = state.daily_bar()
        if bar is not None and self.daily is not None:
            out.closed.append(BarChange(state.symbol, self.daily, bar))

    def _forget_trades(self, state: SymbolState) -> None:
        """Forget the trades past the correction window (see tickwire.processor.corrections):
        the session's go into its frozen tally, and their bars can no longer be corrected.
        (TradeLog.forget's rule, inlined: once the log is full it runs for every trade.)"""
        log = state.log
        entries, by_key = log.entries, log.by_key
        floor, size = state.time_us - self.correction_window_us, self.correction_trades
        frozen, session_day = state.frozen, state.session_day
        forming, closed = state.forming, state.closed
        grid = [(i.name, i.length_us) for i in self.intervals]
        while entries and (len(entries) > size or entries[0].time_us < floor):
            trade = entries.popleft()
            del by_key[trade.key]
            time_us = trade.time_us
            if trade.day == session_day:
                frozen.add(trade.price, trade.size, time_us, None, trade.regular)
            for name, length in grid:
                start = time_us - time_us % length
                bars = forming.get(name)
                bar = bars.get(start) if bars else None
                if bar is not None:
                    bar.complete = False
                elif closed:
                    closed.pop((name, start), None)

    def _correct(
        self,
        state: SymbolState,
        event: CorrectionData | CancelData,
        source: bytes | None,
        event_id: bytes,
        key: int,
        received: int | None,
        out: BatchOutcome,
        changed: dict[int, BarChange],
    ) -> str | None:
        """Apply a correction or a cancel to its trade, its bars and the session; the
        reason it is rejected instead (nothing changed), if it is."""
        ref = id_key(source, event.ref_id.encode())
        trade = state.log.by_key.get(ref)
        if trade is None:
            return (
                f"{_KIND_NAME[type(event)]} refers to trade {event.ref_id!r}, which is not "
                "among the trades this symbol remembers (unknown, cancelled, another "
                "symbol's, or past the correction window)"
            )
        affected: list[tuple[Interval, FormingBar, bool]] = []
        for interval in self.intervals:
            start = trade.time_us - trade.time_us % interval.length_us
            bar = state.forming.get(interval.name, {}).get(start)
            final = bar is None
            if bar is None:
                bar = state.closed.get((interval.name, start))
            if bar is None or not bar.complete:
                return (
                    f"{_KIND_NAME[type(event)]} of trade {event.ref_id!r}: its "
                    f"{interval.name} bar is past the correction window"
                )
            affected.append((interval, bar, final))
        daily = self.daily is not None and trade.regular
        if daily and trade.day != state.session_day:
            return (
                f"{_KIND_NAME[type(event)]} of trade {event.ref_id!r}: its "
                f"{SESSION_INTERVAL} bar (session) is past the correction window"
            )
        corrected = (
            trade._replace(price=event.price, size=event.size)
            if type(event) is CorrectionData
            else None
        )
        state.log.replace(trade, corrected)
        for interval, bar, final in affected:
            end = bar.start_us + interval.length_us
            recount_bar(bar, (t for t in state.log if bar.start_us <= t.time_us < end), received)
            change = BarChange(state.symbol, interval, bar)
            if final:
                out.closed.append(change)
                if not bar.trades:  # no trade left in it to correct
                    del state.closed[(interval.name, bar.start_us)]
            else:
                changed[id(bar)] = change
        if trade.day == state.session_day:
            state.recount_session()
        bars_changed = [(i.name, b.start_us, b.version(final=f)) for i, b, f in affected]
        if daily and self.daily is not None:
            state.daily_revision += 1
            if received is not None:
                state.daily_received = received
            bar = state.daily_bar()
            if bar is not None:
                bars_changed.append(
                    (self.daily.name, bar.start_us, bar.version(final=state.daily_closed))
                )
                if state.daily_closed:
                    out.closed.append(BarChange(state.symbol, self.daily, bar))
                else:
                    self._daily_touched.add(state.symbol)
        state.corrections += 1
        out.corrections.append(
            CorrectionRecord(
                symbol=state.symbol,
                kind=_KIND_NAME[type(event)],
                source=(source or b"").decode("utf-8", "replace"),
                id=event_id.decode("utf-8", "replace"),
                ref_id=event.ref_id,
                time=event.time,
                trade_time_us=trade.time_us,
                before=(trade.price, trade.size),
                after=None if corrected is None else (corrected.price, corrected.size),
                version=state.version + 1,
                bars=bars_changed,
            )
        )
        return None

    def _bars_representable(self, time_us: int) -> bool:
        """Whether every bar holding time_us starts and ends within datetime's range."""
        return self._time_low <= time_us < self._time_high

    def _is_late(self, time_us: int, watermark: int) -> bool:
        grace = self.grace_us
        for interval in self.intervals:
            length = interval.length_us
            if time_us - time_us % length + length + grace <= watermark:
                return True
        return False

    def _add_to_bars(
        self,
        state: SymbolState,
        trade: TradeData,
        time_us: int,
        received: int | None,
        changed: dict[int, BarChange],
    ) -> None:
        for interval in self.intervals:
            length = interval.length_us
            start = time_us - time_us % length
            bars = state.forming.get(interval.name)
            if bars is None:
                bars = state.forming[interval.name] = {}
            bar = bars.get(start)
            if bar is None:
                bar = bars[start] = FormingBar(start, trade.price, time_us)
                due = start + length + self.grace_us
                current = self._close_due[state.symbol]
                if current < 0 or due < current:
                    self._close_due[state.symbol] = due
            bar.add(trade.price, trade.size, time_us, received)
            if id(bar) not in changed:
                changed[id(bar)] = BarChange(state.symbol, interval, bar)

    def _close_bars(self, state: SymbolState, out: BatchOutcome) -> None:
        watermark = state.time_us
        grace = self.grace_us
        keep = self.correction_trades > 0  # closed bars stay correctable
        for interval in self.intervals:
            bars = state.forming.get(interval.name)
            if not bars:
                continue
            length = interval.length_us
            for start in sorted(bars):
                if start + length + grace <= watermark:
                    bar = bars.pop(start)
                    out.closed.append(BarChange(state.symbol, interval, bar))
                    if bar.complete and keep and bar.trades:  # else nothing to correct
                        bar.end_us = start + length
                        state.closed[(interval.name, start)] = bar
        self._close_due[state.symbol] = self._earliest_close(state)

    def _earliest_close(self, state: SymbolState) -> int:
        due = -1
        for interval in self.intervals:
            for start in state.forming.get(interval.name, {}):
                at = start + interval.length_us + self.grace_us
                if due < 0 or at < due:
                    due = at
        return due
