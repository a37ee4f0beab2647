"""The auth negative matrix: every way a token or key can be wrong is refused, and a
refused caller gets nothing delivered and publishes nothing (real Kafka and store).

Gateway JWTs (HS256 gateway; an RS256 gateway for the algorithm switch): no token,
garbage, expired, not yet valid, wrong audience, wrong issuer, missing `exp` or `sub`,
`alg: none`, a bad signature, an HS256 token signed with the RS256 gateway's public key
(the HS/RS confusion), a subject whose claims do not cover the symbol. Each is refused
with its status and a JSON error body, never an event stream; a valid token on the same
gateway gets the stream (the control). WebSocket handshakes from a foreign page's
`Origin` are refused; from the gateway's own origin, or without one, they go on.

Ingest API keys: none, unknown, revoked, a key whose scopes cover neither the symbol
nor the type. `ticks.raw` then holds exactly the events of the accepted request.

Start-up refusals: an HMAC key shorter than its hash, `none` or an unknown algorithm,
an RS256 "key" that is not a public key, `*` CORS with credentials.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.ingest import keys_document, quote, running_ingest, trade
from tests.helpers.ingest import settings_for as ingest_settings
from tests.helpers.ingest_fuzz import read_to_end
from tests.helpers.kafka import produce
from tests.helpers.tokens import HS, KEY, bad_tokens, bearer, claims, signed_by_hand
from tickwire.core.errors import ConfigError
from tickwire.events import headers as h
from tickwire.gateway.app import create_app
from tickwire.gateway.auth import Authenticator
from tickwire.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration


def server_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What the services logged (not this test's own HTTP and WebSocket clients)."""
    clients = ("httpx", "httpcore", "websockets.client")
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(clients))


async def test_every_bad_gateway_token_is_refused_and_gets_no_stream(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    settings = g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, gateway_auth="jwt", gateway_jwt_key=KEY
    )
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        bad = bad_tokens()
        for case, (token, status) in bad.items():
            headers = bearer(token) if token is not None else {}
            resp = await http.get("/v1/stream?symbols=AAPL", headers=headers)
            bodies.append(resp.content)
            assert resp.status_code == status, case
            assert resp.headers["content-type"].startswith("application/"), case
            assert b"event:" not in resp.content, case
            # the same token as the session cookie
            if token is not None:
                session = await http.post("/v1/session", headers=bearer(token))
                assert session.status_code == (401 if status == 401 else 200), case
        async with g.sse_client(
            url, "/v1/stream?symbols=AAPL", headers=bearer(jwt.encode(claims(), KEY, HS))
        ) as control:
            [snapshot] = await control.wait_for(1)
            assert snapshot.event == "snapshot"

        # WebSocket: the Origin of a foreign page is refused before any event
        ws_url = url.replace("http", "ws") + "/v1/ws"
        good = bearer(jwt.encode(claims(), KEY, HS))
        with pytest.raises(InvalidStatus):
            async with connect(
                ws_url,
                additional_headers=good,
                origin="https://evil.example",  # type: ignore[arg-type]
            ):
                pass
        for origin in (url, None):
            async with connect(ws_url, additional_headers=good, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send(orjson.dumps({"type": "subscribe", "symbols": ["AAPL"]}).decode())
                events = orjson.loads(await ws.recv())
                assert events[0]["event"] == "snapshot"

        # the dashboard and the API say what browsers may do with them
        for path in ("/", "/v1/quotes?symbols=AAPL"):
            page = await http.get(path, headers=good)
            assert "script-src 'self'" in page.headers["content-security-policy"], path
            assert "'unsafe-inline'" not in page.headers["content-security-policy"], path
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"], path
            assert page.headers["x-content-type-options"] == "nosniff", path

    # no token or key ever appears in a log line or an error body
    secrets = [KEY, *(t.split(".")[-1] for t, _ in bad.values() if t and t.count(".") == 2)]
    for secret in filter(None, secrets):
        assert secret not in server_logs(caplog)
        assert all(secret.encode() not in body for body in bodies)


async def test_an_hs256_token_signed_with_the_rs256_public_key_is_refused(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_auth="jwt",
        gateway_jwt_algorithm="RS256",
        gateway_jwt_key=public_pem.decode(),
    )
    switched = signed_by_hand({"alg": "HS256", "typ": "JWT"}, claims(), public_pem)
    genuine = jwt.encode(claims(), private, algorithm="RS256")
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        refused = await http.get("/v1/quotes?symbols=AAPL", headers=bearer(switched))
        assert refused.status_code == 401
        allowed = await http.get("/v1/quotes?symbols=AAPL", headers=bearer(genuine))
        assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"gateway_jwt_key": SecretStr("too-short")}, "at least 32 bytes"),
        ({"gateway_jwt_algorithm": "HS512", "gateway_jwt_key": SecretStr("x" * 40)}, "64 bytes"),
        ({"gateway_jwt_algorithm": "none"}, "TICKWIRE_GATEWAY_JWT_ALGORITHM"),
        ({"gateway_jwt_algorithm": "RS256"}, "public key"),
    ],
)
def test_a_gateway_refuses_to_start_with_forgeable_token_settings(
    overrides: dict[str, Any], named: str
) -> None:
    fields: dict[str, Any] = {"gateway_auth": "jwt", "gateway_jwt_key": SecretStr(KEY), **overrides}
    settings = GatewaySettings(**fields)
    with pytest.raises(ConfigError, match=named):
        Authenticator(settings)


