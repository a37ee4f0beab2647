"""What the gateway keeps of each Kafka record, and the bounded buffer per partition.

An `Update` is one accepted record of ticker.updates (`quote`) or ticker.bars (`bar`):
its SSE frame is encoded once, at arrival, already wrapped as an HTTP/1.1 chunk, and
those same bytes are written to every subscriber's socket. The bare SSE frame and the
WebSocket form are derived the first time a connection needs them.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

from tickwire.events import wire
from tickwire.gateway import deltas, sse

QUOTE = "quote"
BAR = "bar"
DELTA = "delta"


@dataclass(slots=True)
class Parsed:
    """The routing facts of one record: whose it is, its version, when it was received."""

    kind: str
    symbol: str
    key: str  # version and conflation key: the symbol, or "symbol|interval|start_us"
    interval: str
    version: int
    received_ns: int
    stream: str = ""  # the symbol, or "symbol|interval" for bars (rate limit, bounds)
    start_us: int = 0  # a bar's start, microseconds since the epoch
    final: bool = False  # a closed bar (never conflated away)

    def __post_init__(self) -> None:
        if not self.stream:
            self.stream = self.symbol if self.kind == QUOTE else f"{self.symbol}|{self.interval}"


class UnreadableRecordError(ValueError):
    """A record that is not a ticker.updates / ticker.bars record the gateway can forward."""


#: Largest record value forwarded to clients (the processor writes well under 1 KiB).
MAX_VALUE_BYTES = 64 * 1024
#: Versions and times are 64-bit on every other hop.
_MAX_INT = 2**63 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def parse(
    kind: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> Parsed:
    """Routing facts of one record, or UnreadableRecordError (the caller counts and skips).

    The value is decoded and checked whatever the headers say: it is forwarded to
    clients byte for byte, so a tombstone, a value that is not the documented struct, a
    value over MAX_VALUE_BYTES, a key other than the symbol, or a version or time that
    does not fit 64 bits is never passed on. (One msgspec decode per record read, not
    per delivery.)
    """
    try:
        return _parse(kind, key, value)
    except UnreadableRecordError:
        raise
    except (msgspec.MsgspecError, ValueError, TypeError, OverflowError) as exc:
        raise UnreadableRecordError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def _parse(kind: str, key: bytes | None, value: bytes | None) -> Parsed:
    if value is None:
        raise UnreadableRecordError("tombstone (null value)")
    if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
        raise UnreadableRecordError("value missing or too large")
    if kind == BAR:
        bar = wire.BAR_DECODER.decode(value)
        symbol, version, received = bar.symbol, bar.version, bar.received_ns or 0
        if bar.start.tzinfo is None:
            raise UnreadableRecordError("bar start without a time zone")
        start_us = (bar.start - _EPOCH) // _US
        parsed = Parsed(
            BAR,
            symbol,
            f"{symbol}|{bar.interval}|{start_us}",
            bar.interval,
            version,
            received,
            start_us=start_us,
            final=bar.final,
        )
        if not bar.interval or not bar.interval.isalnum():
            raise UnreadableRecordError("bad bar interval")
    else:
        state = wire.STATE_DECODER.decode(value)
        symbol, version, received = state.symbol, state.version, state.received_ns or 0
        parsed = Parsed(QUOTE, symbol, symbol, "", version, received)
    if not symbol or len(symbol) > 64 or not symbol.isprintable() or "|" in symbol:
        raise UnreadableRecordError("bad symbol")
    if key is not None and key != symbol.encode():
        raise UnreadableRecordError("key is not the record's symbol")
    if not 0 <= version <= _MAX_INT or not 0 <= received <= _MAX_INT:
        raise UnreadableRecordError("version or received_ns out of range")
    return parsed


PARSE_ERRORS = (UnreadableRecordError,)


class Update:
    """One accepted record, with its frame encoded once for every subscriber."""

    __slots__ = (
        "_delta",
        "_flat",
        "_ws",
        "base",
        "base_value",
        "chunk",
        "cursor",
        "final",
        "interval",
        "key",
        "kind",
        "offset",
        "received_ns",
        "seq",
        "slot",
        "stream",
        "symbol",
        "value",
        "version",
    )

    def __init__(
        self, parsed: Parsed, slot: int, offset: int, seq: int, cursor: str, value: bytes
    ) -> None:
        self.kind = parsed.kind
        self.symbol = parsed.symbol
        self.key = parsed.key
        self.interval = parsed.interval
        self.version = parsed.version
        self.received_ns = parsed.received_ns
        self.stream = parsed.stream
        self.final = parsed.final
        self.slot = slot
        self.offset = offset
        self.seq = seq
        self.cursor = cursor
        self.value = value
        frame = sse.frame(parsed.kind.encode(), cursor.encode(), value)
        self.chunk = b"%x\r\n%b\r\n" % (len(frame), frame)
        self._ws: bytes | None = None
        # the state fanned out before this one (its delta's base), set by the hub
        self.base = -1
        self.base_value: bytes | None = None
        self._flat: deltas.Flat | None = None
        self._delta: tuple[bytes, bytes] | None = None  # SSE frame, WebSocket event

    @property
    def flat(self) -> deltas.Flat:
        """The state's fields, flattened for delta compares (decoded once, on demand)."""
        if self._flat is None:
            self._flat = deltas.flatten(self.value)
        return self._flat

    def delta_against(self, sent: deltas.Sent | Update) -> bytes:
        """The data of a delta event from the state `sent` to this one."""
        return deltas.encode(
            self.symbol, self.version, sent.version, deltas.changes(sent.flat, self.flat)
        )

    def shared_delta(self) -> tuple[bytes, bytes]:
        """The delta against `base`, as an SSE frame and a WebSocket event, built once
        for every connection that was last sent that version."""
        if self._delta is None:
            assert self.base_value is not None
            data = self.delta_against(deltas.Sent(self.base, self.base_value))
            self.base_value = None  # not needed any more: do not keep it alive
            cursor = self.cursor.encode()
            self._delta = (sse.frame(b"delta", cursor, data), ws_event("delta", self.cursor, data))
        return self._delta

    @property
    def frame(self) -> bytes:
        """The bare SSE event (for writers that do not chunk themselves)."""
        return self.chunk[self.chunk.index(b"\r\n") + 2 : -2]

    @property
    def ws(self) -> bytes:
        """The event as a JSON object for WebSocket clients (built once, on demand)."""
        if self._ws is None:
            self._ws = ws_event(self.kind, self.cursor, self.value)
        return self._ws


def ws_event(event: str, cursor: str, data: bytes) -> bytes:
    """`{"event": ..., "id": ..., "data": <value as-is>}` without re-encoding the value."""
    return (
        b'{"event":"' + event.encode() + b'","id":"' + cursor.encode() + b'","data":' + data + b"}"
    )


class PartitionBuffer:
    """The most recent accepted updates of one partition, oldest first, bounded.

    `start` is the lowest offset from which the buffer holds every accepted update:
    a resume from any position >= start (and <= the reader's position) is served here.
    """

    def __init__(self, capacity: int, start: int = 0) -> None:
        self.items: deque[Update] = deque()
        self.capacity = capacity
        self.start = start

    def append(self, update: Update) -> None:
        """Keep update, forgetting the oldest one when full."""
        if len(self.items) >= self.capacity:
            self.start = self.items.popleft().offset + 1
        self.items.append(update)

    def covers(self, position: int) -> bool:
        """Whether every accepted update at or after position is still here."""
        return position >= self.start

    def since(self, position: int) -> Iterator[Update]:
        """The buffered updates at offsets >= position, oldest first."""
        newer: list[Update] = []
        for update in reversed(self.items):
            if update.offset < position:
                break
            newer.append(update)
        return reversed(newer)
