"""Behind a TLS-terminating proxy (TICKWIRE_TRUSTED_PROXIES): the per-IP connection
limit counts the clients the trusted proxy names in X-Forwarded-For, and the session
cookie is `Secure` when the proxy says the client came over HTTPS. From a peer that is
not trusted, both headers are ignored: a client cannot dodge its limit or fake HTTPS
by sending them. Real gateway processes (libs/tickwire/core/serve.py), one trusting
127.0.0.1 and one trusting nobody (the default).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.services import running, service_env
from tests.helpers.tokens import KEY, bearer, token
from tickwire.devstack import procs
from tickwire.devstack.run import ServiceSpec

pytestmark = pytest.mark.integration


@asynccontextmanager
async def gateway(env: dict[str, str], run_dir: Path, trusted: list[str]) -> AsyncIterator[str]:
    spec = ServiceSpec(
        "gateway",
        procs.free_port(),
        {
            "TICKWIRE_GATEWAY_AUTH": "jwt",
            "TICKWIRE_GATEWAY_JWT_KEY": KEY,
            "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_IP": "1",
            "TICKWIRE_TRUSTED_PROXIES": json.dumps(trusted),
        },
    )
    with running([spec], env, run_dir) as urls:
        yield urls["gateway"]


async def test_forwarded_headers_count_only_from_trusted_proxies(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, tmp_path: Path
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    alice = bearer(token("alice", symbols=["AAPL"]))
    path = "/v1/stream?symbols=AAPL"

    def as_client(ip: str) -> dict[str, str]:
        return {**alice, "X-Forwarded-For": ip}

    https = {**alice, "X-Forwarded-Proto": "https"}

    async with (
        gateway(env, tmp_path / "trusting", ["127.0.0.1"]) as url,
        httpx.AsyncClient(base_url=url) as http,
        g.sse_client(url, path, headers=as_client("203.0.113.7")) as first,
    ):
        assert first.status == 200
        async with g.sse_client(url, path, headers=as_client("198.51.100.9")) as other:
            assert other.status == 200  # another client behind the same proxy
        resp = await http.get(path, headers=as_client("203.0.113.7"))
        assert resp.status_code == 429  # the named client is at its limit of 1
        cookie = (await http.post("/v1/session", headers=https)).headers["set-cookie"]
        assert "secure" in cookie.lower()
        plain = (await http.post("/v1/session", headers=alice)).headers["set-cookie"]
        assert "secure" not in plain.lower()

    async with (
        gateway(env, tmp_path / "default", []) as url,
        httpx.AsyncClient(base_url=url) as http,
        g.sse_client(url, path, headers=as_client("203.0.113.7")) as first,
    ):
        assert first.status == 200
        resp = await http.get(path, headers=as_client("198.51.100.9"))
        assert resp.status_code == 429  # the header is ignored: it is this peer again
        cookie = (await http.post("/v1/session", headers=https)).headers["set-cookie"]
        assert "secure" not in cookie.lower()
