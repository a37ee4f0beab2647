"""The processor against the real broker and store: a known tape in, MongoDB and every
output topic compared with the independent reference model."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
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
from tests.helpers.processor_tape import produce_tape, random_tape
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


@pytest.mark.timeout(300)
async def test_tape_to_mongodb_and_topics_matches_reference(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    tape = random_tape(symbols=25, events=4000, seed=21, step_ms=9, late_every=97, poison_every=401)
    raw, expected = await _feed(kafka_bootstrap, topics, tape)
    settings = settings_for(kafka_bootstrap, mongodb_url, db_name, topics, max_poll_records=700)
    async with in_process(settings):
        await wait_settled(mongo, expected)

    assert quote_differences([d async for d in mongo.quotes.find({})], expected) == []
    quotes = [d async for d in mongo.quotes.find({})]
    assert forming_differences(quotes, expected) == []
    assert bar_differences([d async for d in mongo.bars.find({})], expected.closed_bars()) == []

    # ticker.updates: per symbol, versions strictly increasing, ending at the final state
    updates = _updates_by_symbol(
        await read_all(kafka_bootstrap, topics.updates, timeout=10, idle=1)
    )
    assert set(updates) == set(expected.quotes)
    for symbol, states in updates.items():
        versions = [s.version for s in states]
        assert versions == sorted(set(versions)), symbol
        last = states[-1]
        assert last.version == expected.quotes[symbol]["version"]
        assert (
            last.source is not None and last.source.last == expected.quotes[symbol]["offset"]
        ) or (expected.quotes[symbol]["offset"] in {o for p, o in expected.late})

    # ticker.bars: every closed bar exactly once, equal to the reference
    final = {k: v for k, v in expected.bars.items() if v["final"]}
    bars = [
        BAR_DECODER.decode(r.value)
        for r in await read_all(kafka_bootstrap, topics.bars, expected=len(final))
    ]
    keys = [(b.symbol, b.interval, b.start) for b in bars]
    assert len(keys) == len(set(keys)) == len(final)
    assert set(keys) == set(final)
    docs = [_bar_dict(b) for b in bars]
    assert bar_differences(docs, Expected(bars=final)) == []

    # late and poison records land aside, as they were, with their coordinates
    by_coords = {(r.partition, r.offset): r for r in raw}
    late = await read_all(kafka_bootstrap, topics.late, expected=len(expected.late))
    assert sorted((r.key, r.value) for r in late) == sorted(
        (by_coords[c].key, by_coords[c].value) for c in expected.late
    )
    assert all(
        list(r.headers) == list(by_coords[c].headers)
        for r, c in zip(
            sorted(late, key=lambda r: r.value),
            sorted(expected.late, key=lambda c: by_coords[c].value),
            strict=True,
        )
    )
    dead = await read_all(kafka_bootstrap, topics.dlq, expected=len(expected.dead))
    coords = sorted(
        (int(dict(r.headers)["tw_source_partition"]), int(dict(r.headers)["tw_source_offset"]))
        for r in dead
    )
    assert coords == sorted(expected.dead)
    assert all(dict(r.headers)["tw_source_topic"] == topics.raw.encode() for r in dead)
    assert all(b"undecodable" in dict(r.headers)["tw_error"] for r in dead)


def _bar_dict(bar: Any) -> dict[str, Any]:
    return {f: getattr(bar, f) for f in bar.__struct_fields__}


@pytest.mark.timeout(300)
async def test_a_replay_from_the_start_changes_nothing(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    tape = random_tape(symbols=10, events=1500, seed=4, step_ms=15, late_every=50)
    _, expected = await _feed(kafka_bootstrap, topics, tape)
    settings = settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with in_process(settings):
        await wait_settled(mongo, expected)
    quotes = sorted([d async for d in mongo.quotes.find({})], key=lambda d: d["_id"])
    bars = sorted([d async for d in mongo.bars.find({})], key=lambda d: d["_id"])
    n_updates = len(await read_all(kafka_bootstrap, topics.updates, timeout=5, idle=0.5))
    n_late = len(await read_all(kafka_bootstrap, topics.late, timeout=5, idle=0.5))

    # a new consumer group starts from the earliest offset: everything is a replay
    replay = settings.model_copy(update={"group_id": settings.group_id + "-replay"})
    async with in_process(replay):
        await _wait_consumed(len(tape))
    assert sorted([d async for d in mongo.quotes.find({})], key=lambda d: d["_id"]) == quotes
    assert sorted([d async for d in mongo.bars.find({})], key=lambda d: d["_id"]) == bars
    assert len(await read_all(kafka_bootstrap, topics.updates, timeout=5, idle=0.5)) == n_updates
    assert len(await read_all(kafka_bootstrap, topics.late, timeout=5, idle=0.5)) == n_late


async def _wait_consumed(total: int, timeout: float = 60.0) -> None:
    """Wait until this process's processor counted `total` more replayed records."""

    def replayed() -> float:
        return (
            REGISTRY.get_sample_value("tickwire_processor_events_total", {"type": "replayed"})
            or 0.0
        )

    start = replayed()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replayed() - start >= total:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("replay did not finish")
