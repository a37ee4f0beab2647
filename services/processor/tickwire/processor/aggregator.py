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
or a quote older than the bid/ask held -> ticks.late; an id already applied (see
tickwire.processor.dedup) -> dropped and counted; otherwise applied (version + 1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka.structs import TopicPartition

from tickwire.core.errors import PoisonMessageError
from tickwire.events.wire import TickerState, TradeData
from tickwire.processor.bars import EPOCH, MICROSECOND, FormingBar, Interval, to_us
from tickwire.processor.decode import read
from tickwire.processor.dedup import DEFAULT_SIZE, id_key
from tickwire.processor.state import SymbolState

DAY_US = 86_400_000_000
# datetime's range in µs since the epoch: a bar's start and end must fall within it
_MIN_US = to_us(dt.datetime.min.replace(tzinfo=dt.UTC))
_MAX_US = to_us(dt.datetime.max.replace(tzinfo=dt.UTC))
_AT_CALENDAR_EDGE = "time is too close to the calendar's edge for its bars"
# aiokafka ships no type information, so a record is Any to mypy
Record: TypeAlias = Any


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
    ) -> None:
        self.intervals = tuple(intervals)
        self.grace_us = grace_us
        self.dedup_size = dedup_size
        # ids of events older than this before the watermark cannot matter (late anyway)
        self.dedup_horizon_us = max((i.length_us for i in self.intervals), default=0) + grace_us
        # event times whose bars (every interval) start and end within datetime's range:
        # [_time_low, _time_high), one comparison per trade instead of a loop
        self._time_low, self._time_high = representable_range(self.intervals)
        self.reference_prices = dict(reference_prices or {})
        self.states: dict[str, SymbolState] = {}
        self._close_due: dict[str, int] = {}  # symbol -> earliest watermark closing a bar

    # -- ownership ---------------------------------------------------------------
    def load(self, states: Iterable[SymbolState]) -> None:
        """Adopt states restored from MongoDB (on partition assignment)."""
        for state in states:
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
            is_trade = type(event) is TradeData
            if is_trade and not time_low <= time_us < time_high:
                dead.append((record, PoisonMessageError(_AT_CALENDAR_EDGE)))
                continue
            symbol = event.symbol
            state = states.get(symbol)
            if state is None:
                state = SymbolState(symbol, record.partition, self.reference_prices.get(symbol))
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
                if time_us < watermark and self._is_late(time_us, watermark):
                    late.append(record)
                    continue
            elif time_us < state.quote_us:  # superseded: bid/ask come from a newer quote
                late.append(record)
                continue
            seen = state.seen
            id_ = id_key(source, event_id)
            if id_ in seen.keys:
                duplicates += 1
                continue
            if time_us > watermark:
                state.time_us = time_us
                state.time = event.time
                seen.forget_before(time_us - horizon)
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
                state.apply_trade(event, time_us, time_us // DAY_US)  # type: ignore[arg-type]
                self._add_to_bars(state, event, time_us, received, bars)  # type: ignore[arg-type]
            else:
                quotes += 1
                state.apply_quote(event, time_us)  # type: ignore[arg-type]
        out.trades += trades
        out.quotes += quotes
        out.skipped += skipped
        out.duplicates += duplicates

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
        for interval in self.intervals:
            bars = state.forming.get(interval.name)
            if not bars:
                continue
            length = interval.length_us
            for start in sorted(bars):
                if start + length + grace <= watermark:
                    out.closed.append(BarChange(state.symbol, interval, bars.pop(start)))
        self._close_due[state.symbol] = self._earliest_close(state)

    def _earliest_close(self, state: SymbolState) -> int:
        due = -1
        for interval in self.intervals:
            for start in state.forming.get(interval.name, {}):
                at = start + interval.length_us + self.grace_us
                if due < 0 or at < due:
                    due = at
        return due
