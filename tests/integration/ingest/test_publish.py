"""Posting through the real app to the real broker, and reading the records back with a
plain consumer: key, headers, payload, order per symbol, offsets as reported."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from tests.helpers import infra
from tests.helpers.ingest import quote, running_ingest, settings_for, trade
from tests.helpers.kafka import read_all
from tickwire.events import headers as h
from tickwire.events import types, wire
from tickwire.kafka.topics import partitions_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def client(kafka_bootstrap: str, topics: infra.Topics) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(kafka_bootstrap, topics.raw)
    async with running_ingest(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


def placed(records: list[ConsumerRecord[bytes, bytes]]) -> dict[tuple[int, int], Any]:
    return {(r.partition, r.offset): r for r in records}


async def test_one_trade_lands_with_key_headers_and_payload(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    posted = trade("AAPL", 227.31, 100, id="feed-1", venue="XNAS", time="2026-03-02T16:30:00+02:00")
    resp = await client.post("/v1/events", json=posted, headers={"traceparent": TRACEPARENT})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["id"] == "feed-1"
    assert body["topic_name"] == topics.raw

    [record] = await read_all(kafka_bootstrap, topics.raw, expected=1)
    assert (record.partition, record.offset) == (body["partition_id"], body["offset"])
    assert record.key == b"AAPL"
    assert wire.TRADE_DECODER.decode(record.value) == wire.TradeData(
        symbol="AAPL",
        price=227.31,
        size=100,
        time=dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC),
        venue="XNAS",
    )
    assert (
        record.value == b'{"symbol":"AAPL","price":227.31,"size":100.0,'
        b'"time":"2026-03-02T14:30:00Z","venue":"XNAS"}'
    )
    headers = h.header_map(record.headers)
    assert set(headers) == {
        h.CE_SPECVERSION,
        h.CE_ID,
        h.CE_SOURCE,
        h.CE_TYPE,
        h.CE_SUBJECT,
        h.CE_TIME,
        h.CONTENT_TYPE,
        h.RECEIVED_NS,
        h.TRACEPARENT,
    }
    assert headers[h.CE_SPECVERSION] == b"1.0"
    assert headers[h.CE_ID] == b"feed-1"
    assert headers[h.CE_SOURCE] == b"/producers/anonymous"
    assert headers[h.CE_TYPE] == types.TRADE.encode()
    assert headers[h.CE_SUBJECT] == b"AAPL"
    assert headers[h.CE_TIME] == b"2026-03-02T14:30:00Z"
    assert headers[h.CONTENT_TYPE] == b"application/json"
    assert headers[h.TRACEPARENT] == TRACEPARENT.encode()
    assert h.get_int(headers, h.RECEIVED_NS) is not None


async def test_no_traceparent_header_without_a_valid_one(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    assert (await client.post("/v1/events", json=trade())).status_code == 202
    bad = {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}
    assert (await client.post("/v1/events", json=trade(), headers=bad)).status_code == 202
    records = await read_all(kafka_bootstrap, topics.raw, expected=2)
    assert [h.find(r.headers, h.TRACEPARENT) for r in records] == [None, None]


async def test_a_batch_keeps_order_per_symbol_and_reports_each_offset(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    symbols = ["AAPL", "MSFT", "BTC-USD", "EUR/USD", "BRK.B"]
    events = [
        trade(symbols[i % 5], 100 + i, i, id=f"b-{i}")
        if i % 3
        else quote(symbols[i % 5], 100 + i, 101 + i, id=f"b-{i}")
        for i in range(200)
    ]
    resp = await client.post("/v1/events:batch", json=events)
    assert resp.status_code == 202, resp.text
    result = resp.json()
    assert result["accepted"] == 200
    assert result["rejected"] == 0
    assert [r["id"] for r in result["results"]] == [f"b-{i}" for i in range(200)]

    records = placed(await read_all(kafka_bootstrap, topics.raw, expected=200))
    assert len(records) == 200
    for posted, entry in zip(events, result["results"], strict=True):
        record = records[(entry["partition_id"], entry["offset"])]
        assert h.header_map(record.headers)[h.CE_ID] == posted["id"].encode()
        assert record.key == posted["symbol"].encode()
    for symbol in symbols:
        mine = [r for r in records.values() if r.key == symbol.encode()]
        assert len({r.partition for r in mine}) == 1
        ids = [h.find(r.headers, h.CE_ID) for r in sorted(mine, key=lambda r: r.offset)]
        assert ids == [e["id"].encode() for e in events if e["symbol"] == symbol]


async def test_ndjson_and_assigned_ulids(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    body = b"\n".join(orjson.dumps(trade("AAPL", 100 + i, 1)) for i in range(50)) + b"\n"
    resp = await client.post(
        "/v1/events:batch", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert resp.status_code == 202, resp.text
    ids = [r["id"] for r in resp.json()["results"]]
    assert len(ids) == 50
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    assert all(len(i) == 26 for i in ids)
    records = await read_all(kafka_bootstrap, topics.raw, expected=50)
    assert [h.find(r.headers, h.CE_ID) for r in records] == [i.encode() for i in ids]
    assert [wire.TRADE_DECODER.decode(r.value).price for r in records] == [
        100.0 + i for i in range(50)
    ]


async def test_cloudevents_single_and_batch(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    data = {k: v for k, v in quote("MSFT").items() if k != "type"}
    ce = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/feeds/b",
        "type": types.QUOTE,
        "subject": "MSFT",
        "datacontenttype": "application/json",
        "data": data,
    }
    one = await client.post(
        "/v1/events",
        content=orjson.dumps(ce),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert one.status_code == 202, one.text
    many = await client.post(
        "/v1/events:batch",
        content=orjson.dumps([{**ce, "id": "ce-2"}, {**ce, "id": "ce-3"}]),
        headers={"content-type": "application/cloudevents-batch+json; charset=utf-8"},
    )
    assert many.status_code == 202, many.text
    records = await read_all(kafka_bootstrap, topics.raw, expected=3)
    assert [h.find(r.headers, h.CE_ID) for r in records] == [b"ce-1", b"ce-2", b"ce-3"]
    assert {h.find(r.headers, h.CE_SOURCE) for r in records} == {b"/feeds/b"}
    assert {h.find(r.headers, h.CE_TYPE) for r in records} == {types.QUOTE.encode()}
    assert wire.QUOTE_DECODER.decode(records[0].value).symbol == "MSFT"


async def test_a_batch_with_an_invalid_entry_is_refused_whole(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    events = [trade(id="ok-0"), quote(bid=2, ask=1, id="bad-1"), trade(id="ok-2"), {"type": "x"}]
    resp = await client.post("/v1/events:batch", json=events)
    assert resp.status_code == 422
    fields = [e["field"] for e in resp.json()["errors"]]
    assert fields[0] == "[1].bid"
    assert fields[1].startswith("[3]")
    assert len(fields) == 2
    # nothing of that batch landed; the next, valid batch is the only thing in the topic
    ok = await client.post("/v1/events:batch", json=[trade(id="ok-3")])
    assert ok.status_code == 202
    records = await read_all(kafka_bootstrap, topics.raw, expected=1)
    assert [h.find(r.headers, h.CE_ID) for r in records] == [b"ok-3"]


async def test_refusals_publish_nothing(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    cases = [
        (client.post("/v1/events", json=trade(price=-1)), 422),
        (
            client.post(
                "/v1/events", content=b"{nope", headers={"content-type": "application/json"}
            ),
            400,
        ),
        (client.post("/v1/events", content=b"x", headers={"content-type": "text/plain"}), 415),
        (client.post("/v1/events:batch", json=[]), 400),
        (client.post("/v1/events:batch", json=[quote(bid=3, ask=1), trade(size=-1)]), 422),
    ]
    for call, status in cases:
        resp = await call
        assert resp.status_code == status, resp.text
        assert resp.json()["error_code"] == status
    invalid = (await client.post("/v1/events", json=trade(price=-1))).json()
    assert invalid["errors"] == [{"field": "price", "message": "Expected `float` > 0.0"}]
    batch = (
        await client.post("/v1/events:batch", json=[quote(bid=3, ask=1), trade(size=-1)])
    ).json()
    assert [e["field"] for e in batch["errors"]] == ["[0].bid", "[1].size"]
    # a marker event afterwards: it must be the only record in the topic
    assert (await client.post("/v1/events", json=trade(id="marker"))).status_code == 202
    records = await read_all(kafka_bootstrap, topics.raw, expected=1)
    assert [h.find(r.headers, h.CE_ID) for r in records] == [b"marker"]


async def test_topic_is_created_with_the_configured_partitions(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    assert await partitions_for(kafka_bootstrap, topics.raw) == 3  # settings_for() asks 3


async def test_health_ready_metrics_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post("/v1/events", json=trade())
    await client.post("/v1/events", json=trade(price=0))
    metrics = (await client.get("/metrics")).text
    for name in (
        "tickwire_ingest_events_accepted_total",
        'tickwire_ingest_events_rejected_total{reason="invalid"}',
        "tickwire_ingest_kafka_send_seconds_bucket",
        "tickwire_ingest_request_events_bucket",
        "tickwire_ingest_kafka_batch_records_bucket",
        "tickwire_ingest_inflight_events",
        'tickwire_http_requests_total{method="POST",route="/v1/events",service="ingest",status="2xx"}',
    ):
        assert name in metrics, name
    document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/cloudevents+json"}
    assert document["components"]["schemas"]["Trade"]["examples"]
    assert (await client.get("/docs")).status_code == 200


async def test_concurrent_posts_share_batches_and_each_offset_is_right(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: infra.Topics
) -> None:
    symbols = ["AAPL", "MSFT", "NVDA", "TSLA"]

    async def post(i: int) -> httpx.Response:
        if i % 10 == 0:
            events = [trade(symbols[(i + j) % 4], 1 + j, 1, id=f"c-{i}-{j}") for j in range(20)]
            return await client.post("/v1/events:batch", json=events)
        return await client.post("/v1/events", json=trade(symbols[i % 4], 1, 1, id=f"c-{i}"))

    responses = await asyncio.gather(*(post(i) for i in range(200)))
    assert {r.status_code for r in responses} == {202}
    placed_by_response: dict[tuple[int, int], str] = {}
    for resp in responses:
        body = resp.json()
        for entry in body.get("results", [body]):
            place = (entry["partition_id"], entry["offset"])
            assert place not in placed_by_response, "two events reported at one offset"
            placed_by_response[place] = entry["id"]
    expected = len(placed_by_response)
    assert expected == 180 + 20 * 20
    records = placed(await read_all(kafka_bootstrap, topics.raw, expected=expected))
    assert len(records) == expected
    for place, event_id in placed_by_response.items():
        assert h.find(records[place].headers, h.CE_ID) == event_id.encode()
