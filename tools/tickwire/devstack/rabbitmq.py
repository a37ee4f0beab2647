"""RabbitMQ for the bridge: Debian's `rabbitmq-server` (3.10, on Erlang/OTP 25), one node
per directory, listening on 127.0.0.1 only.

Everything the node writes stays under its directory: the config, the Mnesia and
message store (`mnesia/`), the Erlang cookie (`HOME` is the directory) and its log,
which goes to stdout and so to `rabbitmq.log`. `/etc/rabbitmq` is not read (an empty
env file and an own config file are given) and no plugin is enabled.

A private `epmd`: a node registers with the Erlang port mapper, which the broker's
start-up otherwise launches as a machine-wide daemon that outlives the stack and is
shared by every node on the machine. Here the launcher runs `epmd` itself, in the
foreground, in the node's process group, on a port of its own (`ERL_EPMD_PORT`), so
stopping the node stops it too. The launcher never uses `rabbitmqctl`: readiness is an
AMQP handshake and stop is SIGTERM, which the broker handles as a clean shutdown.

As root the server runs unprivileged in a user namespace, like PostgreSQL
(`postgres.unprivileged`): inside it is `nobody`, holds no capability on the machine,
and its files stay the caller's.

Tests start one in a temporary directory to restart or kill it mid-test. The layout:

    rabbitmq.conf    listeners, limits (written on every start)
    rabbitmq.pid     the launcher's pid file (the process group to signal)
    rabbitmq.log     the broker's log
    mnesia/          durable queues, exchanges and messages: kept across restarts
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tickwire.devstack import procs
from tickwire.devstack.errors import MissingToolError, StartupError
from tickwire.devstack.postgres import unprivileged

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
INSTALL_HINT = "install RabbitMQ (Debian: apt-get install rabbitmq-server; `make rabbitmq` does it)"
#: Free disk below which the broker blocks publishers; low, because a shared test
#: machine's disk is not the broker's alone.
DISK_FREE_LIMIT = "50MB"


def server_script() -> Path:
    """The broker's start script ($TICKWIRE_RABBITMQ_SERVER or Debian's), bypassing the
    /usr/sbin wrapper that switches to the `rabbitmq` system user."""
    path = Path(os.environ.get("TICKWIRE_RABBITMQ_SERVER", SERVER))
    if not path.is_file() or shutil.which("erl") is None:
        raise MissingToolError(f"rabbitmq-server was not found: {INSTALL_HINT}")
    return path


def url(port: int) -> str:
    """The AMQP URL of the node on port (the default `guest` user, loopback only)."""
    return f"amqp://guest:guest@127.0.0.1:{port}/"


def node_name(port: int) -> str:
    """The node's Erlang name: fixed by its AMQP port, so its data survives restarts."""
    return f"tickwire{port}@localhost"


#: The node's process group: its own epmd (foreground, on $ERL_EPMD_PORT), then the
#: broker once epmd answers, so the broker's start-up finds it and starts no daemon.
_WITH_EPMD = (
    'epmd -port "$ERL_EPMD_PORT" & '
    'until epmd -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1; do sleep 0.05; done; '
    'exec "$1"'
)


def _config(port: int) -> str:
    return "\n".join(
        [
            f"listeners.tcp.1 = 127.0.0.1:{port}",
            f"disk_free_limit.absolute = {DISK_FREE_LIMIT}",
            "log.console = true",
            "log.console.level = info",
            "log.file = false",
            "",
        ]
    )


def _env(d: Path, port: int, dist_port: int, epmd_port: int) -> dict[str, str]:
    empty = d / "rabbitmq-env.conf"
    empty.touch()
    return {
        "HOME": str(d),  # the Erlang cookie
        "RABBITMQ_CONF_ENV_FILE": str(empty),
        "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS": "",
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
        "RABBITMQ_NODENAME": node_name(port),
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
        "RABBITMQ_LOG_BASE": str(d),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_PID_FILE": str(d / "mnesia" / "beam.pid"),  # not */*.pid: see Stack.down
        "ERL_EPMD_PORT": str(epmd_port),
    }


async def _handshake(port: int) -> None:
    import aio_pika

    connection = await aio_pika.connect(url(port), timeout=5)
    await connection.close()


def answers(port: int) -> bool:
    """Whether an AMQP connection to 127.0.0.1:port opens (the listener opens before
    the broker authenticates, so a port check alone is not enough)."""
    if not procs.port_open("127.0.0.1", port):
        return False
    # its own event loop in a thread: callable from sync code and from a running loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, _handshake(port)).result()
        except Exception:
            return False
    return True


@dataclass
class RabbitServer:
    """One rabbitmq-server node under `root` (its config, data, pid file and log live
    there; see the module docstring)."""

    root: Path
    port: int = 0

    @property
    def url(self) -> str:
        """The URL clients connect with."""
        return url(self.port)

    @property
    def pid_file(self) -> Path:
        return self.root / "rabbitmq.pid"

    @property
    def log(self) -> Path:
        return self.root / "rabbitmq.log"

    def running(self) -> bool:
        """Whether the process is alive and listens (no AMQP handshake: cheap)."""
        return procs.alive(procs.read_pid(self.pid_file)) and procs.port_open(
            "127.0.0.1", self.port
        )

    def start(self, timeout: float = 90.0) -> RabbitServer:
        """Start the node (on the same port and with the same data as before, if it ran
        already) and wait until it accepts an AMQP connection; StartupError with the
        log's path otherwise."""
        if procs.alive(procs.read_pid(self.pid_file)) and answers(self.port):
            return self
        script = server_script()
        (self.root / "mnesia").mkdir(parents=True, exist_ok=True)
        self.port = self.port or procs.free_port()
        (self.root / "rabbitmq.conf").write_text(_config(self.port))
        env = _env(self.root, self.port, procs.free_port(), procs.free_port())
        argv = unprivileged(["/bin/sh", "-c", _WITH_EPMD, "rabbitmq", str(script)])
        procs.spawn(argv, self.log, self.pid_file, env=env, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not procs.alive(procs.read_pid(self.pid_file)):
                raise StartupError(f"rabbitmq-server exited during start-up; see {self.log}")
            if answers(self.port):
                return self
            time.sleep(0.3)
        self.stop(kill=True)  # nothing left behind by a failed start
        raise StartupError(
            f"RabbitMQ on 127.0.0.1:{self.port} did not start within {timeout:.0f}s; see {self.log}"
        )

    def stop(self, kill: bool = False) -> bool:
        """Stop the node: SIGTERM (a clean shutdown) or SIGKILL (a crash); whether it
        was running."""
        sig = signal.SIGKILL if kill else signal.SIGTERM
        return procs.stop(self.pid_file, grace=30.0, sig=sig)
