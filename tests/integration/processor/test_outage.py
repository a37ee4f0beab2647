"""MongoDB and Kafka outages pause the processor (readiness false, `paused` metric) and
it resumes by itself; the result still equals the reference. Uses a private stack,
since its FerretDB and broker are killed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from tests.helpers.infra import Topics, unique
from tests.helpers.kafka import read_all
from tests.helpers.processor_checks import bar_differences, quote_differences
from tests.helpers.processor_reference import Expected, compute
from tests.helpers.processor_run import in_process, settings_for, wait_settled
from tests.helpers.processor_tape import produce_tape, random_tape
from tickwire.devstack.procs import read_pid
from tickwire.devstack.stack import Stack, StackInfo
from tickwire.events.wire import STATE_DECODER
from tickwire.kafka.clients import make_consumer
from tickwire.kafka.topics import ensure_topics


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _paused(dependency: str) -> float:
    return REGISTRY.get_sample_value("tickwire_processor_paused", {"dependency": dependency}) or 0.0


async def _expected(bootstrap: str, topic: str, count: int) -> Expected:
    raw = await read_all(bootstrap, topic, expected=count)
    assert len(raw) == count
    raw.sort(key=lambda r: (r.partition, r.offset))
    return compute(
        raw, {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}, dt.timedelta(seconds=2)
    )


@contextlib.asynccontextmanager
async def _private_stack(
    tmp_path: Path, partitions: int
) -> AsyncIterator[tuple[Stack, StackInfo, AsyncMongoClient[Any], Topics, str]]:
    """A stack of this test's own (its FerretDB and broker get killed), with fresh
    topics of `partitions` partitions and a fresh database name; stopped afterwards."""
    stack = Stack(tmp_path / "stack")
    info = await asyncio.to_thread(stack.up)
    client: AsyncMongoClient[Any] = AsyncMongoClient(info.mongodb_url, tz_aware=True)
    try:
        topics, db_name = Topics.fresh(), unique("tw").replace("-", "_")
        await ensure_topics(
            info.bootstrap_servers,
            [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
            partitions=partitions,
            replication=1,
        )
        yield stack, info, client, topics, db_name
    finally:
        await client.close()
        await asyncio.to_thread(stack.down)


@pytest.mark.timeout(400)
async def test_mongodb_and_kafka_outages_pause_then_resume(tmp_path: Path) -> None:
    async with _private_stack(tmp_path, 3) as (stack, info, client, topics, db_name):
        bootstrap = info.bootstrap_servers
        tape = random_tape(symbols=8, events=3000, seed=17, step_ms=25, late_every=89)
        settings = settings_for(bootstrap, info.mongodb_url, db_name, topics, retry_cap_seconds=1.0)
        db = client[db_name]
        async with in_process(settings) as loop:
            await produce_tape(bootstrap, topics.raw, tape[:1000])
            await wait_settled(db, await _expected(bootstrap, topics.raw, 1000))
            assert await loop.mongodb_ready()

            # MongoDB goes away while events keep coming
            ferret_pid = read_pid(tmp_path / "stack" / "ferretdb" / "ferretdb.pid")
            assert ferret_pid is not None
            os.kill(ferret_pid, signal.SIGKILL)
            await produce_tape(bootstrap, topics.raw, tape[1000:2000])
            await _until(lambda: _not(loop.mongodb_ready), "readiness to drop for MongoDB")
            assert _paused("mongodb") == 1
            await asyncio.to_thread(stack.up)  # brings FerretDB back on the same port and data
            await wait_settled(db, await _expected(bootstrap, topics.raw, 2000))
            await _until(loop.mongodb_ready, "MongoDB readiness to come back")
            assert _paused("mongodb") == 0

            # Kafka goes away, then comes back
            await asyncio.to_thread(stack.stop_kafka_node, 1, True)
            await _until(lambda: _not(loop.kafka_ready), "readiness to drop for Kafka")
            await asyncio.to_thread(stack.start_kafka_node, 1)
            await produce_tape(bootstrap, topics.raw, tape[2000:])
            expected = await _expected(bootstrap, topics.raw, 3000)
            await wait_settled(db, expected, timeout=120)
            await _until(loop.kafka_ready, "Kafka readiness to come back")

        assert quote_differences([d async for d in db.quotes.find({})], expected) == []
        assert bar_differences([d async for d in db.bars.find({})], expected.closed_bars()) == []


async def _not(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()


@pytest.mark.timeout(400)
async def test_mongodb_down_during_a_rebalance_pauses_the_partitions_then_resumes(
    tmp_path: Path,
) -> None:
    async with _private_stack(tmp_path, 2) as (stack, info, client, topics, db_name):
        bootstrap = info.bootstrap_servers
        tape = random_tape(symbols=6, events=1200, seed=23, step_ms=20)
        settings = settings_for(
            bootstrap, info.mongodb_url, db_name, topics, topic_partitions=2, retry_cap_seconds=1.0
        )
        db = client[db_name]
        failures = (
            REGISTRY.get_sample_value(
                "tickwire_processor_rebalance_failures_total", {"event": "assigned"}
            )
            or 0.0
        )
        async with in_process(settings) as loop:
            await produce_tape(bootstrap, topics.raw, tape[:600])
            await wait_settled(db, await _expected(bootstrap, topics.raw, 600))

            # MongoDB goes away; another member joins the group: a rebalance whose
            # restore cannot read MongoDB
            ferret_pid = read_pid(tmp_path / "stack" / "ferretdb" / "ferretdb.pid")
            assert ferret_pid is not None
            os.kill(ferret_pid, signal.SIGKILL)
            other = make_consumer(bootstrap, "tests-other", group_id=settings.group_id)
            await other.start()
            other.subscribe([topics.raw])

            async def restore_failed() -> bool:
                await other.getmany(timeout_ms=100)  # keeps the other member in the group
                now = REGISTRY.get_sample_value(
                    "tickwire_processor_rebalance_failures_total", {"event": "assigned"}
                )
                return (now or 0.0) > failures

            await _until(restore_failed, "the failed restore to be counted")
            assert not await loop.partitions_ready()
            await other.stop()  # it leaves: the processor is assigned both partitions again

            await produce_tape(bootstrap, topics.raw, tape[600:])
            await asyncio.to_thread(stack.up)  # FerretDB back on the same port and data
            expected = await _expected(bootstrap, topics.raw, len(tape))
            await wait_settled(db, expected, timeout=120)
            await _until(loop.partitions_ready, "every partition restored")

        assert quote_differences([d async for d in db.quotes.find({})], expected) == []
        assert bar_differences([d async for d in db.bars.find({})], expected.closed_bars()) == []


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed ticks.raw offsets (none: 0, where a replay would start),
    read without joining the group."""
    reader = make_consumer(bootstrap, "tests-committed", group_id=group)
    await reader.start()
    try:
        return {
            p: (await reader.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)
        }
    finally:
        await reader.stop()


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    reader = make_consumer(bootstrap, "tests-ends")
    await reader.start()
    try:
        ends = await reader.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await reader.stop()


