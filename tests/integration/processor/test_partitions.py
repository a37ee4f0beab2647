"""Adding partitions to ticks.raw, the documented way (stop producers, let the
processor drain, add partitions, start producers again): symbols move to other
partitions, and still no record is skipped, no version restarts, and MongoDB and
ticker.updates equal the reference. Two processor instances share the partitions, so a
moved symbol is picked up both from memory and from its stored document."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.processor_checks import bar_differences, quote_differences
from tests.helpers.processor_reference import compute
from tests.helpers.processor_run import in_process, settings_for, wait_settled
from tests.helpers.processor_tape import produce_tape, random_tape
from tickwire.events.partitioner import partition_for
from tickwire.events.wire import STATE_DECODER
from tickwire.kafka.topics import ensure_topics

INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}
GRACE = dt.timedelta(seconds=2)


async def _add_partitions(bootstrap: str, topic: str, total: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=total)})
    finally:
        await admin.close()


@pytest.mark.timeout(300)
async def test_partitions_added_mid_stream_skip_nothing_and_versions_go_on(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    await ensure_topics(
        kafka_bootstrap,
        [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
        partitions=2,
        replication=1,
    )
    tape = random_tape(symbols=20, events=3000, seed=13, step_ms=6, late_every=151)
    symbols = sorted({key for key, _, _ in tape if key is not None})
    moved = [s for s in symbols if partition_for(s, 2) != partition_for(s, 5)]
    assert moved, "the tape must have symbols that change partition"
    settings = settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        topic_partitions=2,
        max_poll_records=300,
        batch_max_records=300,
        metadata_max_age_ms=500,
    )
    async with in_process(settings), in_process(settings):
        await produce_tape(kafka_bootstrap, topics.raw, tape[:1500])
        before = await read_all(kafka_bootstrap, topics.raw, expected=1500)
        before.sort(key=lambda r: (r.partition, r.offset))
        # drained: every symbol's state is stored up to its last event
        await wait_settled(mongo, compute(before, INTERVALS, GRACE))

        await _add_partitions(kafka_bootstrap, topics.raw, 5)
        await produce_tape(kafka_bootstrap, topics.raw, tape[1500:])  # a fresh producer
        everything = await read_all(kafka_bootstrap, topics.raw, expected=len(tape))
        assert len(everything) == len(tape)
        seen = {(r.partition, r.offset) for r in before}
        after = sorted(
            (r for r in everything if (r.partition, r.offset) not in seen),
            key=lambda r: (r.partition, r.offset),
        )
        assert {r.key for r in after if r.partition >= 2}, "no event reached a new partition"
        # per symbol: its events before the change, then its events after it
        expected = compute(before + after, INTERVALS, GRACE)
        await wait_settled(mongo, expected, timeout=150)

    docs = [d async for d in mongo.quotes.find({})]
    assert quote_differences(docs, expected) == []
    assert bar_differences([d async for d in mongo.bars.find({})], expected.closed_bars()) == []
    by_id = {d["_id"]: d for d in docs}
    for symbol in moved:
        assert by_id[symbol.decode()]["partition"] == partition_for(symbol, 5), symbol

    updates = await read_all(kafka_bootstrap, topics.updates, timeout=20, idle=1)
    versions: dict[str, list[int]] = {}
    for record in sorted(updates, key=lambda r: (r.partition, r.offset)):
        versions.setdefault(record.key.decode(), []).append(
            STATE_DECODER.decode(record.value).version
        )
    for symbol, seen_versions in versions.items():
        assert seen_versions == sorted(seen_versions), f"{symbol}: {seen_versions}"
        assert seen_versions[-1] == expected.quotes[symbol]["version"]
