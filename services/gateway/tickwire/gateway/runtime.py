"""The gateway's typed lifespan state: what every endpoint reaches through the scope."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from tickwire.gateway.admission import Admission
from tickwire.gateway.auth import Authenticator, Principal
from tickwire.gateway.delay import DelayedFeeds
from tickwire.gateway.drain import Drain
from tickwire.gateway.errors import DrainingError, NotReadyError
from tickwire.gateway.hub import Hub
from tickwire.gateway.limits import ConnectionLimits
from tickwire.gateway.querycache import QueryCache
from tickwire.gateway.resume import ReplayGate, Resumer
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
    feeds: DelayedFeeds | None = None  # one shared reader per delayed entitlement
    replays: ReplayGate = field(default_factory=lambda: ReplayGate(4))
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    admission: Admission = field(default_factory=lambda: Admission(0, 1, 0))
    drain: Drain = field(default_factory=lambda: Drain(0, 2000))

    async def admit(self) -> None:
        """Wait for this node to admit one more stream (tickwire.gateway.admission);
        DrainingError once it drains, OverloadedError past the queue bound."""
        self._serving()
        await self.admission.admit()
        self._serving()  # the drain may have begun while this waited

    def _serving(self) -> None:
        if self.drain.draining:
            raise DrainingError(
                "this node is shutting down: reconnect (any node resumes your cursor)",
                self.settings.gateway_retry_ms / 1000,
            )

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

    async def hub_for(self, delay_s: float) -> tuple[Hub, Resumer]:
        """The hub serving streams of this delay: the real-time one for 0, else the
        delay's shared feed (started on first use)."""
        hub, resumer = await self.ready_hub()
        if not delay_s:
            return hub, resumer
        if self.feeds is None:
            raise NotReadyError("the gateway is starting")
        return await self.feeds.feed(delay_s)

    async def delayed_quotes(self, principal: Principal, symbols: list[str]) -> dict[str, bytes]:
        """The state of each symbol held by the hub of its delay for principal (real
        time for those without one), never fresher than the delay."""
        out: dict[str, bytes] = {}
        for symbol in symbols:
            hub, _ = await self.hub_for(principal.delays.for_symbol(symbol))
            held = hub.quotes.get(symbol)
            if held is not None:
                out[symbol] = held[1]
        return out

    def hubs(self) -> list[Hub]:
        """Every hub with subscribers: the real-time one and each delayed feed's."""
        feeds = self.feeds.hubs() if self.feeds is not None else []
        return ([self.hub] if self.hub is not None else []) + feeds


def runtime_of(scope: MutableMapping[str, Any]) -> Runtime:
    """The Runtime from an ASGI scope's lifespan state."""
    runtime = scope.get("state", {}).get("gateway")
    if not isinstance(runtime, Runtime):
        raise NotReadyError("the gateway is starting")
    return runtime
