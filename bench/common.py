"""What every benchmark shares: the machine and version facts, CPU accounting of child
processes, and writing bench/results/<name>.json in the agreed shape.

A result file holds at least:
  {"benchmark", "date", "machine", "versions", "ours", "peer": {"name", ...},
   "ratio", "ratio_meaning"}
and docs/benchmarks.md is regenerated from all of them by `python -m bench.report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, core count, memory, kernel and Python of this machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "note": "shared 2-core VM; ours and the peer ran back to back in the same run",
    }


def versions(*packages: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Installed versions of the named Python packages (plus any given by hand)."""
    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    with contextlib.suppress(OSError, IndexError):
        out["java"] = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, check=False
        ).stderr.splitlines()[0]
    from tickwire.devstack.paths import FERRETDB_VERSION, KAFKA_VERSION

    out.setdefault("kafka", KAFKA_VERSION)
    out.setdefault("ferretdb", FERRETDB_VERSION)
    out.update(extra or {})
    return out


class CpuMeter:
    """CPU seconds (user+system) used by a set of processes and their children between
    start() and stop()."""

    def __init__(self, *pids: int) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self._start = 0.0

    def _total(self) -> float:
        total = 0.0
        for proc in self.procs:
            try:
                members = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for member in members:
                try:
                    t = member.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        return total

    def start(self) -> None:
        self._start = self._total()

    def stop(self) -> float:
        """CPU seconds used since start()."""
        return self._total() - self._start


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of samples, nearest-rank; 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_result(
    name: str,
    *,
    ours: dict[str, Any],
    peer: dict[str, Any],
    ratio: float,
    ratio_meaning: str,
    versions_: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write bench/results/<name>.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions_,
        "ours": ours,
        "peer": peer,
        "ratio": round(ratio, 3),
        "ratio_meaning": ratio_meaning,
        **(extra or {}),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def scrape_histogram(metrics_url: str, name: str) -> dict[float, float]:
    """A Prometheus histogram's cumulative bucket counts (upper bound -> count), summed
    over its label sets, read from a live /metrics page."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return buckets


def histogram_quantiles(
    before: dict[float, float], after: dict[float, float], qs: Sequence[float] = (50, 99)
) -> dict[str, float | None]:
    """Quantiles (the upper bound of the bucket each falls in, in ms) of the samples
    observed between two scrapes; None where there were none or past the last bound."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    out: dict[str, float | None] = {"samples": total}
    for q in qs:
        found: float | None = None
        if total:
            for bound, count in zip(bounds, counts, strict=True):
                if count >= total * q / 100:
                    found = None if bound == float("inf") else round(bound * 1000, 3)
                    break
        out[f"p{q:g}_at_most_ms"] = found
    return out


def proc_usage(pid: int) -> tuple[int, int] | None:
    """(resident bytes, open file descriptors) of pid read from /proc; None if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rss_kib = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    return rss_kib * 1024, fds


class ProcSampler:
    """Samples RSS and open fds of named processes every interval_s (run() until
    cancelled or stop is set): rows of {"t": seconds since start, name: [rss_mib, fds]}.
    `pids()` is asked each time, so a restarted process is followed."""

    def __init__(self, pids: Callable[[], dict[str, int | None]], interval_s: float) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def sample(self) -> dict[str, Any]:
        """One row, appended to samples."""
        row: dict[str, Any] = {"t": round(time.monotonic() - self.started, 2)}
        for name, pid in self.pids().items():
            usage = proc_usage(pid) if pid else None
            if usage is not None:
                row[name] = [round(usage[0] / 2**20, 2), usage[1]]
        self.samples.append(row)
        return row

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until stop is set."""
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def series(self, name: str, column: int) -> list[tuple[float, float]]:
        """(t, value) of one process: column 0 = RSS MiB, 1 = fds."""
        return [(row["t"], row[name][column]) for row in self.samples if name in row]


def slope_per(points: list[tuple[float, float]], per_s: float) -> float:
    """Least-squares slope of (t, y) points, in y per `per_s` seconds (0 for < 2 points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return cov / var * per_s


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A service's /metrics as {(sample name, sorted labels): value}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(url + "/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str, str]]:
    """(event, id, data) of each event of an SSE stream, from its lines (the gateway
    writes one `data:` line per event); comments and keep-alives are skipped."""
    event, eid, data = "", "", ""
    async for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            eid = line[3:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif not line and data:
            yield event, eid, data
            event, eid, data = "", "", ""
