"""Gateway SSE fan-out against Centrifugo v6: `python -m bench.gateway`.

For each connection count N (1k, 5k, 10k), back to back for the two servers, three
trials each (alternating), figures reported per trial and as medians:
  1. fresh ticker.updates/ticker.bars topics; one seed update per symbol;
  2. start the server (tickwire gateway, or Centrifugo with its Kafka consumer reading
     the same topic), connect N SSE clients (the Go load generator), each watching 20
     of 500 symbols, every symbol watched by the same number of clients;
  3. warm up until updates flow, then feed a fixed rate of updates (default 50/s,
     round-robin over the symbols) for a fixed time (default 20 s, then 2 s to drain);
  4. measure server CPU (psutil, process tree) per delivered update, p50/p99 delivery
     latency (client receive wall clock - received_ns stamped by the feeder, so the
     Kafka hop is inside, equally for both), server RSS growth per connection, and the
     CPU of the load generator and of the feeder, to show neither was the limit;
     for tickwire also its own histograms over the window (`server_latency`: feeder
     stamp to socket write; `event_loop_lag`), so a latency can be placed before or
     after the gateway's write.
Writes bench/results/gateway.json: ratio = Centrifugo CPU per delivered update /
tickwire CPU per delivered update at 10k connections; p99_ratio beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka.admin import AIOKafkaAdminClient

from bench import common, loadgen
from bench.centrifugo import config as centrifugo_config
from bench.centrifugo import install as centrifugo_install
from bench.loadgen.feeder import Feeder, FeedStats, subscribers, symbols
from tickwire.devstack.paths import KAFKA_VERSION, cache_dir, default_stack_dir
from tickwire.devstack.procs import free_port
from tickwire.devstack.stack import Stack
from tickwire.kafka.topics import ensure_topics


@dataclass(frozen=True)
class Plan:
    """What every run of this benchmark does; identical for both servers."""

    clients: tuple[int, ...]
    symbols: int
    per_client: int
    rate: float
    seconds: float
    drain_s: float
    servers: tuple[str, ...]
    flush_ms: int | None
    repeats: int
    gateway_rev: str
    stack: str


@dataclass(frozen=True)
class Infra:
    """Kafka and MongoDB endpoints (and the broker pids, when this machine runs them)."""

    bootstrap: str
    mongodb_url: str
    kafka_pids: tuple[int, ...] = ()


def raise_file_limit() -> None:
    """Let this process and the servers it starts hold 10k+ sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children."""
    proc = psutil.Process(pid)
    total = int(proc.memory_info().rss)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Block until url answers 200, or raise with the server log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{url} did not become ready (exit {proc.poll()}):\n{tail}")


class Server:
    """A started server under test."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.name, self.proc, self.port, self.log = name, proc, port, log

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launch(
    name: str, argv: list[str], env: dict[str, str], port: int, ready: str, workdir: Path
) -> Server:
    """Start a server (output to a log in workdir) and wait until `ready` answers 200."""
    log = workdir / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    server = Server(name, proc, port, log)
    try:
        wait_http(f"http://{server.addr}{ready}", proc, log)
    except BaseException:
        server.stop()
        raise
    return server


REPO = Path(__file__).resolve().parents[1]


