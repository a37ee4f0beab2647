"""`make run`: the whole system live on this machine, no Docker.

Brings up the local stack (Kafka + FerretDB), starts ingest, processor and gateway as
child processes with demo settings (ingest auth off, gateway anonymous), waits until
each answers /readyz, feeds the market simulator into ingest, prints where everything
is, and on Ctrl-C stops every process it started (and the stack, if it started it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tickwire.devstack import procs
from tickwire.devstack.errors import StartupError
from tickwire.devstack.paths import default_stack_dir
from tickwire.devstack.prometheus import for_services
from tickwire.devstack.simulator import MarketSimulator, last_prices
from tickwire.devstack.stack import Stack


@dataclass(frozen=True)
class ServiceSpec:
    """One service process of the demo."""

    name: str
    port: int
    env: dict[str, str]


def service_specs(ingest_port: int, processor_port: int, gateway_port: int) -> list[ServiceSpec]:
    """The three services with their demo-only settings."""
    return [
        ServiceSpec("ingest", ingest_port, {"TICKWIRE_INGEST_AUTH": "off"}),
        ServiceSpec("processor", processor_port, {}),
        ServiceSpec("gateway", gateway_port, {"TICKWIRE_GATEWAY_AUTH": "off"}),
    ]


def start_service(spec: ServiceSpec, base_env: dict[str, str], run_dir: Path) -> Path:
    """Start one service detached; returns its pid file."""
    if procs.port_open("127.0.0.1", spec.port):
        raise StartupError(
            f"port {spec.port} for {spec.name} is taken; set "
            f"TICKWIRE_RUN_{spec.name.upper()}_PORT to another"
        )
    env = {**base_env, **spec.env, "TICKWIRE_PORT": str(spec.port)}
    pid_file = run_dir / f"{spec.name}.pid"
    procs.spawn(
        [sys.executable, "-m", f"tickwire.{spec.name}"],
        run_dir / f"{spec.name}.log",
        pid_file,
        env=env,
    )
    return pid_file


def wait_ready(spec: ServiceSpec, pid_file: Path, log: Path, timeout: float = 90.0) -> None:
    """Block until the service's /readyz answers 200, or raise StartupError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.alive(procs.read_pid(pid_file)):
            raise StartupError(f"{spec.name} exited during start-up; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{spec.port}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise StartupError(f"{spec.name} was not ready within {timeout:.0f}s; see {log}")


async def _simulate_until_stopped(simulator: MarketSimulator, pid_files: list[Path]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(simulator.run())
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=5)
        dead = [p.stem for p in pid_files if not procs.alive(procs.read_pid(p))]
        if dead:
            print(f"[run] {', '.join(dead)} stopped unexpectedly; shutting down", flush=True)
            break
        print(
            f"[run] simulator: {simulator.accepted} events accepted, {simulator.refused} refused",
            flush=True,
        )
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(rate: float = 200.0) -> int:
    """Run everything until Ctrl-C; returns the exit code."""
    stack = Stack(default_stack_dir())
    was_up = stack.info() is not None and bool(stack.status()["up"])
    run_dir = stack.root / "services"
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_files: list[Path] = []
    prometheus = None
    try:
        info = stack.up()
        ports = {
            name: int(os.environ.get(f"TICKWIRE_RUN_{name.upper()}_PORT", default))
            for name, default in (("ingest", 8080), ("processor", 8081), ("gateway", 8082))
        }
        specs = service_specs(ports["ingest"], ports["processor"], ports["gateway"])
        base_env = {
            **os.environ,
            "TICKWIRE_KAFKA_BOOTSTRAP": info.bootstrap_servers,
            "TICKWIRE_MONGODB_URL": info.mongodb_url,
            **stack.security_env(),  # a stack made with `up --secure`: SASL_SSL
        }
        for spec in specs:
            pid_files.append(start_service(spec, base_env, run_dir))
        for spec, pid_file in zip(specs, pid_files, strict=True):
            wait_ready(spec, pid_file, run_dir / f"{spec.name}.log")
            print(f"[run] {spec.name} ready on http://127.0.0.1:{spec.port}", flush=True)
        prometheus = for_services(run_dir / "prometheus", ports)
        if prometheus is not None:
            print(f"[run] prometheus on {prometheus.url} (alerts: {prometheus.url}/alerts)")
        print(
            f"""
tickwire is running (Ctrl-C stops it):
  dashboard        http://127.0.0.1:{ports["gateway"]}/
  SSE stream       curl -N 'http://127.0.0.1:{ports["gateway"]}/v1/stream?symbols=AAPL,MSFT'
  post events      http://127.0.0.1:{ports["ingest"]}/v1/events  (API docs: /docs)
  metrics          http://127.0.0.1:{{{ports["ingest"]},{ports["processor"]},{ports["gateway"]}}}/metrics
  Kafka            {info.bootstrap_servers}
  MongoDB          {info.mongodb_url}
  logs             {run_dir}/*.log, {stack.root}/*/*.log
A simulator posts ~{rate:.0f} events/s of {len(MarketSimulator("x").books)} symbols to ingest.
""",
            flush=True,
        )
        known = asyncio.run(last_prices(f"http://127.0.0.1:{ports['gateway']}"))
        simulator = MarketSimulator(
            f"http://127.0.0.1:{ports['ingest']}", rate=rate, last_prices=known
        )
        asyncio.run(_simulate_until_stopped(simulator, pid_files))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"[run] error: {exc}", file=sys.stderr)
        return 2
    finally:
        print("[run] stopping services...", flush=True)
        if prometheus is not None:
            prometheus.stop()
        for pid_file in pid_files:
            procs.stop(pid_file)
        if not was_up:
            stack.down()
            print("[run] stopped the local stack", flush=True)
    return 0
