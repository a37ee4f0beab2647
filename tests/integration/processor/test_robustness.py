"""Nothing read from Kafka stops the processor: a record whose headers or values do not
fit is processed or dead-lettered and the loop carries on; a partition whose state
cannot be restored is paused, counted and makes /readyz false, never processed without
its state. Each test waits for a marker event, never for time to pass."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.processor_checks import quote_differences
from tests.helpers.processor_reference import Expected, compute
from tests.helpers.processor_run import in_process, settings_for, wait_settled
from tests.helpers.processor_tape import START, produce_tape, random_tape, trade
from tickwire.events import headers as h
from tickwire.kafka.topics import ensure_topics

INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}
GRACE = dt.timedelta(seconds=2)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _topics(bootstrap: str, topics: Topics, partitions: int = 1) -> None:
    await ensure_topics(
        bootstrap,
        [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
        partitions=partitions,
        replication=1,
    )


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.timeout(120)
async def test_a_received_ns_header_that_does_not_fit_is_ignored_not_a_crash(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    # tw_received_ns is ingest's own bookkeeping: a value that is not a decimal integer
    # of at most 63 bits is treated as absent (documented in the processor README).
    await _topics(kafka_bootstrap, topics)
    at = START + dt.timedelta(milliseconds=5)
    huge_key, huge_value, huge_headers = trade("HUGE", 10.0, 3.0, at)
    huge_headers = [(k, v) for k, v in huge_headers if k != h.RECEIVED_NS]
    huge_headers.append((h.RECEIVED_NS, b"9" * 40))
    words_key, words_value, words_headers = trade("WORD", 11.0, 4.0, at)
    words_headers = [(k, v) for k, v in words_headers if k != h.RECEIVED_NS]
    words_headers.append((h.RECEIVED_NS, "٣٣".encode()))  # Unicode digits, not ASCII
    marker = trade("MARK", 12.0, 5.0, at + dt.timedelta(milliseconds=1), received_ns=77)
    await produce_tape(
        kafka_bootstrap,
        topics.raw,
        [(huge_key, huge_value, huge_headers), (words_key, words_value, words_headers), marker],
    )
    settings = settings_for(kafka_bootstrap, mongodb_url, db_name, topics, topic_partitions=1)
    async with in_process(settings):
        await _until(lambda: _has(mongo, "MARK"), "the marker event after the oversized header", 60)
    docs = {d["_id"]: d async for d in mongo.quotes.find({})}
    assert set(docs) == {"HUGE", "WORD", "MARK"}
    assert docs["HUGE"]["volume"] == 3.0
    assert docs["HUGE"].get("received_ns") is None
    assert docs["WORD"]["volume"] == 4.0
    assert docs["WORD"].get("received_ns") is None
    assert docs["MARK"]["received_ns"] == 77
    updates = await read_all(kafka_bootstrap, topics.updates, expected=3, timeout=20, idle=0.5)
    assert sorted(r.key for r in updates) == [b"HUGE", b"MARK", b"WORD"]


async def _has(db: Any, symbol: str) -> bool:
    return await db.quotes.find_one({"_id": symbol}) is not None


async def _expected(bootstrap: str, topic: str, count: int) -> Expected:
    raw = await read_all(bootstrap, topic, expected=count)
    assert len(raw) == count
    raw.sort(key=lambda r: (r.partition, r.offset))
    return compute(raw, INTERVALS, GRACE)


@pytest.mark.timeout(180)
async def test_a_partition_whose_state_cannot_be_restored_is_paused_and_visible(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    await _topics(kafka_bootstrap, topics)
    tape = random_tape(symbols=5, events=400, seed=5, step_ms=20)
    await produce_tape(kafka_bootstrap, topics.raw, tape)
    expected = await _expected(kafka_bootstrap, topics.raw, len(tape))
    # a stored state nobody can read (e.g. written by a broken tool) on partition 0
    await mongo.quotes.insert_one({"_id": "S000", "partition": 0, "version": "seven"})
    failures_before = _metric("tickwire_processor_rebalance_failures_total", {"event": "assigned"})
    settings = settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, topic_partitions=1, retry_cap_seconds=0.5
    )
    async with in_process(settings) as loop:
        await _until(
            lambda: _gt(
                "tickwire_processor_rebalance_failures_total",
                {"event": "assigned"},
                failures_before,
            ),
            "the failed restore to be counted",
        )
        assert not await loop.partitions_ready()
        assert _metric("tickwire_processor_unrestored_partitions") == 1
        # nothing of the partition was processed without its state: the unreadable
        # document is untouched and no other symbol was written
        assert [d async for d in mongo.quotes.find({})] == [
            {"_id": "S000", "partition": 0, "version": "seven"}
        ]
        # the operator removes the broken document; the retry restores and goes on
        await mongo.quotes.delete_one({"_id": "S000"})
        await wait_settled(mongo, expected)
        assert await loop.partitions_ready()
        assert _metric("tickwire_processor_unrestored_partitions") == 0
    assert quote_differences([d async for d in mongo.quotes.find({})], expected) == []


async def _gt(name: str, labels: dict[str, str], than: float) -> bool:
    return _metric(name, labels) > than


@pytest.mark.timeout(120)
async def test_a_record_the_code_cannot_handle_is_dead_lettered_and_the_rest_goes_on(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    # a valid trade in the last minute of year 9999: its 1m bar ends past the calendar;
    # whichever layer refuses it, the record is dead-lettered and nothing else is lost
    await _topics(kafka_bootstrap, topics)
    edge = dt.datetime(9999, 12, 31, 23, 59, 30, tzinfo=dt.UTC)
    tape = [
        trade("AAA", 10.0, 1.0, START),
        trade("BBB", 20.0, 2.0, START),
        trade("AAA", 11.0, 3.0, edge),
        trade("AAA", 12.0, 4.0, START + dt.timedelta(milliseconds=1)),
        trade("MARK", 1.0, 1.0, START + dt.timedelta(milliseconds=2)),
    ]
    await produce_tape(kafka_bootstrap, topics.raw, tape)
    settings = settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, topic_partitions=1, publish_forming_bars=True
    )
    async with in_process(settings) as loop:
        await _until(lambda: _has(mongo, "MARK"), "the marker after the unprocessable record")
        assert await loop.partitions_ready()
    docs = {d["_id"]: d async for d in mongo.quotes.find({})}
    assert set(docs) == {"AAA", "BBB", "MARK"}
    assert docs["AAA"]["volume"] == 5.0
    assert docs["AAA"]["trades"] == 2
    assert docs["AAA"]["last"] == 12.0
    assert docs["BBB"]["volume"] == 2.0
    letters = await read_all(kafka_bootstrap, topics.dlq, expected=1, timeout=20, idle=0.5)
    assert [dict(r.headers)[h.SOURCE_OFFSET] for r in letters] == [b"2"]
    assert dict(letters[0].headers)[h.ERROR]
