"""Replay from a time: `since=<RFC 3339>` on /v1/stream and in a /v1/ws subscribe.

Each partition the subscription touches is looked up with Kafka's `offsets_for_times`
(the first record whose timestamp, the time the processor published it, is at or after
`since`); from that position vector the subscription is started exactly like a resume
from a cursor (`Resumer`): from the hub's buffers where they reach back, else by reading
Kafka, then live in the same synchronous step, so there is no gap and no duplicate. A
`replayed` event marks the hand-over; its id is a cursor like any other.

Refusals, all before the stream opens:
- `since` not an RFC 3339 time with an offset, or in the future: 400;
- older than what Kafka still holds on a touched partition (records were deleted by
  retention and the first one left is younger than `since`): 410, naming the earliest
  time that can be replayed;
- more records to read than the per-connection budget (`GATEWAY_REPLAY_MAX_RECORDS`,
  counted over the touched partitions): 400 saying how many;
- `GATEWAY_MAX_REPLAYS` Kafka replays already in progress on this instance (these and
  cursor resumes reading Kafka share the slots, `resume.ReplayGate`; each may hold up to
  `GATEWAY_REPLAY_MAX_BYTES` of frames until the hand-over), or Kafka not answering the
  lookup: 503.
Any instance can serve any `since`: the offsets come from Kafka, not from memory.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import orjson
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from tickwire.gateway import cursor
from tickwire.gateway.connection import Connection, Interest
from tickwire.gateway.errors import BadRequestError, GatewayError, NotReadyError
from tickwire.gateway.hub import Hub
from tickwire.gateway.resume import Resumer, Tail

#: RFC 3339 date-time: a full date, "T" (or a space), a time and a mandatory offset.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
#: `since` may be this much ahead of the gateway's clock (clock skew), no more.
FUTURE_SLACK = dt.timedelta(seconds=5)


class ReplayTooOldError(GatewayError):
    """`since` is older than what Kafka still holds (410); names the earliest time."""

    status = 410

    def __init__(self, since: dt.datetime, earliest: dt.datetime) -> None:
        self.earliest = earliest
        super().__init__(
            f"since={_iso(since)} is older than Kafka retention: the earliest time that "
            f"can be replayed is {_iso(earliest)}"
        )


class ReplayBudgetError(BadRequestError):
    """The replay would read more records than one connection may."""


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An RFC 3339 time with an offset, as an aware UTC datetime; BadRequestError else."""
    if len(text) > 40 or not RFC3339.match(text):
        raise BadRequestError(
            f"since must be an RFC 3339 time with an offset, like 2026-12-01T14:30:00Z "
            f"(got {text[:40]!r})"
        )
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
    try:
        when = dt.datetime.fromisoformat(text.upper().replace(" ", "T")).astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:  # overflow: year 1 or 9999 moved to UTC
        raise BadRequestError(f"since is not a valid time: {exc}") from exc
    if when > (now or dt.datetime.now(dt.UTC)) + FUTURE_SLACK:
        raise BadRequestError(f"since={_iso(when)} is in the future")
    return when


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms_time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@dataclass(frozen=True)
class ReplayPlan:
    """Where a replay from `since` starts: a cursor position vector, and its size."""

    since: dt.datetime
    positions: list[int]
    records: int  # records on the touched partitions between since and the hub


async def plan(
    hub: Hub, resumer: Resumer, interest: Interest, since: dt.datetime, max_records: int
) -> ReplayPlan:
    """The position vector of `since` for the partitions interest touches (the others at
    the hub's position: nothing of them is replayed); refusals as in the docstring."""
    slots = hub.touched_slots(interest)
    tps = {TopicPartition(hub.slots[s].topic, hub.slots[s].partition): s for s in slots}
    positions = list(hub.positions)
    if not tps:
        return ReplayPlan(since, positions, 0)
    since_ms = max(0, int(since.timestamp() * 1000))  # before 1970: from the start
    consumer = resumer.consumer()
    try:
        await consumer.start()
        try:
            begins = await consumer.beginning_offsets(list(tps))
            ends = await consumer.end_offsets(list(tps))
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            trimmed = [tp for tp in tps if begins[tp] > 0 and begins[tp] < ends[tp]]
            firsts = await consumer.offsets_for_times(dict.fromkeys(trimmed, 0)) if trimmed else {}
        finally:
            await consumer.stop()
    except (KafkaError, TimeoutError) as exc:
        raise NotReadyError(f"Kafka did not answer the replay's offset lookup: {exc}") from exc
    # records below the log start were deleted: the replay is complete only if the
    # first record left is no younger than since
    earliest = [f.timestamp for f in firsts.values() if f is not None and f.timestamp > since_ms]
    if earliest:
        raise ReplayTooOldError(since, _ms_time(max(earliest)))
    records = 0
    for tp, slot in tps.items():
        hit = found.get(tp)
        start = hit.offset if hit is not None else ends[tp]
        positions[slot] = start
        records += max(0, hub.positions[slot] - start)
    if records > max_records:
        raise ReplayBudgetError(
            f"a replay from since={_iso(since)} would read {records} records; a connection "
            f"may replay at most {max_records}: ask for a later since"
        )
    return ReplayPlan(since, positions, records)


def handover(hub: Hub, conn: Connection, replay: ReplayPlan) -> list[bytes]:
    """The `replayed` event queued after the replay, at the hand-over to live updates:
    its id is the position live updates continue from (raised to the connection's
    floor, so resuming from it repeats nothing)."""
    positions = list(hub.positions)
    if conn.floor is not None:
        positions = [max(a, b) for a, b in zip(positions, conn.floor, strict=True)]
    data = orjson.dumps({"since": _iso(replay.since), "live": True})
    return [conn.render_event("replayed", cursor.encode(hub.tag, positions), data)]


def tail(hub: Hub, conn: Connection, replay: ReplayPlan | None) -> Tail:
    """What Resumer.subscribe queues after the first frames: the hand-over marker of a
    replay, nothing otherwise."""
    return lambda: handover(hub, conn, replay) if replay is not None else []
