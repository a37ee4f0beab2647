"""Refusals: no or bad token (401), symbols the claims do not allow (403), connection
limits (429); and no event for an unauthorized symbol is ever sent."""

from __future__ import annotations

import asyncio

import httpx
import jwt
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import gateway as g
from tests.helpers import tokens
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tests.helpers.tokens import KEY, bearer


def token(subject: str, **claims: object) -> str:
    return tokens.token(subject, **{"symbols": ["AAPL"], "prefixes": ["MS"], **claims})


async def test_refusals_and_what_an_authorized_subject_receives(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [g.update_record(s, 1) for s in ("AAPL", "MSFT", "MSTR", "GOOG")],
    )
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_auth="jwt",
        gateway_jwt_key=KEY,
        gateway_max_connections_per_subject=2,
        gateway_max_connections_per_ip=3,
    )
    alice = token("alice")
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:

        async def status(path: str, headers: dict[str, str] | None = None) -> int:
            return (await http.get(path, headers=headers)).status_code

        assert await status("/v1/stream?symbols=AAPL") == 401
        assert await status("/v1/stream?symbols=AAPL", bearer("not-a-jwt")) == 401
        assert await status("/v1/stream?symbols=AAPL", bearer(token("a", exp=1))) == 401
        assert await status("/v1/stream?symbols=AAPL", bearer(token("a", aud="x"))) == 401
        assert await status("/v1/stream?symbols=AAPL", bearer(token("a", iss="x"))) == 401
        forged = jwt.encode(
            {"sub": "a"}, "another-key-of-sufficient-length-for-hs256-use", algorithm="HS256"
        )
        assert await status("/v1/stream?symbols=AAPL", bearer(forged)) == 401
        assert await status(f"/v1/stream?symbols=AAPL&token={alice}") == 401  # never in URLs
        assert await status("/v1/stream?symbols=AAPL,GOOG", bearer(alice)) == 403
        assert await status("/v1/stream?symbols=*", bearer(alice)) == 403
        assert await status("/v1/stream?prefix=M", bearer(alice)) == 403
        assert await status("/v1/quotes/GOOG", bearer(alice)) == 403
        assert await status("/v1/quotes/GOOG") == 401

        # EventSource cannot set headers: the token travels in an HttpOnly cookie
        session = await http.post("/v1/session", headers=bearer(alice))
        assert session.status_code == 200
        assert "httponly" in session.headers["set-cookie"].lower()
        cookies = {settings.gateway_jwt_cookie: alice}
        async with (
            g.sse_client(
                url, "/v1/stream?prefix=MS&symbols=AAPL&bars=none", cookies=cookies
            ) as allowed,
            g.sse_client(url, "/v1/stream?symbols=AAPL", headers=bearer(alice)) as second,
        ):
            await allowed.wait_for(3)
            await second.wait_for(1)
            # per subject: a third stream for alice is refused, bob still gets in
            assert await status("/v1/stream?symbols=AAPL", bearer(alice)) == 429
            async with g.sse_client(
                url, "/v1/stream?symbols=AAPL", headers=bearer(token("bob"))
            ) as bob:
                await bob.wait_for(1)
                # per IP: three streams from this address are the limit
                assert await status("/v1/stream?symbols=AAPL", bearer(token("carol"))) == 429
            await produce(
                kafka_bootstrap,
                topics.updates,
                [g.update_record("GOOG", 2), g.update_record("MSFT", 2)],
            )
            # markers for the stream's other symbols (each symbol's records stay in order)
            await produce(
                kafka_bootstrap,
                topics.updates,
                [g.update_record("AAPL", 2), g.update_record("MSTR", 2)],
            )
            await g.until_quotes(allowed, {"MSFT": 2, "AAPL": 2, "MSTR": 2})
            assert sorted(allowed.quotes()) == [
                ("quote", "AAPL", 2),
                ("quote", "MSFT", 2),
                ("quote", "MSTR", 2),
                ("snapshot", "AAPL", 1),
                ("snapshot", "MSFT", 1),
                ("snapshot", "MSTR", 1),
            ]
        ws_url = url.replace("http", "ws") + "/v1/ws"
        with pytest.raises(InvalidStatus):
            async with connect(ws_url):
                pass
        async with connect(ws_url, additional_headers=bearer(alice)) as ws:
            await ws.send(orjson.dumps({"type": "subscribe", "symbols": ["GOOG"]}).decode())
            [refusal] = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
            assert refusal["event"] == "error"
            assert refusal["data"]["status"] == 403
            await ws.send(orjson.dumps({"type": "subscribe", "symbols": ["AAPL"]}).decode())
            events = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
            assert [(e["event"], e["data"].get("symbol")) for e in events] == [
                ("snapshot", "AAPL"),
                ("subscribed", None),
            ]