def export_gateway(rev: str, into: Path) -> str:
    """Check the committed gateway (and libs) of rev out into `into`, so the benchmark
    runs what is committed, whatever the shared working tree holds; returns the commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "libs", "services/gateway"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def start_tickwire(infra: Infra, updates: str, bars: str, plan: Plan, workdir: Path) -> Server:
    """The tickwire gateway (as exported to workdir/src) on fresh topics and a fresh
    database, anonymous mode."""
    port = free_port()
    src = workdir / "src"
    env = {
        **os.environ,
        # ahead of the editable install's paths: the exported commit wins
        "PYTHONPATH": f"{src / 'services' / 'gateway'}{os.pathsep}{src / 'libs'}",
        "TICKWIRE_HOST": "127.0.0.1",
        "TICKWIRE_PORT": str(port),
        "TICKWIRE_KAFKA_BOOTSTRAP": infra.bootstrap,
        "TICKWIRE_MONGODB_URL": infra.mongodb_url,
        "TICKWIRE_MONGODB_DB": f"bench_gw_{uuid.uuid4().hex[:8]}",
        "TICKWIRE_TOPIC_UPDATES": updates,
        "TICKWIRE_TOPIC_BARS": bars,
        "TICKWIRE_GATEWAY_AUTH": "off",
        "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_IP": "20000",
        "TICKWIRE_GATEWAY_MAX_CONNECTIONS_PER_SUBJECT": "20000",
        "TICKWIRE_LOG_LEVEL": "WARNING",
    }
    if plan.flush_ms is not None:
        env["TICKWIRE_GATEWAY_FLUSH_MS"] = str(plan.flush_ms)
    argv = [sys.executable, "-m", "tickwire.gateway"]
    return launch("tickwire", argv, env, port, "/readyz", workdir)


def start_centrifugo(infra: Infra, updates: str, workdir: Path) -> Server:
    """Centrifugo with uni_sse, insecure clients and a Kafka consumer on `updates`."""
    binary = centrifugo_install.build()
    port = free_port()
    cfg = centrifugo_config.write(
        workdir / f"centrifugo-{port}.json",
        port=port,
        bootstrap=infra.bootstrap,
        topic=updates,
        group=f"bench-{uuid.uuid4().hex}",
    )
    argv = [str(binary), "--config", str(cfg)]
    return launch("centrifugo", argv, dict(os.environ), port, "/health", workdir)


@contextlib.asynccontextmanager
async def fresh_topics(bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    """A private ticker.updates/ticker.bars pair, deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    updates, bars = f"bench-gw-{tag}.ticker.updates", f"bench-gw-{tag}.ticker.bars"
    await ensure_topics(bootstrap, [updates, bars], partitions=6, replication=1)
    await asyncio.sleep(1.0)  # let partition leadership settle before producing
    try:
        yield updates, bars
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tickwire-bench")
        await admin.start()
        try:
            with contextlib.suppress(Exception):
                await admin.delete_topics([updates, bars])
        finally:
            await admin.close()


class MachineLoad:
    """How busy the whole machine was over a window (other engineers share it)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = psutil.cpu_times()
        self.load0 = os.getloadavg()[0]

    def stop(self) -> dict[str, float]:
        cpu1, seconds = psutil.cpu_times(), time.monotonic() - self.t0
        busy = (sum(cpu1) - cpu1.idle - cpu1.iowait) - (
            sum(self.cpu0) - self.cpu0.idle - self.cpu0.iowait
        )
        return {
            "busy_cores": round(busy / seconds, 2),
            "loadavg_1m_start": round(self.load0, 2),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
        }


async def warm_up(feeder: Feeder, gen: loadgen.LoadGen, rate: float, limit_s: float = 45) -> float:
    """Feed until clients receive updates (Centrifugo's consumer group needs a few
    seconds to join), then 5 s more at the same rate so that the measured window starts
    in a steady state; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        await feeder.run(rate, 1.0)
        if (await gen.stats())["delivered"] > 0:
            await feeder.run(rate, 5.0)
            return time.monotonic() - start
    raise RuntimeError(f"no update reached any client within {limit_s:.0f}s of feeding")


def per_million(cpu_s: float, delivered: int) -> float | None:
    return round(cpu_s / delivered * 1e6, 3) if delivered else None


#: the gateway's own histograms read around the measured window (tickwire only): where
#: the client-measured latency is spent (up to the socket write, or after it) and how
#: late its event loop ran
INSIDE = {
    "server_latency": "tickwire_gateway_delivery_latency_seconds",
    "event_loop_lag": "tickwire_event_loop_lag_seconds",
    "flush_pass": "tickwire_gateway_flush_pass_seconds",
    "gc_pause": "tickwire_gc_pause_seconds",
}


def inside(server_name: str, server: Server) -> dict[str, dict[float, float]]:
    """The INSIDE histograms of a tickwire gateway now (nothing for a peer)."""
    if server_name != "tickwire":
        return {}
    url = f"http://{server.addr}/metrics"
    return {key: common.scrape_histogram(url, name) for key, name in INSIDE.items()}


def inside_delta(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, Any]:
    """Quantiles of the INSIDE samples taken during the window: `server_latency`
    (feeder stamp to socket write, the Kafka hop included) beside the client's figure."""
    return {key: common.histogram_quantiles(before[key], after[key]) for key in before}


