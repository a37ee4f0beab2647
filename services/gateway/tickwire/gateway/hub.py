"""The hub: last-value cache, recent buffers, subscriptions and fan-out, on one event loop.

The reader feeds it records in partition order (`apply`); subscribers are registered
and given their snapshot or replay in one synchronous step (`subscribe`), so nothing
can arrive between the snapshot's cursor and the first live update: no gap, no
duplicate. Every update is encoded once and offered to each interested connection's
conflating outbox; `FlushLoop` writes all dirty connections once per flush window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tickwire.events.partitioner import partition_for
from tickwire.gateway import cursor, metrics
from tickwire.gateway.connection import Connection, Interest, Tally
from tickwire.gateway.expiry import EXPIRED, WS_TOKEN_EXPIRED, expired_data
from tickwire.gateway.updates import BAR, QUOTE, Parsed, PartitionBuffer, Update

#: Bar starts whose version is always kept per symbol and interval (however long the
#: interval); besides them, every start within the bar horizon behind the newest.
BAR_STARTS_KEPT = 16


@dataclass(frozen=True)
class Slot:
    """One partition of one input topic, at a fixed index of the cursor."""

    topic: str
    partition: int
    kind: str  # QUOTE for ticker.updates, BAR for ticker.bars


class Hub:
    """State shared by every connection of this gateway instance."""

    def __init__(
        self,
        slots: Sequence[Slot],
        tag: int,
        buffer_capacity: int,
        bar_horizon_s: float = 330.0,
    ) -> None:
        self.slots = list(slots)
        self.bar_horizon_us = int(bar_horizon_s * 1e6)
        self.bar_newest: dict[str, int] = {}  # symbol|interval: the newest start read
        self.tag = tag
        self.head = cursor.header(tag, len(self.slots))
        self.positions = [0] * len(self.slots)
        self.pieces = [cursor.varint(0)] * len(self.slots)
        self.buffers = [PartitionBuffer(buffer_capacity) for _ in self.slots]
        self.partition_counts = {
            kind: sum(1 for s in self.slots if s.kind == kind) for kind in (QUOTE, BAR)
        }
        self.first_slot = {kind: self._first_slot(kind) for kind in (QUOTE, BAR)}
        self.versions: dict[str, int] = {}  # per symbol: the newest quote read from Kafka
        self.bar_versions: dict[str, dict[int, int]] = {}  # symbol|interval: start -> version
        self.quotes: dict[str, tuple[int, bytes]] = {}
        self.slot_of: dict[tuple[str, str], int] = {}
        self.by_symbol: dict[str, set[Connection]] = {}
        self.by_prefix: dict[str, set[Connection]] = {}
        self.everything: set[Connection] = set()
        self.connections: set[Connection] = set()
        self.dirty: set[Connection] = set()
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.seq = 0
        self._cursor: str | None = None
        self.tally = Tally()
        self.fresh: list[Update] = []  # fanned out since the last flush: latency samples
        self.flush_s = 0.0  # how long the last flush pass took (the reader's budget)
        self.measure_latency = True  # off for delayed feeds, late on purpose

    def _first_slot(self, kind: str) -> int:
        return next((i for i, s in enumerate(self.slots) if s.kind == kind), 0)

    # -- positions and cursors
    def set_position(self, slot: int, position: int) -> None:
        """Where reading of a slot starts (cold start) or has reached."""
        self.positions[slot] = position
        self.pieces[slot] = cursor.varint(position)
        self._cursor = None

    def current_cursor(self) -> str:
        """The cursor of everything applied so far."""
        if self._cursor is None:
            self._cursor = cursor.encode_pieces(self.head, self.pieces)
        return self._cursor

    # -- input
    def seed_quote(self, symbol: str, version: int, value: bytes) -> None:
        """A last value loaded from MongoDB at cold start (the cache only: the buffer
        and the drop rule follow what is read from Kafka)."""
        held = self.quotes.get(symbol)
        if held is None or version > held[0]:
            self.quotes[symbol] = (version, value)

    def apply(self, slot: int, offset: int, parsed: Parsed, value: bytes) -> None:
        """One record read at slot/offset: advance, and if newer, buffer and fan out.

        "Newer" is decided in the stream the record belongs to (DESIGN, Versions): a
        quote against the newest quote read for its symbol, a bar against the newest
        state of the same (symbol, interval, start). Every newer record is buffered, so
        a cursor issued anywhere resumes here without a gap. A quote at or below the
        cache's version (seeded from MongoDB ahead of Kafka) is buffered but not fanned
        out: live clients never see a state older than their snapshot.
        """
        self.set_position(slot, offset + 1)
        self.slot_of[(parsed.kind, parsed.symbol)] = slot
        if parsed.kind == QUOTE:
            if parsed.version <= self.versions.get(parsed.symbol, -1):
                metrics.DROPPED.labels("stale_version").inc()
                return
            self.versions[parsed.symbol] = parsed.version
        elif not self._newer_bar(parsed):
            metrics.DROPPED.labels("stale_version").inc()
            return
        self.seq += 1
        update = Update(parsed, slot, offset, self.seq, self.current_cursor(), value)
        self.buffers[slot].append(update)
        if parsed.kind == QUOTE:
            held = self.quotes.get(parsed.symbol)
            if held is not None:
                if held[0] >= parsed.version:
                    return
                update.base, update.base_value = held  # what a delta applies to
            self.quotes[parsed.symbol] = (parsed.version, value)
        self._fan_out(update)

    def _newer_bar(self, parsed: Parsed) -> bool:
        """Whether a bar state beats the one held for its (symbol, interval, start);
        records it if so.

        The processor revises a closed bar when a correction or cancel of one of its
        trades arrives within its correction window (processor README), so the version
        of every start within the bar horizon (`TICKWIRE_GATEWAY_BAR_HORIZON_S`, at
        least that window plus the bar grace) behind the newest start is kept, and at
        least the BAR_STARTS_KEPT newest. A bar older than both is past any revision and
        stale; state stays bounded by horizon / interval starts per symbol and interval.
        """
        stream, start = parsed.stream, parsed.start_us
        starts = self.bar_versions.get(stream)
        if starts is None:
            starts = self.bar_versions[stream] = {}
        held = starts.get(start)
        if held is not None:
            if parsed.version <= held:
                return False
            starts[start] = parsed.version
            return True
        newest = self.bar_newest.get(stream, start)
        oldest_kept = newest - self.bar_horizon_us
        if start < oldest_kept and len(starts) >= BAR_STARTS_KEPT:
            return False
        starts[start] = parsed.version
        if start > newest:
            newest = start
            oldest_kept = newest - self.bar_horizon_us
        self.bar_newest[stream] = newest
        # starts arrive (nearly) in order: the first ones held are the oldest
        while len(starts) > BAR_STARTS_KEPT:
            first = next(iter(starts))
            if first >= oldest_kept:
                break
            del starts[first]
        return True

    def _fan_out(self, update: Update) -> None:
        symbol = update.symbol
        dirty = self.dirty
        targets = self.by_symbol.get(symbol)
        if targets or self.everything or self.by_prefix:
            self.fresh.append(update)
        if targets:
            for conn in targets:
                conn.offer(update)
            dirty.update(targets)
        for conn in self.everything:
            conn.offer(update)
        if self.everything:
            dirty.update(self.everything)
        if self.by_prefix:
            for prefix, conns in self.by_prefix.items():
                if symbol.startswith(prefix):
                    for conn in conns:
                        conn.offer(update)
                    dirty.update(conns)

    def warmed_up(self) -> None:
        """The reader caught up with the end offsets seen at start: serve subscribers."""
        self.ready.set()

    def after_batch(self) -> None:
        """Called by the reader after each batch: wake the flush loop if needed."""
        if self.dirty:
            self.wake.set()

    # -- subscriptions
    def touched_slots(self, interest: Interest) -> list[int]:
        """The slots whose records a subscription can receive."""
        if interest.everything or interest.prefixes:
            return list(range(len(self.slots)))
        found: set[int] = set()
        for symbol in interest.symbols:
            for kind in (QUOTE, BAR):
                slot = self.slot_of.get((kind, symbol))
                if slot is None and self.partition_counts[kind]:
                    # not seen yet: where Kafka's default partitioner puts the key
                    partition = partition_for(symbol.encode(), self.partition_counts[kind])
                    slot = self.first_slot[kind] + partition
                if slot is not None:
                    found.add(slot)
        return sorted(found)

    def snapshot_frames(self, conn: Connection, interest: Interest) -> list[bytes]:
        """A `snapshot` event per cached symbol of the interest, at the current cursor."""
        now = self.current_cursor()
        if interest.everything or interest.prefixes:
            symbols: Iterable[str] = sorted(s for s in self.quotes if interest.matches(s))
        else:
            symbols = sorted(s for s in interest.symbols if s in self.quotes)
        frames = []
        for s in symbols:
            version, value = self.quotes[s]
            conn.track(s, version, value)
            frames.append(conn.render_event("snapshot", now, value))
        return frames

    def replay_frames(
        self, conn: Connection, interest: Interest, since: Sequence[int], slots: Sequence[int]
    ) -> list[bytes] | None:
        """Buffered updates after `since` for the interest, in arrival order; None when a
        buffer no longer reaches back that far."""
        if not all(self.buffers[s].covers(since[s]) for s in slots):
            return None
        found: list[Update] = []
        for s in slots:
            found.extend(u for u in self.buffers[s].since(since[s]) if self._wanted(u, interest))
        found.sort(key=lambda u: u.seq)
        rendered = (conn.render(u) for u in found)
        return [frame for frame in rendered if frame is not None]

    @staticmethod
    def _wanted(update: Update, interest: Interest) -> bool:
        if update.kind == BAR and update.interval not in interest.bar_intervals:
            return False
        return interest.matches(update.symbol)

    def register(self, conn: Connection, interest: Interest, frames: list[bytes]) -> None:
        """Queue frames and start live delivery, in the same step (nothing in between)."""
        conn.backlog.extend(frames)
        conn.interest = conn.interest.union(interest)
        for symbol in interest.symbols:
            self.by_symbol.setdefault(symbol, set()).add(conn)
        for prefix in interest.prefixes:
            self.by_prefix.setdefault(prefix, set()).add(conn)
        if interest.everything:
            self.everything.add(conn)
        self.connections.add(conn)
        self.dirty.add(conn)
        self.wake.set()

    def unregister(self, conn: Connection, symbols: frozenset[str] | None = None) -> None:
        """Stop live delivery of some symbols (None: all of them, the connection ends)."""
        drop = conn.interest.symbols if symbols is None else symbols & conn.interest.symbols
        for symbol in drop:
            conns = self.by_symbol.get(symbol)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_symbol[symbol]
        conn.forget(drop)
        conn.interest = Interest(
            conn.interest.symbols - drop,
            conn.interest.prefixes,
            conn.interest.everything,
            conn.interest.bar_intervals,
        )
        if symbols is None:
            for prefix in conn.interest.prefixes:
                conns = self.by_prefix.get(prefix)
                if conns is not None:
                    conns.discard(conn)
                    if not conns:
                        del self.by_prefix[prefix]
            self.everything.discard(conn)
            self.connections.discard(conn)
            self.dirty.discard(conn)

    # -- writing
    def flush(self) -> None:
        """Write every dirty connection once; publish the cycle's counts."""
        now = time.monotonic()
        now_ns = time.monotonic_ns()
        tally = self.tally
        still: set[Connection] = set()
        for conn in self.dirty:
            if conn.flush(now, now_ns, tally):
                still.add(conn)
            if conn.conflated:
                metrics.CONFLATED.inc(conn.conflated)
                conn.conflated = 0
        self.dirty = still
        self.publish_tally()
        self.flush_s = time.monotonic() - now
        metrics.FLUSH_PASS.observe(self.flush_s)

    def publish_tally(self) -> None:
        """Move the gathered counts into the metrics."""
        tally = self.tally
        if tally.events:
            metrics.EVENTS_SENT.inc(tally.events)
        if tally.bytes:
            metrics.BYTES_SENT.inc(tally.bytes)
        if tally.writes:
            metrics.WRITES.inc(tally.writes)
        if self.fresh:
            wall_ns = time.time_ns()
            observe = metrics.DELIVERY_LATENCY.observe
            for update in self.fresh if self.measure_latency else ():
                if update.received_ns:
                    observe(max(0, wall_ns - update.received_ns) / 1e9)
            self.fresh = []
        self.tally = Tally()


