"""Fuzzing every boundary of the real ingest app (uvicorn, auth on, real Kafka) with
hypothesis: bodies (valid-ish events in every shape, random bytes, deep nesting in the
body, an array or a CloudEvents attribute, huge numbers, NaN, broken UTF-8, wrong
types), every content type, random header values (API key, Authorization,
traceparent, Content-Length) and query strings.

Asserts: no 5xx, ever (no unhandled exception: the RED metrics count none either), and
the topic holds exactly the events answered 202, where the answers said, nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tests.helpers import infra
from tests.helpers.ingest import keys_document, settings_for
from tests.helpers.ingest_fuzz import (
    CONTENT_TYPES,
    FITTING,
    bodies,
    header_values,
    read_to_end,
    shaped,
    threaded_ingest,
)
from tickwire.events import headers as h

PATHS = ["/v1/events", "/v1/events:batch"]


def _server_errors() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if (
                sample.name == "tickwire_http_requests_total"
                and sample.labels.get("service") == "ingest"
                and sample.labels.get("status") == "5xx"
            ):
                total += sample.value
    return total


def test_fuzzed_requests_never_5xx_and_every_202_is_exactly_in_kafka(
    kafka_bootstrap: str, topics: infra.Topics
) -> None:
    document, keys = keys_document([{"key_id": "fuzz"}])
    config = settings_for(
        kafka_bootstrap,
        topics.raw,
        ingest_auth="on",
        ingest_keys=document,
        ingest_max_batch_events=20,
        ingest_max_body_bytes=256 * 1024,
    )
    key = keys["fuzz"]
    accepted: dict[tuple[int, int], tuple[str, bytes]] = {}  # (partition, offset) -> id, value
    errors_before = _server_errors()

    with threaded_ingest(config) as url, httpx.Client(base_url=url, timeout=60) as client:

        @settings(
            max_examples=1000,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(
            request=st.one_of(
                shaped(),
                st.tuples(st.sampled_from(FITTING), bodies()).map(lambda f: (*f[0], f[1])),
                st.tuples(st.sampled_from(PATHS), st.sampled_from(CONTENT_TYPES), bodies()),
            ),
            auth=st.sampled_from(["key", "key", "key", "bearer", "none", "junk"]),
            junk=header_values,
            traceparent=st.one_of(st.none(), header_values),
            query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        )
        def post(
            request: tuple[str, str, bytes],
            auth: str,
            junk: bytes,
            traceparent: bytes | None,
            query: dict[str, str],
        ) -> None:
            path, content_type, body = request
            headers: dict[str, Any] = {"content-type": content_type}
            if auth == "key":
                headers["x-api-key"] = key
            elif auth == "bearer":
                headers["authorization"] = f"Bearer {key}"
            elif auth == "junk":
                headers["x-api-key"] = junk
            if traceparent is not None:
                headers["traceparent"] = traceparent
            resp = client.post(path, content=body, headers=headers, params=query)
            assert resp.status_code < 500, (resp.status_code, resp.text, body[:300])
            if resp.status_code in (202, 207):
                answer = resp.json()
                results = (
                    [answer]
                    if path == "/v1/events"
                    else [r for r in answer["results"] if r["status"] == 202]
                )
                for r in results:
                    place = (r["partition_id"], r["offset"])
                    assert place not in accepted, "two 202s for one offset"
                    accepted[place] = (r["id"], b"")

        post()

    assert _server_errors() == errors_before
    records = asyncio.run(read_to_end(kafka_bootstrap, topics.raw))
    found = {(r.partition, r.offset): h.find(r.headers, h.CE_ID) for r in records}
    assert found == {place: event_id.encode() for place, (event_id, _) in accepted.items()}
    assert len(accepted) > 20, "the fuzzer should get many events accepted"
    for record in records:
        assert orjson.loads(record.value)["symbol"] == record.key.decode()
