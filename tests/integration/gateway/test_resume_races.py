"""The resume races of issue 8, against real Kafka and FerretDB.

(The other race - a cursor ahead of the instance it lands on, records read while the
instance awaits the end offsets - is driven deterministically in
tests/unit/gateway/test_resume_two_instances.py, which holds the instance at that await.)
"""

from __future__ import annotations

from typing import Any

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


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
