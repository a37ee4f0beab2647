"""docs/asyncapi.yaml describes what the gateway really sends: the document is AsyncAPI
3.0 with every reference resolving and every payload a valid JSON Schema, and every
event a real gateway sends over SSE and WebSocket (snapshot, quote with session and
status, bar, reset, replayed, delayed, token-expiring, error, subscribed) validates
against it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson
from jsonschema import Draft7Validator
from pydantic import SecretStr
from websockets.asyncio.client import connect

from tests.helpers import gateway as g
from tests.helpers.asyncapi import load, validator
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tests.helpers.tokens import KEY, bearer, token
from tickwire.events import wire
from tickwire.gateway import cursor


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_document_is_asyncapi_3_with_resolving_refs_and_valid_schemas() -> None:
    doc = load()
    assert doc["asyncapi"] == "3.0.0"
    assert {"info", "channels", "operations", "components"} <= set(doc)
    for ref in refs(doc):
        resolve(doc, ref)
    for name, message in doc["components"]["messages"].items():
        payload = message["payload"]
        Draft7Validator.check_schema(payload)
        assert message.get("name"), name
    for schema in doc["components"]["schemas"].values():
        Draft7Validator.check_schema(schema)
    for operation in doc["operations"].values():
        assert operation["action"] in ("send", "receive")
        resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")


async def test_every_event_the_gateway_sends_matches_the_document(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    doc = load()
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    session = wire.SessionInfo(exchange="XNYS", date="2026-11-27", phase="regular")
    status = wire.StatusInfo(state="halted", reason="news", since=g.BASE_TIME)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [g.update_record("AAPL", 1, session=session, status=status), g.update_record("MSFT", 1)],
    )
    await produce(kafka_bootstrap, topics.bars, [g.bar_record("AAPL", 1, 0)])
    settings = g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics,
        gateway_auth="jwt", gateway_jwt_key=SecretStr(KEY),
    )  # fmt: skip
    now = bearer(token("now", symbols=["*"]))
    late = bearer(token("late", symbols=["*"], delay={"*": 1}))
    foreign = cursor.encode(12345, [0] * 4)  # another topic layout: a reset
    iso = since.isoformat().replace("+00:00", "Z")
    path = "/v1/stream?symbols=AAPL,MSFT&bars=1m"
    seen: list[g.Event] = []
    async with g.running_gateway(settings) as url:
        async with g.sse_client(url, f"{path}&since={iso}", headers=now) as replay:
            while "replayed" not in [e.event for e in replay.events]:
                await replay.wait_for(len(replay.events) + 1)
            await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 2)])
            await g.until_quotes(replay, {"AAPL": 2})
            seen += replay.events
        async with g.sse_client(url, f"{path}&delta=1", headers=now) as deltas:
            await deltas.wait_for(2)  # the snapshots: AAPL 2 (no session) is held
            # a session appears: sent whole under its name
            post = wire.SessionInfo(exchange="XNYS", date="2026-11-27", phase="post")
            await produce(
                kafka_bootstrap, topics.updates, [g.update_record("AAPL", 3, session=post)]
            )
            while "delta" not in [e.event for e in deltas.events]:
                await deltas.wait_for(len(deltas.events) + 1)
            delta = next(e.json() for e in deltas.events if e.event == "delta")
            assert (delta["base"], delta["version"]) == (2, 3)
            assert delta["set"]["session"]["phase"] == "post"
            seen += deltas.events
        async with g.sse_client(url, path, headers={**late, "Last-Event-ID": foreign}) as other:
            await other.wait_for(4)  # delayed, reset, two snapshots
            seen += other.events
        brief = bearer(token("brief", symbols=["*"], exp=int(time.time()) + 5))
        async with g.sse_client(url, path, headers=brief) as ending:  # notice, then the end
            while "error" not in [e.event for e in ending.events]:
                await ending.wait_for(len(ending.events) + 1)
            seen += ending.events
        async with connect(url.replace("http", "ws") + "/v1/ws", additional_headers=now) as ws:
            request = {"type": "subscribe", "symbols": ["AAPL"], "since": iso}
            assert not list(validator(doc, "wsSubscribe").iter_errors(request))
            await ws.send(orjson.dumps(request).decode())
            batches: list[Any] = []
            while not any(e["event"] == "subscribed" for b in batches for e in b):
                batches.append(orjson.loads(await ws.recv()))
    kinds = {e.event for e in seen}
    # every one, nothing else (`reconnect` ends drained streams: test_drain.py checks it)
    assert kinds | {"reconnect"} == set(doc["channels"]["stream"]["messages"])
    for event in seen:
        errors = [e.message for e in validator(doc, event.event).iter_errors(event.json())]
        assert not errors, (event.event, errors)
    assert any(e.event == "quote" and "session" in e.json() and "status" in e.json() for e in seen)
    for batch in batches:
        assert not [e.message for e in validator(doc, "wsEvents").iter_errors(batch)]
    for item in (e for b in batches for e in b if e["event"] in kinds):
        assert not list(validator(doc, item["event"]).iter_errors(item["data"]))
