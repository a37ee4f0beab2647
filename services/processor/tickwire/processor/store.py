"""MongoDB persistence: `quotes` (one document per symbol: the latest state, the last
applied ticks.raw offset and the symbol's forming bars) and `bars` (buckets of closed
bars per symbol, interval and period; the format is in tickwire.mongo.documents). A
closed bar is `$set` into its bucket's slot with upsert, one update per bucket however
many of its bars a write carries: a replay sets the same values again. Replaying a
batch writes the same documents again. Buckets of bars finer than a minute are deleted
by `expire_fine_bars` once older than the retention.

A `quotes` write is guarded by version: it replaces the stored document only if that
one is older — a lower `version`, or the same version at an offset not past ours (a
replay, or late events that moved the offset but not the version), or the same version
on another partition (a symbol that moved when partitions were added). So a zombie (an
instance that lost its partitions while stalled and writes late) never overwrites the
newer state its successor wrote. FerretDB v1 answers a conditional upsert that finds a
newer document with a duplicate-key error pymongo cannot parse, so a symbol this store
has not seen in MongoDB is inserted (a duplicate key: it exists, go conditional) and a
known one is replaced conditionally without upsert.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import bson
import msgspec
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from tickwire.mongo.documents import BucketWrite, bucket_write, encode_bar, fine_bars_filter
from tickwire.processor import metrics as m
from tickwire.processor.aggregator import BarChange, BatchOutcome, CorrectionRecord
from tickwire.processor.bars import from_us
from tickwire.processor.state import SymbolState

log = logging.getLogger(__name__)


def _older_than(doc: dict[str, Any]) -> dict[str, Any]:
    """The filter matching the stored quotes document only if `doc` may replace it."""
    version, offset, partition = doc["version"], doc["offset"], doc["partition"]
    return {
        "_id": doc["_id"],
        "$or": [
            {"version": {"$lt": version}},
            {"version": version, "offset": {"$lte": offset}},
            {"version": version, "partition": {"$ne": partition}},
        ],
    }


def correction_doc(record: CorrectionRecord) -> dict[str, Any]:
    """An applied correction or cancel as recorded in `corrections`, `_id` =
    `symbol|source|id` (the correction's own event id: a replay writes the same)."""
    return {
        "_id": f"{record.symbol}|{record.source}|{record.id}",
        "symbol": record.symbol,
        "kind": record.kind,
        "source": record.source,
        "id": record.id,
        "ref_id": record.ref_id,
        "time": msgspec.to_builtins(record.time),
        "trade_time": msgspec.to_builtins(from_us(record.trade_time_us)),
        "before": {"price": record.before[0], "size": record.before[1]},
        "after": None
        if record.after is None
        else {"price": record.after[0], "size": record.after[1]},
        "version": record.version,
        "bars": [
            {"interval": name, "start": msgspec.to_builtins(from_us(start)), "version": version}
            for name, start, version in record.bars
        ],
    }


def bar_doc(change: BarChange, *, final: bool) -> dict[str, Any]:
    """A bar as one flat mapping (tickwire.mongo.documents.encode_bar), for checks."""
    return encode_bar(change.bar.to_wire(change.symbol, change.interval, final=final))


#: Bars shorter than this are "fine": their buckets are deleted past the retention.
FINE_BAR_US = 60_000_000


#: Upserts per update command. FerretDB v1 (SQLite) keeps every statement's cursor,
#: and so a pooled SQLite connection, open until the whole command ends; past ~100
#: statements (the pool size) a command deadlocks and hangs the database for every
#: client. Small commands stay far below that even with several writers.
UPSERTS_PER_COMMAND = 20
_DUPLICATE_KEY = 11000


async def _bulk_upsert(collection: AsyncCollection[Any], ops: list[ReplaceOne[Any]]) -> None:
    for i in range(0, len(ops), UPSERTS_PER_COMMAND):
        await collection.bulk_write(ops[i : i + UPSERTS_PER_COMMAND], ordered=False)


@dataclass(slots=True)
class QuoteDoc:
    """A quotes document encoded for the wire, with what its conditional write needs."""

    id: str
    guard: dict[str, Any]
    raw: RawBSONDocument


@dataclass(slots=True)
class Documents:
    """A batch's documents, already BSON-encoded: building them is where a value that
    MongoDB cannot hold (an integer past 64 bits, a date past year 9999) shows up, so
    the loop builds them before it publishes anything."""

    quotes: dict[str, QuoteDoc] = field(default_factory=dict)  # by symbol
    bars: dict[str, BucketWrite] = field(default_factory=dict)  # by bucket id
    corrections: dict[str, RawBSONDocument] = field(default_factory=dict)  # by _id

    def __len__(self) -> int:
        return len(self.quotes) + len(self.bars) + len(self.corrections)

    def absorb(self, later: Documents) -> None:
        """Coalesce a later batch's documents into these (persistence runs behind the
        publishes, several batches per write): a symbol's quotes document is the later
        one (the same writer, so never an older version), closed bars are all kept,
        one bucket update carrying every bar of that bucket."""
        self.quotes.update(later.quotes)
        self.corrections.update(later.corrections)
        for bucket_id, write in later.bars.items():
            mine = self.bars.get(bucket_id)
            if mine is None:
                self.bars[bucket_id] = BucketWrite(write.id, write.head, dict(write.bars))
            else:
                mine.absorb(write)


def _raw(doc: dict[str, Any]) -> RawBSONDocument:
    return RawBSONDocument(bson.encode(doc))


class StateStore:
    """Reads and writes the processor's collections in one database."""

    def __init__(
        self,
        db: AsyncDatabase[Any],
        quotes: str = "quotes",
        bars: str = "bars",
        inflight: str = "processor_inflight",
        corrections: str = "corrections",
    ) -> None:
        self.quotes = db[quotes]
        self.bars = db[bars]
        self.inflight = db[inflight]
        self.corrections = db[corrections]
        self._known: set[str] = set()  # symbols whose quotes document exists
        self._newest_end: dt.datetime | None = None

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
        """The unique bucket key (what history queries use), the buckets' end (what
        retention deletes by) and the lookup of states by partition (idempotent).

        Indexes that exist are not created again: FerretDB v1 on SQLite can stall when
        an index is created while another client writes to the same database.
        """
        existing = {index["name"] async for index in await self.bars.list_indexes()}
        existing |= {index["name"] async for index in await self.quotes.list_indexes()}
        if "symbol_interval_start" not in existing:
            await self.bars.create_index(
                [("symbol", ASCENDING), ("interval", ASCENDING), ("start", ASCENDING)],
                unique=True,
                name="symbol_interval_start",
            )
        if "end" not in existing:
            await self.bars.create_index([("end", ASCENDING)], name="end")
        if "partition" not in existing:
            await self.quotes.create_index([("partition", ASCENDING)], name="partition")

    async def expire_fine_bars(self, retention: dt.timedelta, now: dt.datetime) -> int:
        """Delete the buckets of bars finer than a minute (1s bars) that ended more than
        `retention` before `now`; returns how many. Idempotent, safe beside writes: a
        replay that rewrites an expired bar recreates its bucket, deleted next time."""
        result = await self.bars.delete_many(fine_bars_filter(now - retention, FINE_BAR_US))
        return result.deleted_count

    @property
    def newest_bar_end(self) -> dt.datetime | None:
        """The latest end (event time) of a closed bar this store wrote, if any."""
        return self._newest_end

    async def load(self, partitions: Iterable[int]) -> list[SymbolState]:
        """The stored states of every symbol on the given partitions."""
        wanted = sorted(set(partitions))
        if not wanted:
            return []
        cursor = self.quotes.find({"partition": {"$in": wanted}})
        states = [SymbolState.from_doc(doc) async for doc in cursor]
        self._known.update(state.symbol for state in states)
        return states

    async def load_symbols(self, symbols: Iterable[str]) -> list[SymbolState]:
        """The stored states of these symbols, wherever they were (a symbol moves to
        another partition when partitions are added to ticks.raw)."""
        wanted = sorted(set(symbols))
        if not wanted:
            return []
        states = [
            SymbolState.from_doc(doc) async for doc in self.quotes.find({"_id": {"$in": wanted}})
        ]
        self._known.update(state.symbol for state in states)
        return states

    @staticmethod
    def documents(outcome: BatchOutcome) -> Documents:
        """The batch's quotes and closed bars documents, encoded (no I/O).

        The per-symbol coalescing already happened in the aggregator: a symbol touched
        by 500 events in the batch is one document here. Raises whatever the encoding
        raises for a value that cannot be stored.
        """
        wires = {state.symbol: state for state in outcome.updates}
        out = Documents()
        for state in outcome.states:
            wire = wires.get(state.symbol)
            if wire is None:  # only late events touched it: the state is unchanged
                wire = state.to_wire(state.offset)
            doc = state.to_doc(wire)
            out.quotes[doc["_id"]] = QuoteDoc(doc["_id"], _older_than(doc), _raw(doc))
        for change in outcome.closed:
            grid = change.interval.length_us if change.interval.session else None
            write = bucket_write(
                change.bar.to_wire(change.symbol, change.interval, final=True), grid
            )
            bson.encode(write.update())  # raises here for a value BSON cannot hold
            mine = out.bars.get(write.id)
            if mine is None:
                out.bars[write.id] = write
            else:
                mine.absorb(write)
        for record in outcome.corrections:
            doc = correction_doc(record)
            out.corrections[doc["_id"]] = _raw(doc)
        return out

    async def write(self, docs: Documents) -> int:
        """Insert the batch's closed bars and corrections, then write its states
        (unordered bulk writes of UPSERTS_PER_COMMAND documents each). Returns the
        number of documents."""
        # Bars first, states second: a state's offset guard must never get ahead of
        # the bars it implies, or a crash in between would make a replay skip them.
        await self._write_bars(list(docs.bars.values()))
        if docs.corrections:  # keyed by the correction's id: a replay writes the same
            await _bulk_upsert(
                self.corrections,
                [ReplaceOne({"_id": k}, v, upsert=True) for k, v in docs.corrections.items()],
            )
        await self._write_quotes(list(docs.quotes.values()))
        return len(docs)

    async def _write_quotes(self, docs: list[QuoteDoc]) -> None:
        """Insert the new symbols' documents, replace the known ones if not newer."""
        fresh = [doc for doc in docs if doc.id not in self._known]
        exists = await self._insert_new(fresh)
        guarded = [doc for doc in docs if doc.id in self._known or doc.id in exists]
        matched = 0
        for i in range(0, len(guarded), UPSERTS_PER_COMMAND):
            chunk = guarded[i : i + UPSERTS_PER_COMMAND]
            result = await self.quotes.bulk_write(
                [ReplaceOne(doc.guard, doc.raw) for doc in chunk], ordered=False
            )
            matched += result.matched_count
        if matched < len(guarded):
            await self._after_refusals(guarded, matched)
        self._known.update(doc.id for doc in fresh)

    async def _insert_new(self, docs: list[QuoteDoc]) -> set[str]:
        """Insert documents; return the ids that already existed (not inserted)."""
        exists: set[str] = set()
        for i in range(0, len(docs), UPSERTS_PER_COMMAND):
            chunk = docs[i : i + UPSERTS_PER_COMMAND]
            try:
                await self.quotes.insert_many([doc.raw for doc in chunk], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                    raise
                exists.update(chunk[int(error["index"])].id for error in errors)
        return exists

    async def _after_refusals(self, docs: list[QuoteDoc], matched: int) -> None:
        """Some conditional replaces matched nothing: the stored document is newer (a
        stale write, refused and counted) or is gone (deleted by hand: insert it)."""
        ids = [doc.id for doc in docs]
        present = {d["_id"] async for d in self.quotes.find({"_id": {"$in": ids}}, {"_id": 1})}
        missing = [doc for doc in docs if doc.id not in present]
        await self._insert_new(missing)
        stale = len(docs) - matched - len(missing)
        if stale > 0:
            m.STALE_WRITES.inc(stale)
            log.warning("%d quotes writes refused: MongoDB holds newer versions", stale)

    async def _write_bars(self, writes: list[BucketWrite]) -> None:
        """Set closed bars into their buckets (upsert); a bar already there (a replay)
        is set to the same value. Two writers creating one bucket at once: the loser's
        upsert fails on the duplicate key and is retried, now an update."""
        for write in writes:
            end = write.last_end()
            if self._newest_end is None or end > self._newest_end:
                self._newest_end = end
        for i in range(0, len(writes), UPSERTS_PER_COMMAND):
            chunk = writes[i : i + UPSERTS_PER_COMMAND]
            for attempt in range(3):
                ops = [UpdateOne({"_id": w.id}, w.update(), upsert=True) for w in chunk]
                try:
                    await self.bars.bulk_write(ops, ordered=False)
                    break
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if attempt == 2 or any(e.get("code") != _DUPLICATE_KEY for e in errors):
                        raise
                    chunk = [chunk[int(e["index"])] for e in errors]


class FineBarRetention:
    """Deletes, every `every` seconds, the buckets of sub-minute bars that ended more than
    `retention` before the newest bar this store wrote: retention runs in event time, so
    a replay of old data keeps its bars until newer ones arrive. A supervised part; a
    store outage skips a pass (the next one catches up)."""

    def __init__(self, store: StateStore, retention: dt.timedelta, every: float = 60.0) -> None:
        self.store = store
        self.retention = retention
        self.every = every

    async def run(self) -> None:
        """Expire old fine bars until cancelled."""
        while True:
            await asyncio.sleep(self.every)
            await self.expire_once()

    async def expire_once(self) -> int:
        """One pass: the number of buckets deleted (0 before any bar was written)."""
        newest = self.store.newest_bar_end
        if newest is None:
            return 0
        try:
            return await self.store.expire_fine_bars(self.retention, newest)
        except PyMongoError as exc:
            log.warning("fine-bar retention skipped a pass: %s", exc)
            return 0
