"""Build the AsyncMongoClient the services share, and check it answers.

Only what both MongoDB and FerretDB v1 support is used anywhere: CRUD, upserts,
unique indexes, simple aggregation. No change streams, no transactions.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from tickwire.mongo.security import NO_AUTH, MongoSecurity


def make_client(
    url: str, *, timeout_ms: int = 5000, security: MongoSecurity = NO_AUTH, **extra: Any
) -> AsyncMongoClient[Any]:
    """An AsyncMongoClient with bounded timeouts so outages surface as errors, with the
    service's credentials and TLS (`security.py`)."""
    return AsyncMongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 2, 10_000),
        tz_aware=True,
        **security.options(),
        **extra,
    )


async def ping(client: AsyncMongoClient[Any]) -> bool:
    """Whether the server answers a ping right now."""
    try:
        await client.admin.command("ping")
    except PyMongoError:
        return False
    return True