async def run_one(
    server_name: str, clients: int, plan: Plan, infra: Infra, lg_binary: Path, workdir: Path
) -> dict[str, Any]:
    """One server at one connection count; the figures of its measured window."""
    all_symbols = symbols(plan.symbols)
    symbols_file = workdir / "symbols.txt"
    symbols_file.write_text("\n".join(all_symbols) + "\n")
    async with fresh_topics(infra.bootstrap) as (updates, bars):
        feeder = Feeder(infra.bootstrap, updates, all_symbols)
        await feeder.start()
        server: Server | None = None
        gen: loadgen.LoadGen | None = None
        try:
            await feeder.seed()
            if server_name == "tickwire":
                server = start_tickwire(infra, updates, bars, plan, workdir)
            else:
                server = start_centrifugo(infra, updates, workdir)
            await asyncio.sleep(1.0)
            rss_idle = rss_bytes(server.proc.pid)
            gen = await loadgen.LoadGen.start(
                lg_binary,
                target=server_name,
                addr=server.addr,
                clients=clients,
                per_client=plan.per_client,
                symbols_file=symbols_file,
                stderr=workdir / "loadgen.log",
            )
            connected = await gen.connected()
            await asyncio.sleep(2.0)
            rss_connected = rss_bytes(server.proc.pid)
            warm_s = await warm_up(feeder, gen, plan.rate)

            await gen.reset(time.time_ns())
            inside_before = inside(server_name, server)
            server_cpu = common.CpuMeter(server.proc.pid)
            server_cpu.start()
            kafka_cpu = common.CpuMeter(*infra.kafka_pids)
            kafka_cpu.start()
            load = MachineLoad()
            feed: FeedStats = await feeder.run(plan.rate, plan.seconds)
            await asyncio.sleep(plan.drain_s)
            cpu_s = server_cpu.stop()
            kafka_s = kafka_cpu.stop()
            machine_load = load.stop()
            rss_after = rss_bytes(server.proc.pid)
            inside_window = inside_delta(inside_before, inside(server_name, server))
            report = await gen.report()
        finally:
            if gen is not None:
                await gen.close()
            if server is not None:
                server.stop()
            await feeder.stop()
    window = feed.seconds + plan.drain_s
    fans = subscribers(all_symbols, clients, plan.per_client)
    expected = sum(count * fans[s] for s, count in feed.produced.items())
    delivered = int(report["delivered"])
    return {
        "clients": clients,
        "connected": connected["connected"],
        "connect_seconds": round(connected["seconds"], 2),
        "warm_up_seconds": round(warm_s, 2),
        "updates_fed": feed.total,
        "expected_deliveries": expected,
        "delivered": delivered,
        "delivered_fraction": round(delivered / expected, 4) if expected else None,
        "delivered_per_s": round(delivered / window),
        "server_cpu_s": round(cpu_s, 3),
        "server_cores": round(cpu_s / window, 3),
        "server_cpu_s_per_million": per_million(cpu_s, delivered),
        "latency_ms": {k: round(v, 3) for k, v in report["latency_ms"].items()},
        **inside_window,
        "rss_idle_mib": round(rss_idle / 2**20, 1),
        "rss_connected_mib": round(rss_connected / 2**20, 1),
        "rss_after_mib": round(rss_after / 2**20, 1),
        "rss_per_connection_kib": round((rss_connected - rss_idle) / clients / 1024, 2),
        "rss_per_connection_after_feed_kib": round((rss_after - rss_idle) / clients / 1024, 2),
        "snapshots": report["snapshots"],
        "warm_up_updates_after_reset": report["stale_updates"],
        "errors": report["errors"],
        "error_samples": report["error_samples"],
        "loadgen_cpu_s": round(report["cpu_s_window"], 3),
        "loadgen_cores": round(report["cpu_s_window"] / window, 3),
        "loadgen_cpu_s_per_million": per_million(report["cpu_s_window"], delivered),
        "feeder_cpu_s": round(feed.cpu_s, 3),
        "feeder_late_ticks": feed.late_ticks,
        "kafka_cores": round(kafka_s / window, 3),
        "machine": {
            **machine_load,
            "other_cores": round(
                machine_load["busy_cores"]
                - (cpu_s + report["cpu_s_window"] + feed.cpu_s + kafka_s) / window,
                2,
            ),
        },
    }


def kafka_pids(stack: Stack) -> tuple[int, ...]:
    """The pids of a stack's Kafka nodes."""
    components = stack.status()["components"]
    return tuple(
        c["pid"] for name, c in components.items() if name.startswith("kafka") and c["pid"]
    )


