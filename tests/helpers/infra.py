"""Where the tests' Kafka and MongoDB-wire server come from, in this order:

1. `TICKWIRE_KAFKA_BOOTSTRAP` / `TICKWIRE_MONGODB_URL` from the environment;
2. testcontainers (apache/kafka and mongo images) when a Docker engine answers;
3. the project's own launcher (Kafka jars + FerretDB), reusing the stack that
   `make stack-up` started if it is up, otherwise starting a private test stack that
   is stopped again when the session ends.

Every part is real: there is no in-memory stand-in anywhere.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tickwire.devstack.paths import cache_dir, default_stack_dir
from tickwire.devstack.stack import Stack


@dataclass
class Endpoints:
    """Addresses of the real broker and store the tests use."""

    kafka_bootstrap: str
    mongodb_url: str
    origin: str
    stack: Stack | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@contextmanager
def _from_testcontainers() -> Iterator[Endpoints]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        MongoDbContainer("mongo:8.0") as mongo,
    ):
        yield Endpoints(kafka.get_bootstrap_server(), mongo.get_connection_url(), "testcontainers")


@contextmanager
def _from_launcher() -> Iterator[Endpoints]:
    shared = Stack(default_stack_dir())
    if shared.info() is not None and shared.status()["up"]:
        info = shared.info()
        assert info is not None
        yield Endpoints(
            info.bootstrap_servers, info.mongodb_url, "launcher (shared stack)", stack=shared
        )
        return
    # a directory of this session's own: two sessions on one machine (two checkouts, a
    # bench beside the tests) once shared one and stopped or misread each other's stack
    root = Path(tempfile.mkdtemp(prefix="stack-test-", dir=cache_dir()))
    private = Stack(root)
    try:
        info = private.up()
        yield Endpoints(
            info.bootstrap_servers, info.mongodb_url, "launcher (test stack)", stack=private
        )
    finally:
        private.down(wipe=True)


@contextmanager
def endpoints() -> Iterator[Endpoints]:
    """The session's Kafka and MongoDB endpoints (see the module docstring)."""
    kafka = os.environ.get("TICKWIRE_KAFKA_BOOTSTRAP")
    mongo = os.environ.get("TICKWIRE_MONGODB_URL")
    if kafka and mongo:
        yield Endpoints(kafka, mongo, "environment")
    elif _docker_answers():
        with _from_testcontainers() as found:
            yield found
    else:
        with _from_launcher() as found:
            yield found


def unique(prefix: str) -> str:
    """A name no other test uses: prefix plus a short random suffix."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Topics:
    """A private set of tickwire topic names for one test."""

    raw: str
    updates: str
    bars: str
    late: str
    dlq: str

    @classmethod
    def fresh(cls) -> Topics:
        tag = uuid.uuid4().hex[:10]
        return cls(
            raw=f"t-{tag}.ticks.raw",
            updates=f"t-{tag}.ticker.updates",
            bars=f"t-{tag}.ticker.bars",
            late=f"t-{tag}.ticks.late",
            dlq=f"t-{tag}.ticks.dlq",
        )

    def settings_env(self) -> dict[str, str]:
        """The settings overrides that point a service at these topics."""
        return {
            "topic_raw": self.raw,
            "topic_updates": self.updates,
            "topic_bars": self.bars,
            "topic_late": self.late,
            "topic_dlq": self.dlq,
        }
