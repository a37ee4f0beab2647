"""Two ingest and two gateway processes sharing one real Redis: a key's rate limit and a
subject's (and an address's) connection cap hold across both; Redis stopped mid-test
gives the documented fallback of each policy (fail-open: each replica's own limits;
fail-closed: 503 with Retry-After), nothing crashes and no other 5xx appears; Redis
back gives shared limits again.

Each pair runs one replica per policy (A fail-open, B fail-closed): the policy only
matters while Redis is down, so one run shows both fallbacks.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import redis
from aiokafka import AIOKafkaConsumer

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.ingest import keys_document, trade
from tests.helpers.services import running, service_env
from tests.integration.redis import redis_helpers as rh
from tickwire.devstack import procs
from tickwire.devstack.redis import RedisServer
from tickwire.devstack.run import ServiceSpec
from tickwire.events import headers as h

#: The key's bucket: from full, at most burst + rate * T events in T seconds; at
#: 0.001/s a batch of 10 needs 10,000 s of refill, so exactly BURST / BATCH batches fit.
RATE, BURST, BATCH = 0.001, 100, 10
SYMBOL = "RDX"
JWT_KEY = "redis-replicas-test-secret-key-long-enough-for-hs256"
PER_SUBJECT, PER_IP = 2, 4


def _redis_env(server: RedisServer, key_prefix: str, policy: str) -> dict[str, str]:
    return {
        "TICKWIRE_REDIS_URL": server.url,
        "TICKWIRE_REDIS_KEY_PREFIX": key_prefix,
        "TICKWIRE_REDIS_FALLBACK": policy,
        "TICKWIRE_REDIS_PROBE_S": "0.2",
    }


def _wait_redis_up(urls: list[str], up: float) -> None:
    """Wait until every service reports tickwire_redis_up == up (the marker that its
    watcher has seen Redis come back, and re-synced)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(rh.scrape(url, "tickwire_redis_up") == up for url in urls):
            return
        time.sleep(0.05)
    raise AssertionError(f"tickwire_redis_up did not become {up} on {urls}")


async def test_ingest_rate_limit_is_shared_and_falls_back(
    redis_server: RedisServer,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    tmp_path: Path,
) -> None:
    keys, plain = keys_document(
        [
            {"key_id": "feed", "rate": RATE, "burst": BURST},
            {"key_id": "marker", "rate": 0},
        ]
    )
    key_prefix = rh.prefix()
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    env["TICKWIRE_INGEST_KEYS"] = keys
    specs = [
        ServiceSpec("ingest", procs.free_port(), _redis_env(redis_server, key_prefix, policy))
        for policy in ("fail-open", "fail-closed")
    ]
    feed = {"X-API-Key": plain["feed"]}
    accepted: list[str] = []
    statuses: list[int] = []
    serial = 0

    with running(specs[:1], env, tmp_path / "a") as a, running(specs[1:], env, tmp_path / "b") as b:
        replicas = [a["ingest"], b["ingest"]]
        async with httpx.AsyncClient(timeout=30) as http:

            async def post(base: str) -> httpx.Response:
                nonlocal serial
                batch = [trade(SYMBOL, id=f"e{serial + i}") for i in range(BATCH)]
                serial += BATCH
                resp = await http.post(f"{base}/v1/events:batch", json=batch, headers=feed)
                statuses.append(resp.status_code)
                if resp.status_code == 202:
                    accepted.extend(e["id"] for e in batch)
                return resp

            # shared: one bucket for both replicas
            answers = [await post(replicas[i % 2]) for i in range(30)]
            assert [r.status_code for r in answers] == [202] * 10 + [429] * 20
            assert all(int(r.headers["Retry-After"]) >= 1 for r in answers[10:])

            redis_server.stop()
            try:
                # A, fail-open: its own bucket, full (the fleet may take one limit each)
                own = [await post(replicas[0]) for _ in range(12)]
                assert [r.status_code for r in own] == [202] * 10 + [429] * 2
                # B, fail-closed: 503 with Retry-After, nothing accepted
                for _ in range(3):
                    refused = await post(replicas[1])
                    assert refused.status_code == 503
                    assert int(refused.headers["Retry-After"]) >= 1
                    assert "Redis" in refused.json()["message"]
                for base in replicas:
                    assert (await http.get(f"{base}/healthz")).status_code == 200
            finally:
                redis_server.start()
            _wait_redis_up(replicas, 1)
            # back, and empty (no persistence): one full bucket shared again
            again = [await post(replicas[i % 2]) for i in range(30)]
            assert [r.status_code for r in again] == [202] * 10 + [429] * 20

            marker = await http.post(
                f"{replicas[1]}/v1/events",
                json=trade(SYMBOL, id="marker"),
                headers={"X-API-Key": plain["marker"]},
            )
            assert marker.status_code == 202
    assert set(statuses) == {202, 429, 503}  # no 5xx but the documented 503
    assert statuses.count(503) == 3
    # Kafka holds exactly the accepted events, in the order they were accepted
    assert await _ids_until_marker(kafka_bootstrap, topics.raw) == [*accepted, "marker"]


