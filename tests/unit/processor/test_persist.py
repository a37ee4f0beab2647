"""The Persister's rules (persist.py): everything submitted is written, coalesced per
symbol; a commit never comes before the write covering it; past the bound of unwritten
closed bars, submit waits (backpressure) instead of growing or dropping; a broken writer
stops the loop instead of being ignored. The write and commit are plain recorders here:
the real MongoDB and Kafka paths are covered by the processor's integration tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import bson
import pytest
from aiokafka.structs import TopicPartition
from bson.raw_bson import RawBSONDocument
from prometheus_client import REGISTRY

from tickwire.events.wire import Bar
from tickwire.mongo.documents import bucket_write
from tickwire.processor.persist import Persister
from tickwire.processor.store import Documents, QuoteDoc

TP = TopicPartition("ticks.raw", 0)
T0 = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def _quote(symbol: str, version: int) -> QuoteDoc:
    doc = {"_id": symbol, "version": version}
    return QuoteDoc(symbol, {"_id": symbol}, RawBSONDocument(bson.encode(doc)))


def _bar(symbol: str, second: int) -> Bar:
    start = T0 + dt.timedelta(seconds=second)
    return Bar(
        symbol=symbol,
        interval="1s",
        start=start,
        end=start + dt.timedelta(seconds=1),
        open=1.0,
        high=1.0,
        low=1.0,
        close=1.0,
        volume=1.0,
        trades=1,
        vwap=1.0,
        final=True,
        version=3,
    )


def _docs(quotes: list[QuoteDoc], bars: tuple[Bar, ...] = ()) -> Documents:
    docs = Documents(quotes={quote.id: quote for quote in quotes})
    for bar in bars:
        write = bucket_write(bar)
        docs.absorb(Documents(bars={write.id: write}))
    return docs


class Recorder:
    """Write and commit stand-ins that log what they got, in order, and can be held."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.writing = asyncio.Event()
        self.fail: Exception | None = None

    async def write(self, docs: Documents) -> None:
        self.writing.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        quotes = {doc.id: bson.decode(doc.raw.raw)["version"] for doc in docs.quotes.values()}
        bars = sorted(slot for w in docs.bars.values() for slot in w.bars)
        self.log.append(("write", (quotes, bars)))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(("commit", dict(offsets)))


def _persister(rec: Recorder, *, max_pending_bars: int = 1000) -> Persister:
    persister = Persister(rec.write, rec.commit, max_pending_bars=max_pending_bars, interval_s=0)
    persister.start()
    return persister


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.001)


async def test_batches_submitted_during_a_write_coalesce_into_one_write_then_one_commit() -> None:
    rec = Recorder()
    persister = _persister(rec)
    rec.release.clear()
    await persister.submit(_docs([_quote("A", 1)]), {TP: 10})
    await rec.writing.wait()  # the first write is under way and held
    await persister.submit(_docs([_quote("A", 2), _quote("B", 1)]), {TP: 20})
    await persister.submit(_docs([_quote("A", 3)]), {TP: 30})
    rec.release.set()
    await persister.flush()
    assert rec.log == [
        ("write", ({"A": 1}, [])),
        ("commit", {TP: 10}),
        # one document per symbol, the newest; the commit of the last batch, after it
        ("write", ({"A": 3, "B": 1}, [])),
        ("commit", {TP: 30}),
    ]
    await persister.close(flush_seconds=1)


async def test_closed_bars_of_every_batch_are_all_written() -> None:
    rec = Recorder()
    persister = _persister(rec)
    rec.release.clear()
    await persister.submit(_docs([], (_bar("A", 0),)), {TP: 1})
    await rec.writing.wait()
    await persister.submit(_docs([], (_bar("A", 1), _bar("A", 2))), {TP: 2})
    await persister.submit(_docs([], (_bar("A", 3),)), {TP: 3})
    rec.release.set()
    await persister.flush()
    written = [slot for kind, value in rec.log if kind == "write" for slot in value[1]]
    assert sorted(written) == ["b0", "b1", "b2", "b3"]
    assert rec.log[-1] == ("commit", {TP: 3})
    await persister.close(flush_seconds=1)


async def test_a_batch_without_documents_still_commits_only_after_earlier_writes() -> None:
    rec = Recorder()
    persister = _persister(rec)
    rec.release.clear()
    await persister.submit(_docs([_quote("A", 1)]), {TP: 5})
    await rec.writing.wait()
    await persister.submit(Documents(), {TP: 9})  # e.g. only replayed records
    assert ("commit", {TP: 9}) not in rec.log
    rec.release.set()
    await persister.flush()
    assert rec.log == [("write", ({"A": 1}, [])), ("commit", {TP: 5}), ("commit", {TP: 9})]
    await persister.close(flush_seconds=1)


async def test_past_the_bound_of_unwritten_bars_submit_waits_for_the_write() -> None:
    rec = Recorder()
    persister = _persister(rec, max_pending_bars=3)
    rec.release.clear()
    await persister.submit(_docs([], (_bar("A", 0), _bar("A", 1))), {TP: 1})
    await rec.writing.wait()
    await persister.submit(_docs([], (_bar("A", 2),)), {TP: 2})  # fits: 3
    assert persister.pending_bars == 3
    blocked = asyncio.create_task(persister.submit(_docs([], (_bar("A", 3),)), {TP: 3}))
    await _until(lambda: REGISTRY.get_sample_value("tickwire_processor_persist_backpressure") == 1)
    assert not blocked.done()
    assert persister.pending_bars == 3  # held at the bound, nothing dropped
    rec.release.set()
    await blocked
    await persister.flush()
    assert REGISTRY.get_sample_value("tickwire_processor_persist_backpressure") == 0
    written = [slot for kind, value in rec.log if kind == "write" for slot in value[1]]
    assert sorted(written) == ["b0", "b1", "b2", "b3"]
    assert rec.log[-1] == ("commit", {TP: 3})
    await persister.close(flush_seconds=1)


async def test_a_batch_closing_more_bars_than_the_bound_goes_alone() -> None:
    rec = Recorder()
    persister = _persister(rec, max_pending_bars=2)
    await persister.submit(_docs([], tuple(_bar("A", s) for s in range(5))), {TP: 1})
    await persister.flush()
    written = [slot for kind, value in rec.log if kind == "write" for slot in value[1]]
    assert sorted(written) == ["b0", "b1", "b2", "b3", "b4"]
    await persister.close(flush_seconds=1)


async def test_a_broken_writer_fails_the_next_submit_and_flush() -> None:
    rec = Recorder()
    persister = _persister(rec)
    rec.fail = ValueError("not a MongoDB outage: a bug")
    await persister.submit(_docs([_quote("A", 1)]), {TP: 1})
    with pytest.raises(RuntimeError, match="writer stopped"):
        await persister.flush()
    with pytest.raises(RuntimeError, match="writer stopped"):
        await persister.submit(_docs([_quote("A", 2)]), {TP: 2})
    assert not any(kind == "commit" for kind, _ in rec.log)  # nothing committed unwritten
    await persister.close(flush_seconds=1)
