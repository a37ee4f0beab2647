"""One real redis-server per test module (Debian's, started by tickwire.devstack.redis
in a temporary directory). A missing redis-server fails the tests; it never skips."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tickwire.devstack.redis import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()
