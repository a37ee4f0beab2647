"""Prometheus for the local stack and the observability tests: Debian's `prometheus`,
one server per directory (`prometheus/`), on 127.0.0.1 and its own port, scraping the
services it is given and evaluating tickwire's alert rules (deploy/prometheus/alerts.yml).

The configuration is written from deploy/prometheus/prometheus.yml's scrape settings
with the targets replaced by the given `job -> [host:port]` map, so what runs here is
what deploy/ ships, pointed at local processes. As root it runs in a new user namespace
that maps the caller to an unprivileged user, like PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tickwire.devstack import procs
from tickwire.devstack.errors import MissingToolError, StartupError
from tickwire.devstack.postgres import unprivileged

INSTALL_HINT = "install Prometheus (Debian: apt-get install prometheus; `make prometheus` does it)"
DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def binary(name: str = "prometheus") -> Path:
    """`prometheus` or `promtool`: $TICKWIRE_<NAME>, else the one on PATH or Debian's."""
    override = os.environ.get(f"TICKWIRE_{name.upper()}")
    path = Path(override or shutil.which(name) or f"/usr/bin/{name}")
    if not path.is_file():
        raise MissingToolError(f"{name} was not found: {INSTALL_HINT}")
    return path


def config(
    targets: Mapping[str, Sequence[str]], rules: Path, scrape_interval: str = "1s"
) -> dict[str, Any]:
    """deploy/'s prometheus.yml with these targets (job -> host:port list), these rule
    files and a short scrape interval (tests wait for scrapes)."""
    base: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    base["global"]["scrape_interval"] = scrape_interval
    base["global"]["evaluation_interval"] = scrape_interval
    base["rule_files"] = [str(rules)]
    base["scrape_configs"] = [
        {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
        for job, addresses in targets.items()
    ]
    return base


@dataclass
class PrometheusServer:
    """One prometheus under `root` (config, TSDB, pid file and log live there)."""

    root: Path
    targets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.root / "prometheus.pid"

    @property
    def log(self) -> Path:
        return self.root / "prometheus.log"

    def ready(self) -> bool:
        """Whether the server answers /-/ready with 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Write the configuration, start the server and wait until it is ready;
        StartupError with the log's path otherwise."""
        if procs.alive(procs.read_pid(self.pid_file)) and self.ready():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or procs.free_port()
        rules = self.root / "alerts.yml"
        shutil.copyfile(DEPLOY / "alerts.yml", rules)
        conf = self.root / "prometheus.yml"
        conf.write_text(yaml.safe_dump(config(self.targets, rules), sort_keys=False))
        argv = [
            str(binary()),
            f"--config.file={conf}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
        ]
        procs.spawn(unprivileged(argv), self.log, self.pid_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return self
            if not procs.alive(procs.read_pid(self.pid_file)):
                raise StartupError(f"prometheus exited during start-up; see {self.log}")
            time.sleep(0.1)
        raise StartupError(
            f"prometheus on 127.0.0.1:{self.port} was not ready within {timeout:.0f}s; "
            f"see {self.log}"
        )

    def stop(self, kill: bool = False) -> bool:
        """Stop the server (SIGKILL when `kill`); whether it was running."""
        return procs.stop(self.pid_file, sig=signal.SIGKILL if kill else signal.SIGTERM)


def for_services(root: Path, ports: Mapping[str, int]) -> PrometheusServer | None:
    """A started Prometheus scraping the local services (`service name -> port`), with
    its UI on $TICKWIRE_RUN_PROMETHEUS_PORT (9090 by default); None, with the install
    hint printed, when Debian's prometheus is not installed (it is optional for `run`)."""
    targets = {f"tickwire-{name}": [f"127.0.0.1:{port}"] for name, port in ports.items()}
    port = int(os.environ.get("TICKWIRE_RUN_PROMETHEUS_PORT", "9090"))
    try:
        return PrometheusServer(root, targets, port).start()
    except MissingToolError as exc:
        print(f"[run] no Prometheus: {exc}", flush=True)
        return None
