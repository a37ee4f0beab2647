"""Helpers for fuzzing ingest: the real app served from a thread (so that hypothesis
can drive it from a plain synchronous test), inputs at every boundary, and a read of
a topic up to its end offsets (exact, no idle wait)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import strategies as st

from tests.helpers.ingest import ingest_server
from tests.helpers.ingest_inputs import quote_data, trade_data
from tickwire.events import types
from tickwire.ingest.settings import IngestSettings
from tickwire.kafka.security import PLAINTEXT, KafkaSecurity
from tickwire.kafka.topics import partitions_for


@contextlib.contextmanager
def threaded_ingest(settings: IngestSettings) -> Iterator[str]:
    """Serve the ingest app with uvicorn on its own thread and loop; yield its URL."""
    server = ingest_server(settings)
    thread = threading.Thread(target=server.run, name="ingest-under-fuzz", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("ingest did not start")
            time.sleep(0.05)
        yield f"http://{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(30)


async def read_to_end(
    bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the topic, read up to the end offsets taken when called."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **security.options()
    )
    await consumer.start()
    try:
        count = await partitions_for(bootstrap, topic, security)
        parts = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp, first in (await consumer.beginning_offsets(parts)).items():
            consumer.seek(tp, first)  # exact (seek_to_beginning resolves lazily)
        out: list[ConsumerRecord[bytes, bytes]] = []
        behind = set(parts)
        while behind:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(records)
            behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


# -- inputs ---------------------------------------------------------------------------

CONTENT_TYPES = [
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
    "",
]

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _plain(name: str, data: dict[str, Any], id_: str | None) -> dict[str, Any]:
    return {"type": name, **({"id": id_} if id_ else {}), **data}


def _cloud(name: str, data: dict[str, Any], id_: str | None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_ or "fuzz-cloud",
        "source": "/fuzz",
        "type": {"trade": types.TRADE, "quote": types.QUOTE}[name],
        "subject": data.get("symbol"),
        "data": data,
    }


_symbol = st.from_regex(r"\A[A-Z0-9][A-Z0-9._/-]{0,23}\Z")
_positive = st.floats(min_value=1e-6, max_value=1e9)
_past = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2026, 1, 1)).map(
    lambda t: t.replace(tzinfo=dt.UTC).isoformat()
)


@st.composite
def valid_data(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A kind name and data that every rule accepts."""
    if draw(st.booleans()):
        return "trade", {
            "symbol": draw(_symbol),
            "price": draw(_positive),
            "size": draw(_positive),
            "time": draw(_past),
        }
    bid, ask = sorted((draw(_positive), draw(_positive)))
    sizes = st.one_of(st.just(0), _positive)
    return "quote", {
        "symbol": draw(_symbol),
        "bid": bid,
        "bid_size": draw(sizes),
        "ask": ask,
        "ask_size": draw(sizes),
        "time": draw(_past),
    }


@st.composite
def events(draw: st.DrawFn, valid: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain, cloud) forms of one event: valid, or mostly valid."""
    if valid:
        name, data = draw(valid_data())
    else:
        name = draw(st.sampled_from(["trade", "quote"]))
        data = draw(trade_data() if name == "trade" else quote_data())
    id_ = draw(st.one_of(st.none(), st.from_regex(r"\Afz-[a-z0-9]{1,12}\Z")))
    return _plain(name, data, id_), _cloud(name, data, id_)


@st.composite
def shaped(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(path, content type, body) that fit together, holding valid or mostly-valid
    events: one plain, one CloudEvent, a JSON array, a CloudEvents batch, NDJSON."""
    valid = draw(st.integers(0, 3)) > 0
    many = draw(st.lists(events(valid), min_size=1, max_size=5))
    shape = draw(st.sampled_from(["one", "cloud", "array", "cloud-batch", "ndjson"]))
    if shape == "one":
        return "/v1/events", "application/json", orjson.dumps(many[0][0])
    if shape == "cloud":
        return "/v1/events", "application/cloudevents+json", orjson.dumps(many[0][1])
    if shape == "array":
        return "/v1/events:batch", "application/json", orjson.dumps([p for p, _ in many])
    if shape == "cloud-batch":
        body = orjson.dumps([c for _, c in many])
        return "/v1/events:batch", "application/cloudevents-batch+json", body
    ndjson = b"\n".join(orjson.dumps(p) for p, _ in many) + b"\n"
    return "/v1/events:batch", "application/x-ndjson", ndjson


#: (path, content type) pairs the endpoints read
FITTING = [
    ("/v1/events", "application/json"),
    ("/v1/events", "application/cloudevents+json"),
    ("/v1/events:batch", "application/json"),
    ("/v1/events:batch", "application/cloudevents-batch+json"),
    ("/v1/events:batch", "application/x-ndjson"),
]


def _deep(depth: int, inner: bytes) -> bytes:
    return b"[" * depth + inner + b"]" * depth


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A request body: valid-ish events in every shape, or junk of every sort."""
    shape = draw(st.integers(0, 9))
    if shape <= 3:
        many = draw(st.lists(events(), min_size=1, max_size=5))
        cloud = draw(st.booleans())
        docs = [c if cloud else p for p, c in many]
        if shape == 0:
            return orjson.dumps(docs[0])
        if shape == 1:
            return orjson.dumps(docs)
        return b"\n".join(orjson.dumps(d) for d in docs) + b"\n"
    if shape == 4:
        return draw(st.binary(max_size=200))
    if shape == 5:
        depth = draw(st.sampled_from([50, 1_000, 5_000, 100_000]))
        at = draw(st.sampled_from(["body", "array", "attr", "data"]))
        deep = _deep(depth, b"")
        if at == "body":
            return deep
        if at == "array":
            return b"[" + deep + b"]"
        cloud = orjson.dumps(_cloud("trade", {"symbol": "A"}, None))
        if at == "attr":
            return cloud[:-1] + b',"ext":' + deep + b"}"
        return cloud.replace(b'{"symbol":"A"}', deep)
    if shape == 6:
        number = draw(
            st.sampled_from(
                [b"1e999", b"-1e999", b"NaN", b"Infinity", b"1" * 400, b"1e-400", b"0x10", b"1.e5"]
            )
        )
        return (
            b'{"type":"trade","symbol":"A","price":'
            + number
            + b',"size":1,"time":"2026-01-01T00:00:00Z"}'
        )
    if shape == 7:
        valid = orjson.dumps(draw(events())[0])
        cut = draw(st.integers(0, len(valid)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\\ud800"]))
        return valid[:cut] + bad + valid[cut:]
    if shape == 8:
        return json.dumps(draw(json_values)).encode()  # stdlib: integers beyond 64 bits
    return b""


#: header values HTTP/1.1 can carry (what a client can send at all): visible ASCII and
#: obs-text bytes, inner spaces, nothing the framing refuses
header_values = st.from_regex(
    rb"\A(?:[\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff]{0,38}[\x21-\x7e\x80-\xff])?)?\Z"
)
