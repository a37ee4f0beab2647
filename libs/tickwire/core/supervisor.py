"""Supervision of long-running parts: every consumer loop or background task is a
`Runnable` (an object with `async def run()`); one `Supervisor` runs them in one
`asyncio.TaskGroup`. Cancellation stops them cleanly; a crash of one stops all and is
reported, so a dead loop is a dead service, never a silent zombie."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Runnable(Protocol):
    """A long-running part of a service."""

    async def run(self) -> None:
        """Run until cancelled; raising means the part (and so the service) has failed."""
        ...


def _terminate_process(exc: BaseException) -> None:
    log.critical("a supervised task crashed; stopping the service", exc_info=exc)
    os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Runs Runnables under one TaskGroup in the background of an ASGI lifespan.

    `on_crash` is called once with the first failure; by default it logs and sends
    SIGTERM to this process so the server shuts down (and an orchestrator restarts it).
    """

    def __init__(
        self, *parts: Runnable, on_crash: Callable[[BaseException], None] = _terminate_process
    ) -> None:
        self.parts = list(parts)
        self.on_crash = on_crash
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    async def _main(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for part in self.parts:
                    tg.create_task(part.run(), name=type(part).__name__)
        except* Exception as group:
            self.failure = group.exceptions[0]
            self.on_crash(self.failure)

    async def start(self) -> None:
        """Start every part in the background."""
        self._task = asyncio.create_task(self._main(), name="supervisor")
        await asyncio.sleep(0)

    async def stop(self) -> None:
        """Cancel every part and wait until they have all finished."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