@contextlib.contextmanager
def infrastructure(stack_choice: str) -> Iterator[Infra]:
    """Kafka and MongoDB: from TICKWIRE_KAFKA_BOOTSTRAP/TICKWIRE_MONGODB_URL when set;
    else a private stack of the benchmark's own (default: no other engineer's test
    traffic on its broker, and a wedged shared FerretDB cannot stall the run), stopped
    at the end; or, with --stack shared, the shared stack (started if it is down)."""
    kafka = os.environ.get("TICKWIRE_KAFKA_BOOTSTRAP")
    mongo = os.environ.get("TICKWIRE_MONGODB_URL")
    if kafka and mongo:
        yield Infra(kafka, mongo)
        return
    if stack_choice == "shared":
        stack = Stack(default_stack_dir())
        info = stack.info()
        if info is not None and stack.status()["up"]:
            yield Infra(info.bootstrap_servers, info.mongodb_url, kafka_pids(stack))
            return
    else:
        stack = Stack(cache_dir() / "stack-bench-gateway")
    info = stack.up()
    try:
        yield Infra(info.bootstrap_servers, info.mongodb_url, kafka_pids(stack))
    finally:
        stack.down(wipe=stack_choice == "private")


async def feeder_ceiling(infra: Infra, count: int) -> dict[str, Any]:
    """How fast the feeder can produce (batch API, same records) when unthrottled."""
    async with fresh_topics(infra.bootstrap) as (updates, _bars):
        feeder = Feeder(infra.bootstrap, updates, symbols(500))
        await feeder.start()
        try:
            stats = await feeder.flood(count)
        finally:
            await feeder.stop()
    return {
        "records": stats.total,
        "records_per_s": round(stats.total / stats.seconds),
        "records_per_cpu_s": round(stats.total / stats.cpu_s) if stats.cpu_s else None,
    }


MEDIAN_OF = (
    "server_cpu_s_per_million",
    "server_cores",
    "delivered_per_s",
    "delivered_fraction",
    "rss_per_connection_kib",
    "loadgen_cores",
    "loadgen_cpu_s_per_million",
)


