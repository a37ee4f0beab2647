"""Starting a subscription: fresh snapshots, or a resume from a cursor.

Resume order for the slots the subscription touches:
1. from the hub's buffers, when each reaches back to the cursor;
2. else by reading Kafka from the cursor's offsets up to where the buffers begin
   (a temporary consumer, no group), then the buffers for the rest;
3. else (past retention, a cursor from another topic, cluster, generation or layout,
   or Kafka not answering in time) a `reset` event followed by fresh snapshots.
A retriable Kafka error on the way (a connection reset, a broker not ready) is retried
from the start, with backoff, until the resume timeout: only then is it a reset.
The last step that queues frames and registers the connection is synchronous, so live
updates continue exactly where the replay ends.

A Kafka replay holds its frames in memory until that step, and reads with a consumer
of its own: every one (a cursor resume falling back to Kafka, a `since=` replay) takes
one of the instance's `GATEWAY_MAX_REPLAYS` slots (`ReplayGate`) until its hand-over,
and holds at most `GATEWAY_REPLAY_MAX_BYTES` of frames. No slot free when the stream
asks: 503 + Retry-After (SSE) or an `error` event (WebSocket), before anything is
sent. A resume that would read more than `GATEWAY_REPLAY_MAX_RECORDS` records, or hold
more than its bytes, gets a reset and fresh snapshots instead (so does one whose buffer
moved on and needs Kafka after all when no slot is free: the stream was already open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from aiokafka.structs import TopicPartition

from tickwire.core.backoff import Backoff
from tickwire.gateway import cursor, metrics
from tickwire.gateway.connection import Connection, Interest
from tickwire.gateway.errors import GatewayError
from tickwire.gateway.hub import Hub
from tickwire.gateway.updates import BAR, PARSE_ERRORS, parse
from tickwire.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

FRESH, BUFFER, KAFKA, RESET = "fresh", "buffer", "kafka", "reset"
#: Frames queued right after the first ones, in the same step (the `replayed` marker)
Tail = Callable[[], list[bytes]]


def _none() -> list[bytes]:
    return []


class PastRetentionError(Exception):
    """The cursor points below what Kafka still holds."""


class ReplayBoundError(Exception):
    """A Kafka replay cannot be held within its bounds (no slot free, too many records
    to read, too many bytes to hold): the resume becomes a reset."""


class ReplaysBusyError(GatewayError):
    """As many Kafka replays as this instance runs at once are in progress (503)."""

    status = 503
    retriable = True
    code = "replays_busy"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ReplayGate:
    """Bounds the Kafka replays in progress on this instance (each holds a consumer and
    up to `max_bytes` of frames until its hand-over) and what one may read."""

    def __init__(
        self, limit: int, max_records: int = 200_000, max_bytes: int = 32 * 1024 * 1024
    ) -> None:
        self.limit = limit
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.active = 0

    def claim(self) -> ReplayClaim:
        """A subscription's claim, empty until it takes a slot."""
        return ReplayClaim(self)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one replay slot; ReplaysBusyError when none is free."""
        with self.claim() as claim:
            claim.take()
            yield


class ReplayClaim:
    """One subscription's hold on a replay slot, from the moment it knows it reads Kafka
    to its hand-over (`release`, or the end of a `with` block)."""

    def __init__(self, gate: ReplayGate) -> None:
        self.gate = gate
        self.held = False

    def take(self) -> None:
        """Hold a slot (already held: nothing); ReplaysBusyError when none is free."""
        if not self.try_take():
            limit = self.gate.limit
            raise ReplaysBusyError(f"{limit} replays are in progress here; retry shortly")

    def try_take(self) -> bool:
        """Hold a slot if one is free; whether one is held."""
        gate = self.gate
        if not self.held and gate.active < gate.limit:
            gate.active += 1
            self.held = True
        return self.held

    def release(self) -> None:
        """Give the slot back (none held: nothing)."""
        if self.held:
            self.held = False
            self.gate.active -= 1

    def __enter__(self) -> ReplayClaim:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class Resumer:
    """Subscribes connections, replaying what they missed when they bring a cursor."""

    def __init__(
        self,
        hub: Hub,
        bootstrap: str,
        client_id: str,
        timeout_s: float,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.hub = hub
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.security = security

    def reserve(
        self, claim: ReplayClaim, interest: Interest, position: tuple[int, list[int]] | None
    ) -> None:
        """Take claim's replay slot now if resuming from position reads Kafka (a buffer
        does not reach back to it), so that ReplaysBusyError comes before the stream
        opens."""
        if position is None:
            return
        hub = self.hub
        tag, since = position
        if tag != hub.tag or len(since) != len(hub.slots):
            return  # a reset: nothing to read
        if any(not hub.buffers[s].covers(since[s]) for s in hub.touched_slots(interest)):
            claim.take()

    async def subscribe(
        self,
        conn: Connection,
        interest: Interest,
        position: tuple[int, list[int]] | None,
        tail: Tail = _none,
        claim: ReplayClaim | None = None,
    ) -> str:
        """Queue the right first frames (then `tail()`'s) and register conn; the
        outcome's name. A Kafka replay needs claim's slot (taken here if `reserve` did
        not: none free is a reset) and keeps within its gate's budget; without a claim
        it is unbounded (models, tests)."""
        hub = self.hub
        if position is None:
            hub.register(conn, interest, hub.snapshot_frames(conn, interest) + tail())
            return FRESH
        tag, since = position
        if tag != hub.tag or len(since) != len(hub.slots):
            return self._reset(conn, interest, "cursor from another topic or generation", tail)
        try:
            outcome = await self._resume_retrying(conn, interest, since, tail, claim)
        except PastRetentionError:
            return self._reset(conn, interest, "cursor is past Kafka retention", tail)
        except ReplayBoundError as exc:
            return self._reset(conn, interest, str(exc), tail)
        except (KafkaError, TimeoutError) as exc:
            log.warning("resume through Kafka failed (%s); sending a reset", exc)
            return self._reset(conn, interest, "cursor could not be replayed", tail)
        metrics.RESUMES.labels(outcome).inc()
        return outcome

    async def _resume_retrying(
        self,
        conn: Connection,
        interest: Interest,
        since: Sequence[int],
        tail: Tail,
        claim: ReplayClaim | None,
    ) -> str:
        """`_resume`, started again after a retriable Kafka error until `timeout_s` has
        passed (nothing is queued for conn before a resume succeeds)."""
        deadline = time.monotonic() + self.timeout_s
        backoff = Backoff(base=0.2, cap=2.0)
        while True:
            try:
                return await self._resume(conn, interest, list(since), tail, claim)
            except KafkaError as exc:
                delay = backoff.next_delay()
                if not exc.retriable or time.monotonic() + delay > deadline:
                    raise
                log.info("resume through Kafka failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    def _reset(self, conn: Connection, interest: Interest, reason: str, tail: Tail) -> str:
        hub = self.hub
        data = b'{"reason":"' + reason.encode() + b'"}'
        frames = [conn.render_event("reset", hub.current_cursor(), data)]
        conn.sent.clear()  # a client drops what it held on a reset: full frames again
        hub.register(conn, interest, frames + hub.snapshot_frames(conn, interest) + tail())
        metrics.RESUMES.labels(RESET).inc()
        return RESET

    async def _resume(
        self,
        conn: Connection,
        interest: Interest,
        since: list[int],
        tail: Tail,
        claim: ReplayClaim | None,
    ) -> str:
        hub = self.hub
        slots = hub.touched_slots(interest)
        # every slot, not only the touched ones: holding back costs nothing, and a
        # symbol not seen here yet may live elsewhere than the partitioner says
        ahead = [s for s in range(len(since)) if since[s] > hub.positions[s]]
        if ahead:
            # the cursor is ahead of this instance (another one read further): check it
            # exists, then hold back live updates below it. The reader goes on while
            # this awaits, so the replay still starts at the cursor itself: whatever
            # was read meanwhile at or past it comes from the buffer, below it nothing.
            ends = await self._end_offsets(ahead)
            if any(since[s] > ends[s] for s in ahead):
                raise PastRetentionError  # offsets that never existed: another topic
            skip = dict(conn.skip or {})
            for s in ahead:
                skip[s] = max(skip.get(s, 0), since[s])
            conn.skip = skip
        replayed: list[bytes] = []
        original = list(since)
        for _ in range(5):
            # ids rendered from here on are at least the cursor, as far as replayed
            conn.floor = [max(a, b) for a, b in zip(original, conn.floor or original, strict=True)]
            frames = hub.replay_frames(conn, interest, since, slots)
            if frames is not None:
                hub.register(conn, interest, replayed + frames + tail())
                return KAFKA if replayed else BUFFER
            missing = [s for s in slots if not hub.buffers[s].covers(since[s])]
            budget = self._budget(claim, since, missing, replayed)
            replayed.extend(
                await self._read_kafka(conn, interest, original, since, missing, budget)
            )
        raise TimeoutError("buffers kept moving ahead of the Kafka replay")

    def _budget(
        self,
        claim: ReplayClaim | None,
        since: Sequence[int],
        missing: Sequence[int],
        replayed: list[bytes],
    ) -> int | None:
        """The bytes of frames a Kafka read may still add (None: unbounded), once claim
        holds a slot; ReplayBoundError when none is free or the read is too long."""
        if claim is None:
            return None
        gate = claim.gate
        if not claim.try_take():
            raise ReplayBoundError("no Kafka replay slot is free on this instance")
        records = sum(self.hub.buffers[s].start - since[s] for s in missing)
        if records > gate.max_records:
            raise ReplayBoundError(f"the replay would read {records} records from Kafka")
        return gate.max_bytes - sum(map(len, replayed))

    async def _end_offsets(self, slots: Sequence[int]) -> dict[int, int]:
        consumer = self.consumer()
        await consumer.start()
        try:
            tps = {
                TopicPartition(self.hub.slots[s].topic, self.hub.slots[s].partition): s
                for s in slots
            }
            ends = await consumer.end_offsets(list(tps))
            return {tps[tp]: end for tp, end in ends.items()}
        finally:
            await consumer.stop()

    def consumer(self) -> AIOKafkaConsumer:
        """A temporary consumer (no group, no commits) for reading positions or records."""
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-resume",
            enable_auto_commit=False,
            auto_offset_reset="none",
            request_timeout_ms=int(self.timeout_s * 1000),
            **self.security.options(),
        )

    async def _read_kafka(
        self,
        conn: Connection,
        interest: Interest,
        vector: list[int],
        since: list[int],
        slots: Sequence[int],
        budget: int | None = None,
    ) -> list[bytes]:
        """Frames for the records of `slots` from since[s] up to where the buffer begins;
        advances since[] and vector[] (the ids of the replayed events) as it goes.
        ReplayBoundError once the frames pass `budget` bytes."""
        left = budget
        hub = self.hub
        consumer = self.consumer()
        await consumer.start()
        try:
            tps = {TopicPartition(hub.slots[s].topic, hub.slots[s].partition): s for s in slots}
            begins = await consumer.beginning_offsets(list(tps))
            if any(since[s] < begins[tp] for tp, s in tps.items()):
                raise PastRetentionError
            consumer.assign(list(tps))
            for tp, s in tps.items():
                consumer.seek(tp, since[s])
            frames: list[bytes] = []
            newest: dict[str, int] = {}
            # ids are the vector, kept pre-encoded: a new id re-encodes one partition
            head = cursor.header(hub.tag, len(vector))
            pieces = [cursor.varint(v) for v in vector]
            deadline = time.monotonic() + self.timeout_s
            todo = dict(tps)
            while todo:
                if time.monotonic() > deadline:
                    raise TimeoutError("Kafka replay took too long")
                try:
                    batch = await consumer.getmany(*todo, timeout_ms=200)
                except OffsetOutOfRangeError as exc:
                    raise PastRetentionError from exc
                for tp, records in batch.items():
                    s = tps[tp]
                    target = hub.buffers[s].start
                    for record in records:
                        if record.offset >= target:
                            break
                        vector[s] = since[s] = record.offset + 1
                        pieces[s] = cursor.varint(vector[s])
                        key = record.key
                        if key is not None and not interest.matches(key.decode("utf-8", "replace")):
                            continue  # another symbol (a record whose key is not its symbol
                            # is unreadable, so skipping it unparsed changes nothing)
                        frame = self._replay_frame(conn, interest, s, record, head, pieces, newest)
                        if frame is not None:
                            frames.append(frame)
                            if left is not None:
                                left -= len(frame)
                                if left < 0:
                                    raise ReplayBoundError(
                                        "the replay is larger than one resume may hold"
                                    )
                for tp, s in list(todo.items()):
                    position = await consumer.position(tp)
                    since[s] = max(since[s], min(position, hub.buffers[s].start))
                    if since[s] >= hub.buffers[s].start:
                        del todo[tp]
                await asyncio.sleep(0)
            return frames
        finally:
            await consumer.stop()

    def _replay_frame(
        self,
        conn: Connection,
        interest: Interest,
        slot: int,
        record: object,
        head: bytes,
        pieces: list[bytes],
        newest: dict[str, int],
    ) -> bytes | None:
        kind = self.hub.slots[slot].kind
        try:
            parsed = parse(kind, record.key, record.value, record.headers)  # type: ignore[attr-defined]
        except PARSE_ERRORS:
            return None
        if not interest.matches(parsed.symbol):
            return None
        if kind == BAR and parsed.interval not in interest.bar_intervals:
            return None
        if parsed.version <= newest.get(parsed.key, -1):
            return None
        newest[parsed.key] = parsed.version
        if kind != BAR:
            conn.track(parsed.symbol, parsed.version, record.value)  # type: ignore[attr-defined]
        event_id = cursor.encode_pieces(head, pieces)
        return conn.render_event(parsed.kind, event_id, record.value)  # type: ignore[attr-defined]