async def _wait_versions(bootstrap: str, topic: str, partitions: int, want: dict[str, int]) -> None:
    """Read ticker.updates until every symbol's newest version is the wanted one."""
    reader = make_consumer(bootstrap, "tests-updates", auto_offset_reset="earliest")
    await reader.start()
    try:
        reader.assign([TopicPartition(topic, p) for p in range(partitions)])
        newest: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while newest != want:
            assert time.monotonic() < deadline, f"updates stopped short: {newest} != {want}"
            for records in (await reader.getmany(timeout_ms=200)).values():
                for record in records:
                    state = STATE_DECODER.decode(record.value)
                    newest[state.symbol] = max(newest.get(state.symbol, 0), state.version)
    finally:
        await reader.stop()


@pytest.mark.timeout(400)
async def test_with_mongodb_down_updates_keep_flowing_and_nothing_is_committed_unpersisted(
    tmp_path: Path,
) -> None:
    """Kafka is the log, MongoDB runs behind: while FerretDB is dead every update still
    reaches ticker.updates, no offset is committed (nothing can be persisted), and once
    it is back MongoDB catches up to exactly the reference."""
    async with _private_stack(tmp_path, 3) as (stack, info, client, topics, db_name):
        bootstrap = info.bootstrap_servers
        tape = random_tape(symbols=8, events=2400, seed=29, step_ms=25, late_every=61)
        settings = settings_for(bootstrap, info.mongodb_url, db_name, topics, retry_cap_seconds=1.0)
        db = client[db_name]
        async with in_process(settings) as loop:
            await produce_tape(bootstrap, topics.raw, tape[:800])
            await wait_settled(db, await _expected(bootstrap, topics.raw, 800))
            ends = await _end_offsets(bootstrap, topics.raw, 3)
            await _until(
                lambda: _equals(_committed(bootstrap, settings.group_id, topics.raw, 3), ends),
                "the first 800 events to be committed",
            )

            ferret_pid = read_pid(tmp_path / "stack" / "ferretdb" / "ferretdb.pid")
            assert ferret_pid is not None
            os.kill(ferret_pid, signal.SIGKILL)
            await produce_tape(bootstrap, topics.raw, tape[800:])
            expected = await _expected(bootstrap, topics.raw, len(tape))
            # every update of the whole tape is published with MongoDB gone...
            want = {symbol: quote["version"] for symbol, quote in expected.quotes.items()}
            await _wait_versions(bootstrap, topics.updates, 3, want)
            await _until(lambda: _not(loop.mongodb_ready), "readiness to drop for MongoDB")
            # ...and nothing past what MongoDB held when it died is committed
            assert await _committed(bootstrap, settings.group_id, topics.raw, 3) == ends

            await asyncio.to_thread(stack.up)  # FerretDB back on the same port and data
            await wait_settled(db, expected, timeout=120)
            total = await _end_offsets(bootstrap, topics.raw, 3)
            await _until(
                lambda: _equals(_committed(bootstrap, settings.group_id, topics.raw, 3), total),
                "the commit to catch up once MongoDB holds everything",
            )
        assert quote_differences([d async for d in db.quotes.find({})], expected) == []
        assert bar_differences([d async for d in db.bars.find({})], expected.closed_bars()) == []