async def _ids_until_marker(bootstrap: str, topic: str) -> list[str]:
    """Event ids of one symbol's partition of ticks.raw, up to the marker event."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while "marker" not in ids and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                ids.extend(h.header_map(r.headers)[h.CE_ID].decode() for r in records)
    finally:
        await consumer.stop()
    return ids


def _token(subject: str) -> dict[str, str]:
    claims = {
        "sub": subject,
        "aud": "tickwire-gateway",
        "iss": "tickwire",
        "exp": int(time.time()) + 600,
        "symbols": ["*"],
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_KEY, algorithm='HS256')}"}


class Streams:
    """Open SSE streams that the test closes one by one."""

    def __init__(self) -> None:
        self.open: list[contextlib.AsyncExitStack] = []

    async def try_open(self, base: str, subject: str) -> tuple[int, dict[str, Any], Any]:
        """Open a stream: (status, headers, handle to close it, or None when refused)."""
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            g.sse_client(base, f"/v1/stream?symbols={SYMBOL}", headers=_token(subject))
        )
        if client.status != 200:
            assert client._task is not None
            await client._task  # a refusal's body is read, then the reader ends
            await stack.aclose()
            body = json.loads(client.body or b"{}")
            return client.status, {**dict(client.headers or {}), **body}, None
        self.open.append(stack)
        return 200, {}, stack

    async def close(self, stack: Any) -> None:
        self.open.remove(stack)
        await stack.aclose()

    async def aclose(self) -> None:
        for stack in self.open:
            await stack.aclose()


def _wait_streams(base: str, count: int) -> None:
    """Wait until a gateway counts `count` open SSE streams (its release of a closed
    stream, including the Redis decrement, happens before the gauge drops)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if rh.scrape(base, "tickwire_gateway_connections", transport="sse") == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{base} did not reach {count} open streams")


@contextlib.asynccontextmanager
async def _streams() -> AsyncIterator[Streams]:
    streams = Streams()
    try:
        yield streams
    finally:
        await streams.aclose()


