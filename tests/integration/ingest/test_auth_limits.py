"""API keys, scopes, rate limits, body and in-flight limits, against the real broker:
a refused event is never in the topic."""

from __future__ import annotations

import httpx
import orjson

from tests.helpers import infra
from tests.helpers.ingest import keys_document, quote, running_ingest, settings_for, trade
from tests.helpers.kafka import read_all
from tickwire.events import headers as h


def ids_of(records: list) -> list[bytes | None]:  # type: ignore[type-arg]
    return [h.find(r.headers, h.CE_ID) for r in records]


async def test_keys_scopes_and_sources(kafka_bootstrap: str, topics: infra.Topics) -> None:
    document, keys = keys_document(
        [
            {"key_id": "all"},
            {"key_id": "trades-a", "scopes": {"types": ["trade"], "symbols": ["A*", "BTC-?SD"]}},
        ]
    )
    settings = settings_for(kafka_bootstrap, topics.raw, ingest_auth="on", ingest_keys=document)
    async with running_ingest(settings) as url, httpx.AsyncClient(base_url=url) as client:
        missing = await client.post("/v1/events", json=trade(id="no-key"))
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("ApiKey")
        wrong = await client.post(
            "/v1/events", json=trade(id="bad-key"), headers={"x-api-key": "tw_nope"}
        )
        assert wrong.status_code == 401

        full = {"x-api-key": keys["all"]}
        bearer = {"authorization": f"Bearer {keys['trades-a']}"}
        assert (
            await client.post("/v1/events", json=trade("MSFT", id="k1"), headers=full)
        ).status_code == 202
        assert (
            await client.post("/v1/events", json=trade("AAPL", id="k2"), headers=bearer)
        ).status_code == 202
        assert (
            await client.post("/v1/events", json=trade("BTC-USD", id="k3"), headers=bearer)
        ).status_code == 202
        out_of_scope = await client.post("/v1/events", json=trade("MSFT", id="x1"), headers=bearer)
        assert out_of_scope.status_code == 403
        wrong_type = await client.post("/v1/events", json=quote("AAPL", id="x2"), headers=bearer)
        assert wrong_type.status_code == 403

        batch = await client.post(
            "/v1/events:batch",
            json=[trade("AMZN", id="k4"), trade("MSFT", id="x3"), quote("AAPL", id="x4")],
            headers=bearer,
        )
        assert batch.status_code == 403  # all or nothing: k4 is not published either
        assert [e["field"] for e in batch.json()["errors"]] == ["[1]", "[2]"]
        batch = await client.post("/v1/events:batch", json=[trade("AMZN", id="k4")], headers=bearer)
        assert batch.status_code == 202
        none = await client.post("/v1/events:batch", json=[trade("MSFT", id="x5")], headers=bearer)
        assert none.status_code == 403

    records = await read_all(kafka_bootstrap, topics.raw, expected=4)
    # four symbols, so up to four partitions: compare the whole set, each exactly once
    sources = {h.find(r.headers, h.CE_ID): h.find(r.headers, h.CE_SOURCE) for r in records}
    assert sorted(ids_of(records)) == [b"k1", b"k2", b"k3", b"k4"]
    assert sources == {
        b"k1": b"/producers/all",
        b"k2": b"/producers/trades-a",
        b"k3": b"/producers/trades-a",
        b"k4": b"/producers/trades-a",
    }


async def test_rate_limit_is_per_key_with_retry_after(
    kafka_bootstrap: str, topics: infra.Topics
) -> None:
    document, keys = keys_document(
        [
            {"key_id": "slow", "rate": 0.01, "burst": 5},
            {"key_id": "other", "rate": 0.01, "burst": 5},
        ]
    )
    settings = settings_for(kafka_bootstrap, topics.raw, ingest_auth="on", ingest_keys=document)
    async with running_ingest(settings) as url, httpx.AsyncClient(base_url=url) as client:
        slow = {"x-api-key": keys["slow"]}
        batch = [trade(id=f"s{i}") for i in range(4)]
        assert (await client.post("/v1/events:batch", json=batch, headers=slow)).status_code == 202
        assert (
            await client.post("/v1/events", json=trade(id="s4"), headers=slow)
        ).status_code == 202
        limited = await client.post("/v1/events", json=trade(id="s5"), headers=slow)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        too_big = await client.post(
            "/v1/events:batch",
            json=[trade(id=f"t{i}") for i in range(6)],
            headers={"x-api-key": keys["other"]},
        )
        assert too_big.status_code == 429  # more than the burst: can never pass at once
        other = await client.post(
            "/v1/events", json=trade(id="o1"), headers={"x-api-key": keys["other"]}
        )
        assert other.status_code == 202
    records = await read_all(kafka_bootstrap, topics.raw, expected=6)
    assert ids_of(records) == [b"s0", b"s1", b"s2", b"s3", b"s4", b"o1"]


async def test_body_batch_and_inflight_limits(kafka_bootstrap: str, topics: infra.Topics) -> None:
    settings = settings_for(
        kafka_bootstrap,
        topics.raw,
        ingest_max_body_bytes=4096,
        ingest_max_batch_events=5,
        ingest_max_inflight_events=3,
    )
    async with running_ingest(settings) as url, httpx.AsyncClient(base_url=url) as client:
        big = orjson.dumps([trade(id=f"b{i}", venue="X" * 30) for i in range(40)])
        assert len(big) > 4096
        declared = await client.post(
            "/v1/events:batch", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413

        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000]

        streamed = await client.post(
            "/v1/events:batch", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        many = await client.post("/v1/events:batch", json=[trade(id=f"m{i}") for i in range(6)])
        assert many.status_code == 422  # maxItems in the schema
        shed = await client.post("/v1/events:batch", json=[trade(id=f"f{i}") for i in range(4)])
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        fits = await client.post("/v1/events:batch", json=[trade(id=f"ok{i}") for i in range(3)])
        assert fits.status_code == 202
    records = await read_all(kafka_bootstrap, topics.raw, expected=3)
    assert ids_of(records) == [b"ok0", b"ok1", b"ok2"]
