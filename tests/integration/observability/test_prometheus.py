"""What SREs see, on the real parts: ingest, processor and gateway processes on the real
broker and store, a real Prometheus (Debian's) scraping them, an OTLP receiver taking
their spans. Known traffic is posted, a dashboard client streams it over SSE, and then:

- `promtool check metrics` is clean on a live scrape of each service;
- Prometheus's HTTP API shows the three targets up and the key series at the values the
  traffic implies, written from the documented meaning of each metric (services'
  README): events acknowledged by ingest = events posted valid; requests by route and
  status class = requests made; one 422 counted as rejected `invalid`; events applied by
  the processor (trade + quote) = events posted; records the gateway read from
  ticker.updates = updates the processor published; live updates written to sockets =
  quote events the (only) client received;
- the alert rules are loaded and evaluate without error on live data, none firing;
- every query of the Grafana dashboard evaluates on this Prometheus: a non-empty result,
  or (for a labelled series that this traffic cannot create, e.g. dead letters by
  reason) every metric it names is known to Prometheus from the scrapes' metadata;
- every log line of each service is JSON with its service, level and correlation id;
- the trace id posted to ingest in `traceparent` comes back in the spans of all three
  services, each the child of the one before.

Every wait is for a marker (the client seeing the final versions, Prometheus scraping
the final count, the spans arriving), never a sleep before asserting nothing came.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.helpers.infra import Topics, unique
from tests.helpers.services import pipeline_specs, running, service_env
from tests.integration.observability.otlp_receiver import Receiver
from tickwire.devstack.prometheus import PrometheusServer, binary

SYMBOLS = ("OBSA", "OBSB")
TRADES_PER_SYMBOL = 12
BATCH = 8
NDJSON = {"content-type": "application/x-ndjson"}
DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/dashboards/tickwire-overview.json"
SERVICES = ("ingest", "processor", "gateway")


@dataclass
class Pipeline:
    """The running services and what was done to them."""

    urls: dict[str, str]
    prometheus: PrometheusServer
    receiver: Receiver
    run_dir: Path
    topics: Topics
    trace_id: str
    posted: int = 0
    batch_posts: int = 0
    quote_events_seen: int = 0
    versions: dict[str, list[int]] = field(default_factory=dict)


def _tape() -> list[dict[str, Any]]:
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2)
    events = []
    for i in range(TRADES_PER_SYMBOL):
        for j, symbol in enumerate(SYMBOLS):
            t = base + dt.timedelta(seconds=i, milliseconds=j)
            events.append(
                {
                    "type": "trade",
                    "symbol": symbol,
                    "price": 50.0 + i + j,
                    "size": 10,
                    "time": t.isoformat().replace("+00:00", "Z"),
                    "id": f"obs-{symbol}-{i}",
                }
            )
    return events


async def _stream(url: str, want: dict[str, int], pipe: Pipeline, connected: asyncio.Event) -> None:
    """Read the SSE stream until every symbol is at its final version (the marker)."""
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as resp:
        assert resp.status_code == 200
        connected.set()
        event = ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("snapshot", "quote"):
                state = orjson.loads(line[5:])
                if event == "quote":
                    pipe.quote_events_seen += 1
                pipe.versions.setdefault(state["symbol"], []).append(state["version"])
                if all(pipe.versions.get(s, [0])[-1] == v for s, v in want.items()):
                    return


@pytest.fixture(scope="module")
async def pipeline(
    kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    receiver = Receiver()
    topics = Topics.fresh()
    run_dir = tmp_path_factory.mktemp("observability")
    env = service_env(kafka_bootstrap, mongodb_url, unique("obs").replace("-", "_"), topics)
    env |= {
        "TICKWIRE_LOG_LEVEL": "INFO",
        "TICKWIRE_LOG_FORMAT": "json",
        "TICKWIRE_OTEL_TRACES_ENDPOINT": receiver.endpoint,
    }
    trace_id = os.urandom(16).hex()
    with running(pipeline_specs(), env, run_dir) as urls:
        targets = {f"tickwire-{name}": [url.removeprefix("http://")] for name, url in urls.items()}
        prometheus = PrometheusServer(run_dir / "prometheus", targets).start()
        pipe = Pipeline(urls, prometheus, receiver, run_dir, topics, trace_id)
        try:
            await _traffic(pipe)
            yield pipe
        finally:
            prometheus.stop()
            receiver.close()


async def _traffic(pipe: Pipeline) -> None:
    tape = _tape()
    traced = {**tape[-1], "id": "obs-traced", "price": 99.0}
    want = {s: sum(1 for e in [*tape, traced] if e["symbol"] == s) for s in SYMBOLS}
    connected = asyncio.Event()
    stream = f"{pipe.urls['gateway']}/v1/stream?symbols={','.join(SYMBOLS)}&bars=none"
    reader = asyncio.create_task(_stream(stream, want, pipe, connected))
    await asyncio.wait_for(connected.wait(), 30)
    ingest = pipe.urls["ingest"]
    async with httpx.AsyncClient(timeout=30) as client:
        for k in range(0, len(tape), BATCH):
            body = b"\n".join(orjson.dumps(e) for e in tape[k : k + BATCH])
            resp = await client.post(f"{ingest}/v1/events:batch", content=body, headers=NDJSON)
            assert resp.status_code == 202, resp.text
            pipe.batch_posts += 1
        invalid = {**tape[0], "id": "obs-invalid", "size": -1}
        resp = await client.post(f"{ingest}/v1/events", json=invalid)
        assert resp.status_code == 422, resp.text
        header = {"traceparent": f"00-{pipe.trace_id}-{os.urandom(8).hex()}-01"}
        resp = await client.post(f"{ingest}/v1/events", json=traced, headers=header)
        assert resp.status_code == 202, resp.text
    pipe.posted = len(tape) + 1
    await asyncio.wait_for(reader, 90)


async def _query(prom: PrometheusServer, expr: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(f"{prom.url}/api/v1/query", params={"query": expr})
    body: dict[str, Any] = resp.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]


async def _value(prom: PrometheusServer, expr: str) -> float | None:
    result = (await _query(prom, expr))["result"]
    return float(result[0]["value"][1]) if result else None


async def _until_value(prom: PrometheusServer, expr: str, expected: float) -> None:
    """Wait for the scrape that shows `expected` (the marker), then compare."""
    got: float | None = None
    for _ in range(300):
        got = await _value(prom, expr)
        if got == expected:
            return
        await asyncio.sleep(0.2)
    assert got == expected, f"{expr}: {got} != {expected}"


async def test_promtool_check_metrics_is_clean_on_each_live_scrape(pipeline: Pipeline) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for name in SERVICES:
            scrape = (await client.get(f"{pipeline.urls[name]}/metrics")).content
            assert b"tickwire_" in scrape
            result = subprocess.run(
                [str(binary("promtool")), "check", "metrics"],
                input=scrape,
                capture_output=True,
                check=False,
            )
            problems = (result.stdout + result.stderr).decode()
            assert result.returncode == 0, f"{name}: {problems}"
            assert not problems.strip(), f"{name}: {problems}"


async def test_prometheus_scrapes_every_service_and_holds_the_traffics_counts(
    pipeline: Pipeline,
) -> None:
    prom = pipeline.prometheus
    await _until_value(prom, 'count(up{job=~"tickwire-.*"} == 1)', 3)
    async with httpx.AsyncClient(timeout=10) as client:
        targets = (await client.get(f"{prom.url}/api/v1/targets")).json()["data"]
    health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    assert health == {f"tickwire-{name}": "up" for name in SERVICES}

    posted = pipeline.posted
    ingest_http = 'tickwire_http_requests_total{service="ingest",route="%s",status="%s"}'
    await _until_value(prom, "sum(tickwire_ingest_events_accepted_total)", posted)
    await _until_value(prom, 'sum(tickwire_ingest_events_rejected_total{reason="invalid"})', 1)
    await _until_value(
        prom, f"sum({ingest_http % ('/v1/events:batch', '2xx')})", pipeline.batch_posts
    )
    await _until_value(prom, f"sum({ingest_http % ('/v1/events', '2xx')})", 1)
    await _until_value(prom, f"sum({ingest_http % ('/v1/events', '4xx')})", 1)
    await _until_value(prom, 'sum(tickwire_processor_events_total{type=~"trade|quote"})', posted)
    await _until_value(prom, 'sum(tickwire_processor_events_total{type="poison"})', 0)

    published = await _value(prom, 'sum(tickwire_processor_published_total{kind="update"})')
    assert published is not None
    assert published >= len(SYMBOLS)
    updates_topic = pipeline.topics.settings_env()["topic_updates"]
    await _until_value(
        prom, f'sum(tickwire_gateway_records_total{{topic="{updates_topic}"}})', published
    )
    await _until_value(prom, "sum(tickwire_gateway_events_sent_total)", pipeline.quote_events_seen)


async def test_alert_rules_evaluate_on_live_data_and_none_fires(pipeline: Pipeline) -> None:
    prom = pipeline.prometheus
    await _until_value(prom, 'count(up{job=~"tickwire-.*"} == 1)', 3)
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(100):
            groups = (await client.get(f"{prom.url}/api/v1/rules")).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
                break
            await asyncio.sleep(0.2)
    assert len(rules) >= 16
    assert {r["health"] for r in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]
    assert [r["name"] for r in rules if r["state"] == "firing"] == []


#: Series the posted traffic certainly creates: their dashboard panels must show data.
MUST_SHOW = ("tickwire_ingest_events_accepted_total", "tickwire_gateway_events_sent_total")


async def test_every_dashboard_query_evaluates_on_the_live_prometheus(pipeline: Pipeline) -> None:
    prom = pipeline.prometheus
    await _until_value(prom, "sum(tickwire_gateway_events_sent_total)", pipeline.quote_events_seen)
    async with httpx.AsyncClient(timeout=10) as client:
        metadata = (await client.get(f"{prom.url}/api/v1/metadata")).json()["data"]
    known = set(metadata) | {f"{m}_bucket" for m in metadata} | {"up"}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    empty = []
    for expr in exprs:
        data = await _query(prom, expr)  # status success: well-formed
        must_show = any(m in expr for m in MUST_SHOW)
        for _ in range(150 if must_show else 0):
            # a rate needs two scrapes in its window since the traffic: wait for them
            # (the marker), rather than judge on whatever the last scrape happened to be
            if data["result"]:
                break
            await asyncio.sleep(0.2)
            data = await _query(prom, expr)
        if not data["result"]:
            empty.append(expr)
            names = set(re.findall(r"\b(?:tickwire|process)_[a-z_]+", expr))
            assert names <= known, f"{expr} names metrics nobody exports: {names - known}"
    # only series this traffic cannot create may be empty (labelled by a reason that
    # never happened); the pipeline's throughput and latency panels must show data
    assert len(empty) < len(exprs) // 2, empty
    for must in MUST_SHOW:
        assert not [e for e in empty if must in e], empty


def test_every_log_line_is_json_with_service_level_and_correlation_id(pipeline: Pipeline) -> None:
    for name in SERVICES:
        lines = (pipeline.run_dir / f"{name}.log").read_text().splitlines()
        assert lines, f"{name} logged nothing at INFO"
        for line in lines:
            record = json.loads(line)
            assert record["service"] == name, line
            assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, line
            assert "correlation_id" in record, line
            assert record["message"], line


async def test_the_posted_trace_id_reaches_processor_and_gateway_spans(pipeline: Pipeline) -> None:
    spans = []
    for _ in range(300):  # the exporters send every few seconds
        spans = pipeline.receiver.of_trace(pipeline.trace_id)
        if {s.service for s in spans} >= {f"tickwire-{name}" for name in SERVICES}:
            break
        await asyncio.sleep(0.1)
    (ingest,) = [s for s in spans if s.service == "tickwire-ingest"]
    (processor,) = [s for s in spans if s.service == "tickwire-processor"]
    gateway = [s for s in spans if s.service == "tickwire-gateway"]
    assert (ingest.name, processor.name) == ("ingest.accept", "processor.process")
    assert processor.parent_id == ingest.span_id
    # the update and every bar record the event changed carry its trace to the gateway
    assert gateway
    assert {(s.name, s.parent_id) for s in gateway} == {("gateway.fanout", processor.span_id)}
