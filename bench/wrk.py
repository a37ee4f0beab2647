"""HTTP latency at a fixed number of requests in flight, measured with wrk.

A Python asyncio client at 50 requests in flight spends about as much CPU per request
as the server it measures, on the same two cores, so its queueing ends up in the
figures (bench/results/query.json before wrk: httpx at ~300 requests/s). wrk (C,
Debian's `wrk`, `make wrk`) is closed-loop: each of its connections sends the next
request when the previous answer is in, so `connections` is the number in flight. A
Lua script walks the given paths round-robin per connection, counts non-2xx answers,
and prints the latency percentiles as one JSON line when the run ends.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SCRIPT = """
local paths = {%(paths)s}
local counter = 0
setup = function(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
init = function(args)
  n = offset
  wrk.headers["Accept"] = "application/json"
end
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local out = string.format(
    '{"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"socket_errors":%%d,'
    .. '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"p999_us":%%d,"max_us":%%d,"mean_us":%%f}',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean)
  io.write("WRK_JSON " .. out .. "\\n")
end
"""


def binary() -> str:
    """wrk on PATH (`make wrk` installs Debian's)."""
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: run `make wrk`")
    return found


def version() -> str:
    out = subprocess.run([binary(), "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).split()[1] if (out.stdout or out.stderr) else "?"


def run(
    base_url: str,
    paths: Sequence[str],
    *,
    connections: int = 50,
    threads: int = 1,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Latency percentiles (ms) and throughput of GETs of `paths` at `connections` in
    flight for `seconds`; the load generator's own CPU beside them."""
    lua_paths = ",".join(json.dumps(p) for p in paths)
    with tempfile.TemporaryDirectory(prefix="tw-wrk-") as tmp:
        script = Path(tmp) / "paths.lua"
        script.write_text(_SCRIPT % {"paths": lua_paths})
        argv = [
            binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            base_url,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(
            f"wrk printed no result (exit {proc.returncode}): {proc.stdout}{proc.stderr}"
        )
    raw = json.loads(line.removeprefix("WRK_JSON "))
    if raw["non_2xx"] or raw["socket_errors"]:
        raise RuntimeError(f"wrk saw failed requests: {raw}")
    return {
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "p999_ms": round(raw["p999_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "in_flight": connections,
        "client": f"wrk {version()}, {threads} thread(s)",
        "client_cores": round(cpu / wall, 3) if wall else None,
    }
