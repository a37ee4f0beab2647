"""Fuzzing every boundary of a real gateway (real Kafka and FerretDB, JWT auth on):
query strings of every endpoint, the headers a client controls (Last-Event-ID,
Authorization, Cookie), WebSocket frames (text and binary, nested, huge) and cursors.
Whatever arrives: no 5xx, no unhandled exception logged by the server, and the
gateway still streams afterwards."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce

KEY = "fuzz-secret-key-that-is-long-enough-for-hs256-and-also-for-hs512!!"
FUZZ = settings(
    max_examples=int(os.environ.get("TICKWIRE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,
    suppress_health_check=list(HealthCheck),
)

text = st.text(max_size=60)
nasty = st.one_of(
    text,
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01",
            "9999-12-31T23:59:59.999999",
            "-1",
            "1e400",
            "nan",
            "*",
            "none",
            "\x00",
            "%ff",
            "A" * 5000,
            "[" * 3000,
        ]
    ),
)


def token(**claims: Any) -> str:
    body = {
        "sub": "fuzz",
        "aud": "tickwire-gateway",
        "iss": "tickwire",
        "exp": int(time.time()) + 3600,
        "symbols": ["*"],
    }
    body.update(claims)
    return jwt.encode(body, KEY, algorithm="HS256")


def nested_jwt(depth: int) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return b64(b"[" * depth + b"]" * depth) + "." + b64(b"{}") + ".sig"


def header_bytes(values: dict[str, str]) -> dict[str, bytes]:
    """Header values as raw bytes: any UTF-8 or obs-text, without the control characters
    HTTP forbids in a field value (no client can send them)."""
    out = {}
    for name, value in values.items():
        raw = value.encode("utf-8", "surrogatepass")
        out[name] = bytes(b for b in raw if b == 9 or (b >= 0x20 and b != 0x7F)).strip()
    return out


headers = st.fixed_dictionaries(
    {},
    optional={
        "last-event-id": st.one_of(nasty, st.just("AQAAAAACAAA")),
        "authorization": st.one_of(
            st.builds(lambda t: "Bearer " + t, nasty),
            st.just("Bearer " + nested_jwt(5000)),
            st.just("Bearer " + token()),
            st.just("Bearer " + token(symbols=[{"a": 1}], prefixes="x")),
            nasty,
        ),
        "cookie": st.builds(lambda t: "tickwire_token=" + t, nasty),
    },
).map(header_bytes)


@contextlib.contextmanager
def gateway_in_thread(settings_: Any) -> Iterator[str]:
    """A gateway on its own event loop in a thread, so hypothesis can drive it
    synchronously; yields its base URL."""
    started: dict[str, Any] = {}
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    def serve() -> None:
        async def main() -> None:
            stop.append(asyncio.Event())
            try:
                async with g.running_gateway(settings_) as url:
                    started["url"] = url
                    started["loop"] = asyncio.get_running_loop()
                    ready.set()
                    await stop[0].wait()
            except BaseException as exc:
                started["error"] = exc
                ready.set()
                raise

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(60), "gateway did not start"
    if "error" in started:
        raise started["error"]
    try:
        yield str(started["url"])
    finally:
        started["loop"].call_soon_threadsafe(stop[0].set)
        thread.join(30)


def safe_query(params: dict[str, str]) -> str:
    return str(
        httpx.QueryParams(
            {
                k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                for k, v in params.items()
            }
        )
    )


# The gateway under test runs in a thread of this process and its Kafka client draws from
# the global `random` while hypothesis generates inputs here, which hypothesis reports as
# "random inside strategies"; the inputs do not use it. The nasty samples are large by
# design, so their repr is too.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies",
    "ignore:Generating overly large repr",
)
def test_no_client_input_gets_a_5xx(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    asyncio.run(g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2))
    asyncio.run(
        produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in ("AAPL", "MSFT")])
    )
    settings_ = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_auth="jwt",
        gateway_jwt_key=KEY,
        gateway_max_connections_per_subject=1000,
        gateway_max_connections_per_ip=1000,
    )
    auth = {"authorization": ("Bearer " + token()).encode()}
    with gateway_in_thread(settings_) as url, httpx.Client(base_url=url, timeout=30) as http:
        statuses: list[int] = []

        def check(response: httpx.Response) -> None:
            statuses.append(response.status_code)
            assert response.status_code < 500, (response.request.url, response.text[:300])

        @FUZZ
        @given(
            st.sampled_from(["/v1/bars/AAPL", "/v1/bars/", "/v1/quotes", "/v1/quotes/AAPL"]),
            st.dictionaries(
                st.sampled_from(["interval", "from", "to", "limit", "symbols"]), nasty, max_size=4
            ),
            headers,
        )
        def query_api(path: str, params: dict[str, str], hdrs: dict[str, bytes]) -> None:
            check(http.get(path + "?" + safe_query(params), headers=hdrs or auth))

        @FUZZ
        @given(
            st.dictionaries(
                st.sampled_from(
                    ["symbols", "prefix", "bars", "max_rate", "last_event_id", "since"]
                ),
                nasty,
                max_size=5,
            ),
            headers,
            st.booleans(),
        )
        def stream(params: dict[str, str], hdrs: dict[str, bytes], authed: bool) -> None:
            if authed:
                hdrs = {**hdrs, **auth}
            with http.stream("GET", "/v1/stream?" + safe_query(params), headers=hdrs) as response:
                check(response)

        @FUZZ
        @given(headers)
        def session(hdrs: dict[str, bytes]) -> None:
            check(http.post("/v1/session", headers=hdrs))

        frames = st.one_of(
            st.binary(max_size=200),
            text,
            st.just("[" * 100_000),
            st.just('{"type":"subscribe","symbols":' + "[" * 5000 + "]" * 5000 + "}"),
            st.just("x" * 1_000_000),
            st.builds(
                lambda s, p, b, c: orjson.dumps(
                    {"type": "subscribe", "symbols": s, "prefixes": p, "bars": b, "cursor": c}
                ).decode(),
                st.one_of(st.lists(text, max_size=3), text, st.integers(-(2**63), 2**63 - 1)),
                st.one_of(st.lists(text, max_size=3), st.none()),
                st.one_of(st.lists(text, max_size=3), st.none(), st.integers(-(2**63), 2**63 - 1)),
                st.one_of(nasty, st.integers(-(2**63), 2**63 - 1), st.none()),
            ),
            st.builds(
                lambda s: orjson.dumps({"type": "unsubscribe", "symbols": s}).decode(),
                st.one_of(st.lists(text, max_size=3), text, st.integers(-(2**63), 2**63 - 1)),
            ),
        )

        ws_url = url.replace("http", "ws") + "/v1/ws"

        @FUZZ
        @given(
            st.lists(frames, min_size=1, max_size=4),
            st.dictionaries(
                st.sampled_from(
                    ["symbols", "prefix", "bars", "last_event_id", "max_rate", "since"]
                ),
                nasty,
                max_size=3,
            ),
        )
        def websocket(messages: list[str | bytes], params: dict[str, str]) -> None:
            try:
                ws = connect(
                    ws_url + "?" + safe_query(params), additional_headers=auth, max_size=None
                )
            except InvalidStatus as exc:  # refused at the handshake (e.g. a bad max_rate)
                statuses.append(exc.response.status_code)  # checked at the end
                return
            with ws:
                for message in messages:
                    ws.send(message)
                ws.send(orjson.dumps({"type": "subscribe", "symbols": ["AAPL"]}).decode())
                # the connection still answers: some reply to the last request arrives
                while True:
                    batch = orjson.loads(ws.recv(timeout=20))
                    if any(e["event"] in ("subscribed", "error") for e in batch):
                        break

        query_api()
        stream()
        session()
        websocket()

        # and the gateway still streams: a marker update reaches a subscriber
        with http.stream("GET", "/v1/stream?symbols=MSFT&bars=none", headers=auth) as response:
            assert response.status_code == 200
            asyncio.run(produce(kafka_bootstrap, topics.updates, [g.update_record("MSFT", 2)]))
            seen = ""
            for line in response.iter_lines():
                seen += line + "\n"
                if '"version":2' in line:
                    break
        assert "event: quote" in seen
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert unhandled == [], [r.getMessage() for r in unhandled]
    assert statuses
    assert max(statuses) < 500
