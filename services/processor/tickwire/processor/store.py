"""MongoDB persistence: `quotes` (one document per symbol: the latest state, the last
applied ticks.raw offset and the forming bars) and `bars` (one document per symbol,
interval and bar start, unique). Writes are idempotent upserts keyed by `_id`, one
bulk_write per batch, unordered; replaying a batch writes the same documents again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from tickwire.processor.aggregator import BarChange, BatchOutcome
from tickwire.processor.bars import from_us
from tickwire.processor.state import SymbolState


def bar_id(symbol: str, interval: str, start_us: int) -> str:
    """The `bars` document id, unique per (symbol, interval, start)."""
    return f"{symbol}|{interval}|{start_us}"


def bar_doc(change: BarChange, *, final: bool) -> dict[str, Any]:
    """A `bars` document; start and end are BSON dates (bar bounds are whole seconds)."""
    bar, length = change.bar, change.interval.length_us
    return {
        "_id": bar_id(change.symbol, change.interval.name, bar.start_us),
        "symbol": change.symbol,
        "interval": change.interval.name,
        "start": from_us(bar.start_us),
        "end": from_us(bar.start_us + length),
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "vwap": bar.notional / bar.volume if bar.volume else bar.close,
        "trades": bar.trades,
        "final": final,
        "version": bar.version,
        "received_ns": bar.received_ns,
    }


class StateStore:
    """Reads and writes the processor's collections in one database."""

    def __init__(self, db: AsyncDatabase[Any], quotes: str = "quotes", bars: str = "bars"):
        self.quotes = db[quotes]
        self.bars = db[bars]

    async def ensure_indexes(self) -> None:
        """The unique bar key and the lookup of states by partition (idempotent).

        Indexes that exist are not created again: FerretDB v1 on SQLite can stall when
        an index is created while another client writes to the same database.
        """
        existing = {index["name"] async for index in await self.bars.list_indexes()}
        existing |= {index["name"] async for index in await self.quotes.list_indexes()}
        if {"symbol_interval_start", "partition"} <= existing:
            return
        await self.bars.create_index(
            [("symbol", ASCENDING), ("interval", ASCENDING), ("start", ASCENDING)],
            unique=True,
            name="symbol_interval_start",
        )
        await self.quotes.create_index([("partition", ASCENDING)], name="partition")

    async def load(self, partitions: Iterable[int]) -> list[SymbolState]:
        """The stored states of every symbol on the given partitions."""
        wanted = sorted(set(partitions))
        if not wanted:
            return []
        cursor = self.quotes.find({"partition": {"$in": wanted}})
        return [SymbolState.from_doc(doc) async for doc in cursor]

    async def write(self, outcome: BatchOutcome) -> int:
        """Upsert the batch's states and bars, one unordered bulk write per collection.

        The per-symbol coalescing already happened in the aggregator: a symbol touched
        by 500 events in the batch is one upsert here. Returns the number of upserts.
        """
        wires = {state.symbol: state for state in outcome.updates}
        quote_ops: list[ReplaceOne[Any]] = []
        for state in outcome.states:
            wire = wires.get(state.symbol)
            if wire is None:  # only late events touched it: the state is unchanged
                wire = state.to_wire(state.offset)
            quote_ops.append(ReplaceOne({"_id": state.symbol}, state.to_doc(wire), upsert=True))
        bar_ops: list[ReplaceOne[Any]] = []
        for change in outcome.closed:
            doc = bar_doc(change, final=True)
            bar_ops.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
        for change in outcome.forming:
            doc = bar_doc(change, final=False)
            bar_ops.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
        # Bars first, states second: a state's offset guard must never get ahead of
        # the bars it implies, or a crash in between would make a replay skip them.
        # (One after the other also suits FerretDB on SQLite, a single writer.)
        if bar_ops:
            await self.bars.bulk_write(bar_ops, ordered=False)
        if quote_ops:
            await self.quotes.bulk_write(quote_ops, ordered=False)
        return len(quote_ops) + len(bar_ops)