class FlushLoop:
    """Runnable: write dirty connections at most once per flush window.

    The first update after a quiet spell is written at once (the reader wakes this
    loop after each whole batch, so a batch is one write per connection); while
    updates keep coming, cycles are spaced one window apart and everything that
    arrived in between is coalesced. The window is the latency budget coalescing may
    spend, and it is spent only under load, where it buys the most.
    """

    def __init__(self, hub: Hub, flush_s: float) -> None:
        self.hub = hub
        self.flush_s = flush_s

    async def run(self) -> None:
        hub = self.hub
        gap = max(self.flush_s, 0.001)  # paused or rate-limited clients: retry spacing
        last = 0.0
        while True:
            await hub.wake.wait()
            hub.wake.clear()
            early = last + self.flush_s - time.monotonic()
            if early > 0:
                await asyncio.sleep(early)
            hub.flush()
            last = time.monotonic()
            if hub.dirty:
                await asyncio.sleep(gap)
                hub.wake.set()


class Janitor:
    """Runnable: heartbeats, cutting clients that stopped reading, token deadlines
    (tickwire.gateway.expiry), and the gauges."""

    def __init__(self, hub: Hub, heartbeat_s: float, slow_timeout_s: float) -> None:
        self.hub = hub
        self.heartbeat_s = heartbeat_s
        self.slow_timeout_s = slow_timeout_s
        self.gauges = True  # a delayed feed's janitor leaves them to the real-time one

    async def run(self) -> None:
        tick = min(1.0, self.slow_timeout_s / 4, self.heartbeat_s)
        while True:
            await asyncio.sleep(tick)
            self.sweep(time.monotonic())

    def sweep(self, now: float, wall: float | None = None) -> None:
        """One pass over the connections: cut, end expired ones, tell those whose token
        is about to, heartbeat the idle ones, count. `wall`: time.time() (token `exp`s)."""
        hub = self.hub
        subscriptions = 0
        queued = queued_max = 0
        beat = False
        wall = time.time() if wall is None else wall
        for conn in list(hub.connections):
            stalled = conn.stalled_since
            if stalled is not None and now - stalled > self.slow_timeout_s:
                metrics.DISCONNECTED.labels("slow").inc()
                conn.cut("slow")
                hub.unregister(conn)
            elif conn.server_closing():
                metrics.DISCONNECTED.labels("shutdown").inc()
                conn.cut("shutdown")
                hub.unregister(conn)
            elif conn.deadline is not None and self._deadline(conn, wall):
                hub.unregister(conn)
            else:
                waiting = conn.queued_bytes()
                queued += waiting
                queued_max = max(queued_max, waiting)
                interest = conn.interest
                subscriptions += len(interest.symbols) + len(interest.prefixes)
                subscriptions += interest.everything
                if now - conn.last_write >= self.heartbeat_s:
                    # only connections nothing was written to lately need keeping awake
                    conn.heartbeat()
                    conn.last_write = now
                    hub.dirty.add(conn)
                    beat = True
        if beat:
            hub.wake.set()
        if self.gauges:
            metrics.SUBSCRIPTIONS.set(subscriptions)
            metrics.WRITE_BUFFER.set(queued)
            metrics.WRITE_BUFFER_MAX.set(queued_max)

    def _deadline(self, conn: Connection, wall: float) -> bool:
        """Act on conn's token deadline; True when the stream ended."""
        assert conn.deadline is not None
        step = conn.deadline.due(wall)
        if step == EXPIRED:
            metrics.DISCONNECTED.labels("token_expired").inc()
            final = conn.render_notice(b"error", expired_data())
            conn.end("token_expired", final, WS_TOKEN_EXPIRED)
            return True
        if step is not None:  # NOTICE
            notice = conn.render_notice(b"token-expiring", conn.deadline.notice_data())
            conn.backlog.append(notice)
            self.hub.dirty.add(conn)
            self.hub.wake.set()
        return False
