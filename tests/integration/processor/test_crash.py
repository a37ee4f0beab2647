"""Two processor processes share ticks.raw; one is SIGKILLed again and again while a
tape flows. In the end MongoDB equals the reference exactly, and no symbol's version
ever goes backwards on ticker.updates."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.processor_checks import (
    bar_differences,
    forming_differences,
    quote_differences,
)
from tests.helpers.processor_reference import compute
from tests.helpers.processor_run import env_for, settings_for, spawn, wait_settled
from tests.helpers.processor_tape import produce_tape, random_tape
from tickwire.devstack.procs import free_port
from tickwire.events.wire import STATE_DECODER
from tickwire.kafka.topics import ensure_topics

KILLS = 5
EVENTS = 20_000
METRICS = (
    "events_total",
    "batch_records",
    "mongodb_write_seconds",
    "consumer_lag_records",
    "rebalances_total",
    "dead_letters_total",
)


async def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "processor exited during start-up"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("processor never became ready")


async def _feed_slowly(bootstrap: str, topic: str, tape: list[Any], chunks: int = 30) -> None:
    size = len(tape) // chunks + 1
    for i in range(0, len(tape), size):
        await produce_tape(bootstrap, topic, tape[i : i + size])
        await asyncio.sleep(0.3)


@pytest.mark.timeout(400)
async def test_sigkill_loses_nothing_and_versions_never_go_back(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any, tmp_path: Path
) -> None:
    all_topics = [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq]
    await ensure_topics(kafka_bootstrap, all_topics, partitions=6, replication=1)
    tape = random_tape(
        symbols=60, events=EVENTS, seed=99, step_ms=4, late_every=301, poison_every=997
    )
    settings = settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, topic_partitions=6, max_poll_records=2000
    )
    ports = {"p1": free_port(), "p2": free_port()}
    envs = {name: env_for(settings, name, port) for name, port in ports.items()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("p1", "p2"):  # one after the other: the first creates the indexes
            procs[name] = spawn(envs[name], tmp_path / f"{name}.log")
            await _wait_ready(ports[name], procs[name])
        feeding = asyncio.create_task(_feed_slowly(kafka_bootstrap, topics.raw, tape))
        for n in range(KILLS):
            await asyncio.sleep(1.5)
            victim = "p2" if n % 2 == 0 else "p1"
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=10)
            procs[victim] = spawn(envs[victim], tmp_path / f"{victim}.log")
            await _wait_ready(ports[victim], procs[victim])
        await feeding

        raw = await read_all(kafka_bootstrap, topics.raw, expected=len(tape))
        assert len(raw) == len(tape)
        raw.sort(key=lambda r: (r.partition, r.offset))
        expected = compute(
            raw,
            {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)},
            dt.timedelta(milliseconds=settings.bar_grace_ms),
        )
        await wait_settled(mongo, expected, timeout=180)
        async with httpx.AsyncClient() as http:
            for port in ports.values():
                assert (await http.get(f"http://127.0.0.1:{port}/healthz")).json() == {
                    "status": "ok"
                }
                metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                for name in METRICS:
                    assert f"tickwire_processor_{name}" in metrics
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    assert quote_differences([d async for d in mongo.quotes.find({})], expected) == []
    quotes = [d async for d in mongo.quotes.find({})]
    assert forming_differences(quotes, expected) == []
    assert bar_differences([d async for d in mongo.bars.find({})], expected.closed_bars()) == []

    updates = await read_all(kafka_bootstrap, topics.updates, timeout=30, idle=2)
    by_symbol: dict[str, list[Any]] = {}
    for record in sorted(updates, key=lambda r: (r.partition, r.offset)):
        by_symbol.setdefault(record.key.decode(), []).append(STATE_DECODER.decode(record.value))
    assert set(by_symbol) == set(expected.quotes)
    for symbol, states in by_symbol.items():
        versions = [s.version for s in states]
        assert versions == sorted(versions), f"{symbol} went backwards: {versions}"
        assert versions[-1] == expected.quotes[symbol]["version"]
        same_version: dict[int, Any] = {}
        for state in states:  # a re-emitted version carries the same state
            body = (state.last, state.volume, state.bid, state.ask, state.received_ns)
            assert same_version.setdefault(state.version, body) == body
