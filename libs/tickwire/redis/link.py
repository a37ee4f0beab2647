"""`RedisLink`: one service's Redis client and its view of whether Redis is up.

A call made while Redis is down would wait for a timeout on every request, so the link
keeps a state: a failed call marks Redis down at once, and until the watcher (`run`,
a supervised Runnable) gets a PONG again every call fails fast with
`RedisUnavailableError` and the caller applies its fallback. When Redis answers again
the watcher first runs the re-sync hooks (e.g. the gateway re-publishes its open
connection counts, which a restarted Redis has lost), then marks it up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError
from tickwire.redis import metrics
from tickwire.redis.errors import RedisUnavailableError
from tickwire.redis.settings import RedisSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
Hook = Callable[["aioredis.Redis"], Awaitable[None]]


def make_client(settings: RedisSettings) -> aioredis.Redis | None:
    """A redis-py asyncio client for the settings' URL (TLS when it is rediss://), or
    None when no URL is set. One immediate retry on a connection error only (a pooled
    connection a restarted server closed); timeouts are not retried: the link decides."""
    if not settings.redis_url:
        return None
    extra: dict[str, Any] = {}
    if settings.redis_password is not None:
        extra["password"] = settings.redis_password.get_secret_value()
    if settings.redis_url.startswith("rediss://") and settings.redis_tls_ca_file is not None:
        extra["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[ConnectionError],
        health_check_interval=0,
        client_name=f"{settings.redis_key_prefix}",
        **extra,
    )


class RedisLink:
    """The client (None: Redis not configured), the up/down state and the watcher."""

    def __init__(self, client: aioredis.Redis | None, settings: RedisSettings) -> None:
        self.client = client
        self.settings = settings
        self.prefix = settings.redis_key_prefix
        self.policy = settings.redis_fallback
        self.up = False
        self.probed = False  # whether a probe ran yet (the first failure is logged)
        self.hooks: list[Hook] = []
        metrics.UP.set(0)

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisLink:
        """A link for these settings (not connected until the watcher runs)."""
        return cls(make_client(settings), settings)

    @property
    def configured(self) -> bool:
        """Whether a Redis URL is set at all."""
        return self.client is not None

    def key(self, *parts: str) -> str:
        """A key under the prefix; every key shares the `{prefix}` hash tag, so the
        scripts' keys sit in one slot of a cluster."""
        return "{" + self.prefix + "}:" + ":".join(parts)

    def on_reconnect(self, hook: Hook) -> None:
        """Run `hook(client)` each time Redis answers after having been down (and at
        the first connection), before calls are let through again."""
        self.hooks.append(hook)

    async def call(self, part: str, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run one operation, or RedisUnavailableError at once while Redis is down;
        any redis-py error marks Redis down and is raised as RedisUnavailableError."""
        client = self.client
        if client is None or not self.up:
            raise RedisUnavailableError("Redis is not configured" if client is None else "down")
        try:
            return await operation(client)
        except (RedisError, OSError) as exc:
            metrics.ERRORS.labels(part).inc()
            self._mark_down(exc)
            raise RedisUnavailableError(f"Redis did not answer: {type(exc).__name__}") from exc

    def _mark_down(self, exc: BaseException) -> None:
        if self.up or not self.probed:
            log.warning(
                "Redis is down (%s); limits fall back (%s) until it answers", exc, self.policy
            )
        self.up = False
        metrics.UP.set(0)

    async def connect(self) -> bool:
        """One probe: PING, and on the way up the re-sync hooks; whether Redis is up."""
        client = self.client
        if client is None:
            return False
        try:
            await client.ping()
            self.probed = True
            if not self.up:
                for hook in self.hooks:
                    await hook(client)
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            self.probed = True
            return False
        if not self.up:
            log.info("Redis answers at %s; shared limits and cache in use", self._where())
            self.up = True
            metrics.UP.set(1)
        return True

    def _where(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs if self.client else {}
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def run(self) -> None:
        """Runnable: probe every `redis_probe_s` (a failed call marks Redis down in
        between; the next probe brings it back)."""
        if self.client is None:
            await asyncio.Event().wait()  # nothing to watch; run until cancelled
        while True:
            await self.connect()
            await asyncio.sleep(self.settings.redis_probe_s)

    async def close(self) -> None:
        """Close the client's connections."""
        if self.client is not None:
            await self.client.aclose()
