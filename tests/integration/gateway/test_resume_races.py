"""The resume races of issue 8, against real Kafka and FerretDB.

Both are also driven, among many interleavings, by the two-instance model in
tests/unit/gateway/test_resume_two_instances.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tickwire.gateway.app as app_module
from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tickwire.gateway.resume import Resumer
from tickwire.kafka.clients import make_consumer


async def test_a_version_mongodb_had_at_cold_start_is_still_buffered_for_resumes(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    """MongoDB ahead of Kafka at cold start (AAPL 3 stored, Kafka up to 2): when AAPL 3
    then arrives, it is kept in the buffer, so a cursor from before it resumes with it."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", v) for v in (1, 2)])
    await mongo.quotes.insert_one(g.quote_doc("AAPL", 3))
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with g.running_gateway(settings) as url:
        async with g.sse_client(url, "/v1/stream?symbols=ZZZZ&bars=none") as watcher:
            # the cursor of a client that saw AAPL 2 from Kafka: the position after it
            async with g.sse_client(url, "/v1/stream?symbols=AAPL&bars=none") as first:
                snapshot = (await first.wait_for(1))[0]
            assert snapshot.event == "snapshot"
            cursor = snapshot.id
            # AAPL 3 lands in Kafka, then a marker on the same partition
            await produce(
                kafka_bootstrap,
                topics.updates,
                [g.update_record("AAPL", 3), g.update_record("ZZZZ", 1)],
            )
            await watcher.wait_for(1)  # the gateway has read AAPL 3
        async with g.sse_client(
            url, "/v1/stream?symbols=AAPL&bars=none", headers={"last-event-id": cursor}
        ) as resumed:
            await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 4)])
            while ("quote", "AAPL", 4) not in resumed.quotes():
                await resumed.wait_for(len(resumed.events) + 1)
            assert resumed.quotes() == [("quote", "AAPL", 3), ("quote", "AAPL", 4)]


async def test_a_cursor_ahead_of_the_instance_misses_nothing_read_while_it_checks(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client's cursor comes from instance A, which has read AAPL 2; instance B has
    not (its reader is paused). The client resumes on B: B checks the cursor against
    Kafka's end offsets, and while it awaits them it reads AAPL 2 and 3. AAPL 3 is past
    the cursor and must be replayed; AAPL 2 is not. (Held deterministically: the
    end-offset check is wrapped to let B's reader catch up before it returns.)"""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    consumers: list[Any] = []

    def keep(*args: Any, **kwargs: Any) -> Any:
        consumer = make_consumer(*args, **kwargs)
        consumers.append(consumer)
        return consumer

    monkeypatch.setattr(app_module, "make_consumer", keep)
    original = Resumer._end_offsets
    third_offset = 2  # AAPL 1, 2, 3 at offsets 0, 1, 2

    async def while_checking(self: Resumer, slots: Any) -> dict[int, int]:
        ends = await original(self, slots)
        reader = consumers[1]
        reader.resume(*reader.assignment())
        while self.hub.positions[0] <= third_offset:  # B reads AAPL 2 and 3 meanwhile
            await asyncio.sleep(0.01)
        return ends

    monkeypatch.setattr(Resumer, "_end_offsets", while_checking)
    settings_a = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    settings_b = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with g.running_gateway(settings_a) as url_a, g.running_gateway(settings_b) as url_b:
        reader_b = consumers[1]
        reader_b.pause(*reader_b.assignment())
        async with g.sse_client(url_a, "/v1/stream?symbols=AAPL&bars=none") as on_a:
            await on_a.wait_for(1)
            await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 2)])
            await g.until_quotes(on_a, {"AAPL": 2})
            cursor = on_a.events[-1].id  # after AAPL 2
        await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 3)])
        async with g.sse_client(
            url_b, "/v1/stream?symbols=AAPL&bars=none", headers={"last-event-id": cursor}
        ) as on_b:
            await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 4)])
            await g.until_quotes(on_b, {"AAPL": 4})
            assert on_b.quotes() == [("quote", "AAPL", 3), ("quote", "AAPL", 4)]