def test_the_jwt_key_is_read_from_its_file(tmp_path: Path) -> None:
    key_file = tmp_path / "jwt-key"
    key_file.write_text(KEY + "\n")
    settings = GatewaySettings(gateway_auth="jwt", gateway_jwt_key_file=key_file)
    principal = Authenticator(settings).verify(jwt.encode(claims(), KEY, HS))
    assert principal.subject == "alice"
    with pytest.raises(ConfigError, match="TICKWIRE_GATEWAY_JWT_KEY_FILE"):
        Authenticator(settings.model_copy(update={"gateway_jwt_key_file": tmp_path / "no"}))


def test_a_gateway_refuses_wildcard_cors_with_credentials() -> None:
    settings = GatewaySettings(gateway_auth="jwt", gateway_jwt_key=SecretStr(KEY))
    with pytest.raises(ConfigError, match="CORS"):
        create_app(settings.model_copy(update={"gateway_cors_origins": ["*"]}))


async def test_every_bad_ingest_key_is_refused_and_publishes_nothing(
    kafka_bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    document, keys = keys_document(
        [
            {"key_id": "live", "scopes": {"types": ["trade"], "symbols": ["AAPL"]}},
            {"key_id": "old", "revoked": True},
        ]
    )
    settings = ingest_settings(kafka_bootstrap, topics.raw, ingest_auth="on", ingest_keys=document)
    refused = {
        "no key": ({}, trade("AAPL", id="r1"), 401),
        "unknown key": ({"x-api-key": "tw_" + "0" * 43}, trade("AAPL", id="r2"), 401),
        "revoked key": ({"x-api-key": keys["old"]}, trade("AAPL", id="r3"), 401),
        "symbol not covered": ({"x-api-key": keys["live"]}, trade("MSFT", id="r4"), 403),
        "type not covered": ({"x-api-key": keys["live"]}, quote("AAPL", id="r5"), 403),
    }
    async with running_ingest(settings) as url, httpx.AsyncClient(base_url=url) as client:
        for case, (headers, event, status) in refused.items():
            resp = await client.post("/v1/events", json=event, headers=headers)
            assert resp.status_code == status, case
            assert resp.json()["error_code"] == status, case
            for key in keys.values():
                assert key not in resp.text, case
        ok = await client.post(
            "/v1/events", json=trade("AAPL", id="accepted"), headers={"x-api-key": keys["live"]}
        )
        assert ok.status_code == 202
    records = await read_to_end(kafka_bootstrap, topics.raw)
    assert [h.find(r.headers, h.CE_ID) for r in records] == [b"accepted"]
    for key in keys.values():  # only key ids are ever logged
        assert key not in server_logs(caplog)
        assert all(
            key.encode() not in r.value and key.encode() not in str(r.headers).encode()
            for r in records
        )
