"""Session fixtures: real Kafka and MongoDB-wire endpoints, and per-test names.

Markers follow the folder: tests/unit -> unit, tests/integration -> integration,
tests/e2e -> e2e. Helpers live in tests/helpers and are imported from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.helpers import infra

_FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        marker = _FOLDER_MARKERS.get(folder)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def endpoints() -> Iterator[infra.Endpoints]:
    """The session's real Kafka broker and MongoDB-wire server."""
    with infra.endpoints() as found:
        print(
            f"\n[tests] Kafka {found.kafka_bootstrap}, MongoDB {found.mongodb_url} ({found.origin})"
        )
        yield found


@pytest.fixture(scope="session")
def kafka_bootstrap(endpoints: infra.Endpoints) -> str:
    return endpoints.kafka_bootstrap


@pytest.fixture(scope="session")
def mongodb_url(endpoints: infra.Endpoints) -> str:
    return endpoints.mongodb_url


@pytest.fixture
def topics() -> infra.Topics:
    """Topic names private to this test."""
    return infra.Topics.fresh()


@pytest.fixture
def db_name() -> str:
    """A MongoDB database name private to this test."""
    return infra.unique("tw").replace("-", "_")


@pytest.fixture
async def mongo(mongodb_url: str, db_name: str) -> AsyncIterator[Any]:
    """An AsyncMongoClient database private to this test, dropped afterwards."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        yield client[db_name]
        await client.drop_database(db_name)
    finally:
        await client.close()
