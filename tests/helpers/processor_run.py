"""Run the processor against real Kafka and MongoDB in tests: in-process (the loop as a
task) or as `python -m tickwire.processor` child processes, and wait until it settled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.helpers.infra import Topics
from tests.helpers.processor_reference import Expected
from tickwire.mongo.client import make_client
from tickwire.processor.consumer import ProcessorLoop
from tickwire.processor.settings import ProcessorSettings
from tickwire.processor.store import StateStore


def settings_for(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, **extra: Any
) -> ProcessorSettings:
    """Processor settings pointing at this test's topics and database."""
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "mongodb_url": mongodb_url,
        "mongodb_db": db_name,
        "group_id": f"g-{topics.raw}",
        "topic_partitions": 3,
        **topics.settings_env(),
        **extra,
    }
    return ProcessorSettings(**values)


def env_for(settings: ProcessorSettings, instance_id: str, port: int) -> dict[str, str]:
    """The environment of a processor child process with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    for name in (
        "kafka_bootstrap", "mongodb_url", "mongodb_db", "group_id", "topic_raw",
        "topic_updates", "topic_bars", "topic_late", "topic_dlq", "topic_partitions",
        "bar_grace_ms", "max_poll_records", "session_timeout_ms", "retry_cap_seconds",
        "batch_max_records", "fault_batch", "fault_signal",
    ):  # fmt: skip
        env[f"TICKWIRE_{name.upper()}"] = str(getattr(settings, name))
    if settings.fault_point is not None:
        env["TICKWIRE_FAULT_POINT"] = settings.fault_point
    env["TICKWIRE_PUBLISH_FORMING_BARS"] = str(settings.publish_forming_bars).lower()
    env["TICKWIRE_BAR_INTERVALS"] = '["' + '","'.join(settings.bar_intervals) + '"]'
    env["TICKWIRE_INSTANCE_ID"] = instance_id
    env["TICKWIRE_PORT"] = str(port)
    env["TICKWIRE_LOG_LEVEL"] = "WARNING"
    return env


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m tickwire.processor` with env, output appended to log."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tickwire.processor"], env=env, stdout=out, stderr=out
        )


@contextlib.asynccontextmanager
async def in_process(settings: ProcessorSettings) -> AsyncIterator[ProcessorLoop]:
    """The processor loop running as a task in this event loop."""
    client = make_client(settings.mongodb_url)
    loop = ProcessorLoop(settings, StateStore(client[settings.mongodb_db]))
    task = asyncio.create_task(loop.run())
    try:
        yield loop
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def wait_settled(db: Any, expected: Expected, timeout: float = 120.0) -> None:
    """Wait until every symbol's quotes document reached its expected version and offset."""
    want = {s: (q["version"], q["offset"]) for s, q in expected.quotes.items()}
    deadline = time.monotonic() + timeout
    got: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        got = {
            d["_id"]: (d["version"], d["offset"])
            async for d in db.quotes.find({}, {"version": 1, "offset": 1})
        }
        if got == want:
            return
        await asyncio.sleep(0.3)
    behind = {s: (got.get(s), w) for s, w in want.items() if got.get(s) != w}
    raise AssertionError(
        f"processor did not settle; {len(behind)} symbols behind: {list(behind.items())[:5]}"
    )
