"""The processor killed or stalled at deterministic points of a batch (the test seam
TICKWIRE_FAULT_POINT): between publish and the MongoDB write, and between the write and
the offset commit. After a restart MongoDB equals the reference, `ticker.updates` and
`ticker.bars` hold every expected record, versions per stream never go backwards and a
record seen twice is an identical copy. A stalled instance that lost its partitions
(a zombie) writes late and must not overwrite its successor's newer state."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.processor_checks import bar_differences, quote_differences
from tests.helpers.processor_reference import Expected, compute
from tests.helpers.processor_run import env_for, settings_for, spawn, wait_settled
from tests.helpers.processor_tape import produce_tape, random_tape
from tickwire.devstack.procs import free_port
from tickwire.events.wire import BAR_DECODER, STATE_DECODER, Bar
from tickwire.kafka.topics import ensure_topics

INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}
GRACE = dt.timedelta(seconds=2)


async def _prepare(bootstrap: str, topics: Topics, partitions: int) -> None:
    await ensure_topics(
        bootstrap,
        [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
        partitions=partitions,
        replication=1,
    )


async def _expected(bootstrap: str, topic: str, count: int) -> Expected:
    raw = await read_all(bootstrap, topic, expected=count)
    assert len(raw) == count
    raw.sort(key=lambda r: (r.partition, r.offset))
    return compute(raw, INTERVALS, GRACE)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def _check_topics(bootstrap: str, topics: Topics, expected: Expected) -> None:
    """ticker.updates: per symbol versions never go back, a repeated version carries the
    same state (but for the records it says it covers), the last is the expected one.
    ticker.bars: every expected closed bar, equal to the reference; a repeated bar is an
    identical copy."""
    updates = await read_all(bootstrap, topics.updates, timeout=20, idle=1)
    by_symbol: dict[str, list[Any]] = {}
    for record in sorted(updates, key=lambda r: (r.partition, r.offset)):
        by_symbol.setdefault(record.key.decode(), []).append(STATE_DECODER.decode(record.value))
    assert set(by_symbol) == set(expected.quotes)
    for symbol, states in by_symbol.items():
        versions = [s.version for s in states]
        assert versions == sorted(versions), f"{symbol} went backwards: {versions}"
        assert versions[-1] == expected.quotes[symbol]["version"]
        seen: dict[int, bytes] = {}
        for state in states:
            # `source` is the range of ticks.raw records one publication covers: a
            # replay held back to the log end coalesces more of them into the same version
            body = msgspec.json.encode(msgspec.structs.replace(state, source=None))
            assert seen.setdefault(state.version, body) == body, f"{symbol} v{state.version}"

    closed = expected.closed_bars()
    records = await read_all(bootstrap, topics.bars, expected=len(closed.bars), timeout=20)
    bars: dict[tuple[str, str, dt.datetime], Bar] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        bar = BAR_DECODER.decode(record.value)
        if not bar.final:
            continue
        key = (bar.symbol, bar.interval, bar.start)
        if key in bars:
            assert bars[key] == bar, f"{key} published twice with different content"
        bars[key] = bar
    docs = [{f: getattr(b, f) for f in Bar.__struct_fields__} for b in bars.values()]
    assert bar_differences(docs, closed) == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", ["after_publish", "after_store"])
async def test_killed_at_a_fault_point_then_restarted_loses_and_doubles_nothing(
    point: str,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    mongo: Any,
    tmp_path: Path,
) -> None:
    await _prepare(kafka_bootstrap, topics, partitions=3)
    tape = random_tape(symbols=12, events=3000, seed=41, step_ms=7, late_every=97, poison_every=301)
    await produce_tape(kafka_bootstrap, topics.raw, tape)
    expected = await _expected(kafka_bootstrap, topics.raw, len(tape))
    settings = settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        topic_partitions=3,
        max_poll_records=250,
        batch_max_records=250,
    )
    faulty = settings.model_copy(update={"fault_point": point, "fault_batch": 3})
    log = tmp_path / "p1.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        first = spawn(env_for(faulty, "p1", free_port()), log)
        procs.append(first)
        assert await asyncio.to_thread(first.wait, 120) == -signal.SIGKILL
        assert f"SIGKILL at {point} of batch 3" in log.read_text()
        procs.append(spawn(env_for(settings, "p1", free_port()), log))
        await wait_settled(mongo, expected)
    finally:
        _stop(procs)
    assert quote_differences([d async for d in mongo.quotes.find({})], expected) == []
    assert bar_differences([d async for d in mongo.bars.find({})], expected.closed_bars()) == []
    await _check_topics(kafka_bootstrap, topics, expected)


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


async def _until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _metric(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.timeout(300)
async def test_a_zombie_that_wakes_up_after_losing_its_partitions_does_not_overwrite(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    mongo: Any,
    tmp_path: Path,
) -> None:
    await _prepare(kafka_bootstrap, topics, partitions=1)
    tape = random_tape(symbols=5, events=1000, seed=8, step_ms=15)
    await produce_tape(kafka_bootstrap, topics.raw, tape[:600])
    settings = settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        topic_partitions=1,
        max_poll_records=100,
        batch_max_records=100,
        session_timeout_ms=6000,
        retry_cap_seconds=0.5,
    )
    # A stalls (SIGSTOP) between publishing its third batch and writing it to MongoDB
    zombie = settings.model_copy(
        update={"fault_point": "after_publish", "fault_batch": 3, "fault_signal": "STOP"}
    )
    port_a, port_b = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        a = spawn(env_for(zombie, "a", port_a), tmp_path / "a.log")
        procs.append(a)

        async def a_stopped() -> bool:
            assert a.poll() is None, "A exited"
            return _stopped(a.pid)

        await _until(a_stopped, "A to stall at its fault point", 120)
        # B takes over once A's session expired, and goes on with newer events
        procs.append(spawn(env_for(settings, "b", port_b), tmp_path / "b.log"))
        await produce_tape(kafka_bootstrap, topics.raw, tape[600:])
        expected = await _expected(kafka_bootstrap, topics.raw, len(tape))
        await wait_settled(mongo, expected)
        assert quote_differences([d async for d in mongo.quotes.find({})], expected) == []

        # A wakes up and finishes its batch: its MongoDB write is older than B's
        os.kill(a.pid, signal.SIGCONT)

        # its third batch goes to its MongoDB writer after the stall; that write (of
        # all five symbols, one command) is refused as stale, and counted when it is done
        async def a_refused() -> bool:
            return await _metric(port_a, "tickwire_processor_stale_writes_total") >= 1

        await _until(a_refused, "A's late write of its third batch to be refused", 60)
        assert quote_differences([d async for d in mongo.quotes.find({})], expected) == []
    finally:
        _stop(procs)
