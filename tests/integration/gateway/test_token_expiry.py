"""Streams that outlive their token: `exp` is enforced on open SSE and WebSocket streams,
with a `token-expiring` notice first and a final `token_expired` error at `exp`; an SSE
client renews its cookie and resumes from its cursor, a WebSocket client refreshes in
place — neither loses or repeats an update — and bad refreshes are refused by name."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import gateway as g
from tests.helpers import tokens
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tests.helpers.tokens import KEY, bearer

#: Lifetime of the short tokens, and the notice before their exp: long enough for a
#: busy machine to open the stream first, short enough for a quick test.
LIFETIME_S = 8
NOTICE_S = 4


def short_token(subject: str, **claims: object) -> tuple[str, int]:
    exp = int(time.time()) + LIFETIME_S
    return tokens.token(subject, exp=exp, **{"symbols": ["AAPL", "MSFT"], **claims}), exp


def settings(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, notice_s: float
) -> Any:
    return g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics,
        gateway_auth="jwt", gateway_jwt_key=SecretStr(KEY),
        gateway_token_expiry_notice_s=notice_s,
    )  # fmt: skip


async def until_event(client: g.SseClient, name: str) -> g.Event:
    while name not in [e.event for e in client.events]:
        await client.wait_for(len(client.events) + 1)
    return next(e for e in client.events if e.event == name)


async def test_sse_renews_its_cookie_and_resumes_with_no_gap_after_the_final_event(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    symbols = ["AAPL", "MSFT"]
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in symbols])
    config = settings(kafka_bootstrap, mongodb_url, db_name, topics, NOTICE_S)
    short, exp = short_token("alice")
    path = "/v1/stream?symbols=AAPL,MSFT&bars=none"
    async with g.running_gateway(config) as url, httpx.AsyncClient(base_url=url) as http:
        cookie = config.gateway_jwt_cookie
        async with g.sse_client(url, path, cookies={cookie: short}) as old:
            await old.wait_for(2)
            await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 2) for s in symbols])
            await g.until_quotes(old, dict.fromkeys(symbols, 2))
            notice = await until_event(old, "token-expiring")
            assert notice.json() == {"exp": exp}
            assert notice.id == ""  # no id: the browser's Last-Event-ID stays put
            # the page renews its session cookie; the old stream lasts until exp
            renewed = await http.post(
                "/v1/session", headers=bearer(tokens.token("alice", symbols=symbols))
            )
            assert renewed.status_code == 200
            fresh = renewed.cookies[cookie]
            # updates keep coming across the expiry
            for v in range(3, 7):
                await produce(
                    kafka_bootstrap, topics.updates, [g.update_record(s, v) for s in symbols]
                )
            final = await until_event(old, "error")
            assert final.json()["code"] == "token_expired"
            assert final.json()["status"] == 401
            assert final.id == ""
            assert old.events[-1] is final  # the last thing the old stream sent
            assert old._task is not None
            await asyncio.wait_for(old._task, 20)  # and then it closed
            last_id = [e.id for e in old.events if e.id][-1]
            before = old.quotes()
        # the browser reconnects by itself, with its cursor and the renewed cookie
        async with g.sse_client(
            url, path, headers={"Last-Event-ID": last_id}, cookies={cookie: fresh}
        ) as new:
            await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 7) for s in symbols])
            assert new.status == 200, new.body
            await g.until_quotes(new, dict.fromkeys(symbols, 7))
            assert all(e == "quote" for e, _, _ in new.quotes())  # resumed, no snapshot
            assert "error" not in [e.event for e in new.events]
            seen = g.by_symbol(before + new.quotes())
        assert seen == {s: list(range(1, 8)) for s in symbols}


async def messages(ws: ClientConnection, into: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Read batches into `into` until an event called `name` arrives; return it."""
    while True:
        for event in into:
            if event["event"] == name:
                into.remove(event)
                return event
        into.extend(orjson.loads(await asyncio.wait_for(ws.recv(), 20)))


async def drain(ws: ClientConnection) -> None:
    """Read until the server closes."""
    while True:
        await asyncio.wait_for(ws.recv(), 20)


async def test_websocket_refresh_extends_the_stream_and_bad_refreshes_are_refused(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    # told at once (the whole lifetime is the notice): the refreshes below get all of it
    config = settings(kafka_bootstrap, mongodb_url, db_name, topics, LIFETIME_S)
    short, exp = short_token("alice")
    forged = jwt.encode(
        {"sub": "alice", "aud": "tickwire-gateway", "iss": "tickwire", "exp": exp + 300},
        "another-key-of-sufficient-length-for-hs256-use",
        algorithm="HS256",
    )
    subscribe = orjson.dumps({"type": "subscribe", "symbols": ["AAPL"], "bars": []}).decode()
    async with g.running_gateway(config) as url:
        ws_url = url.replace("http", "ws") + "/v1/ws"
        async with (
            connect(ws_url, additional_headers=bearer(short)) as ws,
            connect(ws_url, additional_headers=bearer(short)) as control,
        ):
            inbox: list[dict[str, Any]] = []
            control_inbox: list[dict[str, Any]] = []
            for conn in (ws, control):
                await conn.send(subscribe)
            await messages(ws, inbox, "subscribed")
            await messages(control, control_inbox, "subscribed")
            notice = await messages(ws, inbox, "token-expiring")
            assert notice["data"] == {"exp": exp}

            refusals = [
                ({"token": tokens.token("bob", symbols=["AAPL"])}, 403, "subject_mismatch"),
                ({"token": forged}, 401, "invalid_token"),
                ({"token": "not-a-jwt"}, 401, "invalid_token"),
                ({"token": 42}, 400, "bad_refresh"),
                ({}, 400, "bad_refresh"),
                ({"token": tokens.token("alice", symbols=["MSFT"])}, 403, "scope_narrowed"),
            ]
            for body, status, code in refusals:
                await ws.send(orjson.dumps({"type": "refresh", **body}).decode())
                error = await messages(ws, inbox, "error")
                assert (error["data"]["status"], error["data"]["code"]) == (status, code), body
            await ws.send(b"\x00garbage")  # a binary frame: refused, the stream carries on
            assert (await messages(ws, inbox, "error"))["data"]["status"] == 400

            fresh_exp = int(time.time()) + 300
            renewal = tokens.token("alice", symbols=["AAPL"], exp=fresh_exp)
            await ws.send(orjson.dumps({"type": "refresh", "token": renewal}).decode())
            assert (await messages(ws, inbox, "refreshed"))["data"] == {"exp": fresh_exp}

            for v in range(2, 5):
                await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", v)])
            # the control connection, never refreshed, ends at the first exp: the marker
            # that the deadline passed (the same sweep would have ended both)
            final = await messages(control, control_inbox, "error")
            assert final["data"]["code"] == "token_expired"
            with pytest.raises(ConnectionClosed):
                await drain(control)
            assert control.close_code == 4001
            for v in range(5, 8):
                await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", v)])
            while not any(e["event"] == "quote" and e["data"]["version"] == 7 for e in inbox):
                inbox.extend(orjson.loads(await asyncio.wait_for(ws.recv(), 20)))
            quotes = [e["data"]["version"] for e in inbox if e["event"] in ("snapshot", "quote")]
            assert quotes == list(range(1, 8))
            assert "error" not in [e["event"] for e in inbox]