async def _equals(value: Awaitable[dict[int, int]], want: dict[int, int]) -> bool:
    return await value == want


def _gauge(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.mark.timeout(400)
async def test_with_mongodb_down_the_unwritten_bars_reach_their_bound_and_hold_the_loop_back(
    tmp_path: Path,
) -> None:
    """Memory stays bounded during a long outage: once the closed bars waiting for
    MongoDB reach `persist_max_pending_bars`, the loop waits (backpressure) with the rest
    left in Kafka; when MongoDB is back everything is written, exactly the reference."""
    async with _private_stack(tmp_path, 3) as (stack, info, client, topics, db_name):
        bootstrap = info.bootstrap_servers
        # 8 symbols, 40 ms apart: every symbol closes a 1s bar every few events
        tape = random_tape(symbols=8, events=2000, seed=31, step_ms=40)
        settings = settings_for(
            bootstrap,
            info.mongodb_url,
            db_name,
            topics,
            retry_cap_seconds=1.0,
            persist_max_pending_bars=20,
            max_poll_records=5,
            batch_max_records=5,
        )
        db = client[db_name]
        async with in_process(settings) as loop:
            await produce_tape(bootstrap, topics.raw, tape[:400])
            await wait_settled(db, await _expected(bootstrap, topics.raw, 400))
            assert _gauge("tickwire_processor_persist_backpressure") == 0

            ferret_pid = read_pid(tmp_path / "stack" / "ferretdb" / "ferretdb.pid")
            assert ferret_pid is not None
            os.kill(ferret_pid, signal.SIGKILL)
            await produce_tape(bootstrap, topics.raw, tape[400:])

            async def held_back() -> bool:
                return _gauge("tickwire_processor_persist_backpressure") == 1

            await _until(held_back, "the loop to wait for MongoDB at the bound")
            assert loop.persister is not None
            # batches of 5 events (0.2 s of event time) close at most 2 bars per symbol,
            # so no single batch is over the bound and it holds strictly
            assert 0 < loop.persister.pending_bars <= 20
            assert not await loop.mongodb_ready()

            await asyncio.to_thread(stack.up)  # FerretDB back on the same port and data
            expected = await _expected(bootstrap, topics.raw, len(tape))
            await wait_settled(db, expected, timeout=180)
            assert _gauge("tickwire_processor_persist_backpressure") == 0
        assert quote_differences([d async for d in db.quotes.find({})], expected) == []
        assert bar_differences([d async for d in db.bars.find({})], expected.closed_bars()) == []
