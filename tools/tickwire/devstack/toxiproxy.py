"""Toxiproxy (Shopify's TCP fault proxy), built from its Go module into the cache, one
server per stack (`toxiproxy/`), and a small client of its HTTP API.

A proxied stack (`tickwire-stack up --proxied`) puts one proxy in front of each Kafka
node's client listener, and the broker advertises the proxy's address (kafka.py), so a
client that bootstraps through the proxy keeps using it for every connection: toxics
added to a proxy (latency, a bandwidth limit, resets, timeouts) sit between every
service and Kafka. The proxies are created at start from a config file, so a restarted
server has them again; the server runs as the caller, on 127.0.0.1 only.

The API is plain JSON (`Toxiproxy`): `add_toxic`, `remove_toxic`, `reset`. `python -m
tickwire.devstack.toxiproxy` builds the binary (`make toxiproxy`) and prints its path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tickwire.devstack import procs
from tickwire.devstack.errors import StartupError
from tickwire.devstack.paths import TOXIPROXY_MODULE, TOXIPROXY_VERSION, cache_dir
from tickwire.devstack.tools import require


def binary_path() -> Path:
    """Where the built toxiproxy server is cached."""
    return cache_dir() / f"toxiproxy-{TOXIPROXY_VERSION}" / "toxiproxy-server"


def build() -> Path:
    """`go install` the server once into the cache; later calls return the binary."""
    binary = binary_path()
    if binary.exists():
        return binary
    go = require("go")
    print(
        f"[stack] building Toxiproxy {TOXIPROXY_VERSION} with Go into {binary.parent} "
        "(first run only, about a minute)...",
        flush=True,
    )
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as gobin:
        result = subprocess.run(
            [go, "install", f"{TOXIPROXY_MODULE}/cmd/server@{TOXIPROXY_VERSION}"],
            env={**os.environ, "GOBIN": gobin, "GOTOOLCHAIN": "local"},
            check=False,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
        if result.returncode != 0:
            raise StartupError(f"building Toxiproxy failed (exit {result.returncode})")
        Path(gobin, "server").rename(binary)  # atomic: a half-built binary is never seen
    return binary


@dataclass(frozen=True)
class Proxy:
    """One proxy: clients connect to `listen`, the proxy connects to `upstream`."""

    name: str
    listen: str
    upstream: str


class Toxiproxy:
    """A client of one server's HTTP API (its `/proxies/...` resources)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        resp = self._http.request(method, path, json=body)
        if resp.status_code >= 400:
            raise StartupError(f"toxiproxy {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def version(self) -> str:
        """The server's version (also the readiness probe)."""
        return str(self._call("GET", "/version")["version"])

    def proxies(self) -> dict[str, Any]:
        """Every proxy by name, with its toxics."""
        found: dict[str, Any] = self._call("GET", "/proxies")
        return found

    def add_toxic(
        self,
        proxy: str,
        kind: str,
        attributes: dict[str, float],
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> str:
        """Add a toxic (`latency`, `bandwidth`, `reset_peer`, `timeout`, ...) to a proxy's
        `downstream` (broker -> client) or `upstream` stream; returns its name."""
        toxic = {
            "name": name or f"{kind}_{stream}",
            "type": kind,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self._call("POST", f"/proxies/{proxy}/toxics", toxic)
        return str(toxic["name"])

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove one toxic; the proxy carries on without it."""
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")


@dataclass
class ToxiproxyServer:
    """One toxiproxy server under `root` (config, pid file and log live there), its API
    on 127.0.0.1:`port`."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        """The API's base URL (what toxiproxy's own clients read as TOXIPROXY_URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.root / "toxiproxy.pid"

    @property
    def log(self) -> Path:
        return self.root / "toxiproxy.log"

    def api(self) -> Toxiproxy:
        """A client of this server's API (close it when done)."""
        return Toxiproxy(self.url)

    def running(self) -> bool:
        """Whether the process is alive and its API listens."""
        return procs.alive(procs.read_pid(self.pid_file)) and procs.port_open(
            "127.0.0.1", self.port
        )

    def start(self, proxies: list[Proxy], timeout: float = 20.0) -> ToxiproxyServer:
        """Start the server with `proxies` (unless it runs) and wait until its API
        answers and lists them; StartupError with the log's path otherwise."""
        if self.running():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "proxies.json"
        config.write_text(json.dumps([{**p.__dict__, "enabled": True} for p in proxies], indent=2))
        argv = [str(build()), "-host", "127.0.0.1", "-port", str(self.port)]
        procs.spawn(
            [*argv, "-config", str(config)],
            self.log,
            self.pid_file,
            env={"LOG_LEVEL": "warn"},  # its default logs every connection (trace)
            cwd=self.root,
        )
        api = self.api()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not procs.alive(procs.read_pid(self.pid_file)):
                    raise StartupError(f"toxiproxy exited during start-up; see {self.log}")
                try:
                    if set(api.proxies()) >= {p.name for p in proxies}:
                        return self
                except (httpx.HTTPError, StartupError):
                    pass
                time.sleep(0.1)
        finally:
            api.close()
        raise StartupError(
            f"toxiproxy on {self.url} did not list its proxies within {timeout:.0f}s; "
            f"see {self.log}"
        )

    def stop(self) -> bool:
        """Stop the server (its proxies drop every connection); whether it was running."""
        return procs.stop(self.pid_file, sig=signal.SIGTERM)


if __name__ == "__main__":
    print(build())
