"""Persistence behind the publishes: MongoDB writes coalesced across batches, offsets
committed only once what they cover is both published and persisted.

The loop publishes a batch, then hands its documents and next offsets to
`Persister.submit` and goes on with the next batch. One writer task takes everything
submitted since its last write, coalesced with `Documents.absorb` (one quotes document
per symbol, whatever the number of batches and events; every closed bar), writes it,
and only then commits the offsets of the last batch it covered. So a publish never
waits for MongoDB, and a partition's committed offset never passes what MongoDB holds
(its persisted watermark): a crash replays from there, and the replay emits the same
versions (see consumer.py for how a replay is held back until it passes what the
crashed instance may have published).

Memory is bounded. What waits is one quotes document per owned symbol plus the closed
bars not yet written (in the write under way and behind it), at most `max_pending_bars`
of them (or one batch's, if a single batch closes more): a batch that would go past it
makes `submit` wait until a write finishes. That is backpressure: the loop stops
consuming and Kafka keeps the rest. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from aiokafka.structs import TopicPartition

from tickwire.processor import metrics as m
from tickwire.processor.store import Documents

log = logging.getLogger(__name__)


class Persister:
    """The single writer behind the loop: coalesces, writes, then commits."""

    def __init__(
        self,
        write: Callable[[Documents], Awaitable[object]],
        commit: Callable[[dict[TopicPartition, int]], Awaitable[None]],
        *,
        max_pending_bars: int,
        interval_s: float,
    ) -> None:
        self._write = write
        self._commit = commit
        self._max_pending_bars = max_pending_bars
        self._interval_s = interval_s
        self._pending = Documents()
        self._offsets: dict[TopicPartition, int] = {}
        self._oldest: float | None = None  # when the oldest pending batch was submitted
        self._writing_bars = 0
        self._submitted = 0
        self._done = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopped: BaseException | None = None  # why the writer stopped, if it did

    def start(self) -> None:
        """Start the writer task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tickwire-persister")

    @property
    def pending_bars(self) -> int:
        """Closed bars submitted and not yet written (in the write under way too)."""
        return _bar_count(self._pending) + self._writing_bars

    async def submit(self, docs: Documents, offsets: Mapping[TopicPartition, int]) -> None:
        """Queue a published batch's documents and next offsets; waits while the pending
        bars are at the bound. Raises what broke the writer, if it broke."""
        self._raise_if_broken()
        incoming = _bar_count(docs)

        def room() -> bool:
            # a batch alone over the bound goes once nothing else waits
            fits = self.pending_bars + incoming <= self._max_pending_bars
            return fits or self.pending_bars == 0 or self._broken()

        async with self._changed:
            if not room():
                m.PERSIST_BACKPRESSURE.set(1)
                log.warning(
                    "%d closed bars wait for MongoDB: holding the loop back", self.pending_bars
                )
                await self._changed.wait_for(room)
                m.PERSIST_BACKPRESSURE.set(0)
                self._raise_if_broken()
            self._pending.absorb(docs)
            self._offsets.update(offsets)
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._submitted += 1
            m.PERSIST_PENDING.set(len(self._pending) + self._writing_bars)
            self._changed.notify_all()

    async def flush(self) -> None:
        """Return once everything submitted so far is written and its offsets committed."""
        target = self._submitted
        async with self._changed:
            await self._changed.wait_for(lambda: self._done >= target or self._broken())
        self._raise_if_broken()

    async def close(self, flush_seconds: float) -> None:
        """Flush what is pending (for at most flush_seconds), then stop the writer."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), flush_seconds)
        except Exception as exc:  # shutting down: a replay covers what was not written
            log.warning("stopping with unpersisted batches (they replay): %r", exc)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None

    async def _run(self) -> None:
        try:
            await self._write_forever()
        except BaseException as exc:
            self._stopped = exc
            async with self._changed:
                self._changed.notify_all()
            raise

    async def _write_forever(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._submitted > self._done)
            if self._interval_s > 0 and self._oldest is not None:
                # let a few more batches coalesce into this write under light load
                wait = self._oldest + self._interval_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            async with self._changed:
                docs, offsets, oldest = self._pending, self._offsets, self._oldest
                seq = self._submitted
                self._pending, self._offsets, self._oldest = Documents(), {}, None
                self._writing_bars = _bar_count(docs)
            if docs:
                await self._write(docs)
            if offsets:
                await self._commit(offsets)
            if oldest is not None:
                m.PERSIST_LAG.observe(time.monotonic() - oldest)
            async with self._changed:
                self._writing_bars = 0
                self._done = seq
                m.PERSIST_PENDING.set(len(self._pending))
                self._changed.notify_all()

    def _broken(self) -> bool:
        return self._stopped is not None

    def _raise_if_broken(self) -> None:
        if self._stopped is not None:
            raise RuntimeError("the MongoDB writer stopped") from self._stopped


def _bar_count(docs: Documents) -> int:
    return sum(len(write.bars) for write in docs.bars.values())
