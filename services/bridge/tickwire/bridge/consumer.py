"""The bridge's loop: RabbitMQ deliveries -> ticks.raw, acked only once Kafka has them.

One session = one AMQP connection and one channel (publisher confirms on, prefetch
`bridge_prefetch`), consuming every configured queue. Deliveries arrive in order in an
inbox; each turn takes what has arrived (at least one, at most `bridge_batch_max`)
as a batch:

1. decode each message (`decode.py`); a refused one is published to the dead-letter
   exchange with `x-tickwire-reason` / `x-tickwire-error` headers (awaiting the
   broker's confirm) and then rejected without requeue: never requeued forever;
2. publish the valid ones to ticks.raw as one set of record batches (the idempotent
   acks=all producer; records built by `tickwire.events.records`, exactly as ingest
   builds them) and wait for every ack, at most `bridge_publish_timeout_s`;
3. ack the batch to RabbitMQ with one `basic.ack multiple` on the delivery tag of its
   last valid message.

Batches go one at a time, so one queue's messages reach Kafka in the order RabbitMQ
delivered them (one symbol: one partition, in order).

When Kafka fails (timeout, refusal) the batch is nacked with requeue and the session
ends: closing the channel requeues every message still held, so RabbitMQ redelivers
them in queue order, after a back-off (full jitter, capped at `bridge_retry_max_s`).
Nothing is acked that Kafka has not acknowledged. A batch Kafka took but whose ack was
lost is published again on redelivery with the same event ids (the id is the
producer's, or the AMQP message id, or a digest of the body), which the processor's
dedup window drops. The same holds when the bridge is killed: unacked messages return
to the queue. A lost AMQP connection ends the session the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from aiormq.abc import FieldTable

from tickwire.bridge import metrics
from tickwire.bridge.decode import BridgedEvent, Refused, decode
from tickwire.bridge.errors import AMQP_FAILURES, KafkaUnavailableError, RabbitUnavailableError
from tickwire.bridge.settings import BridgeSettings
from tickwire.bridge.topology import declare
from tickwire.core.backoff import Backoff
from tickwire.events.records import build_records
from tickwire.kafka.batches import BatchPublisher, OutgoingRecord

log = logging.getLogger(__name__)

#: Headers a dead letter carries, besides the original message's own.
REASON = "x-tickwire-reason"
ERROR = "x-tickwire-error"
QUEUE = "x-tickwire-queue"
_LOST = None  # put in the inbox when the connection or channel closes


class Bridge:
    """Consumes the configured queues and publishes to ticks.raw (a Runnable)."""

    def __init__(self, settings: BridgeSettings, publisher: BatchPublisher) -> None:
        self.settings = settings
        self.publisher = publisher
        self.consuming = False  # a session is consuming (readiness)
        self.kafka_failing = False  # the last batch Kafka failed (readiness)
        self._skew = dt.timedelta(seconds=settings.bridge_max_future_skew_s)
        self._queue_of: dict[str, str] = {}  # consumer tag -> queue
        self._sources: dict[str, str] = {}  # queue -> default CloudEvents source

    async def run(self) -> None:
        """Consume until cancelled, reconnecting after failures with a back-off."""
        backoff = Backoff(base=0.2, cap=self.settings.bridge_retry_max_s)
        while True:
            try:
                await self._session(backoff)
            except KafkaUnavailableError as exc:
                self.kafka_failing = True
                metrics.FAILURES.labels("kafka").inc()
                log.warning("Kafka did not acknowledge a batch (%s); requeued, backing off", exc)
            except RETRIED as exc:
                metrics.FAILURES.labels("rabbitmq").inc()
                log.warning("RabbitMQ session ended (%r); reconnecting", exc)
            finally:
                self.consuming = False
                metrics.INFLIGHT.set(0)
            await asyncio.sleep(backoff.next_delay())

    async def _session(self, backoff: Backoff) -> None:
        settings = self.settings
        connection = await aio_pika.connect(
            settings.rabbitmq_url.get_secret_value(), timeout=10, client_properties=_CLIENT
        )
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()

        def lost(*_: Any) -> None:
            inbox.put_nowait(_LOST)

        try:
            connection.close_callbacks.add(lost)
            channel = await connection.channel(publisher_confirms=True)
            channel.close_callbacks.add(lost)
            await channel.set_qos(prefetch_count=settings.bridge_prefetch)
            topology = await declare(channel, settings)

            async def deliver(message: AbstractIncomingMessage) -> None:
                inbox.put_nowait(message)

            self._queue_of.clear()
            for queue in topology.queues:
                tag = await queue.consume(deliver, no_ack=False)
                self._queue_of[tag] = queue.name
                self._sources[queue.name] = settings.bridge_source.format(queue=queue.name)
            self.consuming = True
            log.info(
                "bridge consuming %s -> %s",
                ", ".join(q.name for q in topology.queues),
                settings.topic_raw,
            )
            while True:
                batch = await self._next_batch(inbox)
                if batch is None:
                    raise RabbitUnavailableError("connection or channel closed")
                await self._handle(batch, topology.dead_letters)
                metrics.INFLIGHT.set(inbox.qsize())
                self.kafka_failing = False
                backoff.reset()
        finally:
            with contextlib.suppress(*AMQP_FAILURES):
                await connection.close()

    async def _next_batch(
        self, inbox: asyncio.Queue[AbstractIncomingMessage | None]
    ) -> list[AbstractIncomingMessage] | None:
        """What has arrived: at least one message (waiting for it), at most batch_max;
        None when the session is lost."""
        first = await inbox.get()
        if first is _LOST:
            return None
        batch = [first]
        limit = self.settings.bridge_batch_max
        while len(batch) < limit and not inbox.empty():
            message = inbox.get_nowait()
            if message is _LOST:
                return None
            batch.append(message)
        metrics.INFLIGHT.set(len(batch) + inbox.qsize())
        return batch

    async def _handle(self, batch: list[AbstractIncomingMessage], dlx: AbstractExchange) -> None:
        metrics.CONSUMED.inc(len(batch))
        now = dt.datetime.now(dt.UTC)
        received_ns = time.time_ns()
        topic = self.settings.topic_raw
        records: list[OutgoingRecord] = []
        last_valid: AbstractIncomingMessage | None = None
        for message in batch:
            try:
                event = self._decode(message, now)
            except Refused as refused:
                await self._dead_letter(message, refused, dlx)
                continue
            built, _ = build_records(
                [event],
                default_source=self._sources.get(self._queue(message), "/amqp"),
                received_ns=received_ns,
                traceparent=event.traceparent,
            )
            records.extend(OutgoingRecord(topic, k, v, h) for k, v, h in built)
            last_valid = message
        if last_valid is not None:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(
                    self.publisher.publish(records), self.settings.bridge_publish_timeout_s
                )
            except Exception as exc:  # timeout, producer failure: never ack, requeue
                metrics.REQUEUED.inc(len(records))
                with contextlib.suppress(*AMQP_FAILURES):
                    await last_valid.nack(multiple=True, requeue=True)
                raise KafkaUnavailableError(str(exc) or repr(exc)) from exc
            metrics.KAFKA_SECONDS.observe(time.perf_counter() - started)
            metrics.BATCH_MESSAGES.observe(len(records))
            metrics.PUBLISHED.inc(len(records))
            # one ack for the batch; the rejected ones after it are settled already
            await last_valid.ack(multiple=True)

    def _queue(self, message: AbstractIncomingMessage) -> str:
        return self._queue_of.get(message.consumer_tag or "", message.routing_key or "")

    def _decode(self, message: AbstractIncomingMessage, now: dt.datetime) -> BridgedEvent:
        return decode(
            message.body,
            content_type=message.content_type,
            headers=message.headers or {},
            message_id=message.message_id,
            now=now,
            max_future_skew=self._skew,
        )

    async def _dead_letter(
        self, message: AbstractIncomingMessage, refused: Refused, dlx: AbstractExchange
    ) -> None:
        """Publish the message, with why, to the dead-letter exchange (confirmed), then
        reject the original without requeue."""
        queue = self._queue(message)
        headers = dict(message.headers or {})
        headers[REASON] = refused.reason.value
        headers[ERROR] = refused.detail[:1024]
        headers[QUEUE] = queue
        letter = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            type=message.type,
            app_id=message.app_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # not mandatory: a dead-letter exchange without a bound queue drops the letter,
        # as the operator chose (bridge_dead_letter_queue='')
        await dlx.publish(letter, routing_key=queue, mandatory=False)
        await message.reject(requeue=False)
        metrics.REJECTED.labels(refused.reason.value).inc()


_CLIENT: FieldTable = {"connection_name": "tickwire-bridge"}
RETRIED: tuple[type[BaseException], ...] = (RabbitUnavailableError, *AMQP_FAILURES)
