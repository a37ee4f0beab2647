"""The SSE load generator (Go, in this folder) and its Python driver; the update feeder
is in feeder.py.

The Go program is built into the cache (never into the repo) and spoken to over its
stdin/stdout, one JSON object per line (see main.go).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tickwire.devstack.paths import cache_dir

SOURCE = Path(__file__).parent


def build() -> Path:
    """Compile the load generator into the cache (Go's build cache makes reruns quick)."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("'go' was not found on PATH: install Go 1.24 or newer")
    binary = cache_dir() / "loadgen" / "loadgen"
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "build", "-trimpath", "-o", str(binary), "."],
        cwd=SOURCE,
        check=True,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"},
    )
    return binary


class LoadGen:
    """One running load generator: N connections to one server."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(
        cls,
        binary: Path,
        *,
        target: str,
        addr: str,
        clients: int,
        per_client: int,
        symbols_file: Path,
        stderr: Path,
        everything: int = 0,
    ) -> LoadGen:
        """Start N connections; the first `everything` of them (tickwire only)
        subscribe to every symbol instead of their `per_client` watchlist."""
        with stderr.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                str(binary),
                f"-target={target}",
                f"-addr={addr}",
                f"-clients={clients}",
                f"-per-client={per_client}",
                f"-symbols={symbols_file}",
                f"-all={everything}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                limit=1 << 22,
            )
        return cls(proc)

    async def _read(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(f"load generator exited while waiting for {event!r}")
            doc: dict[str, Any] = json.loads(line)
            if doc.get("event") == event:
                return doc

    async def _ask(self, command: str, event: str, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._read(event, timeout)

    async def connected(self, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until every client has connected (or given up)."""
        return await self._read("connected", timeout)

    async def stats(self) -> dict[str, Any]:
        return await self._ask("stats", "stats")

    async def reset(self, since_ns: int) -> None:
        """Start the measured window: only updates stamped at or after since_ns count."""
        await self._ask(f"reset {since_ns}", "reset")

    async def report(self) -> dict[str, Any]:
        """The measured window's figures; the load generator exits afterwards."""
        doc = await self._ask("report", "report", timeout=120.0)
        await self.close()
        return doc

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
