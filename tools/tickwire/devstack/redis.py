"""Redis for the shared limits and the query cache: Debian's `redis-server`, one server
per directory (`redis/`), on 127.0.0.1 and its own port only, without persistence.

Nothing Redis holds for tickwire needs to survive a restart (token buckets start full
again, connection counts are re-published by every gateway when it reconnects, cache
entries are read through again), so the server runs with no RDB snapshots and no
append-only file and writes nothing but its log. As root it runs in a new user
namespace that maps the caller to an unprivileged user, like PostgreSQL
(`postgres.unprivileged`). Tests start one in a temporary directory to stop it mid-test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tickwire.devstack import procs
from tickwire.devstack.errors import MissingToolError, StartupError
from tickwire.devstack.postgres import unprivileged

INSTALL_HINT = "install Redis (Debian: apt-get install redis-server; `make redis` does it)"


def binary() -> Path:
    """`redis-server`: $TICKWIRE_REDIS_SERVER, else the one on PATH or Debian's."""
    override = os.environ.get("TICKWIRE_REDIS_SERVER")
    found = override or shutil.which("redis-server") or "/usr/bin/redis-server"
    path = Path(found)
    if not path.is_file():
        raise MissingToolError(f"redis-server was not found: {INSTALL_HINT}")
    return path


def argv(server: Path, port: int, data_dir: Path) -> list[str]:
    """The server's command line: TCP on 127.0.0.1:port only, no Unix socket, no
    persistence, log to stdout (the launcher sends it to the log file)."""
    return unprivileged(
        [
            str(server),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--maxmemory",
            "256mb",
            "--maxmemory-policy",
            "volatile-lru",
        ]
    )


def answers(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server under `root` (its pid file and log live there)."""

    root: Path
    port: int = 0

    @property
    def url(self) -> str:
        """The URL clients connect with."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def running(self) -> bool:
        """Whether the process is alive and answers PING."""
        return procs.alive(procs.read_pid(self.pid_file)) and answers(self.port)

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start the server (on the same port as before, if it ran already) and wait
        until it answers; StartupError with the log's path otherwise."""
        if self.running():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or procs.free_port()
        procs.spawn(argv(binary(), self.port, self.root), self.log, self.pid_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(self.port):
                return self
            if not procs.alive(procs.read_pid(self.pid_file)):
                raise StartupError(f"redis-server exited during start-up; see {self.log}")
            time.sleep(0.05)
        raise StartupError(
            f"redis-server on 127.0.0.1:{self.port} did not answer within {timeout:.0f}s; "
            f"see {self.log}"
        )

    def stop(self, kill: bool = False) -> bool:
        """Stop the server (SIGKILL when `kill`); whether it was running."""
        return procs.stop(self.pid_file, sig=signal.SIGKILL if kill else signal.SIGTERM)