async def test_gateway_connection_caps_are_shared_and_fall_back(
    redis_server: RedisServer,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    tmp_path: Path,
) -> None:
    key_prefix = rh.prefix()
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    env.update(
        TICKWIRE_GATEWAY_AUTH="jwt",
        TICKWIRE_GATEWAY_JWT_KEY=JWT_KEY,
        TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_SUBJECT=str(PER_SUBJECT),
        TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_IP=str(PER_IP),
    )
    specs = [
        ServiceSpec("gateway", procs.free_port(), _redis_env(redis_server, key_prefix, policy))
        for policy in ("fail-open", "fail-closed")
    ]
    with (
        running(specs[:1], env, tmp_path / "a") as one,
        running(specs[1:], env, tmp_path / "b") as two,
    ):
        a, b = one["gateway"], two["gateway"]
        async with _streams() as streams:
            # shared: alice may hold 2 streams and 127.0.0.1 4, whichever replica
            assert (await streams.try_open(a, "alice"))[0] == 200
            assert (await streams.try_open(b, "alice"))[0] == 200
            status, info, _ = await streams.try_open(a, "alice")
            assert (status, info["error"]) == (429, "too many streams for this subject")
            assert (await streams.try_open(b, "bob"))[0] == 200
            _, _, bob_a = await streams.try_open(a, "bob")
            assert bob_a is not None
            status, info, _ = await streams.try_open(b, "carol")
            assert (status, info["error"]) == (429, "too many streams from this address")
            await streams.close(bob_a)
            _wait_streams(a, 1)  # a: alice; b: alice, bob

            redis_server.stop()
            try:
                # B, fail-closed: 503 with Retry-After
                status, info, _ = await streams.try_open(b, "dave")
                assert status == 503
                assert int(info["retry-after"]) >= 1
                # A, fail-open: the caps on A's own streams (alice has 1 there)
                assert (await streams.try_open(a, "alice"))[0] == 200
                status, info, _ = await streams.try_open(a, "alice")
                assert (status, info["error"]) == (429, "too many streams for this subject")
                for base in (a, b):
                    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
            finally:
                redis_server.start()
            _wait_redis_up([a, b], 1)
            # back: both re-published their streams (alice 2 on A + 1 on B, bob 1 on B)
            status, info, _ = await streams.try_open(b, "carol")
            assert (status, info["error"]) == (429, "too many streams from this address")
            for stack in list(streams.open[:1]) + list(streams.open[-1:]):
                await streams.close(stack)  # A's two alice streams
            _wait_streams(a, 0)
            assert (await streams.try_open(b, "alice"))[0] == 200  # alice 2, ip 3
            status, info, _ = await streams.try_open(a, "alice")
            assert (status, info["error"]) == (429, "too many streams for this subject")


async def test_a_killed_gateways_streams_stop_counting_when_its_lease_expires(
    redis_server: RedisServer,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    tmp_path: Path,
) -> None:
    key_prefix = rh.prefix()
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    env.update(
        TICKWIRE_GATEWAY_AUTH="jwt",
        TICKWIRE_GATEWAY_JWT_KEY=JWT_KEY,
        TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_SUBJECT=str(PER_SUBJECT),
        TICKWIRE_REDIS_LEASE_S="1",
    )
    specs = [
        ServiceSpec("gateway", procs.free_port(), _redis_env(redis_server, key_prefix, "fail-open"))
        for _ in range(2)
    ]
    client = redis.Redis.from_url(redis_server.url)
    leases = f"{{{key_prefix}}}:lease:*"
    try:
        with (
            running(specs[:1], env, tmp_path / "a") as one,
            running(specs[1:], env, tmp_path / "b") as two,
        ):
            a, b = one["gateway"], two["gateway"]
            async with _streams() as streams:
                assert (await streams.try_open(a, "alice"))[0] == 200
                assert (await streams.try_open(a, "alice"))[0] == 200
                status, info, _ = await streams.try_open(b, "alice")
                assert (status, info["error"]) == (429, "too many streams for this subject")
                assert len(client.keys(leases)) == 2  # one live lease per replica
                # A crashes: no shutdown, no release, its lease is no longer renewed
                procs.stop(tmp_path / "a" / "gateway.pid", sig=signal.SIGKILL)
                deadline = time.monotonic() + 30
                while len(client.keys(leases)) > 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert len(client.keys(leases)) == 1  # the marker: A's lease expired
                assert (await streams.try_open(b, "alice"))[0] == 200
                assert (await streams.try_open(b, "alice"))[0] == 200
                status, info, _ = await streams.try_open(b, "alice")
                assert (status, info["error"]) == (429, "too many streams for this subject")
    finally:
        client.close()
