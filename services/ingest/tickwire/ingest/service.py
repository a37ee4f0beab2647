"""What ingest does with a request body once the HTTP layer has read it: decode and
validate, check the key's scopes and rate, build the records, publish, and say per
event what happened. Raises an `IngestError` whenever nothing was accepted.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from tickwire.events.records import build_records
from tickwire.events.types import QUOTE, TRADE
from tickwire.ingest import metrics
from tickwire.ingest.auth import Principal
from tickwire.ingest.errors import (
    Forbidden,
    IngestError,
    InvalidEvents,
    KafkaUnavailable,
    LimitsUnavailable,
    MalformedRequest,
    Overloaded,
    RateLimited,
)
from tickwire.ingest.events import (
    BodyKind,
    EntryError,
    Event,
    Limits,
    MalformedBody,
    parse_batch,
    parse_one,
)
from tickwire.ingest.models import ErrorDetail
from tickwire.ingest.publisher import OverloadedError, Published, Publisher
from tickwire.ingest.settings import IngestSettings
from tickwire.redis.errors import LimitsUnavailableError
from tickwire.redis.ratelimit import SharedRateLimiter

_BY_STATUS: dict[int, type[IngestError]] = {
    400: MalformedRequest,
    403: Forbidden,
    422: InvalidEvents,
    503: KafkaUnavailable,
}
_REASONS = {400: "malformed", 403: "forbidden", 422: "invalid", 503: "kafka_unavailable"}
_FORBIDDEN = "this key may not publish this event type or symbol"
_PENDING: dict[str, Any] = {}  # placeholder until every entry has its result


class IngestService:
    """Validates, authorizes and publishes events; one per process."""

    def __init__(
        self, settings: IngestSettings, publisher: Publisher, limiter: SharedRateLimiter
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.limiter = limiter
        self.topic = settings.topic_raw
        self.skew = dt.timedelta(seconds=settings.ingest_max_future_skew_s)

    def _limits(self) -> Limits:
        return dt.datetime.now(dt.UTC), self.skew

    async def publish_one(
        self,
        principal: Principal,
        body: bytes,
        kind: BodyKind,
        traceparent: str | None,
        received_ns: int,
    ) -> dict[str, Any]:
        """Publish one event; the Accepted body, or raise."""
        try:
            event = parse_one(body, kind, self._limits())
        except MalformedBody as exc:
            raise MalformedRequest(str(exc)) from None
        except EntryError as exc:
            raise _as_error(
                exc.status, exc.message, [ErrorDetail(field=exc.field, message=exc.message)]
            ) from None
        if not principal.may_publish(event.type, event.data.symbol):
            raise Forbidden(_FORBIDDEN)
        await self._charge(principal, 1)
        ids, published = await self._publish([event], principal, traceparent, received_ns)
        placed = published[0]
        if placed is None:
            raise self._unavailable(1)
        metrics.EVENTS_ACCEPTED.labels(event.type).inc()
        return {
            "id": ids[0],
            "topic_name": self.topic,
            "partition_id": placed.partition,
            "offset": placed.offset,
        }

    async def publish_batch(
        self,
        principal: Principal,
        body: bytes,
        kind: BodyKind,
        traceparent: str | None,
        received_ns: int,
    ) -> tuple[int, dict[str, Any]]:
        """Publish a batch; (202 or 207, BatchResult body), or raise when none was
        accepted. Validation and scope are all or nothing (any refused entry refuses the
        batch, with every refused entry named); only Kafka can leave a batch partly
        accepted (207: some partitions acknowledged in time, others not)."""
        try:
            entries = parse_batch(body, kind, self._limits())
        except MalformedBody as exc:
            raise MalformedRequest(str(exc)) from None
        if not entries:
            raise MalformedRequest("the batch is empty")
        if len(entries) > self.settings.ingest_max_batch_events:
            # a schema rule (maxItems), so 422 like any other; 413 is for the body's bytes
            raise InvalidEvents(
                f"at most {self.settings.ingest_max_batch_events} events per batch",
                [ErrorDetail(field=None, message="too many events")],
                events=len(entries),
            )
        metrics.REQUEST_EVENTS.observe(len(entries))
        results: list[dict[str, Any]] = [_PENDING] * len(entries)
        refused: Counter[int] = Counter()
        valid: list[Event] = []
        positions: list[int] = []
        for index, entry in enumerate(entries):
            if isinstance(entry, EntryError):
                results[index] = _refusal(index, entry.status, entry.field, entry.message)
                refused[entry.status] += 1
            elif not principal.may_publish(entry.type, entry.data.symbol):
                results[index] = _refusal(index, 403, None, _FORBIDDEN)
                refused[403] += 1
            else:
                valid.append(entry)
                positions.append(index)
        if refused:
            # all or nothing: one invalid or out-of-scope entry refuses the whole batch,
            # so an answer other than 202/207 always means nothing of it was published
            error = self._nothing_accepted([r for r in results if r is not _PENDING])
            error.events = len(entries)  # the valid entries are refused with them
            raise error
        n_accepted = 0
        if valid:
            await self._charge(principal, len(valid))
            ids, published = await self._publish(valid, principal, traceparent, received_ns)
            trades = 0
            for index, event, event_id, placed in zip(
                positions, valid, ids, published, strict=True
            ):
                if placed is None:
                    results[index] = _refusal(index, 503, None, "Kafka did not acknowledge in time")
                    refused[503] += 1
                    continue
                trades += event.type is TRADE
                results[index] = {
                    "index": index,
                    "status": 202,
                    "id": event_id,
                    "partition_id": placed.partition,
                    "offset": placed.offset,
                }
            n_accepted = len(valid) - refused[503]
            metrics.EVENTS_ACCEPTED.labels(TRADE).inc(trades)
            metrics.EVENTS_ACCEPTED.labels(QUOTE).inc(n_accepted - trades)
        if n_accepted == 0:
            raise self._nothing_accepted(results)
        for status, count in refused.items():
            metrics.EVENTS_REJECTED.labels(_REASONS[status]).inc(count)
        body_out = {
            "topic_name": self.topic,
            "accepted": n_accepted,
            "rejected": len(results) - n_accepted,
            "results": results,
        }
        return (202 if n_accepted == len(results) else 207), body_out

    async def _charge(self, principal: Principal, count: int) -> None:
        """Take `count` from the key's bucket (shared through Redis when configured), or
        raise RateLimited (429), or LimitsUnavailable (503) when Redis is down and the
        policy is fail-closed."""
        try:
            wait = await self.limiter.take(principal.key_id, principal.bucket, count)
        except LimitsUnavailableError as exc:
            raise LimitsUnavailable(
                exc.message, retry_after=exc.retry_after, events=count
            ) from None
        if wait > 0:
            if wait == float("inf"):
                raise RateLimited(
                    f"{count} events exceed this key's burst of {principal.bucket.burst:g}",
                    retry_after=1,
                    events=count,
                )
            raise RateLimited("rate limit exceeded", retry_after=wait, events=count)

    async def _publish(
        self, events: list[Event], principal: Principal, traceparent: str | None, received_ns: int
    ) -> tuple[list[str], list[Published | None]]:
        records, ids = build_records(
            events,
            default_source=self.settings.ingest_source.format(key_id=principal.key_id),
            received_ns=received_ns,
            traceparent=traceparent,
        )
        try:
            handles = self.publisher.submit(records, received_ns // 1_000_000)
        except OverloadedError:
            raise Overloaded(
                "too many events are waiting for Kafka; retry shortly",
                retry_after=self.settings.ingest_retry_after_s,
                events=len(events),
            ) from None
        return ids, await self.publisher.wait(handles, self._remaining(received_ns))

    def _remaining(self, received_ns: int) -> float:
        elapsed = (time.time_ns() - received_ns) / 1e9
        return max(0.001, self.settings.ingest_publish_timeout_s - elapsed)

    def _unavailable(self, events: int) -> KafkaUnavailable:
        return KafkaUnavailable(
            "Kafka did not acknowledge in time; nothing was accepted, retry with the same ids",
            retry_after=self.settings.ingest_retry_after_s,
            events=events,
        )

    def _nothing_accepted(self, results: list[dict[str, Any]]) -> IngestError:
        statuses = {r["status"] for r in results}
        details = [
            ErrorDetail(
                field=f"[{r['index']}]"
                + (f".{r['error']['field']}" if r["error"]["field"] else ""),
                message=r["error"]["message"],
            )
            for r in results
        ]
        if 503 in statuses:
            error = self._unavailable(len(results))
            error.details = details
            return error
        status = statuses.pop() if len(statuses) == 1 else 422
        return _as_error(status, "no event of the batch was accepted", details, len(results))


def _refusal(index: int, status: int, field: str | None, message: str) -> dict[str, Any]:
    return {"index": index, "status": status, "error": {"field": field, "message": message}}


def _as_error(
    status: int, message: str, details: list[ErrorDetail], events: int = 1
) -> IngestError:
    return _BY_STATUS[status](message, details, events=events)
