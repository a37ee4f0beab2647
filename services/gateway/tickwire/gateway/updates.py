"""What the gateway keeps of each Kafka record, and the bounded buffer per partition.

An `Update` is one accepted record of ticker.updates (`quote`) or ticker.bars (`bar`):
its SSE frame is encoded once, at arrival, already wrapped as an HTTP/1.1 chunk, and
those same bytes are written to every subscriber's socket. The bare SSE frame and the
WebSocket form are derived the first time a connection needs them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

from tickwire.events import headers as h
from tickwire.events import wire
from tickwire.gateway import sse

QUOTE = "quote"
BAR = "bar"


@dataclass(slots=True)
class Parsed:
    """The routing facts of one record: whose it is, its version, when it was received."""

    kind: str
    symbol: str
    key: str  # conflation and version key: the symbol, or "symbol|interval" for bars
    interval: str
    version: int
    received_ns: int


def parse(
    kind: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
) -> Parsed:
    """Routing facts from headers (no JSON decode) for quotes; bars decode their value.

    Raises msgspec.ValidationError / DecodeError (or ValueError) for a record that
    cannot be read; the caller counts and skips it.
    """
    if kind == BAR:
        bar = wire.BAR_DECODER.decode(value)
        return Parsed(
            BAR,
            bar.symbol,
            f"{bar.symbol}|{bar.interval}",
            bar.interval,
            bar.version,
            bar.received_ns or 0,
        )
    subject = h.find(headers, h.CE_SUBJECT)
    version = h.find(headers, h.VERSION)
    if subject is not None and version is not None:
        symbol = subject.decode()
        received = h.find(headers, h.RECEIVED_NS)
        return Parsed(QUOTE, symbol, symbol, "", int(version), int(received) if received else 0)
    state = wire.STATE_DECODER.decode(value)
    return Parsed(QUOTE, state.symbol, state.symbol, "", state.version, state.received_ns or 0)


PARSE_ERRORS = (msgspec.MsgspecError, ValueError, UnicodeDecodeError)


class Update:
    """One accepted record, with its frame encoded once for every subscriber."""

    __slots__ = (
        "_ws",
        "chunk",
        "cursor",
        "interval",
        "key",
        "kind",
        "offset",
        "received_ns",
        "seq",
        "slot",
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
        self.slot = slot
        self.offset = offset
        self.seq = seq
        self.cursor = cursor
        self.value = value
        frame = sse.frame(parsed.kind.encode(), cursor.encode(), value)
        self.chunk = b"%x\r\n%b\r\n" % (len(frame), frame)
        self._ws: bytes | None = None

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
