"""Exchanges, queues and bindings, from the settings.

With `bridge_declare` on (the default) the bridge declares, durable: each binding's
exchange, its queue, the queue's bindings, the dead-letter exchange (topic) and the
dead-letter queue bound to it with `#`. With it off they must exist (checked passively
at start), for deployments where operators own the topology.

The consumed queues get no `x-dead-letter-exchange`: the bridge publishes each dead
letter itself, with the reason in its headers, and then rejects the original without
requeue; a broker-side dead-lettering as well would make a second, reason-less copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from tickwire.bridge.settings import BridgeSettings


@dataclass(frozen=True)
class Topology:
    """The declared (or verified) queues to consume and the dead-letter exchange."""

    queues: list[AbstractQueue]
    dead_letters: AbstractExchange


async def declare(channel: AbstractChannel, settings: BridgeSettings) -> Topology:
    """Declare (or, with `bridge_declare` off, look up) everything the bridge uses."""
    if not settings.bridge_declare:
        dlx = await channel.get_exchange(settings.bridge_dead_letter_exchange, ensure=True)
        queues = [await channel.get_queue(b.queue, ensure=True) for b in settings.bridge_bindings]
        return Topology(queues, dlx)
    dlx = await channel.declare_exchange(
        settings.bridge_dead_letter_exchange, ExchangeType.TOPIC, durable=True
    )
    if settings.bridge_dead_letter_queue:
        dead = await channel.declare_queue(settings.bridge_dead_letter_queue, durable=True)
        await dead.bind(dlx, "#")
    queues = []
    for binding in settings.bridge_bindings:
        queue = await channel.declare_queue(binding.queue, durable=True)
        if binding.exchange:
            exchange = await channel.declare_exchange(
                binding.exchange, ExchangeType(binding.exchange_type), durable=True
            )
            for key in binding.routing_keys:
                await queue.bind(exchange, key)
        queues.append(queue)
    return Topology(queues, dlx)
