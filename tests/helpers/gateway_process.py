"""The gateway as a real child process (python -m tickwire.gateway), killable and
restartable on the same port (the browser test), or stopped by SIGTERM (drains)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.infra import Topics


def gateway_env(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> dict[str, str]:
    """The environment of a gateway process on a test's own topics and database
    (anonymous, warnings only)."""
    return {
        "TICKWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TICKWIRE_MONGODB_URL": mongodb_url,
        "TICKWIRE_MONGODB_DB": db_name,
        "TICKWIRE_TOPIC_UPDATES": topics.updates,
        "TICKWIRE_TOPIC_BARS": topics.bars,
        "TICKWIRE_GATEWAY_AUTH": "off",
        "TICKWIRE_LOG_LEVEL": "WARNING",
    }


def process_env(settings: dict[str, str]) -> dict[str, str]:
    """Environment variables for a gateway process from settings names (`topic_bars`,
    `gateway_drain_s`, as GatewaySettings spells them) and their values."""
    return {f"TICKWIRE_{name.upper()}": value for name, value in settings.items()}


class GatewayProcess:
    """One gateway process at a time on a fixed port; `kill` drops every connection."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = {**os.environ, **env, "TICKWIRE_HOST": "127.0.0.1", "TICKWIRE_PORT": str(port)}
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until /readyz answers 200."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tickwire.gateway"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(int(timeout / 0.1)):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited; see {self.log}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"gateway not ready; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-stream, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def terminate(self) -> None:
        """SIGTERM: the gateway drains its streams (GATEWAY_DRAIN_S), then stops."""
        assert self.proc is not None, "not started"
        self.proc.send_signal(signal.SIGTERM)

    async def exited(self, timeout: float = 60.0) -> int:
        """The exit status once the process has ended (failure guard: timeout)."""
        assert self.proc is not None, "not started"
        for _ in range(int(timeout / 0.1)):
            status = self.proc.poll()
            if status is not None:
                self.proc = None
                return status
            await asyncio.sleep(0.1)
        raise TimeoutError(f"gateway still running; see {self.log}")
