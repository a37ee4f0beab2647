"""The bridge against a real RabbitMQ node and a real Kafka broker: messages in every
accepted shape reach ticks.raw exactly once, in order per symbol, as the documented
ticks.raw contract says (docs/architecture.md, "Kafka records"); poison messages go to
the dead-letter exchange with their reason, and nothing is left requeued.

One RabbitMQ node serves the module; every test has its own exchange, queues and
topic.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY

from tests.helpers import bridge as b
from tests.helpers.infra import Topics
from tickwire.devstack.rabbitmq import RabbitServer

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    with b.rabbit_node(tmp_path_factory.mktemp("rabbitmq")) as server:
        yield server


def _tag() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _utc(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.utcoffset() == dt.timedelta(0), f"{text} is not in UTC"
    return parsed


async def test_every_shape_reaches_ticks_raw_once_in_order(
    rabbit: RabbitServer, kafka_bootstrap: str, topics: Topics
) -> None:
    tag = _tag()
    settings = b.settings_for(kafka_bootstrap, rabbit.url, topics, tag, bridge_batch_max=50)
    queue = settings.bridge_bindings[0].queue
    symbols = ["AAPL", "MSFT", "BRK.B", "X", "ES-Z6", "EUR/USD"]
    messages: list[aio_pika.Message] = []
    # what ticks.raw must hold per symbol, from the contract: (ce_id, ce_source, data)
    expected: dict[str, list[tuple[str | None, str, dict[str, Any]]]] = {s: [] for s in symbols}
    zone = dt.timezone(dt.timedelta(hours=2))
    for i in range(180):
        symbol = symbols[i % len(symbols)]
        when = NOW - dt.timedelta(seconds=200 - i)
        data = b.trade(symbol, 100.0 + i / 8, 1 + i % 7, when.astimezone(zone))
        utc_data = {**data, "time": when}
        shape = (i // len(symbols) + 1) % 6  # the last round (the markers): shape 0
        event_id = f"{tag}-{i}"
        if shape == 0:  # plain JSON with the producer's id and source
            messages.append(b.plain("trade", data, id=event_id, source="/feeds/a"))
            expected[symbol].append((event_id, "/feeds/a", utc_data))
        elif shape == 1:  # plain JSON, the id from the AMQP message id, default source
            message = b.plain("trade", data)
            message.message_id = event_id
            messages.append(message)
            expected[symbol].append((event_id, f"/amqp/{queue}", utc_data))
        elif shape == 2:  # structured CloudEvent
            messages.append(b.structured(b.TRADE_TYPE, event_id, "/feeds/s", data))
            expected[symbol].append((event_id, "/feeds/s", utc_data))
        elif shape == 3:  # binary CloudEvent, the spec's `cloudEvents:` prefix
            messages.append(b.binary(b.TRADE_TYPE, event_id, "/feeds/b", data))
            expected[symbol].append((event_id, "/feeds/b", utc_data))
        elif shape == 4:  # binary CloudEvent, the `cloudEvents_` prefix (JMS clients)
            messages.append(b.binary(b.TRADE_TYPE, event_id, "/feeds/j", data, "cloudEvents_"))
            expected[symbol].append((event_id, "/feeds/j", utc_data))
        else:  # plain JSON without any id: the message id aiormq assigns on publish
            messages.append(b.plain("trade", data))
            expected[symbol].append((None, f"/amqp/{queue}", utc_data))
    quote = {"symbol": "AAPL", "bid": 1.5, "bid_size": 0, "ask": 1.5, "ask_size": 10}
    quote["time"] = NOW.isoformat()
    messages.append(b.binary(b.QUOTE_TYPE, f"{tag}-quote", "/feeds/q", quote))
    expected["AAPL"].append((f"{tag}-quote", "/feeds/q", {**quote, "time": NOW}))

    async with b.in_process(settings) as bridge:
        await b.wait_consuming(bridge)
        await b.publish(rabbit.url, f"{tag}.x", "ticks.nyse", messages)
        markers = {str(entries[-1][0]) for entries in expected.values()}
        records = await b.read_until_ids(kafka_bootstrap, topics.raw, markers)

    groups = b.by_symbol(records)
    assert sorted(groups) == sorted(symbols)
    partitions = [0, 1, 2]
    for symbol, entries in expected.items():
        got = groups[symbol]
        ids = [b.header(r, "ce_id") for r in got]
        # exactly the expected events in order (an id the client library assigned: any)
        assert ids == [e[0] or i for i, e in zip(ids, entries, strict=True)], symbol
        assert len(set(ids)) == len(ids), symbol
        assert all(ids), symbol
        assert {r.partition for r in got} == {
            DefaultPartitioner()(symbol.encode(), partitions, partitions)
        }
        for record, (event_id, source, data) in zip(got, entries, strict=True):
            assert b.header(record, "ce_specversion") == "1.0"
            assert b.header(record, "ce_source") == source
            assert b.header(record, "ce_type") == (
                b.QUOTE_TYPE if str(event_id).endswith("quote") else b.TRADE_TYPE
            )
            assert b.header(record, "ce_subject") == symbol
            assert _utc(b.header(record, "ce_time") or "") == data["time"]
            assert b.header(record, "content-type") == "application/json"
            assert int(b.header(record, "tw_received_ns") or "0") > 0
            value = json.loads(record.value)
            assert _utc(value.pop("time")) == data["time"]
            assert value == {k: v for k, v in data.items() if k != "time"}


POISON: list[tuple[str, str]] = [
    ("not json", "malformed"),
    ("bad utf-8", "malformed"),
    ("unknown type", "unknown_type"),
    ("size 0", "invalid"),
    ("bid above ask", "invalid"),
    ("text/plain", "unsupported_content_type"),
    ("specversion 0.3", "invalid"),
    ("subject is another symbol", "invalid"),
    ("far in the future", "invalid"),
    ("structured without data", "invalid"),
]


def _poison(name: str, tag: str) -> aio_pika.Message:
    good = b.trade("AAPL", 10.0, 5, NOW)
    if name == "not json":
        return aio_pika.Message(b"{not json", content_type="application/json")
    if name == "bad utf-8":
        return aio_pika.Message(b'{"type": "trade", "symbol": "\xff"}')
    if name == "unknown type":
        return b.plain("dividend", good)
    if name == "size 0":
        return b.plain("trade", {**good, "size": 0})
    if name == "bid above ask":
        quote = {"symbol": "AAPL", "bid": 2.0, "bid_size": 1, "ask": 1.0, "ask_size": 1}
        return b.binary(b.QUOTE_TYPE, f"{tag}-q", "/f", {**quote, "time": NOW.isoformat()})
    if name == "text/plain":
        return aio_pika.Message(json.dumps(good).encode(), content_type="text/plain")
    if name == "specversion 0.3":
        message = b.binary(b.TRADE_TYPE, f"{tag}-v", "/f", good)
        assert message.headers is not None
        message.headers["cloudEvents:specversion"] = "0.3"
        return message
    if name == "subject is another symbol":
        message = b.binary(b.TRADE_TYPE, f"{tag}-s", "/f", good)
        assert message.headers is not None
        message.headers["cloudEvents:subject"] = "MSFT"
        return message
    if name == "far in the future":
        return b.plain("trade", {**good, "time": (NOW + dt.timedelta(hours=1)).isoformat()})
    body = {"specversion": "1.0", "type": b.TRADE_TYPE, "id": "x", "source": "/f"}
    return aio_pika.Message(json.dumps(body).encode(), content_type="application/cloudevents+json")


def _rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value("tickwire_bridge_messages_rejected_total", {"reason": reason})
    return value or 0.0


async def test_poison_messages_are_dead_lettered_with_their_reason(
    rabbit: RabbitServer, kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    tag = _tag()
    settings = b.settings_for(kafka_bootstrap, rabbit.url, topics, tag)
    queue = settings.bridge_bindings[0].queue
    messages: list[aio_pika.Message] = []
    valid_ids = []
    for i, (name, _) in enumerate(POISON):
        valid_ids.append(f"{tag}-ok-{i}")
        when = NOW - dt.timedelta(seconds=60 - i)
        messages.append(b.plain("trade", b.trade("AAPL", 10.0 + i, 1, when), id=valid_ids[-1]))
        poison = _poison(name, tag)
        poison.message_id = f"poison-{i}"
        messages.append(poison)
    valid_ids.append(f"{tag}-ok-last")
    messages.append(b.plain("trade", b.trade("AAPL", 20.0, 1, NOW), id=valid_ids[-1]))
    before = {reason: _rejected(reason) for _, reason in POISON}

    async with b.in_process(settings) as bridge:
        await b.wait_consuming(bridge)
        await b.publish(rabbit.url, f"{tag}.x", "ticks.nyse", messages)
        records = await b.read_until_ids(kafka_bootstrap, topics.raw, {valid_ids[-1]})
        letters = await b.drain_queue(rabbit.url, f"{tag}.dead", len(POISON))

    assert [b.header(r, "ce_id") for r in records] == valid_ids
    assert [m.message_id for m in letters] == [f"poison-{i}" for i in range(len(POISON))]
    for letter, (name, reason), original in zip(letters, POISON, messages[1::2], strict=True):
        assert letter.headers["x-tickwire-reason"] == reason, name
        assert letter.headers["x-tickwire-error"], name
        assert letter.headers["x-tickwire-queue"] == queue
        assert letter.body == original.body, name
    assert await b.queue_depth(rabbit.url, queue) == 0  # nothing requeued
    for reason in {r for _, r in POISON}:
        count = sum(1 for _, r in POISON if r == reason)
        assert _rejected(reason) - before[reason] == count, reason
