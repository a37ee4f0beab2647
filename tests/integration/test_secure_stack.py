"""Encrypted and authenticated hops: the whole pipeline on a secure private stack, and
the clients it must refuse (`tickwire-stack up --secure`: Kafka's one SASL_SSL
listener; FerretDB on TLS only, its users checked by PostgreSQL; the stack's own CA).

Each service authenticates to Kafka differently, so every supported way is exercised
on the same broker: ingest with SCRAM-SHA-512 (the stack's client settings, passwords
from files), the processor with SCRAM-SHA-256 and a client certificate (mutual TLS),
the gateway with PLAIN over TLS; processor and gateway reach FerretDB with PLAIN over
TLS. A producer posts trades with known ids and sizes; an SSE client sees the
documented result (version = trades applied, volume = their sum) and the store holds
it. Then Kafka and MongoDB clients with no or wrong credentials, without TLS, or that
do not trust the stack's CA are refused, and nothing got in through them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pymongo.errors import PyMongoError

from tests.helpers import infra
from tests.helpers.gateway import sse_client
from tests.helpers.ingest import now_iso
from tests.helpers.ingest_fuzz import read_to_end
from tests.helpers.services import pipeline_specs, running, service_env
from tickwire.devstack.stack import Stack
from tickwire.events import headers as h
from tickwire.kafka.clients import make_producer
from tickwire.kafka.security import KafkaSecurity
from tickwire.kafka.topics import ensure_topics
from tickwire.mongo.client import make_client
from tickwire.mongo.security import MongoSecurity

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("secure") / "stack")
    stack.up(brokers=1, partitions=3, secure=True)
    try:
        yield stack
    finally:
        stack.down()


def _env_of(security: KafkaSecurity) -> dict[str, str]:
    """The TICKWIRE_KAFKA_* variables a service is given for this security."""
    env = {
        "TICKWIRE_KAFKA_SECURITY_PROTOCOL": security.protocol,
        "TICKWIRE_KAFKA_SASL_MECHANISM": security.sasl_mechanism,
        "TICKWIRE_KAFKA_SASL_USERNAME": security.username or "",
        "TICKWIRE_KAFKA_SASL_PASSWORD": security.password or "",
        "TICKWIRE_KAFKA_SSL_CAFILE": str(security.cafile),
    }
    if security.certfile is not None:
        env["TICKWIRE_KAFKA_SSL_CERTFILE"] = str(security.certfile)
        env["TICKWIRE_KAFKA_SSL_KEYFILE"] = str(security.keyfile)
    return env


async def test_the_pipeline_runs_over_sasl_ssl_with_scram_plain_and_mutual_tls(
    secure_stack: Stack, tmp_path: Path
) -> None:
    info = secure_stack.info()
    assert info is not None
    assert info.secure
    default = secure_stack.kafka_security()  # SCRAM-SHA-512, the stack's own client user
    assert default.protocol == "SASL_SSL"
    assert default.sasl_mechanism == "SCRAM-SHA-512"
    tls = secure_stack.tls_files()
    topics = infra.Topics.fresh()
    db_name = infra.unique("tw").replace("-", "_")
    env = service_env(info.bootstrap_servers, info.mongodb_url, db_name, topics)
    env.update(secure_stack.security_env())  # what `tickwire-stack env` exports
    env["TICKWIRE_LOG_LEVEL"] = "INFO"
    ingest, processor, gateway = pipeline_specs()
    processor.env.update(
        _env_of(
            KafkaSecurity(
                protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-256",
                username=default.username,
                password=default.password,
                cafile=tls.ca,
                certfile=tls.client_cert,
                keyfile=tls.client_key,
            )
        )
    )
    gateway.env.update(
        _env_of(
            KafkaSecurity(
                protocol="SASL_SSL",
                sasl_mechanism="PLAIN",
                username=default.username,
                password=default.password,
                cafile=tls.ca,
            )
        )
    )
    events = [
        {
            "type": "trade",
            "id": f"secure-{i}",
            "symbol": "AAPL",
            "price": 100.0 + i,
            "size": float(10 * (i + 1)),
            "time": now_iso(-1),
        }
        for i in range(5)
    ]
    with running([ingest, processor, gateway], env, tmp_path / "run") as urls:
        async with (
            httpx.AsyncClient(base_url=urls["ingest"], timeout=30) as client,
            sse_client(urls["gateway"], "/v1/stream?symbols=AAPL") as sse,
        ):
            assert sse.status == 200
            resp = await client.post("/v1/events:batch", json=events)
            assert resp.status_code == 202, resp.text
            # the documented result of five distinct trades: version 5, volume 150
            while True:
                received = await sse.wait_for(len(sse.events) + 1, timeout=60)
                last = received[-1].json()
                if received[-1].event in ("snapshot", "quote") and last["version"] >= 5:
                    break
            assert last["version"] == 5
            assert last["volume"] == sum(e["size"] for e in events)
            assert last["trades"] == 5
        # persisted behind: the store (over TLS, as the stack's user) catches up
        mongo = make_client(info.mongodb_url, security=secure_stack.mongo_security())
        try:
            deadline = time.monotonic() + 60  # a failure guard, not a measurement
            while True:
                doc = await mongo[db_name].quotes.find_one({"_id": "AAPL"})
                if doc is not None and doc["version"] >= 5:
                    break
                assert time.monotonic() < deadline, f"the store never caught up: {doc}"
                await asyncio.sleep(0.2)
        finally:
            await mongo.close()
        assert doc["version"] == 5
        assert doc["volume"] == sum(e["size"] for e in events)

    # the services' logs never show a password (they are given as files and variables)
    logs = "".join(p.read_text() for p in (tmp_path / "run").glob("*.log"))
    assert "ready" in logs  # at INFO the services log their start-up
    for secret in (default.password, secure_stack.mongo_security().password):
        assert secret
        assert secret not in logs

    records = await read_to_end(info.bootstrap_servers, topics.raw, security=default)
    assert sorted(h.find(r.headers, h.CE_ID) for r in records) == sorted(
        e["id"].encode() for e in events
    )


@pytest.mark.parametrize(
    "case",
    [
        "plaintext",
        "tls_without_sasl",
        "wrong_password",
        "unknown_user",
        "plain_wrong_password",
        "untrusted_ca",
    ],
)
async def test_a_client_without_valid_credentials_is_refused_and_publishes_nothing(
    secure_stack: Stack, case: str
) -> None:
    info = secure_stack.info()
    assert info is not None
    good = secure_stack.kafka_security()
    tls = secure_stack.tls_files()
    bad: dict[str, Any] = {
        "plaintext": {"protocol": "PLAINTEXT"},
        "tls_without_sasl": {"protocol": "SSL", "cafile": tls.ca},
        "wrong_password": {"password": "not-the-password"},
        "unknown_user": {"username": "mallory"},
        "plain_wrong_password": {"sasl_mechanism": "PLAIN", "password": "not-the-password"},
        "untrusted_ca": {"cafile": None},  # the system's trust store: not the stack's CA
    }[case]
    fields = {
        "protocol": good.protocol,
        "sasl_mechanism": good.sasl_mechanism,
        "username": good.username,
        "password": good.password,
        "cafile": good.cafile,
        **bad,
    }
    security = KafkaSecurity(**fields)
    topic = infra.Topics.fresh().raw
    await ensure_topics(info.bootstrap_servers, [topic], partitions=3, replication=1, security=good)

    producer = make_producer(
        info.bootstrap_servers, "intruder", security=security, request_timeout_ms=5000
    )
    try:
        with pytest.raises((KafkaConnectionError, KafkaError)):
            await _start_and_send(producer, topic)
    finally:
        await producer.stop()
    assert await read_to_end(info.bootstrap_servers, topic, security=good) == []


async def _start_and_send(producer: AIOKafkaProducer, topic: str) -> None:
    await producer.start()
    await producer.send_and_wait(topic, b"should never land")


@pytest.mark.parametrize(
    "case", ["no_credentials", "wrong_password", "unknown_user", "no_tls", "untrusted_ca"]
)
async def test_a_mongodb_client_without_valid_credentials_is_refused_and_writes_nothing(
    secure_stack: Stack, case: str
) -> None:
    info = secure_stack.info()
    assert info is not None
    good = secure_stack.mongo_security()
    fields: dict[str, Any] = {
        "username": good.username,
        "password": good.password,
        "auth_mechanism": good.auth_mechanism,
        "tls": good.tls,
        "ca_file": good.ca_file,
        **{
            "no_credentials": {"username": None, "password": None, "auth_mechanism": None},
            "wrong_password": {"password": "not-the-password"},
            "unknown_user": {"username": "mallory"},
            "no_tls": {"tls": False, "ca_file": None, "auth_mechanism": None},
            "untrusted_ca": {"ca_file": None},
        }[case],
    }
    db_name = infra.unique("tw").replace("-", "_")
    intruder = make_client(info.mongodb_url, timeout_ms=3000, security=MongoSecurity(**fields))
    try:
        with pytest.raises(PyMongoError):
            await intruder[db_name].quotes.insert_one({"_id": "AAPL", "version": 999})
    finally:
        await intruder.close()
    owner = make_client(info.mongodb_url, security=good)
    try:
        assert await owner[db_name].quotes.find_one({"_id": "AAPL"}) is None
    finally:
        await owner.close()
