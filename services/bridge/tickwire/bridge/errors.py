"""The bridge's errors, in tickwire's tree (`tickwire.core.errors`):

    RetriableError
    ├── RabbitUnavailableError   the AMQP connection or channel failed or closed
    └── KafkaUnavailableError    a batch was not acknowledged by Kafka in time

Both end the consuming session: every message not yet acknowledged returns to its
queue (nacked, or requeued by the channel's close), and the bridge reconnects after a
back-off. Invalid messages are not errors here: `decode.Refused` sends them to the
dead-letter exchange.
"""

from __future__ import annotations

from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from tickwire.core.errors import RetriableError


class RabbitUnavailableError(RetriableError):
    """The AMQP connection or channel failed or was closed."""


class KafkaUnavailableError(RetriableError):
    """Kafka did not acknowledge a batch in time, or refused it."""


#: The client library's failures, translated to RabbitUnavailableError at the boundary.
AMQP_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)
