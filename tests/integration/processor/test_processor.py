"""The processor against the real broker and store: a known tape (reordered within
grace, duplicates, retries, late events, tombstones, foreign records) in, MongoDB and
every output topic compared exactly with the independent reference model."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.processor_checks import (
    bar_differences,
    forming_differences,
    quote_differences,
)
from tests.helpers.processor_reference import Expected, compute
from tests.helpers.processor_run import in_process, settings_for, wait_settled
from tests.helpers.processor_tape import START, produce_tape, rich_tape, trade
from tickwire.events.wire import BAR_DECODER, STATE_DECODER
from tickwire.kafka.topics import ensure_topics

INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}
GRACE = dt.timedelta(seconds=2)


async def _feed(
    kafka_bootstrap: str, topics: Topics, tape: list[Any]
) -> tuple[list[Any], Expected]:
    await ensure_topics(
        kafka_bootstrap,
        [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
        partitions=3,
        replication=1,
    )
    await produce_tape(kafka_bootstrap, topics.raw, tape)
    raw = await read_all(kafka_bootstrap, topics.raw, expected=len(tape))
    assert len(raw) == len(tape)
    raw.sort(key=lambda r: (r.partition, r.offset))
    return raw, compute(raw, INTERVALS, GRACE)


def _updates_by_symbol(records: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.key.decode(), []).append(STATE_DECODER.decode(r.value))
    return out


async def _read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic up to its end offsets now (call it once the processor has
    settled: everything it will publish for the tape is acknowledged by then)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(records)
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


def _rich_tape(symbols: int, events: int, seed: int) -> list[Any]:
    """A tape with every kind of record, ending with one trade per symbol so that the
    last record of every partition is applied (wait_settled then covers the whole tape)."""
    tape = rich_tape(
        symbols,
        events,
        seed=seed,
        step_ms=9,
        grace_ms=int(GRACE.total_seconds() * 1000),
        reorder_every=7,
        duplicate_every=29,
        retry_every=31,
        late_every=97,
        tombstone_every=211,
        foreign_every=101,
    )
    end = START + dt.timedelta(milliseconds=9 * events + 10_000)
    return tape + [trade(f"S{i:03d}", 100.0, 1.0, end) for i in range(symbols)]


@pytest.mark.timeout(300)
async def test_tape_to_mongodb_and_topics_matches_reference(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    tape = _rich_tape(symbols=25, events=4000, seed=21)
    raw, expected = await _feed(kafka_bootstrap, topics, tape)
    assert min(len(expected.late), len(expected.dead), len(expected.duplicates)) > 20
    settings = settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        max_poll_records=700,
        publish_forming_bars=True,
    )
    duplicates_before = _events("duplicate")
    async with in_process(settings):
        await wait_settled(mongo, expected)
        # counted once the batch is committed, just after its MongoDB write
        dropped = await _wait_count("duplicate", duplicates_before + len(expected.duplicates))
    assert dropped - duplicates_before == len(expected.duplicates)

    quotes = [d async for d in mongo.quotes.find({})]
    assert quote_differences(quotes, expected) == []
    assert forming_differences(quotes, expected) == []
    assert bar_differences([d async for d in mongo.bars.find({})], expected.closed_bars()) == []

    # ticker.updates: per symbol, versions strictly increasing, each one the reference's
    # state at that version, ending at the final state
    updates = _updates_by_symbol(await _read_to_end(kafka_bootstrap, topics.updates))
    assert set(updates) == set(expected.quotes)
    for symbol, states in updates.items():
        versions = [s.version for s in states]
        assert versions == sorted(set(versions)), symbol
        assert versions[-1] == expected.quotes[symbol]["version"]
        for state in states:
            want = expected.updates[(symbol, state.version)]
            got = {f: getattr(state, f) for f in want}
            assert got == want, (symbol, state.version)

    # ticker.bars: every record is the reference's bar at its version; versions grow per
    # (symbol, interval, start); every closed bar exactly once, final
    bars = [BAR_DECODER.decode(r.value) for r in await _read_to_end(kafka_bootstrap, topics.bars)]
    held: dict[Any, int] = {}
    for bar in bars:
        key = (bar.symbol, bar.interval, bar.start)
        assert bar.version > held.get(key, -1), key
        held[key] = bar.version
        assert _bar_dict(bar) == expected.bar_versions[(*key, bar.version)], key
    finals = [(b.symbol, b.interval, b.start) for b in bars if b.final]
    assert sorted(finals) == sorted(k for k, v in expected.bars.items() if v["final"])

    # late and poison records land aside, as they were, with their coordinates
    by_coords = {(r.partition, r.offset): r for r in raw}
    late = await _read_to_end(kafka_bootstrap, topics.late)
    assert sorted((r.key, r.value, tuple(r.headers)) for r in late) == sorted(
        (by_coords[c].key, by_coords[c].value, tuple(by_coords[c].headers)) for c in expected.late
    )
    dead = await _read_to_end(kafka_bootstrap, topics.dlq)
    coords = sorted(
        (int(dict(r.headers)["tw_source_partition"]), int(dict(r.headers)["tw_source_offset"]))
        for r in dead
    )
    assert coords == sorted(expected.dead)
    assert all(dict(r.headers)["tw_source_topic"] == topics.raw.encode() for r in dead)
    assert all(dict(r.headers)["tw_error"] for r in dead)


def _events(kind: str) -> float:
    sample = REGISTRY.get_sample_value("tickwire_processor_events_total", {"type": kind})
    return sample or 0.0


async def _wait_count(kind: str, at_least: float, timeout: float = 30.0) -> float:
    """The events counter of `kind` once it reached at_least (or when timeout passed)."""
    deadline = time.monotonic() + timeout
    while _events(kind) < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return _events(kind)


def _bar_dict(bar: Any) -> dict[str, Any]:
    return {f: getattr(bar, f) for f in bar.__struct_fields__}


@pytest.mark.timeout(300)
async def test_a_replay_from_the_start_changes_nothing(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    tape = _rich_tape(symbols=10, events=1500, seed=4)
    _, expected = await _feed(kafka_bootstrap, topics, tape)
    settings = settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with in_process(settings):
        await wait_settled(mongo, expected)
    quotes = sorted([d async for d in mongo.quotes.find({})], key=lambda d: d["_id"])
    bars = sorted([d async for d in mongo.bars.find({})], key=lambda d: d["_id"])
    published = {
        topic: await _read_to_end(kafka_bootstrap, topic)
        for topic in (topics.updates, topics.bars, topics.late)
    }

    # a new consumer group starts from the earliest offset: everything is a replay (the
    # records with a symbol are skipped by the offset guard; dead letters, which have
    # none, are dead-lettered again)
    replay = settings.model_copy(update={"group_id": settings.group_id + "-replay"})
    async with in_process(replay):
        await _wait_consumed(len(tape) - len(expected.dead), len(expected.dead))
    assert sorted([d async for d in mongo.quotes.find({})], key=lambda d: d["_id"]) == quotes
    assert sorted([d async for d in mongo.bars.find({})], key=lambda d: d["_id"]) == bars
    for topic, records in published.items():
        again = await _read_to_end(kafka_bootstrap, topic)
        assert [(r.key, r.value) for r in again] == [(r.key, r.value) for r in records], topic


async def _wait_consumed(replayed: int, poison: int, timeout: float = 60.0) -> None:
    """Wait until this process's processor counted `replayed` more replayed records and
    `poison` more dead letters (counted once their batch was published and committed)."""

    def count(kind: str) -> float:
        sample = REGISTRY.get_sample_value("tickwire_processor_events_total", {"type": kind})
        return sample or 0.0

    start = count("replayed"), count("poison")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count("replayed") - start[0] >= replayed and count("poison") - start[1] >= poison:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("replay did not finish")
