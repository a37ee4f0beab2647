"""One subscriber's outgoing side: what it asked for and a bounded, conflating outbox.

The outbox has two parts, written in this order:
- `backlog`: frames that must all arrive, in order (snapshots, resets, replayed
  updates on resume, heartbeats). It is filled once per (re)subscription, so it is
  bounded by the snapshot size plus the replay of one resume.
- `pending`: live updates, one per key: the symbol for quotes, (symbol, interval, bar
  start) for bars. A newer update for a key replaces the unsent older one
  ("conflation") and moves to the end, so frames leave in the order of their cursors
  and the last id a client saw always covers everything before it. A quote replaces
  the symbol's older quote; a bar only an older state of the same bar (a forming one),
  so a closed bar is never conflated away. Quotes are bounded by the subscribed
  symbols; bars by `max_pending_bars`: a client that lets more bars than that pile up
  is cut (`disconnected_total{reason="overflow"}`) and resumes exactly from the last
  id it received.

With `max_rate`, an update whose symbol (or symbol and interval) was sent less than
1/max_rate ago waits; writing stops at the first waiting update (so no later cursor
overtakes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tickwire.gateway import cursor, metrics, sse
from tickwire.gateway.deltas import Sent
from tickwire.gateway.expiry import Deadline
from tickwire.gateway.updates import BAR, DELTA, QUOTE, Update, ws_event


@dataclass
class Interest:
    """Symbols asked for: a list, prefixes, or everything; and which bar intervals."""

    symbols: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    everything: bool = False
    bar_intervals: frozenset[str] = frozenset({"1m"})

    def matches(self, symbol: str) -> bool:
        """Whether symbol is part of this interest."""
        return self.everything or symbol in self.symbols or symbol.startswith(self.prefixes)

    def union(self, other: Interest) -> Interest:
        """Everything either interest asks for (a connection's subscriptions add up)."""
        return Interest(
            self.symbols | other.symbols,
            tuple(dict.fromkeys(self.prefixes + other.prefixes)),
            self.everything or other.everything,
            self.bar_intervals | other.bar_intervals,
        )

    def names(self) -> int:
        """Symbols and prefixes held (`*` counts one): what GATEWAY_MAX_SYMBOLS bounds."""
        return len(self.symbols) + len(self.prefixes) + self.everything

    def bar_streams(self) -> int:
        """(symbol or prefix, interval) pairs whose bars are received: a connection's bar
        intervals apply to all its symbols."""
        return self.names() * len(self.bar_intervals)


@dataclass
class Tally:
    """Counts gathered during one flush cycle, published to metrics once per cycle."""

    events: int = 0
    bytes: int = 0
    writes: int = 0  # socket writes (or WebSocket messages): each carries a client's queue


class Connection:
    """The transport-independent part of a subscriber (see the module docstring)."""

    transport = "sse"

    def __init__(
        self,
        *,
        ip: str,
        subject: str | None,
        max_rate: float | None = None,
        max_pending_bars: int = 20_000,
        delta: bool = False,
    ) -> None:
        self.ip = ip
        # delta=1: quotes as field-level deltas against the state last sent per symbol
        self.delta = delta
        self.sent: dict[str, Update | Sent] = {}
        self.subject = subject
        self.interest = Interest(bar_intervals=frozenset())  # subscriptions add to it
        self.backlog: list[bytes] = []
        self.pending: dict[str, Update] = {}
        self.pending_bars = 0
        self.max_pending_bars = max_pending_bars
        self.skip: dict[int, int] | None = None  # slot -> first offset still to send
        self.floor: list[int] | None = None  # ids are raised to this cursor (resume)
        self.min_gap_ns = int(1e9 / max_rate) if max_rate else 0
        self.last_sent: dict[str, int] = {}
        self.conflated = 0
        self.stalled_since: float | None = None
        self.last_write = time.monotonic()
        self.closed = False
        self.close_reason = ""
        self.close_code = 1000  # WebSocket close code (see `end`)
        self.deadline: Deadline | None = None  # the token's exp (tickwire.gateway.expiry)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- rendering: SSE by default; the WebSocket subclass renders JSON objects
    def render(self, update: Update) -> bytes | None:
        """The bytes of an update for this transport: the shared ones, unless the id
        must be raised to the cursor this connection resumed from (see `_raised_id`).
        With deltas, a quote is a delta against what this connection was last sent
        (None: a quote not newer than that, which the client would drop anyway)."""
        if self.delta and update.kind == QUOTE:
            return self._render_quote(update)
        return self.render_full(update)

    def render_full(self, update: Update) -> bytes:
        """The update's whole state (its id raised to the floor where needed)."""
        return self._raised_frame(update) or self.shared(update)

    def _raised_frame(self, update: Update) -> bytes | None:
        """The update's whole state under an id raised to the floor, when it needs one."""
        if self.floor is not None:
            raised = self._raised_id(update)
            if raised is not None:
                return self.render_event(update.kind, raised, update.value)
        return None

    def shared(self, update: Update) -> bytes:
        """The update's bytes shared by every connection of this transport."""
        return update.frame

    def shared_delta(self, update: Update) -> bytes:
        """The update's delta against the state fanned out before it, shared."""
        return update.shared_delta()[0]

    def _render_quote(self, update: Update) -> bytes | None:
        sent = self.sent.get(update.symbol)
        if sent is not None and update.version <= sent.version:
            return None
        self.sent[update.symbol] = update
        raised = self._raised_id(update) if self.floor is not None else None
        if sent is None:  # nothing to apply a delta to: the full state
            if raised is not None:
                return self.render_event(update.kind, raised, update.value)
            return self.shared(update)
        if raised is None and sent.version == update.base:
            return self.shared_delta(update)  # the common case: built once in the hub
        # after a resume (an id raised to the floor) or past a conflated version: a
        # delta of this connection's own
        return self.render_event(DELTA, raised or update.cursor, update.delta_against(sent))

    def set_delta(self, on: bool) -> None:
        """The connection's mode from its next frames on; a switch forgets what was sent,
        so full frames follow."""
        if on != self.delta:
            self.delta = on
            self.sent.clear()

    def track(self, symbol: str, version: int, value: bytes) -> None:
        """A full state of symbol queued for this connection (snapshot, replay): later
        deltas apply to it."""
        if self.delta:
            self.sent[symbol] = Sent(version, value)

    def _raised_id(self, update: Update) -> str | None:
        """An update's shared id is this instance's position when it was read. After a
        resume, it can be below the cursor the client brought on some partition (a
        cursor ahead of this instance, or the other partitions of a buffered update):
        a client resuming from that id would get again what it already had. Such ids
        are raised to the floor, partition by partition; once an update's id is at or
        above it everywhere (ids only grow), the shared bytes serve again."""
        floor = self.floor
        if floor is None:
            return None
        tag, positions = cursor.decode(update.cursor)
        raised = False
        for slot, at in enumerate(floor):
            if positions[slot] < at:
                positions[slot] = at
                raised = True
        if not raised:
            self.floor = None
            return None
        return cursor.encode(tag, positions)

    def render_event(self, event: str, cursor: str, data: bytes) -> bytes:
        """The bytes of an event built for this connection only."""
        return sse.frame(event.encode(), cursor.encode(), data)

    def render_notice(self, event: bytes, data: bytes) -> bytes:
        """An event without an id (the client's Last-Event-ID stays put)."""
        return b"event: " + event + b"\ndata: " + data + b"\n\n"

    def heartbeat(self) -> None:
        """Queue a keep-alive."""
        self.backlog.append(sse.comment(b"hb"))

    # -- filling
    def offer(self, update: Update) -> None:
        """Queue a live update, conflating with an unsent one for the same key."""
        if self.closed:
            return
        if update.kind == BAR and update.interval not in self.interest.bar_intervals:
            return
        if self.skip is not None and update.offset < self.skip.get(update.slot, 0):
            return
        if self.pending.pop(update.key, None) is not None:
            self.conflated += 1
        elif update.kind == BAR:
            self.pending_bars += 1
            if self.pending_bars > self.max_pending_bars:
                # closed bars are history, never conflated: rather than grow without
                # bound or lose one, end the stream; the client resumes from its last id
                metrics.DISCONNECTED.labels("overflow").inc()
                self.cut("overflow")
                return
        self.pending[update.key] = update

    def forget(self, symbols: frozenset[str]) -> None:
        """Drop unsent updates of symbols no longer subscribed."""
        for symbol in symbols:
            self.sent.pop(symbol, None)
        for key in [k for k, u in self.pending.items() if u.symbol in symbols]:
            if self.pending.pop(key).kind == BAR:
                self.pending_bars -= 1

    # -- draining
    def take(self, now_ns: int, tally: Tally) -> tuple[list[bytes], list[Update], bool]:
        """What to write now: the backlog, the live updates in cursor order, and whether
        some updates must wait (rate limit)."""
        frames = self.backlog
        self.backlog = []
        pending = self.pending
        if not pending:
            return frames, [], False
        if not self.min_gap_ns:
            updates = list(pending.values())
            pending.clear()
            self.pending_bars = 0
            tally.events += len(updates)
            return frames, updates, False
        updates = []
        waiting = False
        for key, update in list(pending.items()):
            if now_ns - self.last_sent.get(update.stream, 0) < self.min_gap_ns:
                waiting = True
                break
            updates.append(update)
            self.last_sent[update.stream] = now_ns
            del pending[key]
            if update.kind == BAR:
                self.pending_bars -= 1
        tally.events += len(updates)
        return frames, updates, waiting

    def rendered(self, now_ns: int, tally: Tally) -> tuple[list[bytes], bool]:
        """`take`, with every update rendered for this transport."""
        frames, updates, waiting = self.take(now_ns, tally)
        for u in updates:
            frame = self.render(u)
            if frame is not None:
                frames.append(frame)
        return frames, waiting

    def flush(self, now: float, now_ns: int, tally: Tally) -> bool:
        """Write what is queued if the client keeps up; True to be flushed again later."""
        raise NotImplementedError

    def server_closing(self) -> bool:
        """Whether the server has begun shutting down under this connection."""
        return False

    def end(self, reason: str, final: bytes, code: int = 1000) -> None:
        """Send one last frame, then close (WebSocket: with `code`). Whatever was still
        queued is dropped: the client resumes from the last id it received."""
        raise NotImplementedError

    def queued_bytes(self) -> int:
        """Bytes written for this client that wait in this process (not yet taken by
        the kernel); 0 where the transport does not say."""
        return 0

    def cut(self, reason: str) -> None:
        """Close the connection from the server side."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.backlog.clear()
        self.pending.clear()
        self.pending_bars = 0
        if not self.done.done():
            self.done.set_result(None)


class TransportConnection(Connection):
    """SSE written straight to the socket's transport as HTTP/1.1 chunks (no await).

    The response headers went out through ASGI; the body chunks go through the
    transport, so a flush is one `writelines` and the kernel's buffer state is visible:
    above `high_water` queued bytes the client is not keeping up, writes pause and
    updates conflate; if it stays above for the slow-client timeout, it is cut.
    """

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        high_water: int,
        cycle: object,
        send_buffer: int = 0,
        **kw: object,
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.sock = transport
        if send_buffer:
            # without a cap the kernel grows a non-reading client's send buffer to
            # megabytes before the process buffer (and the slow-client clock) even starts
            self._setsockopt(socket.SO_SNDBUF, struct.pack("i", send_buffer))
        self.high_water = high_water
        self.cycle = cycle
        self.keep_alive = getattr(cycle, "keep_alive", False)

    def server_closing(self) -> bool:
        # uvicorn's graceful shutdown only clears keep_alive on streaming responses and
        # then waits for them: notice it, so streams end at once and clients reconnect
        return bool(self.keep_alive) and getattr(self.cycle, "keep_alive", True) is False

    def _setsockopt(self, option: int, value: bytes) -> None:
        raw = self.sock.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.SOL_SOCKET, option, value)

    def queued_bytes(self) -> int:
        return 0 if self.sock.is_closing() else self.sock.get_write_buffer_size()

    def flush(self, now: float, now_ns: int, tally: Tally) -> bool:
        sock = self.sock
        if self.closed or sock.is_closing():
            return False
        if sock.get_write_buffer_size() > self.high_water:
            if self.stalled_since is None:
                self.stalled_since = now
            return True
        self.stalled_since = None
        self.last_write = now
        pending = self.pending
        try:
            if (
                len(pending) == 1
                and not self.backlog
                and not self.min_gap_ns
                and self.floor is None
                and not self.delta
            ):
                # the common case: one update, its shared bytes, no copy, no list
                (update,) = pending.values()
                pending.clear()
                self.pending_bars = 0
                tally.events += 1
                tally.bytes += len(update.chunk)
                tally.writes += 1
                sock.write(update.chunk)
                return False
            if self.delta:  # rendered per connection: one chunk with the backlog
                frames, waiting = self.rendered(now_ns, tally)
                updates: list[Update] = []
            else:
                frames, updates, waiting = self.take(now_ns, tally)
            pieces = sse.chunk(b"".join(frames)) if frames else []
            for u in updates:
                if self.floor is None:
                    pieces.append(u.chunk)
                else:
                    pieces.extend(sse.chunk(self.render_full(u)))
            if pieces:
                tally.bytes += sum(map(len, pieces))
                tally.writes += 1
                sock.writelines(pieces)
        except (RuntimeError, OSError):  # the transport closed under us
            self.cut("client")
            return False
        return waiting

    def end(self, reason: str, final: bytes, code: int = 1000) -> None:
        sock = self.sock
        if self.closed or sock.is_closing():
            return
        if self.stalled_since is not None:  # a full buffer would hold the close back
            self.cut(reason)
            sock.abort()
            return
        with contextlib.suppress(RuntimeError, OSError):
            sock.writelines([*sse.chunk(final), sse.LAST_CHUNK])  # a complete response
        self.cut(reason)  # close() sends what is buffered first

    def cut(self, reason: str) -> None:
        super().cut(reason)
        if reason in ("slow", "overflow"):
            # abort() drops what waits in the process; the kernel's send buffer (it grows
            # to net.ipv4.tcp_wmem's maximum, megabytes, for a client that reads nothing)
            # would still be trickled out before the FIN: linger 0 makes the close a
            # reset, so that memory is freed now and the client learns at once
            self._setsockopt(socket.SO_LINGER, _LINGER_ZERO)
            self.sock.abort()
        elif reason != "client":
            self.sock.close()


_LINGER_ZERO = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}

Sender = Callable[[list[bytes]], Awaitable[None]]


class QueuedConnection(Connection):
    """A connection written by its own task through an async `send` (WebSocket, or SSE
    on a server that does not expose its transport)."""

    def __init__(self, sender: Sender, transport: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.sender = sender
        self.transport = transport
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()  # set while nothing of the backlog is left to send
        self.drained.set()
        self.sending_since: float | None = None
        self.ending = ""  # `end` was called: close once the final frame is sent

    def flush(self, now: float, now_ns: int, tally: Tally) -> bool:
        if self.closed:
            return False
        self.wake.set()
        return bool(self.min_gap_ns and self.pending)

    async def run_writer(self, tally: Callable[[], Tally]) -> None:
        """Send queued frames until the connection ends (run as the connection's task)."""
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            frames, _ = self.rendered(time.monotonic_ns(), tally())
            if not frames:
                continue
            self.stalled_since = self.last_write = time.monotonic()
            await self.sender(frames)
            self.stalled_since = None
            if not self.backlog:
                self.drained.set()
            counts = tally()
            counts.bytes += sum(map(len, frames))
            counts.writes += 1
            if self.ending and not self.backlog:
                self.cut(self.ending)  # the final frame went out

    def end(self, reason: str, final: bytes, code: int = 1000) -> None:
        if self.closed:
            return
        self.backlog = [final]
        self.pending.clear()
        self.pending_bars = 0
        self.close_code = code
        self.ending = reason
        self.drained.clear()  # no request is read meanwhile
        self.wake.set()

    def cut(self, reason: str) -> None:
        super().cut(reason)
        with contextlib.suppress(RuntimeError):
            self.wake.set()
            self.drained.set()


class WebSocketConnection(QueuedConnection):
    """Events as JSON objects; a flush is one text message holding a JSON array."""

    def shared(self, update: Update) -> bytes:
        return update.ws

    def shared_delta(self, update: Update) -> bytes:
        return update.shared_delta()[1]

    def render_event(self, event: str, cursor: str, data: bytes) -> bytes:
        return ws_event(event, cursor, data)

    def render_notice(self, event: bytes, data: bytes) -> bytes:
        return b'{"event":"' + event + b'","data":' + data + b"}"

    def heartbeat(self) -> None:
        return  # WebSocket pings are the server implementation's job
