"""What every benchmark shares: the machine and version facts, CPU accounting of child
processes, and writing bench/results/<name>.json in the agreed shape.

A result file holds at least:
  {"benchmark", "date", "machine", "versions", "ours", "peer": {"name", ...},
   "ratio", "ratio_meaning"}
and docs/benchmarks.md is regenerated from all of them by `python -m bench.report`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import urllib.request
from collections.abc import Sequence
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
