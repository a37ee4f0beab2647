"""The gateway's typed lifespan state: what every endpoint reaches through the scope."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from tickwire.gateway.auth import Authenticator
from tickwire.gateway.errors import NotReadyError
from tickwire.gateway.hub import Hub
from tickwire.gateway.limits import ConnectionLimits
from tickwire.gateway.querycache import QueryCache
from tickwire.gateway.resume import Resumer
from tickwire.gateway.settings import GatewaySettings
from tickwire.redis.link import RedisLink


@dataclass
class Runtime:
    """Built by create_app; the lifespan fills in the parts that need Kafka and MongoDB."""

    settings: GatewaySettings
    auth: Authenticator
    limits: ConnectionLimits
    redis: RedisLink  # not configured: in-process limits, no shared cache
    query_cache: QueryCache
    hub: Hub | None = None
    resumer: Resumer | None = None
    db: Any = None  # the MongoDB database (AsyncDatabase)
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)

    async def ready_hub(self) -> tuple[Hub, Resumer]:
        """The hub once it has caught up with Kafka; NotReadyError after the wait."""
        hub, resumer = self.hub, self.resumer
        if hub is None or resumer is None:
            raise NotReadyError("the gateway is starting")
        if not hub.ready.is_set():
            try:
                await asyncio.wait_for(hub.ready.wait(), self.settings.gateway_ready_wait_s)
            except TimeoutError as exc:
                raise NotReadyError("the gateway is still catching up with Kafka") from exc
        return hub, resumer


def runtime_of(scope: MutableMapping[str, Any]) -> Runtime:
    """The Runtime from an ASGI scope's lifespan state."""
    runtime = scope.get("state", {}).get("gateway")
    if not isinstance(runtime, Runtime):
        raise NotReadyError("the gateway is starting")
    return runtime
