"""Ingest against the broker's own ceiling: `python -m bench.ingest`.

In one run, on the shared local stack (or TICKWIRE_KAFKA_BOOTSTRAP):
  1. start ingest (uvicorn + uvloop + httptools, one worker: the machine has two cores
     shared by Kafka, the load generator and ingest) with auth on (one API key,
     unlimited rate) and a fresh ticks.raw topic of 6 partitions;
  2. a load generator in its own process (this module with --load: asyncio on uvloop,
     raw sockets, HTTP/1.1 keep-alive, no client library in the way) posts
     (a) single events on 64 connections, then (b) NDJSON batches of 1,000 events on 4
     connections, each for a fixed time after a warm-up; it reports requests, accepted
     events (202 only), p50/p99 request latency and its own CPU;
  3. the average size of the records ingest wrote (key + value + headers) is read back
     from the topic, and Kafka's ProducerPerformance (kafka-tools jar) writes the same
     number of records of that size to another fresh 6-partition topic with acks=all,
     idempotence, linger.ms=5 and lz4, as many as (b) accepted.
ratio = (b) accepted events/s / ProducerPerformance records/s. Target: >= 0.5.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench import common

SYMBOLS = [f"S{i:03d}" for i in range(500)]
SINGLE_CONNECTIONS = 64
BATCH_CONNECTIONS = 4
BATCH_SIZE = 1000
WARMUP_S = 2.0
DURATION_S = 10.0
PARTITIONS = 6


# -- the load generator (its own process) ---------------------------------------------


def _request(path: str, body: bytes, content_type: str, key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _bodies(mode: str, key: str) -> tuple[list[bytes], int]:
    time_ = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()

    def trade(i: int) -> bytes:
        symbol = SYMBOLS[i % len(SYMBOLS)]
        return orjson.dumps(
            {
                "type": "trade",
                "symbol": symbol,
                "price": 100 + i % 97 / 4,
                "size": 1 + i % 13,
                "time": time_,
            }
        )

    if mode == "single":
        return [_request("/v1/events", trade(i), "application/json", key) for i in range(500)], 1
    bodies = [
        _request(
            "/v1/events:batch",
            b"\n".join(trade(n * BATCH_SIZE + i) for i in range(BATCH_SIZE)),
            "application/x-ndjson",
            key,
        )
        for n in range(8)
    ]
    return bodies, BATCH_SIZE


async def _connection(
    port: int, requests: list[bytes], offset: int, until: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = offset
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(requests[n % len(requests)])
            n += 1
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            out["latencies"].append(time.perf_counter() - started)
            status = int(status_line[9:12])
            out["statuses"][status] = out["statuses"].get(status, 0) + 1
    finally:
        writer.close()


async def _load(port: int, mode: str, key: str, connections: int) -> dict[str, Any]:
    requests, per_request = _bodies(mode, key)
    warm: dict[str, Any] = {"latencies": [], "statuses": {}}
    until = time.perf_counter() + WARMUP_S
    await asyncio.gather(*(_connection(port, requests, i, until, warm) for i in range(connections)))
    out: dict[str, Any] = {"latencies": [], "statuses": {}}
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    until = started + DURATION_S
    await asyncio.gather(*(_connection(port, requests, i, until, out) for i in range(connections)))
    elapsed = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = out["latencies"]
    accepted = out["statuses"].get(202, 0) * per_request
    return {
        "mode": mode,
        "connections": connections,
        "events_per_request": per_request,
        "seconds": round(elapsed, 3),
        "requests": len(lat),
        "statuses": {str(k): v for k, v in sorted(out["statuses"].items())},
        "accepted_events": accepted,
        "accepted_events_per_s": round(accepted / elapsed, 1),
        "requests_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(common.percentile(lat, 50) * 1000, 3),
        "p99_ms": round(common.percentile(lat, 99) * 1000, 3),
        "loadgen_cpu_s": round(
            (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime), 3
        ),
    }


def load_main(port: int, mode: str, key: str, connections: int) -> None:
    import uvloop

    result = uvloop.run(_load(port, mode, key, connections))
    sys.stdout.write(json.dumps(result) + "\n")


# -- the run ----------------------------------------------------------------------------


def _bootstrap() -> str:
    if os.environ.get("TICKWIRE_KAFKA_BOOTSTRAP"):
        return os.environ["TICKWIRE_KAFKA_BOOTSTRAP"]
    from tickwire.devstack.paths import default_stack_dir
    from tickwire.devstack.stack import Stack

    info = Stack(default_stack_dir()).up()
    return info.bootstrap_servers


def _kafka_pids() -> list[int]:
    from tickwire.devstack.paths import default_stack_dir

    pids = []
    for pid_file in default_stack_dir().glob("kafka-*/kafka.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pid_file.read_text().strip()))
    return pids


def _free_port() -> int:
    from tickwire.devstack.procs import free_port

    return free_port()


async def _create_topic(bootstrap: str, topic: str) -> None:
    from tickwire.kafka.topics import ensure_topics

    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS, replication=1)


async def _record_sizes(bootstrap: str, topic: str, sample: int = 20_000) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        keys = values = headers = count = 0
        deadline = time.monotonic() + 30
        while count < sample and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    keys += len(r.key or b"")
                    values += len(r.value or b"")
                    headers += sum(len(k) + len(v) for k, v in r.headers)
                    count += 1
        return {
            "records_sampled": count,
            "key_bytes": round(keys / count, 1),
            "value_bytes": round(values / count, 1),
            "header_bytes": round(headers / count, 1),
            "total_bytes": round((keys + values + headers) / count, 1),
        }
    finally:
        await consumer.stop()


def _start_ingest(bootstrap: str, topic: str, port: int, keys_doc: str, log: Path) -> Any:
    env = {
        **os.environ,
        "TICKWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKWIRE_TOPIC_RAW": topic,
        "TICKWIRE_TOPIC_PARTITIONS": str(PARTITIONS),
        "TICKWIRE_PORT": str(port),
        "TICKWIRE_INGEST_AUTH": "on",
        "TICKWIRE_INGEST_KEYS": keys_doc,
        "TICKWIRE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickwire.ingest"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ingest exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("ingest did not become ready")


def _run_load(port: int, mode: str, key: str, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ingest",
            "--load",
            mode,
            "--port",
            str(port),
            "--key",
            key,
            "--connections",
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


_PP_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)


def _producer_performance(bootstrap: str, topic: str, records: int, size: int) -> dict[str, Any]:
    from tickwire.devstack.kafka import resolve_jars
    from tickwire.devstack.tools import require_java

    jars = resolve_jars()
    argv = [
        require_java(),
        "-Xmx512m",
        "-cp",
        f"{jars}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
        "compression.type=lz4",
    ]
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stdout, _ = proc.communicate(timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    match = None
    for line in stdout.splitlines():
        found = _PP_LINE.search(line)
        if found and "records sent" in line and "99.9th" in line:
            match = found
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"ProducerPerformance failed:\n{stdout[-3000:]}")
    sent, rate, mb, avg, mx, p50, p95, p99, p999 = match.groups()
    return {
        "name": "Kafka ProducerPerformance (kafka-tools jar)",
        "records": int(sent),
        "record_size_bytes": size,
        "events_per_s": float(rate),
        "mb_per_s": float(mb),
        "avg_latency_ms": float(avg),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "p999_ms": float(p999),
        "max_latency_ms": float(mx),
        "process_wall_s": round(wall, 2),
        "process_cpu_s": round(cpu, 2),
        "note": "process wall and CPU include JVM start-up and warm-up",
        "producer_props": "acks=all enable.idempotence=true linger.ms=5 compression.type=lz4",
        "command": " ".join(argv[argv.index("org.apache.kafka.tools.ProducerPerformance") :]),
    }


def run() -> Path:
    from tickwire.ingest.auth import digest
    from tickwire.ingest.keys import new_key

    bootstrap = _bootstrap()
    tag = uuid.uuid4().hex[:8]
    ours_topic, peer_topic = f"bench-{tag}.ticks.raw", f"bench-{tag}.perf"
    asyncio.run(_create_topic(bootstrap, ours_topic))
    asyncio.run(_create_topic(bootstrap, peer_topic))
    key = new_key()
    keys_doc = json.dumps({"keys": [{"key_id": "bench", "sha256": digest(key)}]})
    port = _free_port()
    log = Path(f"/tmp/tickwire-bench-ingest-{tag}.log")
    ingest = _start_ingest(bootstrap, ours_topic, port, keys_doc, log)
    kafka_pids = _kafka_pids()
    try:
        phases = {}
        for mode, connections in (("single", SINGLE_CONNECTIONS), ("batch", BATCH_CONNECTIONS)):
            ingest_cpu = common.CpuMeter(ingest.pid)
            kafka_cpu = common.CpuMeter(*kafka_pids) if kafka_pids else None
            ingest_cpu.start()
            if kafka_cpu:
                kafka_cpu.start()
            result = _run_load(port, mode, key, connections)
            # the meters span the warm-up too; scale to the measured window's share
            share = DURATION_S / (DURATION_S + WARMUP_S)
            result["ingest_cpu_s"] = round(ingest_cpu.stop() * share, 2)
            if kafka_cpu:
                result["broker_cpu_s"] = round(kafka_cpu.stop() * share, 2)
            result["events_per_ingest_cpu_s"] = round(
                result["accepted_events"] / max(result["ingest_cpu_s"], 1e-9), 1
            )
            phases[mode] = result
            print(f"[bench] ingest {mode}: {json.dumps(result)}", flush=True)
    finally:
        ingest.terminate()
        ingest.wait(30)
    sizes = asyncio.run(_record_sizes(bootstrap, ours_topic))
    print(f"[bench] record sizes: {sizes}", flush=True)
    records = max(100_000, phases["batch"]["accepted_events"])
    peer = _producer_performance(bootstrap, peer_topic, records, round(sizes["total_bytes"]))
    print(f"[bench] ProducerPerformance: {json.dumps(peer)}", flush=True)
    ratio = phases["batch"]["accepted_events_per_s"] / peer["events_per_s"]
    from aiokafka import __version__ as aiokafka_version

    return common.write_result(
        "ingest",
        ours={
            "batched": phases["batch"],
            "single": phases["single"],
            "record_sizes": sizes,
            "setup": {
                "ingest_workers": 1,
                "server": "uvicorn + uvloop + httptools",
                "auth": "on (one key, sha256 lookup, no rate limit)",
                "topic_partitions": PARTITIONS,
                "symbols": len(SYMBOLS),
                "warmup_s": WARMUP_S,
                "duration_s": DURATION_S,
                "loadgen": "python asyncio on uvloop, raw sockets, HTTP/1.1 keep-alive, "
                "one request in flight per connection, own process",
            },
        },
        peer=peer,
        ratio=ratio,
        ratio_meaning=(
            "batched ingest accepted events/s (NDJSON batches of 1,000, 202 after Kafka's "
            "ack) / Kafka ProducerPerformance records/s with acks=all, idempotence, lz4, "
            "records of the same average size (key+value+headers of ours); target >= 0.5"
        ),
        versions_=common.versions(
            "fastapi",
            "uvicorn",
            "uvloop",
            "httptools",
            "msgspec",
            "orjson",
            "pydantic",
            extra={"aiokafka": aiokafka_version},
        ),
        extra={"shared_machine": True, "bootstrap": bootstrap},
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--load", choices=["single", "batch"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main(args.port, args.load, args.key, args.connections)
        return
    path = run()
    print(f"[bench] wrote {path}")


if __name__ == "__main__":
    main()