def median_of(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each figure's median over the trials that finished (figure by figure)."""
    done = [t for t in trials if "failed" not in t]
    if not done:
        return None
    out: dict[str, Any] = {"trials": len(done)}
    for key in MEDIAN_OF:
        values = [float(t[key]) for t in done if t.get(key) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    out["latency_ms"] = {
        q: round(statistics.median(float(t["latency_ms"][q]) for t in done), 3)
        for q in ("p50", "p90", "p99", "max")
    }
    return out


def summary(runs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        str(n): {"median": median_of(trials), "trials": trials}
        for n, trials in sorted(runs.items())
    }


def ratio(peer: dict[str, Any] | None, ours: dict[str, Any] | None, key: str) -> float | None:
    """peer[key] / ours[key] for a figure where smaller is better, when both exist."""
    if not peer or not ours:
        return None
    theirs, mine = peer.get(key), ours.get(key)
    if not theirs or not mine:
        return None
    return round(float(theirs) / float(mine), 3)


def ratios(ours: dict[str, Any] | None, peer: dict[str, Any] | None) -> dict[str, Any]:
    """CPU-per-update and p99 ratios (Centrifugo / tickwire) of two median blocks."""
    return {
        "cpu_per_update": ratio(peer, ours, "server_cpu_s_per_million"),
        "p99": ratio(peer and peer["latency_ms"], ours and ours["latency_ms"], "p99"),
        "p50": ratio(peer and peer["latency_ms"], ours and ours["latency_ms"], "p50"),
        "rss_per_connection": ratio(peer, ours, "rss_per_connection_kib"),
    }


def go_version() -> str:
    """The Go toolchain that built Centrifugo and the load generator."""
    out = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def default_flush_ms() -> float | None:
    """The gateway's own default coalescing window, for the record."""
    try:
        from tickwire.gateway.settings import GatewaySettings
    except ImportError:
        return None
    default = GatewaySettings.model_fields["gateway_flush_ms"].default
    return float(default) if isinstance(default, int | float) else None


async def bench(plan: Plan, infra: Infra, write: bool) -> dict[str, Any]:
    lg_binary = loadgen.build()
    if "centrifugo" in plan.servers:
        centrifugo_install.build()
    results: dict[str, dict[int, list[dict[str, Any]]]] = {n: {} for n in plan.servers}
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        workdir = Path(tmp)
        gateway_commit = export_gateway(plan.gateway_rev, workdir / "src")
        print(f"[bench] tickwire gateway from commit {gateway_commit}", flush=True)
        ceiling = await feeder_ceiling(infra, 50_000)
        print(f"[bench] feeder ceiling: {ceiling}", flush=True)
        for clients in plan.clients:
            for trial in range(plan.repeats):
                for name in plan.servers:
                    print(f"[bench] {name}, {clients} connections, trial {trial + 1}", flush=True)
                    try:
                        run = await run_one(name, clients, plan, infra, lg_binary, workdir)
                    except Exception as exc:  # one failed run must not hide the others
                        run = {"clients": clients, "failed": f"{type(exc).__name__}: {exc}"[:2000]}
                    results[name].setdefault(clients, []).append(run)
                    print(f"[bench]   {run}", flush=True)
    ours = summary(results.get("tickwire", {}))
    peer = summary(results.get("centrifugo", {}))
    by_n = {
        str(n): ratios(ours.get(str(n), {}).get("median"), peer.get(str(n), {}).get("median"))
        for n in plan.clients
    }
    top = str(max(plan.clients))
    doc: dict[str, Any] = {
        "ours": {"name": "tickwire gateway", "commit": gateway_commit, "runs": ours},
        "peer": {
            "name": f"Centrifugo {centrifugo_install.VERSION}",
            "transport": "uni_sse",
            "feed": "its Kafka consumer (publication data mode) on the same topic",
            "runs": peer,
        },
        "p99_ratio": by_n[top]["p99"],
        "ratios_by_connections": by_n,
        "setup": {
            "connections": list(plan.clients),
            "trials_per_server_and_count": plan.repeats,
            "order": "per connection count: tickwire, Centrifugo, tickwire, ... back to back",
            "symbols": plan.symbols,
            "symbols_per_client": plan.per_client,
            "updates_per_s": plan.rate,
            "measured_seconds": plan.seconds,
            "drain_seconds": plan.drain_s,
            "gateway_flush_ms": plan.flush_ms if plan.flush_ms is not None else default_flush_ms(),
            "latency": "client receive wall clock - received_ns stamped by the feeder when it "
            "builds the batch (so the Kafka hop is included, the same for both)",
            "cpu": "user+system seconds of the server process tree over the measured window "
            "(feed + drain), divided by the updates delivered in it",
            "feeder_ceiling": ceiling,
            "infrastructure": f"{plan.stack} stack: Kafka {KAFKA_VERSION} (1 broker, 6 "
            "partitions per topic), FerretDB (the gateway's cold start reads it)",
        },
    }
    if write:
        cpu_ratio = by_n[top]["cpu_per_update"]
        common.write_result(
            "gateway",
            ours=doc["ours"],
            peer=doc["peer"],
            ratio=cpu_ratio if cpu_ratio is not None else 0.0,
            ratio_meaning=(
                ("NOT MEASURED (a run failed, see runs): " if cpu_ratio is None else "")
                + "Centrifugo server CPU per delivered update / tickwire gateway CPU per "
                f"delivered update at {top} SSE connections, medians of the trials (above 1: "
                "tickwire is cheaper); p99_ratio = Centrifugo p99 / tickwire p99 delivery "
                "latency (above 1: tickwire is faster)"
            ),
            versions_=common.versions(
                "aiokafka",
                "uvicorn",
                "fastapi",
                "msgspec",
                extra={"centrifugo": centrifugo_install.VERSION, "go": go_version()},
            ),
            extra={k: doc[k] for k in ("p99_ratio", "ratios_by_connections", "setup")},
        )
    return doc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,5000,10000")
    parser.add_argument("--servers", default="tickwire,centrifugo")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--per-client", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="updates per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=2.0)
    parser.add_argument("--flush-ms", type=int, default=None, help="gateway default if unset")
    parser.add_argument("--repeats", type=int, default=3, help="trials per server and count")
    parser.add_argument("--gateway-rev", default="HEAD", help="commit of the gateway to run")
    parser.add_argument("--stack", choices=("private", "shared"), default="private")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    plan = Plan(
        clients=tuple(int(n) for n in args.clients.split(",")),
        symbols=args.symbols,
        per_client=args.per_client,
        rate=args.rate,
        seconds=args.seconds,
        drain_s=args.drain,
        servers=tuple(args.servers.split(",")),
        flush_ms=args.flush_ms,
        repeats=args.repeats,
        gateway_rev=args.gateway_rev,
        stack=args.stack,
    )
    raise_file_limit()
    with infrastructure(plan.stack) as infra:  # outside the loop: Stack.up() runs its own
        doc = asyncio.run(bench(plan, infra, write=not args.no_write))
    if args.no_write:
        import json

        print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
