"""MongoDB persistence: `quotes` (one document per symbol: the latest state, the last
applied ticks.raw offset and the symbol's forming bars) and `bars` (one document per
closed bar, unique on symbol, interval and start). States are idempotent upserts keyed
by `_id`; closed bars are inserted and a duplicate (a replay) is ignored. Both are
batched per poll; replaying a batch writes the same documents again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from tickwire.mongo.documents import encode_bar
from tickwire.processor.aggregator import BarChange, BatchOutcome
from tickwire.processor.state import SymbolState


def bar_doc(change: BarChange, *, final: bool) -> dict[str, Any]:
    """A `bars` document (the format is defined in tickwire.mongo.documents)."""
    return encode_bar(change.bar.to_wire(change.symbol, change.interval, final=final))


#: Upserts per update command. FerretDB v1 (SQLite) keeps every statement's cursor,
#: and so a pooled SQLite connection, open until the whole command ends; past ~100
#: statements (the pool size) a command deadlocks and hangs the database for every
#: client. Small commands stay far below that even with several writers.
UPSERTS_PER_COMMAND = 20
_DUPLICATE_KEY = 11000


async def _bulk_upsert(collection: AsyncCollection[Any], ops: list[ReplaceOne[Any]]) -> None:
    for i in range(0, len(ops), UPSERTS_PER_COMMAND):
        await collection.bulk_write(ops[i : i + UPSERTS_PER_COMMAND], ordered=False)


class StateStore:
    """Reads and writes the processor's collections in one database."""

    def __init__(
        self,
        db: AsyncDatabase[Any],
        quotes: str = "quotes",
        bars: str = "bars",
        inflight: str = "processor_inflight",
    ) -> None:
        self.quotes = db[quotes]
        self.bars = db[bars]
        self.inflight = db[inflight]

    async def mark_inflight(self, topic: str, last_offsets: dict[int, int]) -> None:
        """Record, before publishing a batch, the last input offset it covers per partition.

        After a crash, whoever takes the partition over reads this and does not publish
        until its replay has reached that offset again, so a replay never publishes an
        older version of a symbol after a newer one already went out.
        """
        ops = [
            ReplaceOne(
                {"_id": f"{topic}|{partition}"},
                {
                    "_id": f"{topic}|{partition}",
                    "topic": topic,
                    "partition": partition,
                    "last": last,
                },
                upsert=True,
            )
            for partition, last in last_offsets.items()
        ]
        await _bulk_upsert(self.inflight, ops)

    async def load_inflight(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The last offset per partition of the batch that was being published, if any."""
        ids = [f"{topic}|{p}" for p in partitions]
        return {
            int(doc["partition"]): int(doc["last"])
            async for doc in self.inflight.find({"_id": {"$in": ids}})
        }

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
        """Insert the batch's closed bars, then upsert its states (unordered bulk writes
        of UPSERTS_PER_COMMAND upserts each).

        The per-symbol coalescing already happened in the aggregator: a symbol touched
        by 500 events in the batch is one upsert here. Returns the number of documents written.
        """
        wires = {state.symbol: state for state in outcome.updates}
        quote_ops: list[ReplaceOne[Any]] = []
        for state in outcome.states:
            wire = wires.get(state.symbol)
            if wire is None:  # only late events touched it: the state is unchanged
                wire = state.to_wire(state.offset)
            quote_ops.append(ReplaceOne({"_id": state.symbol}, state.to_doc(wire), upsert=True))
        bars = [bar_doc(change, final=True) for change in outcome.closed]
        # Bars first, states second: a state's offset guard must never get ahead of
        # the bars it implies, or a crash in between would make a replay skip them.
        await self._insert_bars(bars)
        await _bulk_upsert(self.quotes, quote_ops)
        return len(quote_ops) + len(bars)

    async def _insert_bars(self, bars: list[dict[str, Any]]) -> None:
        """Insert closed bars; one that is already there (a replay) is left as it is.

        A closed bar never changes again and a replay recomputes it identically, so
        insert-or-ignore is idempotent, and far cheaper on FerretDB than upserts.
        """
        if not bars:
            return
        try:
            await self.bars.insert_many(bars, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise
